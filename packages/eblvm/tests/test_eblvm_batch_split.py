"""How a batch is split over processes: the noise levels and the step's random draws of
the pieces make those of the whole batch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eblvm.image_methods import StepNoise, rank_sigma_range
from score_objectives import noise_levels


@settings(max_examples=25, deadline=None)
@given(
    world=st.integers(1, 4),
    per_rank=st.integers(1, 6),
    low=st.floats(0.01, 1.0),
    width=st.floats(0.0, 2.0),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_the_pieces_of_the_noise_levels_make_the_whole_batchs(world, per_rank, low, width, dtype):
    batch = world * per_rank
    high = low + width
    whole = noise_levels(batch, sigma_min=low, sigma_max=high, schedule="linear", dtype=dtype)
    pieces = []
    for rank in range(world):
        start, end = rank_sigma_range(low, high, global_batch=batch, rank=rank, world=world)
        pieces.append(
            noise_levels(per_rank, sigma_min=start, sigma_max=end, schedule="linear", dtype=dtype)
        )
    torch.testing.assert_close(torch.cat(pieces), whole, rtol=1e-6, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    world=st.integers(1, 4),
    per_rank=st.integers(1, 5),
    k=st.integers(0, 3),
    m=st.integers(0, 3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_step_noise_shards_are_the_batchs_pieces(world, per_rank, k, m, dtype):
    batch = world * per_rank
    g = torch.Generator().manual_seed(0)
    noise = StepNoise(
        torch.randn(k, batch, 1, 8, 8, generator=g, dtype=dtype),
        torch.randn(k, batch, 3, generator=g, dtype=dtype),
        torch.randn(m, batch, 3, generator=g, dtype=dtype),
        torch.randn(batch, 1, 8, 8, generator=g, dtype=dtype),
    )
    shards = [noise.shard(rank, world) for rank in range(world)]
    for field, axis in zip(StepNoise._fields, (1, 1, 1, 0), strict=True):
        joined = torch.cat([getattr(shard, field) for shard in shards], dim=axis)
        assert torch.equal(joined, getattr(noise, field))
    with pytest.raises(ValueError, match="equal pieces"):
        noise.shard(0, batch + 1)

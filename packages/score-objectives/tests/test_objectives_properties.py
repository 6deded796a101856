"""Property tests over batch sizes, shapes and dtypes."""

from __future__ import annotations

from collections.abc import Callable

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from objectives_testing import ElementwiseScore, TanhScore, seeded

from score_objectives import dsm, ksd, mdsm, noise_levels, sm, ssm

DTYPES = st.sampled_from([torch.float32, torch.float64])
BATCH = st.integers(min_value=2, max_value=16)
VECTOR = st.integers(min_value=1, max_value=8).map(lambda d: (d,))
IMAGE = st.tuples(
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=4),
)
SEED = st.integers(min_value=0, max_value=2**16)

# Each entry evaluates an objective with a fresh generator from the seed, so that
# "mean" and "none" see the same draws.
AnyShapeObjective = Callable[..., torch.Tensor]
ANY_SHAPE: dict[str, AnyShapeObjective] = {
    "ssm": lambda f, v, seed, r: ssm(
        f, v, n_projections=2, projection="gaussian", generator=seeded(seed), reduction=r
    ),
    "dsm": lambda f, v, seed, r: dsm(f, v, sigma=0.2, generator=seeded(seed), reduction=r),
    "mdsm": lambda f, v, seed, r: mdsm(
        f,
        v,
        sigma_min=0.05,
        sigma_max=1.0,
        schedule="geometric",
        generator=seeded(seed),
        reduction=r,
    ),
    "ksd": lambda f, v, seed, r: ksd(f, v, reduction=r),
}


def check_per_sample(per_sample: torch.Tensor, mean: torch.Tensor, v: torch.Tensor) -> None:
    assert per_sample.shape == (v.shape[0],)
    assert per_sample.dtype == v.dtype
    assert bool(torch.isfinite(per_sample).all())
    assert mean.shape == ()
    # Same draws and the same arithmetic up to the order of the final sum.
    tolerance = 1e-5 if v.dtype == torch.float32 else 1e-12
    torch.testing.assert_close(mean, per_sample.mean(), rtol=tolerance, atol=tolerance)


@settings(max_examples=25, deadline=None)
@given(batch=BATCH, dim=st.integers(min_value=1, max_value=8), dtype=DTYPES, seed=SEED)
def test_sm_shapes_and_reductions(batch: int, dim: int, dtype: torch.dtype, seed: int) -> None:
    g = seeded(seed)
    model = TanhScore(dim, generator=g, dtype=dtype)
    v = torch.randn(batch, dim, generator=g, dtype=dtype)
    check_per_sample(sm(model, v, reduction="none"), sm(model, v), v)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(list(ANY_SHAPE)),
    batch=BATCH,
    trailing=st.one_of(VECTOR, IMAGE),
    dtype=DTYPES,
    seed=SEED,
)
def test_any_shape_objectives_shapes_and_reductions(
    name: str, batch: int, trailing: tuple[int, ...], dtype: torch.dtype, seed: int
) -> None:
    model = ElementwiseScore(dtype)
    v = torch.randn(batch, *trailing, generator=seeded(seed), dtype=dtype)
    objective = ANY_SHAPE[name]
    per_sample = objective(model, v, seed + 1, "none")
    check_per_sample(per_sample, objective(model, v, seed + 1, "mean"), v)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(min_value=1, max_value=64),
    low=st.floats(min_value=1e-3, max_value=1.0),
    spread=st.floats(min_value=1.0, max_value=100.0),
    schedule=st.sampled_from(["linear", "geometric"]),
    dtype=DTYPES,
)
def test_noise_levels_are_sorted_within_range(
    batch: int, low: float, spread: float, schedule: str, dtype: torch.dtype
) -> None:
    high = low * spread
    levels = noise_levels(batch, sigma_min=low, sigma_max=high, schedule=schedule, dtype=dtype)
    assert levels.shape == (batch,)
    assert levels.dtype == dtype
    assert bool((levels.diff() >= 0).all())
    # Rounding to float32 may move an endpoint by half an ulp.
    slack = 1e-6 * high
    assert float(levels.min()) >= low - slack
    assert float(levels.max()) <= high + slack

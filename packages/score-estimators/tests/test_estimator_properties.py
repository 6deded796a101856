"""Property tests: every estimator returns v's shape and dtype, finite, for any sizes."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from score_estimators import (
    BernoulliPosterior,
    BiSM,
    ImportanceSampling,
    VaES,
    VaESCV,
    VaGES,
)


class RBMEnergy(nn.Module):
    def __init__(self, v_dim: int, h_dim: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.randn(v_dim, h_dim, dtype=dtype))

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        return 0.5 * v.square().sum(-1) - ((v @ self.W) * h).sum(-1)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 6),
    v_dim=st.integers(1, 5),
    h_dim=st.integers(1, 5),
    n_samples=st.integers(2, 5),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    requires_grad=st.booleans(),
)
def test_estimates_have_the_shape_of_v(batch, v_dim, h_dim, n_samples, dtype, requires_grad):
    energy = RBMEnergy(v_dim, h_dim, dtype)
    posterior = BernoulliPosterior(nn.Linear(v_dim, h_dim).to(dtype))
    v = torch.randn(batch, v_dim, dtype=dtype, requires_grad=requires_grad)
    for estimator in (
        VaES(n_samples),
        VaGES(n_samples),
        VaESCV(n_samples),
        ImportanceSampling(n_samples),
        BiSM(1, n_samples=n_samples),
    ):
        score = estimator(energy, posterior, v)
        assert score.shape == v.shape and score.dtype == dtype
        assert torch.isfinite(score).all()
        (grad,) = torch.autograd.grad(score.square().sum(), energy.W)
        assert torch.isfinite(grad).all()

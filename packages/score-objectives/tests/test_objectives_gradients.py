"""Gradients reach the parameters of score_fn through every objective."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from objectives_testing import (
    ElementwiseScore,
    GaussianEnergyScore,
    GaussianScore,
    TanhScore,
    random_spd,
    seeded,
)

from score_objectives import dsm, ksd, mdsm, sm, ssm

Objective = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor], torch.Tensor]

OBJECTIVES: dict[str, Objective] = {
    "sm": lambda f, v: sm(f, v),
    "ssm": lambda f, v: ssm(f, v, n_projections=2, generator=seeded(40)),
    "ssm-gaussian": lambda f, v: ssm(f, v, projection="gaussian", generator=seeded(40)),
    "dsm": lambda f, v: dsm(f, v, sigma=0.3, generator=seeded(41)),
    "mdsm": lambda f, v: mdsm(f, v, sigma_min=0.05, sigma_max=1.2, generator=seeded(42)),
    "mdsm-geometric": lambda f, v: mdsm(
        f, v, sigma_min=0.05, sigma_max=1.2, schedule="geometric", generator=seeded(42)
    ),
    "ksd": lambda f, v: ksd(f, v),
}
ANY_SHAPE = [name for name in OBJECTIVES if name != "sm"]


def assert_nonzero_finite_grads(module: torch.nn.Module) -> None:
    for name, parameter in module.named_parameters():
        assert parameter.grad is not None, name
        assert bool(torch.isfinite(parameter.grad).all()), name
        assert float(parameter.grad.abs().max()) > 0, name


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_gradients_reach_parameters_on_vectors(name: str) -> None:
    g = seeded(43)
    model = TanhScore(3, generator=g, dtype=torch.float32)
    v = torch.randn(8, 3, generator=g)
    OBJECTIVES[name](model, v).backward()
    assert_nonzero_finite_grads(model)


@pytest.mark.parametrize("name", ANY_SHAPE)
def test_gradients_reach_parameters_on_images(name: str) -> None:
    model = ElementwiseScore(torch.float32)
    v = torch.randn(6, 2, 3, 3, generator=seeded(44))
    OBJECTIVES[name](model, v).backward()
    assert_nonzero_finite_grads(model)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_score_from_autograd_of_an_energy_matches_the_explicit_score(name: str) -> None:
    # −∇F built by autograd inside score_fn carries a graph to θ and to v, like an
    # estimated score: the objectives must differentiate through it (second and,
    # for SM/SSM, third derivatives of F) and agree with the explicit linear score.
    g = seeded(45)
    precision = random_spd(3, generator=g, dtype=torch.float64)
    mean = torch.randn(3, generator=g, dtype=torch.float64)
    explicit, by_energy = GaussianScore(precision, mean), GaussianEnergyScore(precision, mean)
    v = torch.randn(10, 3, generator=g, dtype=torch.float64)

    want = OBJECTIVES[name](explicit, v)
    got = OBJECTIVES[name](by_energy, v)
    want.backward()
    got.backward()

    # The same numbers through two graphs in float64: rounding only.
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    for a, b in zip(by_energy.parameters(), explicit.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_sm_passes_gradient_to_data_that_requires_it() -> None:
    # SM = mean_b ½‖P(v_b − μ)‖² − tr P, so ∂SM/∂v_b = P²(v_b − μ)/B.
    g = seeded(46)
    precision = random_spd(3, generator=g, dtype=torch.float64)
    mean = torch.randn(3, generator=g, dtype=torch.float64)
    v = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    sm(GaussianScore(precision, mean), v).backward()
    assert v.grad is not None
    expected = (v.detach() - mean) @ precision @ precision / 5
    torch.testing.assert_close(v.grad, expected, rtol=1e-10, atol=1e-12)

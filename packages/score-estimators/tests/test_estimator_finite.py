"""Non-finite estimates: an estimator made with ``check_finite=True`` raises a
FloatingPointError naming itself when its estimate holds NaN or ±inf (data whose
energies overflow, an energy holding a NaN parameter); by default the estimate comes
back as it is, and a finite one is the same with the check as without."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from exact_models import DTYPE, BinaryLatentEnergy, GaussianLatentEnergy
from torch import Tensor, nn

from score_estimators import (
    BernoulliPosterior,
    BiSM,
    ExactScore,
    ImportanceSampling,
    VaES,
    VaESCV,
    VaGES,
)

V_DIM, H_DIM = 3, 4

# Each estimator, made with the given check_finite.
MAKERS: dict[str, Callable[[bool], object]] = {
    "VaES": lambda check: VaES(2, check_finite=check),
    "VaGES": lambda check: VaGES(2, check_finite=check),
    "VaESCV": lambda check: VaESCV(2, check_finite=check),
    "ImportanceSampling": lambda check: ImportanceSampling(2, check_finite=check),
    "BiSM": lambda check: BiSM(1, check_finite=check),
}


def energy(dtype: torch.dtype = DTYPE) -> BinaryLatentEnergy:
    return BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0).to(dtype)


def posterior(dtype: torch.dtype = DTYPE) -> BernoulliPosterior:
    torch.manual_seed(0)
    return BernoulliPosterior(nn.Linear(V_DIM, H_DIM).to(dtype), temperature=0.5)


def data(dtype: torch.dtype = DTYPE) -> Tensor:
    return torch.randn(5, V_DIM, generator=torch.Generator().manual_seed(1), dtype=dtype)


def with_nan_parameter(model: BinaryLatentEnergy) -> BinaryLatentEnergy:
    with torch.no_grad():
        model.W[0, 0] = math.nan
    return model


def _estimate(name: str, check: bool, model: nn.Module, v: Tensor) -> Tensor:
    estimator = MAKERS[name](check)
    generator = torch.Generator().manual_seed(2)
    return estimator(model, posterior(v.dtype), v, generator=generator)  # type: ignore[operator]


@pytest.mark.parametrize("name", list(MAKERS))
def test_huge_inputs_give_a_non_finite_estimate_that_check_finite_refuses(name):
    """v = 1e30 in float32: ½‖v − b‖²/σ² overflows."""
    v = torch.full((5, V_DIM), 1e30)
    assert not torch.isfinite(_estimate(name, False, energy(torch.float32), v)).all()
    with pytest.raises(FloatingPointError) as raised:
        _estimate(name, True, energy(torch.float32), v)
    message = str(raised.value)
    assert message.startswith(f"{name}: the score estimate is not finite (")
    assert "of 15 entries" in message
    assert message.endswith("the energy, the posterior or v gave non-finite values")


@pytest.mark.parametrize("name", list(MAKERS))
def test_an_energy_with_a_nan_parameter_is_refused_with_check_finite(name):
    assert torch.isnan(_estimate(name, False, with_nan_parameter(energy()), data())).any()
    with pytest.raises(FloatingPointError, match=rf"^{name}: the score estimate is not finite"):
        _estimate(name, True, with_nan_parameter(energy()), data())


@pytest.mark.parametrize("name", list(MAKERS))
def test_check_finite_leaves_a_finite_estimate_and_its_gradient_as_they_are(name):
    plain_model, checked_model = energy(), energy()
    plain = _estimate(name, False, plain_model, data())
    checked = _estimate(name, True, checked_model, data())
    assert torch.equal(plain, checked)
    plain.square().sum().backward()
    checked.square().sum().backward()
    for a, b in zip(plain_model.parameters(), checked_model.parameters(), strict=True):
        assert (a.grad is None and b.grad is None) or torch.equal(a.grad, b.grad)


def test_the_exact_score_is_checked_too():
    model = GaussianLatentEnergy(V_DIM, seed=0)
    with torch.no_grad():
        model.u[1] = math.nan
    assert torch.isnan(ExactScore()(model, None, data())).all()
    with pytest.raises(FloatingPointError, match=r"^ExactScore: the score estimate is not finite"):
        ExactScore(check_finite=True)(model, None, data())


@pytest.mark.parametrize(
    "make",
    [
        lambda: VaES(2, check_finite=1),
        lambda: VaGES(2, check_finite="yes"),
        lambda: VaESCV(2, check_finite=None),
        lambda: ImportanceSampling(2, check_finite=0),
        lambda: BiSM(1, check_finite=1.0),
        lambda: ExactScore(check_finite=1),
    ],
)
def test_check_finite_must_be_a_bool(make):
    with pytest.raises(TypeError, match="check_finite must be a bool"):
        make()


def test_the_switch_shows_in_the_repr_only_when_on():
    assert repr(VaGES(2)) == "VaGES(n_samples=2)"
    assert repr(VaGES(2, check_finite=True)) == "VaGES(n_samples=2, check_finite=True)"
    assert repr(VaESCV(3, check_finite=True)) == "VaESCV(n_samples=3, check_finite=True)"
    assert repr(ExactScore(check_finite=True)) == "ExactScore(check_finite=True)"
    assert repr(BiSM(1, check_finite=True)).endswith("check_finite=True)")

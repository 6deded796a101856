"""Non-finite values: noise levels and bandwidths whose powers overflow the data's dtype
are refused up front, and ``check_finite=True`` turns a non-finite loss into a
FloatingPointError naming the objective (off by default: the loss comes back as it is)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from score_objectives import dsm, ksd, mdsm, noise_levels, sm, ssm

V = torch.randn(6, 3, generator=torch.Generator().manual_seed(70))
HUGE = torch.full((6, 3), 1e30)


def gaussian_score(x: torch.Tensor) -> torch.Tensor:
    return -x


def nan_score(x: torch.Tensor) -> torch.Tensor:
    return x * math.nan


Loss = Callable[..., torch.Tensor]

# (name, loss of a score function and data taking the objective's keywords)
OBJECTIVES: dict[str, Loss] = {
    "sm": lambda f, v, **k: sm(f, v, **k),
    "ssm": lambda f, v, **k: ssm(f, v, generator=torch.Generator().manual_seed(1), **k),
    "dsm": lambda f, v, **k: dsm(f, v, sigma=0.1, generator=torch.Generator().manual_seed(2), **k),
    "mdsm": lambda f, v, **k: mdsm(
        f, v, sigma_min=0.1, sigma_max=1.0, generator=torch.Generator().manual_seed(3), **k
    ),
    "ksd": lambda f, v, **k: ksd(f, v, bandwidth=1.0, **k),
}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dsm(gaussian_score, V, sigma=1e-300), r"sigma must be in \(5.42e-20, 1.84e\+19\)"),
        (lambda: dsm(gaussian_score, V, sigma=1e300), r"sigma must be in \(5.42e-20, 1.84e\+19\)"),
        (lambda: dsm(gaussian_score, V, sigma=1e-30), "sigma must be in .* for torch.float32"),
        (
            lambda: dsm(gaussian_score, V.double(), sigma=1e-300),
            r"sigma must be in \(7.46e-155, 1.34e\+154\) for torch.float64 data",
        ),
        (
            lambda: mdsm(gaussian_score, V, sigma_min=0.1, sigma_max=1.0, sigma0=1e-300),
            r"sigma0 must be in \(2.33e-10, 4.29e\+09\) for torch.float32 data, where "
            r"sigma0\^4 and 1/sigma0\^4 are finite, got 1e-300",
        ),
        (
            lambda: mdsm(gaussian_score, V, sigma_min=1e-30, sigma_max=1.0),
            "sigma_min must be in",
        ),
        (
            lambda: mdsm(gaussian_score, V, sigma_min=0.1, sigma_max=1e30),
            "sigma_max must be in",
        ),
        (
            lambda: mdsm(gaussian_score, V, levels=torch.tensor([1e-30, 0.1, 0.1, 0.1, 0.1, 1.0])),
            "levels must be in",
        ),
        (
            lambda: noise_levels(4, sigma_min=1e-200, sigma_max=1.0, schedule="linear"),
            "sigma_min must be in",
        ),
        (lambda: ksd(gaussian_score, V, bandwidth=1e-20), r"bandwidth must be in \(2.33e-10"),
        (lambda: ksd(gaussian_score, V, bandwidth=torch.tensor(1e20)), "bandwidth must be in"),
    ],
)
def test_a_scale_whose_powers_overflow_the_dtype_is_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_range_follows_the_data_dtype():
    """σ = 1e-30 overflows 1/σ² in float32 but not in float64, where the loss is finite."""
    loss = dsm(gaussian_score, V.double(), sigma=1e-30, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss > 1e59
    levels = noise_levels(
        3, sigma_min=1e-30, sigma_max=1.0, schedule="geometric", dtype=torch.float64
    )
    assert float(levels[0]) == pytest.approx(1e-30, rel=1e-9)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_huge_inputs_give_a_non_finite_loss_that_check_finite_refuses(name):
    objective = OBJECTIVES[name]
    if name == "ksd":  # its kernel vanishes at huge distances: a NaN score shows it instead
        score, v = nan_score, V
    else:
        score, v = gaussian_score, HUGE
    assert not torch.isfinite(objective(score, v))  # the default returns it as it is
    with pytest.raises(FloatingPointError) as raised:
        objective(score, v, check_finite=True)
    message = str(raised.value)
    assert message.startswith(f"{name}: the loss is not finite (")
    assert message.endswith("the score function or the inputs gave non-finite values")


@pytest.mark.parametrize("name", ["dsm", "mdsm", "ksd"])
def test_a_score_function_returning_nan_is_named(name):
    objective = OBJECTIVES[name]
    assert torch.isnan(objective(nan_score, V))
    with pytest.raises(FloatingPointError, match=rf"^{name}: the loss is not finite \(nan\); "):
        objective(nan_score, V, check_finite=True)
    with pytest.raises(
        FloatingPointError, match=rf"^{name}: the loss is not finite \(6 nan of 6 entries\)"
    ):
        objective(nan_score, V, check_finite=True, reduction="none")


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_check_finite_leaves_a_finite_loss_as_it_is(name):
    objective = OBJECTIVES[name]
    plain = objective(gaussian_score, V)
    checked = objective(gaussian_score, V, check_finite=True)
    assert torch.isfinite(checked) and torch.equal(checked, plain)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_check_finite_must_be_a_bool(name):
    with pytest.raises(TypeError, match="check_finite must be a bool, got int"):
        OBJECTIVES[name](gaussian_score, V, check_finite=1)


def test_an_infinite_per_sample_value_is_counted():
    def one_infinite(x: torch.Tensor) -> torch.Tensor:
        s = -x.clone()
        s[2] = math.inf
        return s

    with pytest.raises(FloatingPointError, match=r"\(1 infinite of 6 entries\)"):
        dsm(one_infinite, V, sigma=0.1, reduction="none", check_finite=True)

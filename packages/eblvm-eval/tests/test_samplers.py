"""Langevin samplers against the exact laws of Gaussian targets.

For s(v) = −(v − μ)/s² (independent coordinates) every Langevin step is affine:
v ← (1 − a/s²) v + a μ/s² + b ξ, so from Gaussian starting points the chains stay
Gaussian with a mean and a variance given by that recursion, computed here
directly. The unadjusted chain (b² = 2a) has the stationary variance
s² / (1 − a/(2s²)).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from eblvm_eval.samplers import (
    AnnealedLangevinInfo,
    LangevinInfo,
    LangevinState,
    annealed_langevin,
    annealing_schedule,
    langevin_init,
    langevin_step,
    langevin_transition,
)
from score_estimators import langevin_move

DTYPE = torch.float64
MU = torch.tensor([1.0, -2.0], dtype=DTYPE)
STD = torch.tensor([0.5, 1.0], dtype=DTYPE)


def gaussian_score(v: Tensor) -> Tensor:
    return -(v - MU.to(v.dtype)) / STD.to(v.dtype).square()


def _start(n: int, *, seed: int) -> Tensor:
    """v0 ~ N(0, I): (n, 2)."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


def _check_gaussian(v: Tensor, mean: Tensor, var: Tensor, *, var_rtol: float = 0.0) -> None:
    """Per-coordinate sample mean and variance of v: (n, D) at 5 standard errors."""
    n = len(v)
    torch.testing.assert_close(v.mean(0), mean, rtol=0, atol=float(5 * var.sqrt().max()) / n**0.5)
    sample_var = v.var(0)
    assert bool(((sample_var - var).abs() <= 5 * var * (2 / n) ** 0.5 + var_rtol * var).all())


def test_step_is_the_langevin_update_with_injected_noise() -> None:
    state = langevin_init(_start(3, seed=0), gaussian_score)
    noise = _start(3, seed=1)
    new, info = langevin_step(
        state, score_fn=gaussian_score, step_size=0.1, noise_std=0.3, noise=noise
    )
    expected = state.position + 0.1 * gaussian_score(state.position) + 0.3 * noise
    torch.testing.assert_close(new.position, expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(new.score, gaussian_score(expected), rtol=0, atol=1e-15)
    torch.testing.assert_close(info.score_norm, gaussian_score(state.position).norm(dim=1))


def test_transition_binds_the_same_step() -> None:
    transition = langevin_transition(gaussian_score, step_size=0.05, noise_std=0.2)
    state = transition.init(_start(4, seed=0))
    new, info = transition.step(state, torch.Generator().manual_seed(5))
    expected, expected_info = langevin_step(
        state,
        score_fn=gaussian_score,
        step_size=0.05,
        noise_std=0.2,
        generator=torch.Generator().manual_seed(5),
    )
    assert torch.equal(new.position, expected.position)
    assert torch.equal(info.score_norm, expected_info.score_norm)


def test_unadjusted_langevin_converges_to_the_gaussian() -> None:
    a = 0.01
    transition = langevin_transition(gaussian_score, step_size=a, noise_std=math.sqrt(2 * a))
    state = transition.init(_start(4000, seed=0) * 3.0)
    g = torch.Generator().manual_seed(1)
    for _ in range(600):  # (1 − a/s²)^600 ≤ 0.99^600 < 0.003
        state, _ = transition.step(state, g)
    var = STD.square()
    # the stationary variance s²/(1 − a/(2s²)) exceeds s² by at most 2.1% here
    _check_gaussian(state.position, MU, var, var_rtol=0.021)


def test_default_schedule_counts_and_endpoints() -> None:
    t = annealing_schedule()
    assert t.shape == (2700,) and t.dtype == torch.float64
    assert bool((t[:500] == 100.0).all())
    anneal = t[500:2500]
    assert anneal[0] == 100.0
    torch.testing.assert_close(anneal[-1], torch.tensor(100.0 * 0.01 ** (1999 / 2000), dtype=DTYPE))
    ratios = anneal[1:] / anneal[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 0.01 ** (1 / 2000)))
    final = t[2500:]
    assert final[0] == 1.0 and final[-1] == 0.0
    torch.testing.assert_close(final.diff(), torch.full((199,), -1 / 199, dtype=DTYPE))


def test_schedule_phases_can_be_empty() -> None:
    assert annealing_schedule(hold_steps=0, anneal_steps=0, final_steps=3).tolist() == [
        1.0,
        0.5,
        0.0,
    ]
    t = annealing_schedule(t_max=8.0, t_min=2.0, hold_steps=1, anneal_steps=2, final_steps=0)
    torch.testing.assert_close(t, torch.tensor([8.0, 8.0, 4.0], dtype=DTYPE))


def _exact_annealed_law(
    schedule: Tensor, *, step_size: float, denoise_sigma: float | None
) -> tuple[Tensor, Tensor]:
    """Mean and variance (D,) of annealed_langevin on the Gaussian from v0 ~ N(0, I)."""
    a = step_size**2 / 2
    contraction = 1 - a / STD.square()
    mean, var = torch.zeros(2, dtype=DTYPE), torch.ones(2, dtype=DTYPE)
    for temperature in schedule.tolist():
        mean = contraction * mean + a * MU / STD.square()
        var = contraction.square() * var + step_size**2 * temperature
    if denoise_sigma is not None:
        shrink = 1 - denoise_sigma**2 / STD.square()
        mean, var = shrink * mean + denoise_sigma**2 * MU / STD.square(), shrink.square() * var
    return mean, var


def test_annealed_langevin_with_the_papers_settings_follows_the_exact_law() -> None:
    samples, info = annealed_langevin(
        gaussian_score, _start(4000, seed=0), generator=torch.Generator().manual_seed(1)
    )
    assert isinstance(info, AnnealedLangevinInfo)
    assert torch.equal(info.temperatures, annealing_schedule())
    assert info.mean_score_norm.shape == (2700,)
    mean, var = _exact_annealed_law(annealing_schedule(), step_size=0.02, denoise_sigma=0.1)
    _check_gaussian(samples, mean, var)
    torch.testing.assert_close(samples, info.noisy + 0.01 * gaussian_score(info.noisy))


def test_annealed_langevin_ends_near_the_gaussian() -> None:
    """Anneal from T = 10, then hold T = 1: the chains end at the unadjusted Langevin
    law of the target, whose variance exceeds s² by at most a/(2s² − a) < 10%."""
    schedule = torch.cat(
        [
            annealing_schedule(t_max=10.0, hold_steps=50, anneal_steps=200, final_steps=0),
            torch.ones(200, dtype=DTYPE),
        ]
    )
    step_size = 0.3
    samples, info = annealed_langevin(
        gaussian_score,
        _start(4000, seed=2),
        schedule=schedule,
        step_size=step_size,
        denoise_sigma=None,
        generator=torch.Generator().manual_seed(3),
    )
    a = step_size**2 / 2
    var = STD.square() / (1 - a / (2 * STD.square()))
    assert float((var / STD.square()).max()) < 1.1
    _check_gaussian(samples, MU, var)
    assert torch.equal(samples, info.noisy)
    # at stationarity E‖s‖² = Σ 1/s² (up to the same factor): the norms settle there
    settled = info.mean_score_norm[-100:].mean()
    assert float(settled) < float((1 / STD.square()).sum().sqrt() * 1.1)
    assert float(info.mean_score_norm[0]) > 2 * float(settled)


def test_non_finite_states_are_reported_with_their_step() -> None:
    calls = [0]

    def poisoned(v: Tensor) -> Tensor:
        calls[0] += 1
        return gaussian_score(v) * (float("nan") if calls[0] > 4 else 1.0)

    schedule = torch.ones(10, dtype=DTYPE)
    with pytest.raises(FloatingPointError, match="diverged at step 3 "):
        annealed_langevin(poisoned, _start(5, seed=0), schedule=schedule)

    def repulsive(v: Tensor) -> Tensor:
        return 1e6 * v

    with pytest.raises(FloatingPointError, match=r"diverged at step \d+"):
        annealed_langevin(repulsive, _start(5, seed=0).float(), schedule=schedule, step_size=1.0)
    with pytest.raises(FloatingPointError, match="at the initial position"):
        langevin_init(_start(2, seed=0), lambda v: v / 0.0)
    state = langevin_init(_start(2, seed=0), gaussian_score)
    with pytest.raises(FloatingPointError, match="after the step"):
        langevin_step(
            state, score_fn=gaussian_score, step_size=1e308, noise_std=0.0, noise=state.position
        )


def test_bad_input_is_refused() -> None:
    v = _start(3, seed=0)
    with pytest.raises(ValueError, match="v0 must have shape"):
        annealed_langevin(gaussian_score, torch.zeros(2, dtype=DTYPE))
    with pytest.raises(TypeError, match="v0 must be a floating-point"):
        annealed_langevin(gaussian_score, torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="v0 contains non-finite"):
        annealed_langevin(gaussian_score, torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="score_fn must return the shape"):
        langevin_init(v, lambda v: v.sum(1))
    with pytest.raises(ValueError, match="schedule must be a non-empty 1-D"):
        annealed_langevin(gaussian_score, v, schedule=torch.ones(2, 2))
    with pytest.raises(ValueError, match="schedule must hold finite non-negative"):
        annealed_langevin(gaussian_score, v, schedule=torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="step_size must be positive"):
        annealed_langevin(gaussian_score, v, step_size=0.0)
    with pytest.raises(ValueError, match="denoise_sigma must be positive"):
        annealed_langevin(gaussian_score, v, denoise_sigma=-0.1)
    with pytest.raises(ValueError, match="noise_std must be finite"):
        langevin_transition(gaussian_score, step_size=0.1, noise_std=float("inf"))
    with pytest.raises(ValueError, match="noise_std must be non-negative"):
        langevin_transition(gaussian_score, step_size=0.1, noise_std=-1.0)
    state = langevin_init(v, gaussian_score)
    with pytest.raises(ValueError, match="noise must have the chains' shape"):
        langevin_step(
            state, score_fn=gaussian_score, step_size=0.1, noise_std=0.1, noise=torch.zeros(3)
        )
    with pytest.raises(ValueError, match="t_min must not exceed t_max"):
        annealing_schedule(t_max=1.0, t_min=2.0)
    with pytest.raises(ValueError, match="hold_steps must be an integer >= 0"):
        annealing_schedule(hold_steps=-1)
    with pytest.raises(ValueError, match="at least one step"):
        annealing_schedule(hold_steps=0, anneal_steps=0, final_steps=0)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 4),
    event=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    steps=st.integers(1, 4),
)
def test_hypothesis_shapes(batch: int, event: list[int], dtype: torch.dtype, steps: int) -> None:
    v0 = torch.randn(batch, *event, generator=torch.Generator().manual_seed(0), dtype=dtype)

    def score(v: Tensor) -> Tensor:
        return -v

    state = langevin_init(v0, score)
    new, info = langevin_step(state, score_fn=score, step_size=0.1, noise_std=0.1)
    assert isinstance(new, LangevinState) and isinstance(info, LangevinInfo)
    assert new.position.shape == new.score.shape == v0.shape and new.position.dtype == dtype
    assert info.score_norm.shape == (batch,)
    schedule = annealing_schedule(t_max=4.0, hold_steps=1, anneal_steps=steps, final_steps=2)
    samples, annealed = annealed_langevin(score, v0, schedule=schedule, step_size=0.1)
    assert samples.shape == v0.shape and samples.dtype == dtype
    assert bool(samples.isfinite().all()) and not samples.requires_grad
    assert annealed.mean_score_norm.shape == (steps + 3,)


def test_the_step_is_the_shared_langevin_move() -> None:
    state = langevin_init(_start(5, seed=1), gaussian_score)
    noise = torch.randn(state.position.shape, generator=torch.Generator().manual_seed(2))
    new, _ = langevin_step(
        state, score_fn=gaussian_score, step_size=0.3, noise_std=0.1, noise=noise
    )
    expected = langevin_move(
        state.position, -state.score, step_size=0.3, noise_std=0.1, noise=noise
    )
    assert torch.equal(new.position, expected)
    torch.testing.assert_close(
        expected, state.position + 0.3 * state.score + 0.1 * noise, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("langevin_kernel", "langevin_transition"),
        ("LangevinKernel", "LangevinTransition"),
        ("gibbs_kernel", "gibbs_transition"),
        ("GibbsKernel", "GibbsTransition"),
        ("hmc_kernel", "hmc_transition"),
        ("HMCKernel", "HMCTransition"),
        ("ais_kernel", "ais_transition"),
    ],
)
def test_the_old_kernel_names_warn_and_give_the_transitions(old: str, new: str) -> None:
    import importlib

    import eblvm_eval

    module = importlib.import_module(getattr(eblvm_eval, new).__module__)
    for owner in (eblvm_eval, module):
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*use {new}"):
            assert getattr(owner, old) is getattr(eblvm_eval, new)
    with pytest.raises(AttributeError, match="no attribute 'nothing_kernel'"):
        eblvm_eval.nothing_kernel  # noqa: B018

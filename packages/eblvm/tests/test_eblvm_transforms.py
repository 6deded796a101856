"""The per-step transformations: init/update pairs composed in the listed order.

- clipping by global norm bounds each run's gradient norm, and leaves a gradient
  within the bound as it is;
- a chain applies its transforms in order (clip then scale differs from scale then
  clip), and the settings' chain clips after the all-reduce and before the schedule;
- ``optimiser.clip_norm`` bounds the gradient the step's optimiser takes, per run of
  a stack, eagerly and compiled, and a stack still equals its runs alone.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from eblvm_testing import small_grbm

from eblvm import SettingsError, apply_overrides
from eblvm.compiled import CompiledStep
from eblvm.distributed import Ranks
from eblvm.functional import Runs, parameters_of
from eblvm.grbm.task import GRBMTask
from eblvm.parts import Model, build_step, transforms_of
from eblvm.states import run_record
from eblvm.step import fold_noise
from eblvm.transforms import (
    Transform,
    Updates,
    chain,
    clip_by_global_norm,
    cosine_schedule,
    learning_rate,
)

DTYPE = torch.float64
ONE = torch.tensor(1.0, dtype=DTYPE)


def _scale(factor: float) -> Transform:
    """A transform of the test's own: every gradient times ``factor``."""

    def update(updates, state, iteration):
        grads = {k: None if g is None else g * factor for k, g in updates.grads.items()}
        return updates._replace(grads=grads), state

    return Transform(lambda params: {}, update)


def _stacked_grads(norms: list[float]) -> dict[str, torch.Tensor | None]:
    """Gradients of three runs (a leading run axis) whose global norms are ``norms``."""
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(len(norms), 3, 4, generator=generator, dtype=DTYPE)
    b = torch.randn(len(norms), 4, generator=generator, dtype=DTYPE)
    total = (w.square().sum((1, 2)) + b.square().sum(1)).sqrt()
    scale = torch.tensor(norms, dtype=DTYPE) / total
    return {"w": w * scale.view(-1, 1, 1), "b": b * scale.view(-1, 1), "unused": None}


def test_clipping_bounds_each_runs_norm_and_keeps_its_direction():
    runs = Runs(3, stacked=True)
    grads = _stacked_grads([5.0, 0.5, 2.0])
    clip = clip_by_global_norm(1.0, runs)
    clipped, state = clip.update(Updates(grads, ONE), clip.init({}), ONE)
    norms = runs.norms(clipped.grads)
    assert state == {} and clipped.grads["unused"] is None
    torch.testing.assert_close(norms, torch.tensor([1.0, 0.5, 1.0], dtype=DTYPE), rtol=1e-5, atol=0)
    assert (norms <= 1.0).all()
    torch.testing.assert_close(clipped.grads["w"][1], grads["w"][1])  # within the bound
    for run, norm in ((0, 5.0), (2, 2.0)):  # only shortened
        ratio = clipped.grads["w"][run] / grads["w"][run]
        torch.testing.assert_close(ratio, torch.full_like(ratio, 1 / norm), rtol=1e-5, atol=0)


def test_a_chain_applies_its_transforms_in_the_listed_order():
    runs = Runs(3, stacked=True)
    grads = _stacked_grads([5.0, 0.5, 2.0])
    clip_then_scale = chain(clip_by_global_norm(1.0, runs), _scale(10.0))
    scale_then_clip = chain(_scale(10.0), clip_by_global_norm(1.0, runs))
    first, _ = clip_then_scale.update(Updates(grads, ONE), {}, ONE)
    second, _ = scale_then_clip.update(Updates(grads, ONE), {}, ONE)
    expected_first = torch.tensor([10.0, 5.0, 10.0], dtype=DTYPE)
    torch.testing.assert_close(runs.norms(first.grads), expected_first, rtol=1e-5, atol=0)
    expected_second = torch.ones(3, dtype=DTYPE)
    torch.testing.assert_close(runs.norms(second.grads), expected_second, rtol=1e-5, atol=0)


def test_the_settings_chain_clips_before_the_schedule_and_keeps_the_learning_rate():
    settings = small_grbm("optimiser.clip_norm=0.25", "optimiser.schedule=cosine", "iterations=10")
    gradients = transforms_of(settings, Runs(), Ranks()).gradients
    grads = {"w": torch.full((4,), 3.0, dtype=DTYPE)}
    lr = torch.tensor(1e-2, dtype=DTYPE)
    iteration = torch.tensor(6.0, dtype=DTYPE)
    updates, _ = gradients.update(Updates(grads, lr), {}, iteration)
    torch.testing.assert_close(Runs().norms(updates.grads), torch.tensor([0.25], dtype=DTYPE))
    scheduled, _ = cosine_schedule(10, settings.optimiser.lr_min).update(
        Updates({}, lr), {}, iteration
    )
    assert updates.lr == scheduled.lr == learning_rate(gradients, lr, iteration) < lr


def test_clip_norm_is_checked_and_off_by_default():
    assert small_grbm().optimiser.clip_norm == 0
    assert "optimiser.clip_norm" not in small_grbm().trajectory()
    clipped = small_grbm("optimiser.clip_norm=1")
    assert clipped.fingerprint() != small_grbm().fingerprint()
    with pytest.raises(SettingsError, match=r"optimiser\.clip_norm"):
        apply_overrides(small_grbm(), ["optimiser.clip_norm=-1"])


def _grbm_step(settings, seeds):
    """The stacked GRBM step of ``seeds`` runs in float64 and its initial state."""
    task = GRBMTask(settings)
    models = [
        task.build(dataclasses.replace(settings, seed=s), torch.Generator().manual_seed(s))
        for s in seeds
    ]
    stacked = task.stack(models)
    model = Model(stacked.energy.double(), stacked.posterior.double(), stacked.latent_shape)
    runs = Runs(len(seeds), stacked=True)
    step = build_step(settings, model, runs, Ranks(), lrs=[1e-2 * (1 + s) for s in seeds])
    state = step.init(parameters_of(model.energy), parameters_of(model.posterior), None)
    return step, state, task


def _two_steps(step, state, task, seeds, generator_seed=5):
    """Two steps on fixed batches and draws; the infos of both."""
    generator = torch.Generator().manual_seed(generator_seed)
    infos = []
    for t in (1, 2):
        batches = [
            task.splits.train[torch.randint(2000, (100,), generator=generator)].double()
            for _ in seeds
        ]
        noise = fold_noise([step.draw_noise(v, generator) for v in batches], step.noise_axes())
        state, info = step(state, torch.cat(batches), noise, torch.tensor(float(t), dtype=DTYPE))
        infos.append(info)
    return state, infos


@pytest.fixture
def float64():
    torch.set_default_dtype(DTYPE)
    yield
    torch.set_default_dtype(torch.float32)


def test_clip_norm_bounds_the_gradient_of_every_run_of_a_stack(float64):
    seeds = (0, 1, 2)
    bound = 1.0
    _, free = _two_steps(*_grbm_step(small_grbm(), seeds), seeds)
    assert (free[0].grad_norm > bound).all()  # the bound bites
    clipped_settings = small_grbm(f"optimiser.clip_norm={bound}")
    stack_state, clipped = _two_steps(*_grbm_step(clipped_settings, seeds), seeds)
    for info in clipped:
        assert (info.grad_norm <= bound).all()
        torch.testing.assert_close(info.grad_norm, torch.full((3,), bound), rtol=1e-5, atol=0)
    torch.testing.assert_close(clipped[0].loss, free[0].loss)  # the same first gradient
    # Each run of the stack is clipped by its own norm: the stack equals its runs alone.
    for index, seed in enumerate(seeds):
        step, state, task = _grbm_step(clipped_settings, (seed,))
        generator = torch.Generator().manual_seed(5)
        for t in (1, 2):
            batches = [
                task.splits.train[torch.randint(2000, (100,), generator=generator)].double()
                for _ in seeds
            ]
            noises = [step.draw_noise(v, generator) for v in batches]
            state, _ = step(state, batches[index], noises[index], torch.tensor(float(t)))
        ours = run_record(stack_state, index, Runs(3, True))["theta"]
        for name, value in run_record(state, 0, Runs(1, True))["theta"].items():
            torch.testing.assert_close(ours[name], value, rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.slow
def test_the_compiled_step_clips_as_the_eager_step(float64):
    seeds = (0, 1)
    step, state, task = _grbm_step(small_grbm("optimiser.clip_norm=0.5"), seeds)
    eager_state, eager = _two_steps(step, state, task, seeds)
    compiled_state, compiled = _two_steps(CompiledStep(step, "on"), state, task, seeds)
    for ours, theirs in zip(compiled, eager, strict=True):
        torch.testing.assert_close(ours.grad_norm, theirs.grad_norm, rtol=1e-9, atol=1e-11)
        assert (ours.grad_norm <= 0.5).all()
    for name, value in eager_state.theta.items():
        torch.testing.assert_close(compiled_state.theta[name], value, rtol=1e-9, atol=1e-11)

"""The training step against independent computations, on the same draws, in float64.

- Adam as pure functions equals torch.optim.Adam;
- one stacked step of S runs equals S single steps, for every method and objective;
- the compiled step equals the eager step;
- one image step equals the composition of the public pieces of score-estimators and
  score-objectives with torch.optim.Adam.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from eblvm_testing import small_grbm, tiny_images
from torch import nn

from eblvm.compiled import CompiledStep
from eblvm.distributed import Ranks
from eblvm.functional import Runs, parameters_of
from eblvm.grbm.task import GRBMTask
from eblvm.images.task import ImageTask
from eblvm.optim import Adam
from eblvm.parts import Model, build_step
from eblvm.states import run_record
from eblvm.step import fold_noise
from ebm_models import GRBM
from score_estimators import EstimatorNoise, Langevin, VaGES, at_fixed_v, fisher_loss
from score_objectives import mdsm, noise_levels

DTYPE = torch.float64


@pytest.fixture(autouse=True)
def float64():
    torch.set_default_dtype(DTYPE)
    yield
    torch.set_default_dtype(torch.float32)


def test_functional_adam_equals_torch_adam():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 4, generator=generator)
    reference = nn.Parameter(weight.clone())
    torch_adam = torch.optim.Adam([reference], lr=1e-2, betas=(0.9, 0.95))
    adam = Adam((0.9, 0.95))
    params, state = {"w": weight.clone()}, adam.init({"w": weight})
    for _ in range(5):
        grad = torch.randn(3, 4, generator=generator)
        reference.grad = grad.clone()
        torch_adam.step()
        params, state = adam.update(params, {"w": grad}, state, torch.tensor(1e-2), Runs())
    torch.testing.assert_close(params["w"], reference.detach(), rtol=1e-13, atol=1e-15)


def test_per_run_learning_rates_act_on_their_runs_only():
    adam = Adam((0.9, 0.95))
    params = {"w": torch.ones(2, 3)}
    grads = {"w": torch.ones(2, 3)}
    new, _ = adam.update(
        params, grads, adam.init(params), torch.tensor([1e-1, 1e-3]), Runs(2, True)
    )
    assert torch.allclose(new["w"][0], torch.full((3,), 0.9)) and torch.allclose(
        new["w"][1], torch.full((3,), 0.999)
    )


METHODS = {
    "vages-dsm": ["method=vages"],
    "vaes-dsm": ["method=vaes"],
    "is-dsm": ["method=is"],
    "bism0-dsm": ["method=bism", "n_unroll=0", "n_samples=1"],
    "bism2-dsm": ["method=bism", "n_unroll=2", "n_samples=1"],
    "bism5-dsm": ["method=bism", "n_unroll=5", "n_samples=1"],
    "exact-dsm": ["method=exact"],
    "cd": ["method=cd"],
    "pcd": ["method=pcd"],
    "vages-ssm": ["method=vages", "objective=ssm", "n_samples=3"],
    "vages-ksd": ["method=vages", "objective=ksd"],
    "vages-cv-dsm": ["method=vages-cv"],
    "vages-cv-ksd": ["method=vages-cv", "objective=ksd"],
    "vaes-cv-dsm": ["method=vaes-cv"],
    "exact-ksd": ["method=exact", "objective=ksd"],
    "vages-sm": ["method=vages", "objective=sm", "n_samples=3"],
    "vages-mdsm": ["method=vages", "objective=mdsm"],
    "nce": ["method=nce", "method.nce_noise=data", "method.noise_ratio=2"],
    "vnce": ["method=vnce", "method.nce_noise=data", "n_samples=2"],
}


def _grbm_step(settings, seeds, *, stacked: bool):
    """The step of ``seeds`` runs (a stack, or one run as it is), their state and task."""
    task = GRBMTask(settings)
    models = [
        task.build(dataclasses.replace(settings, seed=s), torch.Generator().manual_seed(s))
        for s in seeds
    ]
    model = task.stack(models) if stacked else models[0]
    model = Model(
        model.energy.double(),
        None if model.posterior is None else model.posterior.double(),
        model.latent_shape,
    )
    runs = Runs(len(seeds), stacked)
    data = task.splits.train[:1000].double()
    step = build_step(
        settings, model, runs, Ranks(), lrs=[1e-2 * (1 + s) for s in seeds], data=data
    )
    theta = parameters_of(model.energy)
    phi = {} if model.posterior is None else parameters_of(model.posterior)
    batch = torch.zeros(len(seeds) * settings.data.batch_size, 2)
    return step, step.init(theta, phi, batch), task


@pytest.mark.parametrize("method", list(METHODS))
def test_one_stacked_step_equals_the_single_steps_of_its_runs(method):
    """Three runs (different seeds and learning rates) as one stack against each alone
    (CD's single run is a stack of one), two steps on the same batches and draws:
    parameters, optimiser moments and PCD chains agree in float64."""
    settings = small_grbm(*METHODS[method])
    seeds = (0, 1, 2)
    stack, stack_state, task = _grbm_step(settings, seeds, stacked=True)
    singles = [_grbm_step(settings, (s,), stacked=settings.method.declared.sampler) for s in seeds]
    generator = torch.Generator().manual_seed(5)
    for t in (1, 2):
        batches = [
            task.splits.train[torch.randint(2000, (100,), generator=generator)].double()
            for _ in seeds
        ]
        noises = [stack.draw_noise(v, generator) for v in batches]
        iteration = torch.tensor(float(t), dtype=DTYPE)
        stack_state, stack_info = stack(
            stack_state, torch.cat(batches), fold_noise(noises, stack.noise_axes()), iteration
        )
        for index, (step, state, _) in enumerate(singles):
            state, info = step(state, batches[index], noises[index], iteration)
            singles[index] = (step, state, None)
            torch.testing.assert_close(stack_info.loss[index], info.loss[0], rtol=1e-10, atol=1e-12)
    for index, (step, state, _) in enumerate(singles):
        ours = run_record(stack_state, index, stack.runs)
        theirs = run_record(state, 0, step.runs)
        for part in ("theta", "phi"):
            for name, value in theirs[part].items():
                torch.testing.assert_close(
                    ours[part][name], value, rtol=1e-10, atol=1e-12, msg=f"{part}.{name}"
                )
        for name, value in theirs["theta_opt"]["variance"].items():
            torch.testing.assert_close(
                ours["theta_opt"]["variance"][name], value, rtol=1e-10, atol=1e-14
            )
        if "chains" in theirs["extra"]:
            torch.testing.assert_close(
                ours["extra"]["chains"], theirs["extra"]["chains"], rtol=1e-10, atol=1e-12
            )


@pytest.mark.parametrize("method", ["vages-cv-dsm", "vaes-cv-dsm"])
def test_the_control_variate_step_estimates_the_grbm_score_exactly_with_its_posterior(method):
    """The declared method's estimator, given the GRBM's exact posterior as q: every
    draw gives the exact score (zero variance); the same draws without the control
    variate scatter."""
    step, _, task = _grbm_step(small_grbm(*METHODS[method]), (0,), stacked=False)
    grbm = GRBM(2, 4, weight_std=1.0, generator=torch.Generator().manual_seed(0)).double()
    posterior = grbm.exact_posterior()
    v = task.splits.train[:50].double()
    exact = grbm.score(v).detach()
    estimator = step.estimator
    assert estimator.control_variate
    for seed in range(5):
        estimate = estimator(grbm, posterior, v, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(estimate.detach(), exact, rtol=0, atol=1e-10)
    plain = VaGES(2)(grbm, posterior, v, generator=torch.Generator().manual_seed(0))
    assert (plain.detach() - exact).abs().max().item() > 0.1


@pytest.mark.slow
@pytest.mark.parametrize("method", ["vages-dsm", "pcd"])
def test_the_compiled_step_equals_the_eager_step(method):
    settings = small_grbm(*METHODS[method])
    step, state, task = _grbm_step(settings, (0, 1), stacked=True)
    compiled = CompiledStep(step, "on")
    eager_state, compiled_state = state, state
    generator = torch.Generator().manual_seed(3)
    for t in range(1, 6):
        v = task.splits.train[torch.randint(2000, (200,), generator=generator)].double()
        noise = fold_noise(
            [step.draw_noise(part, generator) for part in v.split(100)], step.noise_axes()
        )
        iteration = torch.tensor(float(t), dtype=DTYPE)
        eager_state, eager_info = step(eager_state, v, noise, iteration)
        compiled_state, compiled_info = compiled(compiled_state, v, noise, iteration)
        torch.testing.assert_close(compiled_info.loss, eager_info.loss, rtol=1e-9, atol=1e-9)
    assert compiled.is_compiled and compiled.compile_seconds > 0
    for name, value in eager_state.theta.items():
        torch.testing.assert_close(compiled_state.theta[name], value, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(
    ("schedule", "sigma_min", "sigma_max"), [("linear", 0.05, 1.2), ("geometric", 0.1, 3.0)]
)
def test_an_image_step_is_the_composition_of_the_public_pieces(schedule, sigma_min, sigma_max):
    """VaGES-MDSM on a tiny deep EBLVM: K = 2 posterior steps of fisher_loss weighted by
    1/σ at the objective's noisy images, then MDSM of VaGES with Langevin refinement,
    torch.optim.Adam on φ and θ — the same numbers as the training step, at the noise
    levels ``objective.schedule`` spaces."""
    settings = tiny_images(
        "batch_size=4",
        "refine_steps=2",
        f"objective.schedule={schedule}",
        f"objective.sigma_min={sigma_min}",
        f"objective.sigma_max={sigma_max}",
    )
    task = ImageTask(settings)
    model = task.build(settings, torch.Generator())
    model = Model(model.energy.double(), model.posterior.double(), model.latent_shape)
    step = build_step(settings, model, Runs(), Ranks())
    theta, phi = parameters_of(model.energy), parameters_of(model.posterior)
    v = task.batch(torch.arange(4), torch.Generator().manual_seed(1)).double()
    state = step.init(theta, phi, v)
    noise = step.draw_noise(v, torch.Generator().manual_seed(2))
    new_state, info = step(state, v, noise, torch.tensor(1.0, dtype=DTYPE))

    energy, posterior = model.energy, model.posterior
    betas = (settings.optimiser.beta1, settings.optimiser.beta2)
    phi_opt = torch.optim.Adam(posterior.parameters(), lr=settings.posterior.lr, betas=betas)
    theta_opt = torch.optim.Adam(energy.parameters(), lr=settings.optimiser.lr, betas=betas)
    sigmas = noise_levels(
        4, sigma_min=sigma_min, sigma_max=sigma_max, schedule=schedule, dtype=DTYPE
    )
    noisy = v + sigmas.view(-1, 1, 1, 1) * noise.objective
    fixed = at_fixed_v(energy, noisy)
    for k in range(settings.posterior.steps):
        phi_opt.zero_grad()
        loss = fisher_loss(fixed, posterior, noisy, noise=noise.fit[k], sample_weights=1 / sigmas)
        loss.backward(inputs=list(posterior.parameters()))
        phi_opt.step()
    estimator = VaGES(2, refine=Langevin(2, step_size=1e-2, noise_std=1e-4))
    loss = mdsm(
        lambda x: estimator(
            energy,
            posterior,
            x,
            noise=EstimatorNoise(noise.estimate.posterior, noise.estimate.langevin),
        ),
        v,
        sigma_min=sigma_min,
        sigma_max=sigma_max,
        schedule=schedule,
        sigma0=0.1,
        noise=noise.objective,
    )
    theta_opt.zero_grad()
    loss.backward(inputs=list(energy.parameters()))
    theta_opt.step()
    torch.testing.assert_close(info.loss[0], loss.detach(), rtol=1e-12, atol=0)
    for name, p in posterior.named_parameters():
        torch.testing.assert_close(
            new_state.phi[name], p.detach(), rtol=1e-10, atol=1e-13, msg=name
        )
    for name, p in energy.named_parameters():
        torch.testing.assert_close(
            new_state.theta[name], p.detach(), rtol=1e-10, atol=1e-13, msg=name
        )

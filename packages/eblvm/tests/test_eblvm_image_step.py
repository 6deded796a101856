"""The image step as a user gets it computes the estimator of the plain eager step:
with the same draws, the same loss and the same θ- and φ-gradients (float32 rounding
apart) as the step of the written-out network (3×3 convolution, then a 2×2 mean
pool)."""

from __future__ import annotations

import dataclasses
import types

import pytest
import torch
from eblvm_testing import RANDOM_IMAGES
from torch import nn
from torch.nn import functional as F

from eblvm import apply_overrides
from eblvm.distributed import Ranks
from eblvm.functional import Runs, parameters_of
from eblvm.images.models import build_model
from eblvm.parts import Model, build_step
from eblvm.presets import get_preset
from eblvm.transforms import Transform, Updates, chain
from ebm_models import deep

SETTINGS = apply_overrides(
    get_preset("mnist-vages-mdsm"),
    [
        *RANDOM_IMAGES,
        "image_size=16",
        "h_dim=6",
        "base_width=4",
        "posterior_width=4",
        "batch_size=6",
        "device=cpu",
    ],
)


def _pool_after_conv(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The residual block as the paper writes it: pool(conv₂(ELU(conv₁(ELU(x))))) plus
    the shortcut of the pooled x."""
    residual = block.conv2(F.elu(block.conv1(F.elu(x))))
    if block.down:
        residual, x = F.avg_pool2d(residual, 2), F.avg_pool2d(x, 2)
    return block.shortcut(x) + residual


def _written_out(model: Model) -> Model:
    for module in model.energy.modules():
        if isinstance(module, deep._ResidualBlock):
            module.forward = types.MethodType(_pool_after_conv, module)  # type: ignore[method-assign]
    return model


def _recording(seen: list[dict[str, torch.Tensor]]) -> Transform:
    """A gradient transform that keeps every gradient the step hands to an optimiser:
    K φ-gradients, then θ's (learning-rate look-ups, which carry none, are skipped)."""

    def update(updates: Updates, state, iteration):
        if updates.grads:
            seen.append({k: g.detach().clone() for k, g in updates.grads.items() if g is not None})
        return updates, state

    return Transform(lambda params: {}, update)


def _one_step(model: Model, v: torch.Tensor, seed: int):
    seen: list[dict[str, torch.Tensor]] = []
    step = build_step(SETTINGS, model, Runs(), Ranks())
    transforms = step.transforms._replace(
        gradients=chain(step.transforms.gradients, _recording(seen))
    )
    step = dataclasses.replace(step, transforms=transforms)
    state = step.init(parameters_of(model.energy), parameters_of(model.posterior), v)
    noise = step.draw_noise(v, torch.Generator().manual_seed(seed))
    _, info = step(state, v, noise, torch.tensor(1.0, dtype=torch.float64))
    return info, seen


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_image_step_gives_the_eager_steps_loss_and_gradients(seed):
    v = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(10 + seed))
    expected_info, expected = _one_step(_written_out(build_model(SETTINGS)), v, seed)
    info, grads = _one_step(build_model(SETTINGS), v, seed)
    assert len(grads) == len(expected) == SETTINGS.posterior.steps + 1
    assert float(info.loss) == pytest.approx(float(expected_info.loss), rel=1e-5)
    fit_loss = float(expected_info.posterior_loss)
    assert float(info.posterior_loss) == pytest.approx(fit_loss, rel=1e-5)
    for got, want in zip(grads, expected, strict=True):
        assert got.keys() == want.keys()
        for name in want:
            assert _relative_error(got[name], want[name]) < 1e-4, name
    # the comparison can fail: another seed's draws give other gradients
    _, other = _one_step(_written_out(build_model(SETTINGS)), v, seed + 100)
    assert max(_relative_error(other[-1][k], expected[-1][k]) for k in expected[-1]) > 1e-2

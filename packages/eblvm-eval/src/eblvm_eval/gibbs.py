"""Block-Gibbs sampling of a Gaussian-Bernoulli RBM from its two conditionals.

    h ~ p(h | v) = Bernoulli(sigmoid(c + vᵀW)),   v ~ p(v | h) = N(b + σ² ⊙ Wh, diag σ²).

Low-level: ``gibbs_step`` takes the model and the step's noise at call time (uniforms
compared with the probabilities for h, standard normals for v) and returns the new
state; ``gibbs_transition`` binds the model once; ``gibbs_sample`` runs chains from an
initial state or from N(b, σ²). Nothing builds a graph: the draws are detached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from eblvm_eval._checks import check_tensor
from eblvm_eval._common_checks import check_count
from eblvm_eval._deprecated import renamed_attributes


class GRBMConditionals(Protocol):
    """What block-Gibbs sampling needs of a GRBM: its two conditionals' parameters."""

    v_dim: int
    h_dim: int

    @property
    def std(self) -> Tensor: ...

    def posterior_logits(self, v: Tensor) -> Tensor: ...

    def visible_mean(self, h: Tensor) -> Tensor: ...


class GibbsState(NamedTuple):
    """Chains after a sweep: ``visible`` (B, D) and the ``hidden`` (B, H) it was drawn from."""

    visible: Tensor
    hidden: Tensor


class GibbsNoise(NamedTuple):
    """The standard draws of one sweep: ``uniform`` (B, H) for h, ``normal`` (B, D) for v."""

    uniform: Tensor
    normal: Tensor


class GibbsTransition(NamedTuple):
    """A GRBM bound once: ``step(visible, generator=None, noise=None) -> GibbsState``."""

    step: Callable[..., GibbsState]


def gibbs_noise(
    batch: int,
    grbm: GRBMConditionals,
    *,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> GibbsNoise:
    """Fresh draws for one sweep of ``batch`` chains."""
    return GibbsNoise(
        torch.rand((batch, grbm.h_dim), generator=generator, dtype=dtype, device=device),
        torch.randn((batch, grbm.v_dim), generator=generator, dtype=dtype, device=device),
    )


@torch.no_grad()
def gibbs_step(
    grbm: GRBMConditionals,
    visible: Tensor,
    *,
    generator: torch.Generator | None = None,
    noise: GibbsNoise | None = None,
) -> GibbsState:
    """One sweep from v: (B, D): h = [u < p(h = 1 | v)], then v' = E[v | h] + σ ⊙ ε.

    ``noise`` injects (u, ε); otherwise they are drawn with ``generator``.
    """
    if noise is None:
        noise = gibbs_noise(
            len(visible), grbm, dtype=visible.dtype, device=visible.device, generator=generator
        )
    hidden = (noise.uniform < torch.sigmoid(grbm.posterior_logits(visible))).to(visible.dtype)
    return GibbsState(grbm.visible_mean(hidden) + grbm.std * noise.normal, hidden)


def gibbs_transition(grbm: GRBMConditionals) -> GibbsTransition:
    """Bind ``grbm`` once (see ``gibbs_step``)."""

    def step(
        visible: Tensor,
        generator: torch.Generator | None = None,
        noise: GibbsNoise | None = None,
    ) -> GibbsState:
        return gibbs_step(grbm, visible, generator=generator, noise=noise)

    return GibbsTransition(step)


@torch.no_grad()
def gibbs_sample(
    grbm: GRBMConditionals,
    n: int,
    *,
    steps: int = 1000,
    init: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``n`` visible draws (n, D) after ``steps`` sweeps from ``init`` (n, D) or from
    N(b, σ²) (b the visible bias, as the paper's GRBM sampler)."""
    check_count(n, "n")
    check_count(steps, "steps")
    std = grbm.std.detach()
    if init is None:
        zeros = torch.zeros(n, grbm.h_dim, dtype=std.dtype, device=std.device)
        mean = grbm.visible_mean(zeros)
        visible = mean + std * torch.randn(
            mean.shape, generator=generator, dtype=std.dtype, device=std.device
        )
    else:
        visible = check_tensor(init, "init", shape=(n, grbm.v_dim)).detach()
    transition = gibbs_transition(grbm)
    for _ in range(steps):
        visible = transition.step(visible, generator=generator).visible
    return visible


__getattr__ = renamed_attributes(__name__, ("gibbs_transition", "GibbsTransition"))

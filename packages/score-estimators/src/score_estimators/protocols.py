"""The contract between energies, posteriors, estimators and posterior losses.

Required parts:

- an **energy** is a callable ``energy(v, h) -> (L, B)`` for v: (B, ...) and h:
  (L, B, ...); its parameters are θ;
- a **posterior sampler** draws ``rsample(v, n) -> (n, B, ...)``; a **posterior**
  also has a density, ``log_prob(h, v) -> (n, B)``; its parameters are φ;
- a **score estimator** is called as ``estimator(energy, posterior, v) -> (B, ...)``;
- a **posterior loss** is ``loss(energy, posterior, v, n_samples=..) -> scalar``.

Optional capabilities are protocols of their own, checked with ``isinstance``;
nothing is guessed from a method's name:

- :class:`ConditionedEnergy`: the energy computes its v-part once for many h, through
  the method ``__energy_at_v__``, a name no model uses for anything else (a
  class-conditional model's own ``condition(y)`` is never mistaken for it);
- :class:`NoiseDriven`: the posterior's draws are a function of standard noise that a
  caller may inject (``rsample(v, n, noise=ε)``), so that draws can be replayed,
  split over processes or folded over runs;
- :class:`FusedPosterior`: draws and their log-density from one network pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

NOISE_LAWS = ("normal", "uniform")


class Energy(Protocol):
    """E(v, h), broadcast over a leading sample dimension of h: (L, B, ...) -> (L, B)."""

    def __call__(self, v: Tensor, h: Tensor, /) -> Tensor: ...


@runtime_checkable
class ConditionedEnergy(Protocol):
    """An energy that builds its v-part once: ``__energy_at_v__(v)`` returns h ↦ E(v, h).

    The v-part carries a graph to v and θ when built in grad mode. The GRBM (v-terms
    ½‖(v − b)/σ‖² and c + vᵀW) and the deep EBLVM (the residual network g1(v)) offer it.
    """

    def __call__(self, v: Tensor, h: Tensor, /) -> Tensor: ...

    def __energy_at_v__(self, v: Tensor) -> Callable[[Tensor], Tensor]: ...


@runtime_checkable
class ScoreModel(Protocol):
    """A model that marginalises h and offers its exact score ``score(v) -> (B, ...)``."""

    def score(self, v: Tensor) -> Tensor: ...


@runtime_checkable
class PosteriorSampler(Protocol):
    """What VaES and VaGES need of a posterior: draws only."""

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws h ~ q(h | v), reparameterised where possible. v: (B, ...) -> (n, B, ...)."""
        ...


@runtime_checkable
class Posterior(PosteriorSampler, Protocol):
    """The posterior contract: draws and, where there is a density, ``log_prob``."""

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        """log q(h | v). h: (n, B, ...), v: (B, ...) -> (n, B)."""
        ...


@runtime_checkable
class NoiseDriven(Protocol):
    """Draws that are a fixed function of standard noise ε of law ``noise_law``
    (``"normal"`` or ``"uniform"``, independent per element, of the draws' shape).

    ``rsample(v, n, noise=ε)`` with ε: (n, B, ...) transforms ε instead of drawing it;
    ``rsample(v, n, generator=g)`` draws ε from g first. Draw ε with
    :func:`score_estimators.standard_noise`.
    """

    noise_law: str

    def rsample(
        self,
        v: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor: ...


@runtime_checkable
class FusedPosterior(Protocol):
    """Draws and their log-density with the posterior's network run once."""

    def rsample_and_log_prob(
        self,
        v: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """v: (B, ...) -> (h: (n, B, ...), log q(h | v): (n, B))."""
        ...


class PosteriorLoss(Protocol):
    """A divergence of q from p(h | v) whose φ-gradient fits q: KL or Fisher, the batch
    mean (``kl_loss`` and ``fisher_loss`` also take injected ``noise`` and
    ``reduction="none"``)."""

    def __call__(
        self,
        energy: Energy,
        posterior: Posterior,
        v: Tensor,
        *,
        n_samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> Tensor: ...


class EstimatorNoise(NamedTuple):
    """The standard noise one estimate transforms, for an injected-noise call.

    ``posterior``: (M, B, ...), the posterior's noise for its M = ``estimator.draws``
    draws, consumed in order; ``langevin``: (T, M, B, ...), the normal noise of T
    Langevin refinement steps, when the estimator refines its draws (None: drawn from
    the call's generator).
    """

    posterior: Tensor
    langevin: Tensor | None = None


class ScoreEstimator(Protocol):
    """``estimator(energy, posterior, v) -> (B, ...)``: the score estimate, whose
    backward pass gives θ the estimator's gradient. ``draws`` is the number of posterior
    draws per example one call takes (the first axis of ``noise.posterior``)."""

    @property
    def draws(self) -> int: ...

    def __call__(
        self,
        energy: Energy,
        posterior: PosteriorSampler,
        v: Tensor,
        *,
        generator: torch.Generator | None = None,
        noise: EstimatorNoise | None = None,
    ) -> Tensor: ...


def standard_noise(
    law: str,
    shape: tuple[int, ...],
    *,
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Standard noise of ``law``: N(0, 1) (``"normal"``) or U(0, 1) (``"uniform"``) draws."""
    if law == "normal":
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)
    if law == "uniform":
        return torch.rand(shape, generator=generator, dtype=dtype, device=device)
    raise ValueError(f"law must be one of {NOISE_LAWS}, got {law!r}")

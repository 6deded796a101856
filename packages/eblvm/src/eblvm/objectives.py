"""The objectives of score_objectives as parts of a training step.

A part evaluates its objective on a folded batch of runs (:class:`~eblvm.functional.Runs`)
and returns per-example values, so that the step reduces them per run; it draws the
objective's own noise, names the batch axis of that noise, and tells where the
objective takes the score (ṽ = v + σε for DSM and MDSM), the points at which the
posterior is fitted by default. MDSM spreads its levels over each run's batch, or
over each process's piece of the whole batch, and weights the posterior fit by 1/σ
(the paper's code); KSD's U-statistic pairs examples of one run only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from einops import rearrange
from torch import Tensor

from eblvm.functional import Runs
from score_objectives import dsm, ksd, mdsm, noise_levels, sm, ssm

ScoreFn = Callable[[Tensor], Tensor]


class ObjectivePart(Protocol):
    """An objective inside the step."""

    noise_axis: int | None  # the batch axis of its noise; None: it draws none

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> Tensor | None: ...

    def points(self, v: Tensor, noise: Tensor | None) -> Tensor: ...

    def fit_weights(self, v: Tensor) -> Tensor | None: ...

    def __call__(self, score_fn: ScoreFn, v: Tensor, noise: Tensor | None) -> Tensor:
        """Per-example values (B,) of the objective of ``score_fn`` at v: (B, ...)."""
        ...


def _normal(v: Tensor, generator: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(shape or v.shape, generator=generator, dtype=v.dtype, device=v.device)


class _AtData:
    """An objective that takes the score at the data, without sample weights."""

    def points(self, v: Tensor, noise: Tensor | None) -> Tensor:
        return v

    def fit_weights(self, v: Tensor) -> Tensor | None:
        return None


class _Noiseless(_AtData):
    """An objective of the data alone: no noise of its own."""

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> None:
        return None


@dataclass(frozen=True)
class DSM:
    """Denoising score matching at noise level ``sigma``."""

    sigma: float
    noise_axis: int | None = 0

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> Tensor:
        return _normal(v, generator)

    def points(self, v: Tensor, noise: Tensor | None) -> Tensor:
        assert noise is not None
        return v + self.sigma * noise

    def fit_weights(self, v: Tensor) -> Tensor | None:
        return None

    def __call__(self, score_fn: ScoreFn, v: Tensor, noise: Tensor | None) -> Tensor:
        return dsm(score_fn, v, sigma=self.sigma, noise=noise, reduction="none")


@dataclass(frozen=True)
class MDSM:
    """Multiscale DSM with levels in [sigma_min, sigma_max] spaced by ``schedule`` over
    each run's batch; a process of ``piece = (rank, world)`` takes its piece of the whole
    batch's levels."""

    sigma_min: float
    sigma_max: float
    sigma0: float
    schedule: str = "linear"
    runs: Runs = field(default_factory=Runs)
    piece: tuple[int, int] = (0, 1)
    noise_axis: int | None = 0

    def levels(self, v: Tensor) -> Tensor:
        """σ per example of the folded batch: (B,)."""
        rank, world = self.piece
        local = v.shape[0] // self.runs.count
        whole = noise_levels(
            local * world,
            sigma_min=self.sigma_min,
            sigma_max=self.sigma_max,
            schedule=self.schedule,
            dtype=v.dtype,
            device=v.device,
        )
        return whole[rank * local : (rank + 1) * local].repeat(self.runs.count)

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> Tensor:
        return _normal(v, generator)

    def points(self, v: Tensor, noise: Tensor | None) -> Tensor:
        assert noise is not None
        return v + self.levels(v).reshape(-1, *([1] * (v.dim() - 1))) * noise

    def fit_weights(self, v: Tensor) -> Tensor:
        return self.levels(v).reciprocal()

    def __call__(self, score_fn: ScoreFn, v: Tensor, noise: Tensor | None) -> Tensor:
        return mdsm(
            score_fn, v, levels=self.levels(v), sigma0=self.sigma0, noise=noise, reduction="none"
        )


@dataclass(frozen=True)
class SSM(_AtData):
    """Sliced score matching with ``projections`` Rademacher directions per example."""

    projections: int
    noise_axis: int | None = 1

    def draw_noise(self, v: Tensor, generator: torch.Generator) -> Tensor:
        bits = torch.randint(
            0, 2, (self.projections, *v.shape), generator=generator, device=v.device
        )
        return bits.to(v.dtype) * 2 - 1

    def __call__(self, score_fn: ScoreFn, v: Tensor, noise: Tensor | None) -> Tensor:
        return ssm(score_fn, v, n_projections=self.projections, noise=noise, reduction="none")


@dataclass(frozen=True)
class SM(_Noiseless):
    """Score matching with the exact Jacobian trace."""

    noise_axis: int | None = None

    def __call__(self, score_fn: ScoreFn, v: Tensor, noise: Tensor | None) -> Tensor:
        return sm(score_fn, v, reduction="none")


@dataclass(frozen=True)
class KSD(_Noiseless):
    """The kernelised Stein discrepancy (RBF kernel, median bandwidth), a U-statistic
    over the pairs of each run's batch: the score is taken once on the folded batch and
    the U-statistics of the runs are mapped over them (``torch.vmap``)."""

    runs: Runs = field(default_factory=Runs)
    noise_axis: int | None = None

    def __call__(self, score_fn: ScoreFn, v: Tensor, noise: Tensor | None) -> Tensor:
        if self.runs.count == 1:
            return ksd(score_fn, v, reduction="none")
        scores = rearrange(score_fn(v), "(runs batch) ... -> runs batch ...", runs=self.runs.count)
        points = rearrange(v, "(runs batch) ... -> runs batch ...", runs=self.runs.count)
        per_run = torch.vmap(lambda s, x: ksd(_constant(s), x, reduction="none"))(scores, points)
        return rearrange(per_run, "runs batch -> (runs batch)")


def _constant(scores: Tensor) -> ScoreFn:
    """A score function that returns scores already taken (at the points KSD is given)."""
    return lambda _: scores

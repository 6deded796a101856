"""Every training method, each declared once: its name, a line that says what it is,
the settings it reads, what it needs, and how it builds its step.

Settings validation, ``eblvm list`` and ``eblvm show``, the step (:mod:`eblvm.parts`)
and the model families read a method from here and from nothing else. A new method is
one declaration::

    register_method(
        Method(
            name="vaes1",
            description="VaES from a single draw of q",
            build=score_matching(lambda settings, parts: VaES(1)),
            posterior=True,
        )
    )

after which ``--set method.name=vaes1`` trains it with every family that serves it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, cast

import torch
from torch import Tensor, nn

from eblvm.functional import Runs
from eblvm.nce import NCEStep, noise_of
from eblvm.objectives import ObjectivePart
from eblvm.optim import Adam
from eblvm.stacked import StackedEnergy
from eblvm.step import (
    ContrastiveDivergenceStep,
    FittingLoss,
    PosteriorFitter,
    ScoreMatchingStep,
    Step,
)
from eblvm.transforms import StepTransforms
from score_estimators import (
    BiSM,
    ExactScore,
    ImportanceSampling,
    Langevin,
    PosteriorLoss,
    ScoreEstimator,
    VaES,
    VaGES,
)

if TYPE_CHECKING:
    from eblvm.parts import Model
    from eblvm.settings import Settings


class StepParts(NamedTuple):
    """What a method's step is built from, made from the settings by :mod:`eblvm.parts`:
    the run's modules, the runs, Adam with each run's θ and φ rates, the per-step transforms, the
    posterior (None when the method fits none) with its fitter and noise law, the
    objective (None for a method without one), the posterior's loss for an estimator's
    inner fit (summed over folded runs), training examples (N, D) for NCE's noise and
    the device."""

    model: Model
    runs: Runs
    adam: Adam
    lr: Tensor
    posterior_lr: Tensor
    transforms: StepTransforms
    posterior: nn.Module | None
    fitter: PosteriorFitter | None
    noise_law: str
    objective: ObjectivePart | None
    inner_loss: FittingLoss
    data: Tensor | None
    device: torch.device


StepBuilder = Callable[["Settings", StepParts], Step]


@dataclass(frozen=True)
class Method:
    """One training method.

    ``reads``: the ``method.*`` settings it reads (besides ``name``); ``minimum``: its
    own lower bounds on those counts where they differ from the section's (VaGES:
    ``n_samples`` >= 2); ``check``: a rule across sections, raising SettingsError.
    Needs: ``posterior`` (it fits q(h | v): the ``posterior.*`` settings),
    ``objective`` (it trains on a score-matching objective: the ``objective.*``
    settings), ``exact_score`` (the model's own score), ``sampler`` (Gibbs chains of a
    GRBM), ``data_noise`` (its noise is drawn from the training data).
    ``build(settings, parts) -> Step``: its step. ``label`` and ``details``: its
    columns in ``eblvm list``, formatted with the settings' sections
    (``{method.n_samples}``)."""

    name: str
    description: str
    build: StepBuilder
    reads: tuple[str, ...] = ()
    minimum: Mapping[str, int] = field(default_factory=dict)
    check: Callable[[Settings], None] | None = None
    posterior: bool = False
    objective: bool = False
    exact_score: bool = False
    sampler: bool = False
    data_noise: bool = False
    label: str = "{method.name}"
    details: str = ""


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Declare ``method`` under its name (a name is declared once)."""
    if not isinstance(method, Method):
        raise TypeError(f"method must be an eblvm.methods.Method, got {type(method).__name__}")
    if not method.name or method.name in METHODS:
        raise ValueError(f"method name must be new and non-empty, got {method.name!r}")
    METHODS[method.name] = method
    return method


def method_named(name: str) -> Method:
    """The declared method ``name``; an unknown name suggests close ones."""
    try:
        return METHODS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(METHODS), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown method {name!r}{hint} (`eblvm list` shows them)") from None


# ----------------------------------------------------------------- how steps are built


def score_matching(estimator: Callable[[Settings, StepParts], object]) -> StepBuilder:
    """The step of a score estimator (``estimator(settings, parts)``, any callable of
    score-estimators' contract): K posterior steps, then θ on the objective of the
    estimated score."""

    def build(settings: Settings, parts: StepParts) -> Step:
        assert parts.objective is not None
        posterior = parts.posterior
        return ScoreMatchingStep(
            parts.model.energy,
            posterior,
            cast(ScoreEstimator, estimator(settings, parts)),
            parts.objective,
            parts.fitter,
            parts.adam,
            parts.adam if posterior is not None else None,
            parts.lr,
            parts.posterior_lr,
            parts.transforms,
            parts.runs,
            parts.model.latent_shape,
            noise_law=parts.noise_law,
            refine_steps=settings.method.refine_steps,
        )

    return build


def contrastive_divergence(*, persistent: bool) -> StepBuilder:
    """CD (``persistent`` False) or PCD with ``method.cd_steps`` Gibbs sweeps."""

    def build(settings: Settings, parts: StepParts) -> Step:
        energy = parts.model.energy
        if not isinstance(energy, StackedEnergy):
            raise TypeError("contrastive divergence trains GRBMs as a stack (StackedEnergy)")
        return ContrastiveDivergenceStep(
            energy,
            parts.adam,
            parts.lr,
            parts.transforms,
            parts.runs,
            steps=settings.method.cd_steps,
            persistent=persistent,
            h_dim=parts.model.latent_shape[0],
        )

    return build


def noise_contrastive(settings: Settings, parts: StepParts) -> Step:
    """NCE, or VNCE when the method fits a posterior."""
    method, data = settings.method, parts.data
    if data is None or data.dim() != 2:
        raise ValueError(f"{method.name} needs vector data (N, D) to draw its noise")
    posterior = parts.posterior
    return NCEStep(
        parts.model.energy,
        posterior,
        noise_of(method.nce_noise, data, dtype=data.dtype, device=parts.device),
        method.noise_ratio,
        parts.adam,
        parts.lr,
        parts.transforms,
        parts.runs,
        parts.model.latent_shape,
        parts.fitter,
        parts.adam if posterior is not None else None,
        parts.posterior_lr,
        n_samples=method.n_samples,
        particles=method.particles,
        noise_law=parts.noise_law,
        estimate_log_normaliser=method.nce_start == "estimate",
    )


def refinement(settings: Settings) -> Langevin | None:
    """Langevin refinement of the draws in h, when ``method.refine_steps`` asks for it."""
    method = settings.method
    if not method.refine_steps:
        return None
    return Langevin(
        method.refine_steps,
        step_size=method.refine_step_size,
        noise_std=method.refine_noise_std,
    )


def third_cumulant_rule(settings: Settings) -> None:
    """VaGES with SSM or SM takes the third posterior cumulant: L >= 3."""
    from eblvm.settings import SettingsError

    objective = settings.objective.name
    if objective in ("ssm", "sm") and settings.method.n_samples < 3:
        raise SettingsError(
            f"method.n_samples must be at least 3 for VaGES with {objective}, "
            f"got {settings.method.n_samples}: its θ-gradient takes the third posterior "
            "cumulant, which two draws cannot estimate without bias"
        )


# ----------------------------------------------------------------- the methods

_REFINED = ("n_samples", "refine_steps", "refine_step_size", "refine_noise_std")
_FITTED = "K={posterior.steps} L={method.n_samples}"
_NCE = ("noise_ratio", "nce_noise", "nce_start")

VAGES = register_method(
    Method(
        name="vages",
        description="VaGES: the score and its θ-gradient from L draws of q (L >= 2)",
        build=score_matching(lambda s, parts: VaGES(s.method.n_samples, refine=refinement(s))),
        reads=_REFINED,
        minimum={"n_samples": 2},
        check=third_cumulant_rule,
        posterior=True,
        objective=True,
        label="{method.name}-{objective.name}",
        details=_FITTED,
    )
)
VAES = register_method(
    Method(
        name="vaes",
        description="VaES: the score from L draws of q",
        build=score_matching(lambda s, parts: VaES(s.method.n_samples, refine=refinement(s))),
        reads=_REFINED,
        posterior=True,
        objective=True,
        label="{method.name}-{objective.name}",
        details=_FITTED,
    )
)
# The control variate (appendix H, eq. 4) takes draws of q itself, so it reads no
# refinement: the value subtracts ∇_v log q(h_i | v) at fixed h_i; VaGES's derivatives
# (θ, and v for SM and SSM) are left as they are.
VAGES_CV = register_method(
    Method(
        name="vages-cv",
        description="VaGES whose value subtracts the control variate ∇_v log q(h_i | v)",
        build=score_matching(lambda s, parts: VaGES(s.method.n_samples, control_variate=True)),
        reads=("n_samples",),
        minimum={"n_samples": 2},
        check=third_cumulant_rule,
        posterior=True,
        objective=True,
        label="{method.name}-{objective.name}",
        details=_FITTED,
    )
)
VAES_CV = register_method(
    Method(
        name="vaes-cv",
        description="VaES-CV: the score from L draws of q, minus ∇_v log q(h_i | v)",
        build=score_matching(lambda s, parts: VaES(s.method.n_samples, control_variate=True)),
        reads=("n_samples",),
        posterior=True,
        objective=True,
        label="{method.name}-{objective.name}",
        details=_FITTED,
    )
)
IMPORTANCE_SAMPLING = register_method(
    Method(
        name="is",
        description="the score by self-normalised importance sampling with L draws of q",
        build=score_matching(lambda s, parts: ImportanceSampling(s.method.n_samples)),
        reads=("n_samples",),
        posterior=True,
        objective=True,
        label="{method.name}-{objective.name}",
        details=_FITTED,
    )
)
BISM = register_method(
    Method(
        name="bism",
        description="BiSM: the score through q unrolled N steps (inner_lr) from L draws",
        build=score_matching(
            lambda s, parts: BiSM(
                s.method.n_unroll,
                n_samples=s.method.n_samples,
                inner_lr=s.method.inner_lr,
                loss=cast(PosteriorLoss, parts.inner_loss),
            )
        ),
        reads=("n_samples", "n_unroll", "inner_lr"),
        posterior=True,
        objective=True,
        label="{method.name}-{objective.name}",
        details="K={posterior.steps} N={method.n_unroll}",
    )
)
EXACT = register_method(
    Method(
        name="exact",
        description="the model's exact score (GRBM: h marginalised; images: the deep EBM)",
        build=score_matching(lambda s, parts: ExactScore()),
        exact_score=True,
        objective=True,
        label="{method.name}-{objective.name}",
        details="exact score",
    )
)
CD = register_method(
    Method(
        name="cd",
        description="contrastive divergence: cd_steps Gibbs sweeps from the data",
        build=contrastive_divergence(persistent=False),
        reads=("cd_steps",),
        sampler=True,
        label="{method.name}-{method.cd_steps}",
    )
)
PCD = register_method(
    Method(
        name="pcd",
        description="persistent contrastive divergence: chains kept across iterations",
        build=contrastive_divergence(persistent=True),
        reads=("cd_steps",),
        sampler=True,
        label="{method.name}-{method.cd_steps}",
    )
)
NCE = register_method(
    Method(
        name="nce",
        description="noise-contrastive estimation of the free energy and log Z",
        build=noise_contrastive,
        reads=_NCE,
        data_noise=True,
        details="nu={method.noise_ratio} noise={method.nce_noise}",
    )
)
VNCE = register_method(
    Method(
        name="vnce",
        description="variational NCE: E(v, h) and q, log p(y) by importance sampling",
        build=noise_contrastive,
        reads=(*_NCE, "n_samples", "particles"),
        posterior=True,
        data_noise=True,
        details="K={posterior.steps} nu={method.noise_ratio}",
    )
)

"""One settings record for every run, in sections, each field checked by name.

A run's settings are a frozen :class:`Settings` of sections (``data``, ``model``,
``method``, ``objective``, ``posterior``, ``optimiser``, ``cadence``,
``evaluation``, ``sampling``, ``fid``) and the run-wide ``seed``, ``device``,
``amp``, ``compile`` and ``tensorboard``. Presets are Settings; ``--set
section.key=value`` changes one field, a few flat names (``lr``, ``iterations``
...: :data:`ALIASES`) stand for the dotted ones. A run reads the settings its model
family and its method declare (:mod:`eblvm.families`, :mod:`eblvm.methods`) and
those every run reads: its record (``config.json``), ``eblvm show`` and its
fingerprint hold those. Strings become objects in one place only: :mod:`eblvm.parts`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from eblvm.families import IMAGE_DATASETS, Family, datasets, family_of
from eblvm.methods import METHODS, Method, method_named
from score_objectives.mdsm import SCHEDULES as NOISE_SCHEDULES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NCE_NOISE = ("standard", "data")
NCE_STARTS = ("estimate", "zero")
# Each objective and the objective.* settings it reads.
OBJECTIVE_READS = {
    "dsm": ("sigma",),
    "mdsm": ("sigma_min", "sigma_max", "schedule", "sigma0"),
    "ssm": ("projections",),
    "sm": (),
    "ksd": (),
}
OBJECTIVES = tuple(OBJECTIVE_READS)
POSTERIOR_LOSSES = ("kl", "fisher")
FIT_POINTS = ("objective", "data")
SCHEDULES = ("constant", "cosine")
LOG_Z_METHODS = ("auto", "exact", "ais")
SELECTIONS = ("none", "validation", "fid")
DEVICES = ("auto", "cpu", "cuda")
COMPILE = ("auto", "on", "off")

# (channels, image size) of the image data sets whose images have a fixed shape;
# CelebA is resized to image_size, random images take the configured shape.
NATIVE_SHAPES = {
    "mnist": (1, 32),
    "fashion_mnist": (1, 32),
    "cifar10": (3, 32),
    "digits32": (1, 32),
    "celeba": (3, None),
}
_STAGES = 3  # the deep models' residual network halves the resolution three times
# What every run reads, whatever its family and method: these sections whole, and these
# settings.
RUN_SECTIONS = ("optimiser", "cadence")
RUN_READS = (
    "data.dataset",
    "data.batch_size",
    "method.name",
    "evaluation.select_by",
    "evaluation.max_drop",
    "evaluation.max_loss",
    "seed",
    "device",
    "compile",
    "tensorboard",
)
# Settings newer than the first records: a record without one was written before it
# existed and takes its default (which trains as the run did then); at its default, one
# is left out of the fingerprint, so that the runs recorded before it resume.
ADDED_SINCE = frozenset(
    {
        "optimiser.clip_norm",  # 0.4.0
        "evaluation.max_posterior_loss",  # after 0.5.0
        "objective.schedule",  # 0.8.0
    }
)
# What a method that fits q(h | v) reads.
POSTERIOR_READS = (
    "posterior.steps",
    "posterior.loss",
    "posterior.lr",
    "posterior.fit_at",
    "evaluation.max_posterior_loss",
)


def _digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


class SettingsError(ValueError):
    """A setting out of its range or of the wrong type; the message names it."""


def _check(condition: bool, name: str, expected: str, value: object) -> None:
    if not condition:
        raise SettingsError(f"{name} must be {expected}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(section: str, name: str, value: object, minimum: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    _check(ok, f"{section}.{name}", f"an integer >= {minimum}", value)


def _positive(section: str, name: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and _is_real(value) and value > 0
    _check(ok, f"{section}.{name}", "positive and finite", value)


def _choice(section: str, name: str, value: object, choices: tuple[str, ...]) -> None:
    _check(value in choices, f"{section}.{name}", f"one of {', '.join(choices)}", value)


def _fraction(section: str, name: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and _is_real(value) and 0 <= value < 1
    _check(ok, f"{section}.{name}", "in [0, 1)", value)


@dataclass(frozen=True)
class DataSettings:
    """``dataset``; ``n_train`` (2-D toys: training points; random: images);
    ``batch_size`` (the global batch); ``columns``: the checkerboard's board size;
    images: ``channels``, ``image_size``, ``hflip``."""

    dataset: str = "checkerboard"
    data_root: str = "data"
    n_train: int = 60_000
    batch_size: int = 100
    columns: int = 2
    channels: int = 3
    image_size: int = 32
    hflip: bool = False

    def check(self) -> None:
        _choice("data", "dataset", self.dataset, datasets())
        _count("data", "n_train", self.n_train, 2)
        _count("data", "batch_size", self.batch_size, 2)
        _count("data", "columns", self.columns, 2)
        _count("data", "channels", self.channels, 1)
        _count("data", "image_size", self.image_size, 2**_STAGES)
        _check(isinstance(self.hflip, bool), "data.hflip", "true or false", self.hflip)
        if self.dataset in IMAGE_DATASETS:
            _check(
                self.image_size % 2**_STAGES == 0,
                "data.image_size",
                "a multiple of 8",
                self.image_size,
            )
            channels, size = NATIVE_SHAPES.get(self.dataset, (self.channels, self.image_size))
            if (channels, size or self.image_size) != (self.channels, self.image_size):
                size_text = f"{size}×{size}" if size else "any size"
                raise SettingsError(
                    f"dataset {self.dataset} has {channels}-channel images ({size_text}), "
                    f"got data.channels={self.channels}, data.image_size={self.image_size}"
                )


@dataclass(frozen=True)
class ModelSettings:
    """``h_dim``; GRBMs: ``weight_std`` (W ~ N(0, weight_std²)); deep models:
    ``base_width``, ``blocks_per_stage`` and the posterior network's ``posterior_width``."""

    h_dim: int = 4
    weight_std: float = 0.5
    base_width: int = 256
    blocks_per_stage: int = 3
    posterior_width: int = 64

    def check(self) -> None:
        _count("model", "h_dim", self.h_dim, 1)
        _positive("model", "weight_std", self.weight_std)
        _count("model", "base_width", self.base_width, 1)
        _count("model", "blocks_per_stage", self.blocks_per_stage, 1)
        _count("model", "posterior_width", self.posterior_width, 1)


@dataclass(frozen=True)
class MethodSettings:
    """``name``: a method declared in :mod:`eblvm.methods`, which also says which of
    these it reads: a score estimator (``vages``, ``vaes``, ``is``, ``bism``), the model's
    exact score (``exact``), contrastive divergence (``cd``, ``pcd``) or noise-contrastive
    estimation (``nce``, and ``vnce`` for latent models). L = ``n_samples``; BiSM: N =
    ``n_unroll`` steps at ``inner_lr``; VaES/VaGES refine their draws by ``refine_steps``
    Langevin steps in h; CD: ``cd_steps`` Gibbs sweeps; NCE: ν = ``noise_ratio`` noise
    samples per example from ``nce_noise`` (``standard`` N(0, I), or ``data``: the
    Gaussian of the data's mean and covariance), the log-normaliser c starting at
    ``nce_start`` (``estimate``: an importance-sampling estimate of log Z, or ``zero``);
    VNCE: ``particles`` draws of q for the noise samples' importance weights."""

    name: str = "vages"
    n_samples: int = 2
    n_unroll: int = 0
    inner_lr: float = 1e-3
    refine_steps: int = 0
    refine_step_size: float = 1e-2
    refine_noise_std: float = 1e-4
    cd_steps: int = 1
    noise_ratio: int = 1
    nce_noise: str = "standard"
    nce_start: str = "estimate"
    particles: int = 5

    def check(self) -> None:
        _choice("method", "name", self.name, tuple(METHODS))
        declared = self.declared
        least = {**_METHOD_COUNTS, **declared.minimum}
        for name, minimum in least.items():
            _count("method", name, getattr(self, name), minimum)
        _choice("method", "nce_noise", self.nce_noise, NCE_NOISE)
        _choice("method", "nce_start", self.nce_start, NCE_STARTS)
        _positive("method", "inner_lr", self.inner_lr)
        _positive("method", "refine_step_size", self.refine_step_size)
        _check(
            _is_real(self.refine_noise_std) and self.refine_noise_std >= 0,
            "method.refine_noise_std",
            "non-negative and finite",
            self.refine_noise_std,
        )
        if self.refine_steps and "refine_steps" not in declared.reads:
            takers = [m.name for m in METHODS.values() if "refine_steps" in m.reads]
            raise SettingsError(
                f"method.refine_steps refines fixed draws, which {' and '.join(takers)} take; "
                f"{self.name} cannot refine (set method.refine_steps=0)"
            )

    @property
    def declared(self) -> Method:
        """The declared method of this name (:mod:`eblvm.methods`)."""
        return METHODS[self.name]


# The method section's counts and their least values; a method may ask for more.
_METHOD_COUNTS = {
    "n_samples": 1,
    "n_unroll": 0,
    "refine_steps": 0,
    "cd_steps": 1,
    "noise_ratio": 1,
    "particles": 1,
}


@dataclass(frozen=True)
class ObjectiveSettings:
    """``name``; DSM's ``sigma``; SSM's ``projections``; MDSM's levels in
    [``sigma_min``, ``sigma_max``] over the batch, spaced by ``schedule`` (``linear`` or
    ``geometric``), and ``sigma0``."""

    name: str = "dsm"
    sigma: float = 0.05
    projections: int = 1
    sigma_min: float = 0.05
    sigma_max: float = 1.2
    schedule: str = "linear"
    sigma0: float = 0.1

    def check(self) -> None:
        _choice("objective", "name", self.name, OBJECTIVES)
        _positive("objective", "sigma", self.sigma)
        _count("objective", "projections", self.projections, 1)
        _positive("objective", "sigma_min", self.sigma_min)
        _positive("objective", "sigma_max", self.sigma_max)
        _choice("objective", "schedule", self.schedule, NOISE_SCHEDULES)
        _positive("objective", "sigma0", self.sigma0)
        _check(
            self.sigma_min <= self.sigma_max,
            "objective.sigma_min",
            f"at most objective.sigma_max ({self.sigma_max})",
            self.sigma_min,
        )


@dataclass(frozen=True)
class PosteriorSettings:
    """q(h | v) is fitted for K = ``steps`` Adam steps (``lr``) per minibatch by ``loss``
    (``kl``: the negative ELBO; ``fisher``: the posterior Fisher divergence) at
    ``fit_at`` (``objective``: where the objective takes the score, ṽ for DSM and MDSM,
    as the paper's code; ``data``: the clean batch). Bernoulli q: ``temperature``."""

    steps: int = 5
    loss: str = "kl"
    lr: float = 1e-3
    temperature: float = 0.1
    fit_at: str = "objective"

    def check(self) -> None:
        _count("posterior", "steps", self.steps, 0)
        _choice("posterior", "loss", self.loss, POSTERIOR_LOSSES)
        _positive("posterior", "lr", self.lr)
        _positive("posterior", "temperature", self.temperature)
        _choice("posterior", "fit_at", self.fit_at, FIT_POINTS)


@dataclass(frozen=True)
class OptimiserSettings:
    """Adam (``beta1``, ``beta2``, ``eps``) on θ at ``lr`` (q has its own ``posterior.lr``),
    with ``schedule`` ``constant`` or ``cosine`` (to ``lr_min`` over the iterations, for
    θ and φ); ``ema_decay`` > 0 keeps an exponential moving average of θ, with warm-up
    decay_t = min(ema_decay, (1 + t)/(10 + t)); ``clip_norm`` > 0 clips θ's and φ's
    gradients each to that global norm (per run; 0: no clipping)."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    schedule: str = "constant"
    lr_min: float = 0.0
    ema_decay: float = 0.0
    clip_norm: float = 0.0

    def check(self) -> None:
        _positive("optimiser", "lr", self.lr)
        _fraction("optimiser", "beta1", self.beta1)
        _fraction("optimiser", "beta2", self.beta2)
        _positive("optimiser", "eps", self.eps)
        _choice("optimiser", "schedule", self.schedule, SCHEDULES)
        _check(
            _is_real(self.lr_min) and 0 <= self.lr_min <= self.lr,
            "optimiser.lr_min",
            f"in [0, optimiser.lr = {self.lr}]",
            self.lr_min,
        )
        _fraction("optimiser", "ema_decay", self.ema_decay)
        _check(
            _is_real(self.clip_norm) and self.clip_norm >= 0,
            "optimiser.clip_norm",
            "0 (no clipping) or positive and finite",
            self.clip_norm,
        )


@dataclass(frozen=True)
class CadenceSettings:
    """``iterations``; a metrics row every ``log_every``, an evaluation every
    ``eval_every`` and a checkpoint every ``checkpoint_every`` iterations."""

    iterations: int = 100_000
    log_every: int = 1000
    eval_every: int = 1000
    checkpoint_every: int = 1000

    def check(self) -> None:
        for name in ("iterations", "log_every", "eval_every", "checkpoint_every"):
            _count("cadence", name, getattr(self, name), 1)


@dataclass(frozen=True)
class EvaluationSettings:
    """GRBMs: log Z by ``log_z`` (``auto``: exact when h_dim <= ``exact_log_z_max_h``,
    else AIS with ``ais_chains`` × ``ais_steps``); ``select_by``: the checkpoint kept
    as best.pt (``validation`` log-likelihood, ``fid`` for images, ``none``).
    ``max_drop``: an evaluation more than this many nats below the run's best
    log-likelihood, or a loss above ``max_loss``, stops the run as diverged; so does a
    posterior loss above ``max_posterior_loss`` (the mean since the last log, as for
    ``max_loss``; 0: off) in a method that fits q. A non-finite loss or posterior loss
    stops it at the step, always."""

    log_z: str = "auto"
    exact_log_z_max_h: int = 20
    ais_chains: int = 2000
    ais_steps: int = 2000
    select_by: str = "none"
    max_drop: float = 100.0
    max_loss: float = 1e12
    max_posterior_loss: float = 0.0

    def check(self) -> None:
        _choice("evaluation", "log_z", self.log_z, LOG_Z_METHODS)
        _count("evaluation", "exact_log_z_max_h", self.exact_log_z_max_h, 1)
        _count("evaluation", "ais_chains", self.ais_chains, 1)
        _count("evaluation", "ais_steps", self.ais_steps, 1)
        _choice("evaluation", "select_by", self.select_by, SELECTIONS)
        _positive("evaluation", "max_drop", self.max_drop)
        _positive("evaluation", "max_loss", self.max_loss)
        _check(
            _is_real(self.max_posterior_loss) and self.max_posterior_loss >= 0,
            "evaluation.max_posterior_loss",
            "finite and >= 0 (0: off)",
            self.max_posterior_loss,
        )


@dataclass(frozen=True)
class SamplingSettings:
    """Annealed Langevin sampling of image models: ``hold_steps`` at T = ``t_max``,
    ``anneal_steps`` geometric steps to T = 1, ``final_steps`` to T = 0, step
    ``step_size``, then one denoising step."""

    hold_steps: int = 500
    anneal_steps: int = 2000
    final_steps: int = 200
    t_max: float = 100.0
    step_size: float = 0.02

    def check(self) -> None:
        for name in ("hold_steps", "anneal_steps", "final_steps"):
            _count("sampling", name, getattr(self, name), 0)
        _check(_is_real(self.t_max) and self.t_max >= 1, "sampling.t_max", ">= 1", self.t_max)
        _positive("sampling", "step_size", self.step_size)
        if self.hold_steps + self.anneal_steps + self.final_steps == 0:
            raise SettingsError("the sampling schedule needs at least one step")


@dataclass(frozen=True)
class FIDSettings:
    """Image runs: the FID of ``samples`` samples at each evaluation against the
    reference statistics ``stats`` (.npz), with Inception ``weights`` (or the
    EBLVM_FID_WEIGHTS variable); without both, runs are not evaluated by FID."""

    samples: int = 1000
    stats: str = ""
    weights: str = ""

    def check(self) -> None:
        _count("fid", "samples", self.samples, 2)


SECTIONS = (
    "data",
    "model",
    "method",
    "objective",
    "posterior",
    "optimiser",
    "cadence",
    "evaluation",
    "sampling",
    "fid",
)


@dataclass(frozen=True)
class Settings:
    """Everything that defines a run (the paper's checkerboard VaGES-DSM by default).

    Run-wide: ``seed``; ``device``; ``amp`` (bf16 autocast of the deep models' g1 on
    CUDA); ``compile`` (``auto``, ``on``, ``off``: the training step compiled into one
    graph); ``tensorboard`` (the metrics also as TensorBoard scalars in ``out/tensorboard``,
    with the optional ``tensorboard`` package).
    """

    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    method: MethodSettings = field(default_factory=MethodSettings)
    objective: ObjectiveSettings = field(default_factory=ObjectiveSettings)
    posterior: PosteriorSettings = field(default_factory=PosteriorSettings)
    optimiser: OptimiserSettings = field(default_factory=OptimiserSettings)
    cadence: CadenceSettings = field(default_factory=CadenceSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    fid: FIDSettings = field(default_factory=FIDSettings)
    seed: int = 0
    device: str = "cpu"
    amp: bool = False
    compile: str = "auto"
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in SECTIONS:
            getattr(self, name).check()
        _check(
            _is_int(self.seed) and 0 <= self.seed < 2**63,
            "seed",
            "an integer in [0, 2^63)",
            self.seed,
        )
        _choice("run", "device", self.device, DEVICES)
        _check(isinstance(self.amp, bool), "amp", "true or false", self.amp)
        _choice("run", "compile", self.compile, COMPILE)
        _check(isinstance(self.tensorboard, bool), "tensorboard", "true or false", self.tensorboard)
        if self.amp and self.device == "cpu":
            raise SettingsError("amp (bf16 autocast) runs on CUDA only; it cannot be used with cpu")
        declared = self.method.declared
        if declared.check is not None:
            declared.check(self)
        try:
            family_of(self.data.dataset, declared)
        except ValueError as error:
            raise SettingsError(str(error)) from None

    @property
    def family(self) -> Family:
        """The model family of the data set and method (:mod:`eblvm.families`)."""
        return family_of(self.data.dataset, self.method.declared)

    def run_kind(self) -> str:
        """What kind of run these settings make, in words: its family and method (and
        objective): ``a grbm run trained by vages with dsm``."""
        method = self.method.declared
        objective = f" with {self.objective.name}" if method.objective else ""
        return f"a {self.family.name} run trained by {method.name}{objective}"

    def reads(self) -> tuple[str, ...]:
        """The dotted names of the settings this run reads, in :meth:`items`' order: those
        of every run, its family's and its method's."""
        method, family = self.method.declared, self.family
        read = {*RUN_READS, *family.reads, *(f"method.{key}" for key in method.reads)}
        if method.posterior:
            read |= {*POSTERIOR_READS, *family.posterior_reads}
        if method.objective:
            objective = self.objective.name
            read |= {"objective.name", *(f"objective.{k}" for k in OBJECTIVE_READS[objective])}
        return tuple(
            name
            for name, _ in self.items()
            if name in read or name.partition(".")[0] in RUN_SECTIONS
        )

    def read_items(self) -> Iterator[tuple[str, Any]]:
        """(dotted name, value) of the settings this run reads."""
        read = set(self.reads())
        return ((name, value) for name, value in self.items() if name in read)

    def to_dict(self) -> dict[str, Any]:
        """The record of the settings this run reads (``config.json``), by section."""
        record: dict[str, Any] = {}
        for name, value in self.read_items():
            section, _, key = name.rpartition(".")
            (record.setdefault(section, {}) if section else record)[key] = value
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Settings:
        """Settings from a record of ``to_dict`` (or one holding every setting): each
        setting the run reads must be in it (except those of ``ADDED_SINCE``, which
        records written before them lack), the others take their defaults; an unknown
        key is refused."""
        if not isinstance(record, dict):
            raise SettingsError(f"settings must be a JSON object, got {type(record).__name__}")
        default = cls()
        known = {f.name for f in fields(cls)}
        if set(record) - known:
            raise SettingsError(f"settings hold unknown keys {sorted(set(record) - known)}")
        given: set[str] = set()
        values: dict[str, Any] = {}
        for name, value in record.items():
            if name not in SECTIONS:
                values[name] = value
                given.add(name)
                continue
            names = {g.name for g in fields(getattr(default, name))}
            if not isinstance(value, dict) or set(value) - names:
                raise SettingsError(f"settings section {name} holds keys of {sorted(names)} only")
            values[name] = dataclasses.replace(getattr(default, name), **value)
            given |= {f"{name}.{key}" for key in value}
        settings = dataclasses.replace(default, **values)
        missing = [name for name in settings.reads() if name not in given | ADDED_SINCE]
        if missing:
            raise SettingsError(f"settings miss {missing}")
        return settings

    def with_method(self, name: str, **values: Any) -> Settings:
        """These settings trained by method ``name`` with ``values`` of its settings, the
        method settings that ``name`` does not read at their defaults (the presets of
        one base, one per method)."""
        default = MethodSettings()
        kept = {key: getattr(self.method, key) for key in method_named(name).reads}
        method = dataclasses.replace(default, **{**kept, **values, "name": name})
        return dataclasses.replace(self, method=method)

    def trajectory(self, *, unread_at_default: bool = True) -> dict[str, Any]:
        """The settings that change the run's trajectory, by dotted name: not its
        cadence, its paths or device, and not its length unless a schedule spans it; a
        setting the run does not read counts at its default (with ``unread_at_default``
        False, at its value: the record that 0.3.0 fingerprinted)."""
        left_out = {
            "device",
            "compile",
            "tensorboard",
            "data.data_root",
            "fid.stats",
            "fid.weights",
        }
        left_out |= {f"cadence.{f.name}" for f in fields(CadenceSettings)}
        if self.optimiser.schedule != "constant":
            left_out.discard("cadence.iterations")
        rows = [
            (name, value, default)
            for (name, value), (_, default) in zip(self.items(), Settings().items(), strict=True)
        ]
        left_out |= {
            name for name, value, default in rows if name in ADDED_SINCE and value == default
        }
        read = set(self.reads()) if unread_at_default else {name for name, _, _ in rows}
        return {
            name: value if name in read else default
            for name, value, default in rows
            if name not in left_out
        }

    def fingerprint(self) -> str:
        """A short hash of :meth:`trajectory`: a run continues only with the same one."""
        return _digest(self.trajectory())

    def is_fingerprint(self, fingerprint: object) -> bool:
        """Whether a checkpoint's ``fingerprint`` is this run's: today's, or the one that
        0.3.0 wrote (every setting at its value), so that its run folders resume."""
        return fingerprint in (
            self.fingerprint(),
            _digest(self.trajectory(unread_at_default=False)),
        )

    def changed(self, **sections: dict[str, Any]) -> Settings:
        """These settings with fields of some sections changed:
        ``settings.changed(method={"name": "cd"}, cadence={"iterations": 500})``."""
        replaced = {
            name: dataclasses.replace(getattr(self, name), **values)
            for name, values in sections.items()
        }
        return dataclasses.replace(self, **replaced)

    def shape_key(self) -> str:
        """What runs of one stack must share: everything but the seed, the learning rates
        and the paths."""
        return dataclasses.replace(
            self,
            seed=0,
            optimiser=dataclasses.replace(self.optimiser, lr=1.0, lr_min=0.0),
            posterior=dataclasses.replace(self.posterior, lr=1.0),
            data=dataclasses.replace(self.data, data_root=""),
            cadence=dataclasses.replace(
                self.cadence, log_every=1, eval_every=1, checkpoint_every=1
            ),
        ).fingerprint()

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every setting as (dotted name, value), section by section."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECTIONS:
                for g in fields(value):
                    yield f"{f.name}.{g.name}", getattr(value, g.name)
            else:
                yield f.name, value


# Flat names for the settings changed most often, as the README lists them.
ALIASES = {
    "dataset": "data.dataset",
    "data_root": "data.data_root",
    "n_train": "data.n_train",
    "batch_size": "data.batch_size",
    "channels": "data.channels",
    "image_size": "data.image_size",
    "h_dim": "model.h_dim",
    "base_width": "model.base_width",
    "posterior_width": "model.posterior_width",
    "method": "method.name",
    "n_samples": "method.n_samples",
    "n_unroll": "method.n_unroll",
    "refine_steps": "method.refine_steps",
    "objective": "objective.name",
    "dsm_sigma": "objective.sigma",
    "posterior_steps": "posterior.steps",
    "posterior_lr": "posterior.lr",
    "lr": "optimiser.lr",
    "lr_min": "optimiser.lr_min",
    "ema_decay": "optimiser.ema_decay",
    "iterations": "cadence.iterations",
    "log_every": "cadence.log_every",
    "eval_every": "cadence.eval_every",
    "checkpoint_every": "cadence.checkpoint_every",
}


def setting_names(settings: Settings) -> list[str]:
    """The dotted names ``--set`` accepts, then the aliases."""
    return [name for name, _ in settings.items()] + sorted(ALIASES)


def nearest_settings(key: str, settings: Settings, n: int = 3) -> list[str]:
    """The known settings closest to an unknown ``key``, best first: dotted names and
    aliases (shown as ``alias (= section.key)``), by the whole name and by the part after
    the section (``sigma`` finds ``objective.sigma``; ``optimizer.lr`` ``optimiser.lr``)."""
    targets = {name: name for name, _ in settings.items()} | ALIASES
    leaf = key.rpartition(".")[2]
    best: dict[str, tuple[float, float, str]] = {}
    for name, target in targets.items():
        whole = difflib.SequenceMatcher(None, key, name).ratio()
        part = difflib.SequenceMatcher(None, leaf, name.rpartition(".")[2]).ratio()
        score = (max(whole, part), whole)
        shown = name if name == target else f"{name} (= {target})"
        if score[0] >= 0.75 and score > best.get(target, (0.0, 0.0, ""))[:2]:
            best[target] = (*score, shown)
    ranked = sorted(best.values(), key=lambda entry: entry[:2], reverse=True)
    return [shown for _, _, shown in ranked[:n]]


# The training examples of the data sets of a fixed size: ``data.n_train`` sizes only the
# 2-D toys and the random images.
FIXED_TRAIN_SIZES = {
    "digits": 1437,
    "frey_face": 1400,
    "digits32": 1617,
    "mnist": 60_000,
    "fashion_mnist": 60_000,
    "cifar10": 50_000,
    "celeba": 182_637,
}


def _check_n_train_is_read(settings: Settings) -> None:
    size = FIXED_TRAIN_SIZES.get(settings.data.dataset)
    if size is not None:
        raise SettingsError(
            f"data.n_train={settings.data.n_train} cannot size {settings.data.dataset}: it "
            f"has {size} training examples, all trained on (n_train sizes the 2-D toys and "
            "random images)"
        )


def apply_overrides(
    settings: Settings,
    assignments: list[str],
    *,
    config: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> Settings:
    """Apply ``config`` (a TOML file of settings, sections as tables: :func:`read_config`)
    and then the ``key=value`` strings, each value parsed as its field's type (``1e3`` is
    an integer when it is one); keys are dotted (``optimiser.lr``) or aliases (``lr``).
    The settings' own checks then run on the result; ``data.n_train`` is refused for a
    data set of a fixed size (:data:`FIXED_TRAIN_SIZES`). ``strict`` (as the ``eblvm``
    command): a setting the run does not read is refused too (:func:`refuse_unread`)."""
    values = assigned_values(settings, assignments, config=config)
    result = apply_values(settings, values)
    if strict:
        refuse_unread(values, [result])
    return result


def assigned_values(
    settings: Settings,
    assignments: list[str],
    *,
    config: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The values that ``config`` and then ``assignments`` give (see
    :func:`apply_overrides`), by dotted name, each of its setting's type."""
    if not isinstance(settings, Settings):
        raise TypeError(f"settings must be Settings, got {type(settings).__name__}")
    values = {} if config is None else read_config(config, settings)
    current = dict(settings.items())
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise SettingsError(f"--set expects key=value, got {assignment!r}")
        name = _known_name(key, settings, "")
        values[name] = parse_value(raw, current[name], name)
    return values


def refuse_unread(names: Iterable[str], runs: Sequence[Settings]) -> None:
    """SettingsError naming the first of ``names`` that none of ``runs`` reads (their
    families' and methods' declarations say which: :meth:`Settings.reads`) and the runs
    it does not apply to."""
    read = {name for settings in runs for name in settings.reads()}
    unread = [name for name in names if name not in read]
    if unread:
        kinds = " or ".join(dict.fromkeys(settings.run_kind() for settings in runs))
        raise SettingsError(
            f"{unread[0]} does not apply to {kinds}, which does not read it "
            "(`eblvm show PRESET` lists the settings a run reads)"
        )


def _known_name(key: str, settings: Settings, source: str) -> str:
    """The dotted name of ``key`` (a dotted name or an alias); SettingsError suggesting
    close names when it names no setting."""
    name = ALIASES.get(key, key)
    if name not in dict(settings.items()):
        close = nearest_settings(key, settings)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise SettingsError(
            f"{source}unknown setting {key!r}{hint} (`eblvm settings` lists the settings)"
        )
    return name


def apply_values(settings: Settings, values: dict[str, Any]) -> Settings:
    """``settings`` with ``values`` (dotted name -> value of its type), checked (see
    :func:`apply_overrides`)."""
    changes: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for name, value in values.items():
        section, _, leaf = name.rpartition(".")
        (changes.setdefault(section, {}) if section else top)[leaf] = value
    replaced = {s: dataclasses.replace(getattr(settings, s), **c) for s, c in changes.items()}
    result = dataclasses.replace(settings, **replaced, **top)
    if "n_train" in changes.get("data", {}):
        _check_n_train_is_read(result)
    return result


def read_config(path: str | os.PathLike[str], settings: Settings) -> dict[str, Any]:
    """The settings of the TOML file ``path`` by dotted name: the keys of ``--set``, a
    section's as a table (``[cadence]`` ``iterations = 500``) and the run-wide ones and
    aliases at the top. Each value must have its setting's type (an integer is also a
    real); SettingsError names the file and the key otherwise, and for invalid TOML or
    an unknown key."""
    source = f"{os.fspath(path)}: "
    with open(os.path.expanduser(os.fspath(path)), "rb") as file:
        try:
            document = tomllib.load(file)
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"{source}not valid TOML: {error}") from None
    current = dict(settings.items())
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise SettingsError(f"{source}{key} is a section: give it as a table [{key}]")
            pairs = [(f"{key}.{leaf}", inner) for leaf, inner in value.items()]
        else:
            pairs = [(key, value)]
        for dotted, given in pairs:
            name = _known_name(dotted, settings, source)
            values[name] = _typed(given, current[name], f"{source}{name}")
    return values


def _typed(value: object, like: object, name: str) -> Any:
    """A TOML ``value`` as a value of ``like``'s type: a bool, an integer (a float that
    is one, as 1e3), a real (an integer too) or a string; SettingsError naming it else."""
    kind = type(like)
    if kind is float and _is_int(value):
        return float(value)  # type: ignore[arg-type]
    if kind is int and isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if type(value) is not kind:
        raise SettingsError(f"{name} expects {kind.__name__}, got {value!r}")
    return value


def parse_value(raw: str, like: object, name: str) -> Any:
    """``raw`` as a value of ``like``'s type, naming the setting when it is not one."""
    kind = type(like)
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if kind is int:
            try:
                return int(raw)
            except ValueError:
                number = float(raw)  # 1e3
                if not number.is_integer() or abs(number) >= 2**63:
                    raise
                return int(number)
        if kind is float:
            return float(raw)
        return raw
    except ValueError:
        raise SettingsError(f"setting {name} expects {kind.__name__}, got {raw!r}") from None

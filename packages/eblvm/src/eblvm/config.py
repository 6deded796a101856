"""Training configuration: one typed, frozen record per run."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    C = TypeVar("C", bound=DataclassInstance)
else:
    C = TypeVar("C")

DATASETS = ("checkerboard", "digits", "frey_face")
METHODS = ("vages", "vaes", "is", "bism", "exact", "cd", "pcd")
OBJECTIVES = ("dsm", "ksd", "ssm", "sm", "mdsm")
LOG_Z_METHODS = ("auto", "exact", "ais")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (the paper's checkerboard settings by default).

    ``method`` picks the score estimator (``vages``, ``vaes``, ``is``, ``bism``), the
    model's exact score (``exact``), or a likelihood baseline (``cd``, ``pcd``);
    ``objective`` picks the score-matching loss. L = ``n_samples``, K =
    ``posterior_steps``, N = ``n_unroll`` (BiSM).
    """

    dataset: str = "checkerboard"
    data_root: str = "data"
    h_dim: int = 4
    weight_std: float = 0.5
    method: str = "vages"
    objective: str = "dsm"
    n_samples: int = 2
    posterior_steps: int = 5
    temperature: float = 0.1
    n_unroll: int = 0
    inner_lr: float = 1e-3
    cd_steps: int = 1
    dsm_sigma: float = 0.05
    ssm_projections: int = 1
    mdsm_sigma_min: float = 0.05
    mdsm_sigma_max: float = 1.2
    batch_size: int = 100
    iterations: int = 100_000
    lr: float = 1e-3
    posterior_lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.95
    seed: int = 0
    eval_every: int = 1000
    checkpoint_every: int = 1000
    log_z: str = "auto"
    exact_log_z_max_h: int = 20
    ais_chains: int = 2000
    ais_steps: int = 2000
    select_by_validation: bool = False
    n_train: int = 60_000

    def __post_init__(self) -> None:
        check_fields(
            self,
            choices={
                "dataset": DATASETS,
                "method": METHODS,
                "objective": OBJECTIVES,
                "log_z": LOG_Z_METHODS,
            },
            minimums={
                "h_dim": 1,
                "n_samples": 2 if self.method == "vages" else 1,
                "posterior_steps": 0,
                "n_unroll": 0,
                "cd_steps": 1,
                "ssm_projections": 1,
                "batch_size": 2,
                "iterations": 1,
                "eval_every": 1,
                "checkpoint_every": 1,
                "ais_chains": 1,
                "ais_steps": 1,
                "n_train": 2,
            },
            positives=("temperature", "inner_lr", "dsm_sigma", "lr", "posterior_lr", "weight_std"),
        )
        if not 0 < self.mdsm_sigma_min <= self.mdsm_sigma_max:
            raise ValueError("mdsm_sigma_min must be positive and at most mdsm_sigma_max")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A hash of the settings that change the run's trajectory (not its length)."""
        return settings_fingerprint(self.to_dict(), exclude=_LENGTH_ONLY)


# Fields that may differ between a run and its continuation.
_LENGTH_ONLY = frozenset({"iterations", "data_root"})


def check_fields(
    config: object,
    *,
    choices: dict[str, tuple[str, ...]],
    minimums: dict[str, int],
    positives: tuple[str, ...],
) -> None:
    """Refuse a configuration whose named fields are not among their choices, below
    their minimums, or not positive and finite; the message names the field."""
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
    for name, minimum in minimums.items():
        if getattr(config, name) < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {getattr(config, name)}")
    for name in positives:
        if not 0 < getattr(config, name) < math.inf:
            raise ValueError(f"{name} must be positive and finite, got {getattr(config, name)}")


def settings_fingerprint(settings: dict[str, Any], *, exclude: frozenset[str]) -> str:
    """A short hash of the JSON of ``settings`` without the keys in ``exclude``."""
    kept = {k: v for k, v in settings.items() if k not in exclude}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def apply_overrides(config: C, assignments: list[str]) -> C:
    """Apply ``key=value`` strings to a settings record (any frozen dataclass whose fields
    are str, int, float or bool, such as TrainConfig), each value parsed as its field's
    type; the record's own validation then runs on the result."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
    fields = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {assignment!r}")
        if key not in fields:
            raise ValueError(
                f"unknown setting {key!r}; valid settings: {', '.join(sorted(fields))}"
            )
        changes[key] = _parse(raw, type(getattr(config, key)), key)
    return dataclasses.replace(config, **changes)


def _parse(raw: str, kind: type, key: str) -> Any:
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        return kind(raw)
    except ValueError:
        raise ValueError(f"setting {key} expects a {kind.__name__}, got {raw!r}") from None

"""A training state's record in a checkpoint, and one run's part of a stack's state.

A :class:`~eblvm.step.TrainState` is saved as nested dicts of tensors (loadable with
``weights_only=True``). Within a stack every parameter, moment and EMA tensor has a
leading run axis and a name with a ``runs.`` segment (``runs.W``,
``logits_net.runs.weight``), while batch-shaped extra state (PCD's chains) has the
runs' rows one after the other; one run's part has the plain names and shapes of a
single run, so that each run's checkpoint is the same whether it was trained alone
or in a stack.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from eblvm.functional import Params, Runs
from eblvm.optim import AdamState
from eblvm.runs import CheckpointError
from eblvm.step import TrainState

_SEGMENT = "runs"


def plain_name(name: str) -> str:
    """A stacked parameter's name without its ``runs`` segment."""
    parts = name.split(".")
    return ".".join(p for i, p in enumerate(parts) if not (p == _SEGMENT and i < len(parts) - 1))


def _params_part(params: Params, run: int, runs: Runs) -> Params:
    if not runs.stacked:
        return dict(params)
    return {plain_name(name): value[run] for name, value in params.items()}


def _extra_part(extra: dict[str, Any], run: int, runs: Runs) -> dict[str, Any]:
    part: dict[str, Any] = {}
    for key, value in extra.items():
        if isinstance(value, dict):
            part[key] = _params_part(value, run, runs)
        else:  # batch-shaped: the run's rows
            rows = value.shape[0] // runs.count
            part[key] = value[run * rows : (run + 1) * rows]
    return part


def _adam_record(state: AdamState | None, run: int, runs: Runs) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "steps": state.steps,
        "mean": _params_part(state.mean, run, runs),
        "variance": _params_part(state.variance, run, runs),
    }


def run_record(state: TrainState, run: int, runs: Runs) -> dict[str, Any]:
    """Run ``run``'s part of a (stacked) state, as a record of plain dicts."""
    return {
        "theta": _params_part(state.theta, run, runs),
        "phi": _params_part(state.phi, run, runs),
        "theta_opt": _adam_record(state.theta_opt, run, runs),
        "phi_opt": _adam_record(state.phi_opt, run, runs),
        "extra": _extra_part(state.extra, run, runs),
    }


def _check_dtype(part: Tensor, like: Tensor, key: str, where: str) -> None:
    if part.dtype != like.dtype:
        raise CheckpointError(f"{where}: {key} must be {like.dtype}, got {part.dtype}")


def _fill_params(like: Params, records: list[Params], runs: Runs, where: str) -> Params:
    filled = {}
    for name, value in like.items():
        key = plain_name(name) if runs.stacked else name
        parts = []
        for record in records:
            part = record.get(key) if isinstance(record, dict) else None
            expected = tuple(value.shape[1:]) if runs.stacked else tuple(value.shape)
            if not isinstance(part, Tensor) or tuple(part.shape) != expected:
                got = tuple(part.shape) if isinstance(part, Tensor) else type(part).__name__
                raise CheckpointError(f"{where}: {key} must have shape {expected}, got {got}")
            _check_dtype(part, value, key, where)
            if not bool(torch.isfinite(part).all()):
                raise CheckpointError(f"{where}: {key} holds NaN or ±inf")
            parts.append(part.to(value.device))
        filled[name] = torch.stack(parts) if runs.stacked else parts[0]
    if any(
        isinstance(r, dict) and set(r) != {plain_name(n) if runs.stacked else n for n in like}
        for r in records
    ):
        raise CheckpointError(f"{where}: its tensors are not those of this model")
    return filled


def _fill_adam(
    like: AdamState | None, records: list[Any], runs: Runs, where: str
) -> AdamState | None:
    if like is None:
        return None
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("steps"), Tensor):
            raise CheckpointError(f"{where}: the optimiser state is missing or damaged")
        steps = record["steps"]
        if not (steps.dim() == 0 and bool(steps >= 0) and bool(steps == steps.round())):
            raise CheckpointError(
                f"{where}: the optimiser's step count is {steps.tolist()}, not a whole number >= 0"
            )
    variance = _fill_params(like.variance, [r["variance"] for r in records], runs, where)
    if any(bool((value < 0).any()) for value in variance.values()):
        raise CheckpointError(f"{where}: the optimiser's variance estimate is negative")
    return AdamState(
        records[0]["steps"].to(like.steps.device, like.steps.dtype),
        _fill_params(like.mean, [r["mean"] for r in records], runs, where),
        variance,
    )


def stacked_state(
    like: TrainState, records: list[dict[str, Any]], runs: Runs, where: str
) -> TrainState:
    """The state of a stack from its runs' records, shaped and placed like ``like`` (a
    freshly initialised state of the same step); a record of another model raises
    CheckpointError naming ``where``."""
    for record in records:
        if not isinstance(record, dict) or set(record) != {
            "theta",
            "phi",
            "theta_opt",
            "phi_opt",
            "extra",
        }:
            raise CheckpointError(f"{where}: the training state is missing or damaged")
    extra: dict[str, Any] = {}
    for key, value in like.extra.items():
        parts: list[Any] = [
            r["extra"].get(key) if isinstance(r["extra"], dict) else None for r in records
        ]
        if isinstance(value, dict):
            extra[key] = _fill_params(value, parts, runs, where)
        else:
            rows = value.shape[0] // runs.count
            for part in parts:
                if not isinstance(part, Tensor) or part.shape != (rows, *value.shape[1:]):
                    raise CheckpointError(f"{where}: the {key} state has the wrong shape")
                _check_dtype(part, value, key, where)
            extra[key] = torch.cat(parts).to(value.device)
    return TrainState(
        _fill_params(like.theta, [r["theta"] for r in records], runs, where),
        _fill_params(like.phi, [r["phi"] for r in records], runs, where),
        _fill_adam(like.theta_opt, [r["theta_opt"] for r in records], runs, where),  # type: ignore[arg-type]
        _fill_adam(like.phi_opt, [r["phi_opt"] for r in records], runs, where),
        extra,
    )

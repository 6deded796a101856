"""A trained run read back from its folder alone: :func:`load_run`.

The folder's ``config.json`` gives the settings, hence the model family; the weights
come from ``best.pt`` when selection wrote one, else from ``checkpoint.pt`` (its moving
average of θ when the run keeps one, θ itself with ``raw``). Loading is safe:
checkpoints are read with ``weights_only=True`` and checked against the settings'
fingerprint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from eblvm.families import CUSTOM_FAMILY, GRBM
from eblvm.parts import Model
from eblvm.runs import BEST, CheckpointError, read_run_settings, read_weights
from eblvm.settings import Settings
from eblvm.task import Task


class TrainedRun(NamedTuple):
    """A run read back: its settings, its model (a GRBM, a DeepEBLVM or DeepEBM, or a
    custom run's energy), its posterior q(h | v) (None when the run fits none or its
    ``best.pt`` keeps none), the file the weights are from and their iteration."""

    settings: Settings
    model: nn.Module
    posterior: nn.Module | None
    source: Path
    iteration: int


def load_run(
    folder: str | os.PathLike[str],
    *,
    raw: bool = False,
    device: torch.device | str = "cpu",
    task: Task | None = None,
) -> TrainedRun:
    """The model of the run in ``folder`` on ``device``, its parameters frozen: the
    moving average of θ when the run keeps one (``raw``: θ itself). A custom run's
    model is its task's: pass the :class:`~eblvm.custom.ModelTask` it trained with as
    ``task``. Raises FileNotFoundError when the folder holds no run or no weights,
    CheckpointError when they are damaged or belong to other settings."""
    where = Path(os.path.expanduser(os.fspath(folder)))
    settings = read_run_settings(where)
    family = settings.family
    if family is GRBM or family is CUSTOM_FAMILY:
        if family is CUSTOM_FAMILY and task is None:
            raise ValueError(
                f"{where} holds a custom run: its model is its task's; pass the ModelTask "
                "it trained with as task="
            )
        if task is None:
            from eblvm.presets import task_for

            task = task_for(settings)
        model, source, iteration = load_task_model(where, settings, task, raw=raw)
        posterior = model.posterior
        return TrainedRun(
            settings,
            model.energy.to(device),
            None if posterior is None else posterior.to(device),
            source,
            iteration,
        )
    from eblvm.images.sampling import load_run as load_image_run

    run = load_image_run(where, device=torch.device(device), raw=raw)
    return TrainedRun(settings, run.model, run.posterior, run.source, run.iteration)


def load_task_model(
    folder: Path, settings: Settings, task: Task, *, raw: bool = False
) -> tuple[Model, Path, int]:
    """The model that ``task`` builds for ``settings``, holding the weights of the run
    in ``folder`` (see :func:`load_run`; a ``best.pt`` without the posterior's leaves
    it None), its source file and iteration."""
    record, source = read_weights(folder, settings)
    model = task.build(settings, torch.Generator().manual_seed(settings.seed))
    posterior = model.posterior
    try:
        if source.name == BEST:
            model.energy.load_state_dict(record["model"])
            if posterior is not None and record.get("posterior"):
                posterior.load_state_dict(record["posterior"])
            else:
                model = model._replace(posterior=None)
        else:
            state = record["state"]
            extra = state.get("extra", {})
            _copy(model.energy, state["theta"] if raw or "ema" not in extra else extra["ema"])
            if posterior is not None:
                _copy(posterior, state["phi"])
    except (KeyError, RuntimeError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{source} does not hold this run's model: {error}") from None
    for module in (model.energy, model.posterior):
        if module is not None:
            module.requires_grad_(False)
    return model, source, int(record["iteration"])


def _copy(module: nn.Module, named: dict[str, Any]) -> None:
    """The parameters of ``module`` set to ``named``'s, by name."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            parameter.copy_(named[name])

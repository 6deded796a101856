"""Samples of GRBM runs by block-Gibbs sampling, and the GRBM of a run read back.

Image-shaped data (digits 8×8, Frey faces 28×20) become a grid of samples clamped to
[0, 1]; 2-D data a density plot of the model beside a histogram of the samples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

from eblvm.grbm.task import GRBMTask
from eblvm.settings import Settings
from eblvm.trained import load_task_model
from eblvm_eval.gibbs import gibbs_sample
from eblvm_eval.images import FORMATS, save_image_grid
from eblvm_eval.plots import density_plot
from ebm_models import GRBM

SAMPLES = "samples.png"
# The image each data vector is, by data set: (C, H, W).
IMAGE_SHAPES = {"digits": (1, 8, 8), "frey_face": (1, 28, 20)}


class LoadedGRBM(NamedTuple):
    """A GRBM run read back: its settings, the GRBM, the file and iteration it is from,
    and the task (its data splits)."""

    settings: Settings
    grbm: GRBM
    source: Path
    iteration: int
    task: GRBMTask


def load_grbm_run(folder: Path, settings: Settings, *, raw: bool = False) -> LoadedGRBM:
    """The GRBM of the run in ``folder`` with ``settings`` (its config.json's): best.pt's
    when selection wrote one, else checkpoint.pt's moving average (θ itself with ``raw``
    or when the run keeps none). Raises FileNotFoundError when the folder holds no
    weights, CheckpointError when they are damaged or belong to other settings."""
    task = GRBMTask(settings)
    model, source, iteration = load_task_model(folder, settings, task, raw=raw)
    assert isinstance(model.energy, GRBM)
    return LoadedGRBM(settings, model.energy, source, iteration, task)


def sample_grbm_run(
    folder: Path,
    settings: Settings,
    *,
    n: int = 64,
    steps: int = 1000,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    raw: bool = False,
) -> Path:
    """``n`` samples of the run's GRBM after ``steps`` Gibbs sweeps from N(b, σ²), drawn
    with ``seed``, saved to ``out`` (default ``folder/samples.png``): a grid for image
    data, a density plot beside the samples' histogram for 2-D data. Returns the path."""
    path = Path(out) if out else folder / SAMPLES
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--out must end in one of {', '.join(FORMATS)}, got {str(path)!r}")
    dataset = settings.data.dataset
    run = load_grbm_run(folder, settings, raw=raw)
    shape = IMAGE_SHAPES.get(dataset)
    if shape is None and run.grbm.v_dim != 2:
        raise ValueError(
            f"{dataset} samples are neither images nor points in the plane: nothing to draw"
        )
    generator = torch.Generator().manual_seed(seed)
    samples = gibbs_sample(run.grbm, n, steps=steps, generator=generator)
    if shape is not None:
        return save_image_grid(samples.clamp(0, 1).reshape(n, *shape), path)
    grbm = run.grbm
    return density_plot(
        lambda x: -grbm.free_energy(x),
        samples,
        path=path,
        title=f"{n} Gibbs samples ({steps} sweeps) beside the model's density",
    )

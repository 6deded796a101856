"""Settings too large for the machine, refused before any tensor is made.

:func:`least_bytes` counts a few tensors that the settings certainly make — the
points of a drawn data set, the checkerboard's dark cells, one iteration's draws of h,
a GRBM's log p(v) over the density plot's grid and its AIS chains' h — so that it is a
lower bound, computed from the numbers alone. :func:`check_fits`
refuses the settings when that bound exceeds the memory this machine has free; a
size below it can still fail later, and the command then reports torch's own refusal
in one line.
"""

from __future__ import annotations

import math
import os

from eblvm.families import GRBM
from eblvm.settings import Settings, SettingsError

DRAWN = ("checkerboard", "blobs", "swiss_roll", "moons", "rings")  # data sized by n_train
_DRAWING = 40  # bytes per drawn point while it is drawn: cell, offsets, float64 pair, result
_H_TENSORS = 3  # per draw of h in one iteration: its noise, the draw, the score in h
_DENSITY_GRID = 200 * 200  # the points of a 2-D run's density plot (density_plot's default)
_H_PER_ROW = 2  # a GRBM's log p(v) or AIS step per row: the logits c + Wᵀv and their softplus


def least_bytes(settings: Settings) -> dict[str, int]:
    """Bytes of the tensors the settings certainly make, by the setting that sizes
    them."""
    data, method = settings.data, settings.method
    parts: dict[str, int] = {}
    if data.dataset in DRAWN:
        parts["data.n_train"] = _DRAWING * data.n_train
    if data.dataset == "checkerboard":
        parts["data.columns"] = 16 * math.ceil(data.columns**2 / 2)  # (row, column) int64
    h_dim, evaluation = settings.model.h_dim, settings.evaluation
    draws = data.batch_size * method.n_samples * h_dim
    parts["data.batch_size × method.n_samples × model.h_dim"] = _H_TENSORS * 4 * draws
    if data.dataset in DRAWN:  # every 2-D run ends with its density plot
        parts["model.h_dim"] = _H_PER_ROW * 4 * _DENSITY_GRID * h_dim
    ais = evaluation.log_z == "ais" or (
        evaluation.log_z == "auto" and h_dim > evaluation.exact_log_z_max_h
    )
    if settings.family is GRBM and ais:
        parts["evaluation.ais_chains × model.h_dim"] = (
            _H_PER_ROW * 4 * evaluation.ais_chains * h_dim
        )
    return parts


def available_bytes() -> int:
    """The memory free for a new process: MemAvailable on Linux, else all of it."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(settings: Settings, available: int | None = None) -> None:
    """Refuse (SettingsError) settings that need more than ``available`` bytes
    (default: :func:`available_bytes`), naming the setting and the size."""
    parts = least_bytes(settings)
    free = available_bytes() if available is None else available
    needed = sum(parts.values())
    if needed <= free:
        return
    largest = max(parts, key=lambda name: parts[name])
    raise SettingsError(
        f"these settings need at least {needed / 1e9:.3g} GB (mostly for {largest}), more "
        f"than the {free / 1e9:.3g} GB free here: lower {largest}"
    )

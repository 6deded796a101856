"""Every named preset (GRBM and image), and the task (model family) of a run's settings."""

from __future__ import annotations

import difflib

from eblvm.grbm.presets import GRBM_PRESETS
from eblvm.images.presets import IMAGE_PRESETS
from eblvm.loop import Task
from eblvm.settings import Settings

PRESETS: dict[str, Settings] = {**GRBM_PRESETS, **IMAGE_PRESETS}


def get_preset(name: str) -> Settings:
    """The named preset; an unknown name suggests close ones."""
    try:
        return PRESETS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(PRESETS), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown preset {name!r}{hint} (`eblvm list` shows them)") from None


def task_for(settings: Settings) -> Task:
    """The model family's task for these settings: its data are loaded now."""
    if settings.family == "custom":
        raise ValueError("data.dataset 'custom' is a user's data: train it with an eblvm.ModelTask")
    if settings.family == "images":
        from eblvm.images.task import ImageTask

        return ImageTask(settings)
    from eblvm.grbm.task import GRBMTask

    return GRBMTask(settings)

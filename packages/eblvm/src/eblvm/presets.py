"""Every named preset (GRBM and image), and the task of a run's model family."""

from __future__ import annotations

import difflib

from eblvm.grbm.presets import GRBM_PRESETS
from eblvm.images.presets import IMAGE_PRESETS
from eblvm.loop import Task
from eblvm.memory import check_fits
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
    """The task of the settings' model family (:mod:`eblvm.families`): its data are
    loaded now, once the settings are known to fit in memory (:mod:`eblvm.memory`)."""
    check_fits(settings)
    return settings.family.task(settings)

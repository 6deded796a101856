"""How a run was made: package versions, torch, device, git commit, command line."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from eblvm.distributed import Ranks
from eblvm.settings import Settings

PACKAGES = (
    "eblvm",
    "score-estimators",
    "score-objectives",
    "ebm-models",
    "eblvm-data",
    "eblvm-eval",
)


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The commit of the source tree eblvm runs from, if it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def provenance(settings: Settings, ranks: Ranks) -> dict[str, Any]:
    """The record written to a run's ``run.json``."""
    return {
        "packages": {name: _version(name) for name in PACKAGES},
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": str(ranks.device),
        "cuda": torch.cuda.get_device_name(ranks.device) if ranks.device.type == "cuda" else None,
        "processes": ranks.world,
        "threads": torch.get_num_threads(),
        "git_commit": _git_commit(),
        "command": sys.argv,
        "fingerprint": settings.fingerprint(),
    }

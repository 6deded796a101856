"""Atomic file writes: every file of the toolkit (plots, image grids, FID statistics,
run folders' reports and checkpoints) is written by :func:`write_atomically`.

The bytes go to a temporary file beside the target (same file system), named
``.<name>.tmp-<random>``, which is flushed to disk and renamed over the target; the
folder is then flushed too. A reader, or a crash, sees the old file (or none) or the
complete new one, never half of one. Files get the permissions of the user's umask.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_MARK = ".tmp-"
"""Part of every temporary file's name: ``.<name>.tmp-<random>`` beside ``<name>``, so
that leftovers of a killed writer can be found (``folder.glob(".*.tmp-*")``)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(file)`` on a temporary binary file beside ``path``, then rename it to
    ``path``. Returns ``path`` as a ``Path``.

    Missing parent folders are created. On any error, in ``write`` or after it, the
    temporary file is removed and ``path`` is left as it was. ``write`` may do more
    work in the folder before the rename (a checkpoint keeps the file it replaces
    under a second name).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}{TEMPORARY_MARK}")
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), 0o666 & ~_umask())
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target

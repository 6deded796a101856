"""Atomic file writes: every file of the toolkit (plots, image grids, FID statistics,
run folders' reports and checkpoints) is written by :func:`write_atomically`.

The bytes go to a temporary file beside the target (same file system), named
``.<name>.tmp-<random>``, which is flushed to disk and renamed over the target; the
folder is then flushed too. A reader, or a crash, sees the old file (or none) or the
complete new one, never half of one. Files get the permissions of the user's umask.
Every temporary name is unique (two writers of one file never share one) and fits the
file system's limit on a name whenever the target's name does. A failed write raises
``OSError`` naming the target (never the temporary file), also when torch's writer
reports a failed write of the file as a ``RuntimeError``.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMPORARY_MARK = ".tmp-"
"""Part of every temporary file's name: ``.<name>.tmp-<random>`` beside ``<name>``, so
that leftovers of a killed writer can be found (``folder.glob(".*.tmp-*")``)."""


_NAME_BYTES = 200  # of the target's name kept in a temporary name (a name has 255 at most)


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
    short = os.fsencode(target.name)[:_NAME_BYTES].decode(errors="ignore")
    try:
        handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{short}{TEMPORARY_MARK}")
    except OSError as error:
        raise _naming(error, target) from None
    temporary = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), 0o666 & ~_umask())
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        cause = _os_error_of(error)
        if cause is None:
            raise
        raise _naming(cause, target) from None
    _fsync_folder(target.parent)
    return target


def _os_error_of(error: BaseException) -> OSError | None:
    """The operating system's refusal behind ``error``: itself, or the OSError that a
    ``RuntimeError`` of torch's writer was raised in (torch reports a failed write of
    the file as ``unexpected pos``, with the file's OSError as its context)."""
    if isinstance(error, OSError):
        return error
    if isinstance(error, RuntimeError):
        context = error.__context__
        while context is not None:
            if isinstance(context, OSError):
                return context
            context = context.__context__
    return None


def _naming(error: OSError, target: Path) -> OSError:
    """``error`` naming ``target``: where it names no file or the temporary one. The
    folder's own refusals (a part of the path that is a file, say) keep their path."""
    named = None if error.filename is None else os.fsdecode(error.filename)
    if named is not None and TEMPORARY_MARK not in Path(named).name:
        return error
    code = error.errno or errno.EIO
    return OSError(code, error.strerror or str(error) or os.strerror(code), str(target))

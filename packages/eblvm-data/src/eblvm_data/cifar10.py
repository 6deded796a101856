"""CIFAR10 from the python pickle batches."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eblvm_data._checks import check_root
from eblvm_data._common_checks import check_int
from eblvm_data.splits import Splits

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"

_ROW_LENGTH = 3 * 32 * 32

# The functions numpy's own array pickles name (protocols 0-4, and 5), taken
# from numpy itself so that numpy 1.x (``numpy.core``) and 2.x (``numpy._core``)
# pickles both load.
_EMPTY = np.zeros(0, dtype=np.uint8)
_RECONSTRUCT = _EMPTY.__reduce__()[0]
_FROMBUFFER = _EMPTY.__reduce_ex__(5)[0]


def _latin1_bytes(text: object, encoding: object) -> bytes:
    """``_codecs.encode(text, "latin1")``: how protocol 2 spells bytes, and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode is allowed only as (str, 'latin1')")
    return text.encode("latin1")


#: Every global a CIFAR10 batch may name; dicts, lists, bytes, str and ints need none.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("_codecs", "encode"): _latin1_bytes,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """A batch's pickle named a global that a CIFAR10 batch does not hold."""


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, bytes, str, ints and numpy arrays.

    Every callable or class a pickle can invoke is looked up through
    `find_class`; here it resolves only the names in `_ALLOWED_GLOBALS`, so a
    crafted payload (``os.system``, ``builtins.open``, ...) is refused before
    anything of it runs.
    """

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return allowed


def cifar10(root: str | os.PathLike[str], *, n_validation: int = 5000) -> Splits:
    """Read CIFAR10 from ``<root>/cifar-10-batches-py/``.

    Train is ``data_batch_1`` .. ``data_batch_5`` in order, less its last
    ``n_validation`` images, which are the validation split (45000 / 5000 for
    the full files); ``test_batch`` is the test split. The batches are pickles,
    read with a restricted unpickler: it builds only dicts, lists, bytes, str,
    ints and numpy arrays, and a batch whose pickle names anything else
    (``os.system``, ``builtins.open``, ...) is refused with a ``ValueError``
    naming the file before any of it runs.

    Returns ``(N, 3, 32, 32)`` float32 in ``[0, 1]`` (raw / 255) per split.
    """
    directory = check_root(root) / CIFAR10_FOLDER
    n_validation = check_int(n_validation, "n_validation", minimum=1)
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    missing = [str(directory / name) for name in names if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(
            "CIFAR10 files not found: " + ", ".join(missing) + ". Download the python "
            f"version (cifar-10-python.tar.gz) from {CIFAR10_URL} and extract it into "
            f"{directory.parent}."
        )
    train = np.concatenate([_read_batch(directory / name) for name in CIFAR10_TRAIN_FILES])
    test = _read_batch(directory / CIFAR10_TEST_FILE)
    if n_validation >= len(train):
        raise ValueError(
            f"n_validation must be smaller than the {len(train)} train images in {directory}, "
            f"got {n_validation}"
        )
    train_images, test_images = _to_tensor(train), _to_tensor(test)
    n_train = len(train_images) - n_validation
    return Splits(train=train_images[:n_train], validation=train_images[n_train:], test=test_images)


def _read_batch(path: Path) -> np.ndarray:
    """The uint8 rows ``(N, 3072)`` of one pickled batch (red, green, blue planes)."""
    with path.open("rb") as stream:
        try:
            batch = _BatchUnpickler(stream, encoding="bytes").load()
        except _RefusedGlobal as error:
            raise ValueError(
                f"{path} was refused: its pickle names {error}, which a CIFAR10 batch does not "
                "hold (only dicts, lists, bytes, str, ints and numpy arrays are read)"
            ) from error
        # Unpickling a damaged file can fail with almost any exception type.
        except Exception as error:
            raise ValueError(f"{path} is not a readable CIFAR10 batch: {error!r}") from error
    data = batch.get(b"data") if isinstance(batch, dict) else None
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[0] == 0
        or data.shape[1] != _ROW_LENGTH
    ):
        raise ValueError(
            f"{path} is not a CIFAR10 batch: expected a dict with b'data', "
            f"a uint8 array of shape (N, {_ROW_LENGTH})"
        )
    return data


def _to_tensor(rows: np.ndarray) -> torch.Tensor:
    """uint8 rows ``(N, 3072)`` to float32 images ``(N, 3, 32, 32)`` in ``[0, 1]``."""
    return torch.from_numpy(rows.astype(np.float32)).div_(255).reshape(-1, 3, 32, 32)

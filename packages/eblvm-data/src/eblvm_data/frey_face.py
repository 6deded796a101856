"""The Frey face data set: 1965 greyscale faces of 28×20 pixels."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import scipy.io
import torch

from eblvm_data._checks import check_root
from eblvm_data.splits import Splits

FREY_FACE_URL = "https://cs.nyu.edu/~roweis/data/frey_rawface.mat"
FREY_FACE_FILE = "frey_rawface.mat"

_SHAPE = (560, 1965)
_N_TRAIN = 1400
_N_VALIDATION = 300


def frey_face(root: str | os.PathLike[str]) -> Splits:
    """Read ``<root>/frey_rawface.mat`` and split it 1400 / 300 / 265 in file order.

    The file holds ``ff``, a uint8 array ``(560, 1965)`` with one 28×20 image
    per column. Each split is ``(N, 560)`` float32 in ``[0, 1]`` (raw / 255).
    """
    path = check_root(root) / FREY_FACE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"Frey face file not found: {path}. Download {FREY_FACE_FILE} from Sam Roweis' "
            f"data page ({FREY_FACE_URL}) into {path.parent}."
        )
    try:
        contents = scipy.io.loadmat(path)
    # scipy reports a damaged or truncated file with any of these.
    except (
        ValueError,
        TypeError,
        IndexError,
        OSError,
        EOFError,
        NotImplementedError,
        struct.error,
        zlib.error,
        scipy.io.matlab.MatReadError,
    ) as error:
        raise ValueError(f"{path} is not a readable MATLAB file: {error!r}") from error
    if "ff" not in contents:
        keys = sorted(key for key in contents if not key.startswith("__"))
        raise ValueError(f"{path} holds no array 'ff' (found {keys})")
    faces = contents["ff"]
    if not isinstance(faces, np.ndarray) or faces.shape != _SHAPE or faces.dtype != np.uint8:
        raise ValueError(
            f"{path}: 'ff' must be a uint8 array of shape {_SHAPE}, got "
            f"{getattr(faces, 'dtype', type(faces).__name__)} {getattr(faces, 'shape', '')}"
        )
    data = torch.from_numpy(faces.T.astype(np.float32, order="C")).div_(255)
    return Splits(
        train=data[:_N_TRAIN],
        validation=data[_N_TRAIN : _N_TRAIN + _N_VALIDATION],
        test=data[_N_TRAIN + _N_VALIDATION :],
    )

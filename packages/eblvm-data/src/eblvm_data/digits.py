"""scikit-learn's bundled 8×8 handwritten digits (no download needed)."""

from __future__ import annotations

import torch

from eblvm_data._checks import check_pad_to
from eblvm_data._common_checks import check_bool
from eblvm_data._images import pad_centre
from eblvm_data.splits import Splits

#: Seed of ``torch.Generator().manual_seed`` for the permutation that splits `digits`.
DIGITS_SEED = 0

_N_VALIDATION = 180
_N_TEST = 180


def digits(*, image: bool = False, pad_to: int | None = None) -> Splits:
    """The 1797 digits, pixel values 0..16 scaled to ``[0, 1]`` by /16, float32.

    The rows of ``load_digits().data`` are reordered by
    ``torch.randperm(1797, generator=torch.Generator().manual_seed(DIGITS_SEED))``;
    the first 1437 are train, the next 180 validation, the last 180 test.

    Returns ``(N, 64)`` per split, or ``(N, 1, 8, 8)`` with ``image=True``;
    ``pad_to`` (needs ``image=True``) zero-pads, centred, to ``(N, 1, pad_to, pad_to)``.
    """
    image = check_bool(image, "image")
    size = check_pad_to(pad_to, image_size=8)
    if size is not None and not image:
        raise ValueError("pad_to needs image=True: flat (N, 64) digits are not padded")
    from sklearn.datasets import load_digits  # deferred: importing sklearn takes seconds

    data = torch.from_numpy(load_digits().data).to(torch.float32) / 16
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(DIGITS_SEED))
    data = data[order]
    if image:
        data = data.reshape(-1, 1, 8, 8)
        if size is not None:
            data = pad_centre(data, size)
    n_train = len(data) - _N_VALIDATION - _N_TEST
    return Splits(
        train=data[:n_train],
        validation=data[n_train : n_train + _N_VALIDATION],
        test=data[n_train + _N_VALIDATION :],
    )

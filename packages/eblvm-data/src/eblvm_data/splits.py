"""The train / validation / test triple every loader returns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from eblvm_data._common_checks import check_int


class Splits(NamedTuple):
    """A fixed train / validation / test split.

    In-memory data sets hold tensors (``(N, D)`` or ``(N, C, H, W)``); CelebA
    holds lazy ``torch.utils.data.Dataset`` objects. The seeds of the samplers
    are given as ``Splits`` of ints as well.
    """

    train: Any
    validation: Any
    test: Any


def seeded_splits(
    sample: Callable[[int, torch.Generator], Tensor],
    seeds: Splits,
    *,
    n_train: object,
    n_validation: object,
    n_test: object,
) -> Splits:
    """Split ``s`` is ``sample(n_s, torch.Generator().manual_seed(seeds.s))``.

    The sizes are checked here (ints ``>= 1``), so that a sampler's
    ``*_splits`` function names the bad one.
    """
    sizes = Splits(
        train=check_int(n_train, "n_train", minimum=1),
        validation=check_int(n_validation, "n_validation", minimum=1),
        test=check_int(n_test, "n_test", minimum=1),
    )
    return Splits(
        *(
            sample(size, torch.Generator().manual_seed(seed))
            for size, seed in zip(sizes, seeds, strict=True)
        )
    )

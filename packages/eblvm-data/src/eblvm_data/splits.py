"""The train / validation / test triple every loader returns."""

from __future__ import annotations

from typing import Any, NamedTuple


class Splits(NamedTuple):
    """A fixed train / validation / test split.

    In-memory data sets hold tensors (``(N, D)`` or ``(N, C, H, W)``); CelebA
    holds lazy ``torch.utils.data.Dataset`` objects. The seeds of the samplers
    are given as ``Splits`` of ints as well.
    """

    train: Any
    validation: Any
    test: Any

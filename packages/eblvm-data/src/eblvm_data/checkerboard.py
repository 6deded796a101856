"""The 2-D checkerboard: uniform on the two diagonal squares of the unit square."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eblvm_data._checks import check_float_dtype, check_generator, check_int
from eblvm_data.splits import Splits

#: True log-density on the support: the support has area ½, so the density is 2.
CHECKERBOARD_LOG_DENSITY = math.log(2.0)

#: Seeds of ``torch.Generator().manual_seed`` for each split of `checkerboard_splits`.
CHECKERBOARD_SEEDS = Splits(train=1, validation=2, test=3)


def checkerboard(
    n: int, *, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Draw ``n`` points uniform on ``[0, ½]² ∪ [½, 1]²``.

    Each square is chosen with probability ½, then the point is uniform in it.
    ``generator`` must be a CPU generator; the result is on the CPU.

    Returns ``(n, 2)`` of ``dtype``.
    """
    n = check_int("n", n, minimum=1)
    check_generator(generator, cpu=True)
    dtype = check_float_dtype(dtype)
    square = torch.randint(0, 2, (n, 1), generator=generator).to(dtype)
    offset = torch.rand(n, 2, generator=generator, dtype=dtype)
    return 0.5 * (square + offset)


def checkerboard_splits(
    *, n_train: int = 60000, n_validation: int = 10000, n_test: int = 10000
) -> Splits:
    """Fixed checkerboard splits, each ``(n, 2)`` float32.

    Split ``s`` is ``checkerboard(n_s, generator=torch.Generator().manual_seed(seed_s))``
    with the seeds in `CHECKERBOARD_SEEDS` (train 1, validation 2, test 3).
    """
    sizes = Splits(
        train=check_int("n_train", n_train, minimum=1),
        validation=check_int("n_validation", n_validation, minimum=1),
        test=check_int("n_test", n_test, minimum=1),
    )
    return Splits(
        *(
            checkerboard(size, generator=torch.Generator().manual_seed(seed))
            for size, seed in zip(sizes, CHECKERBOARD_SEEDS, strict=True)
        )
    )

"""Isotropic Gaussian samples, as in the exact Fisher divergence experiment."""

from __future__ import annotations

import torch
from torch import Tensor

from eblvm_data._common_checks import check_float_dtype, check_generator, check_int, check_real
from eblvm_data.splits import Splits, seeded_splits

#: Seeds of ``torch.Generator().manual_seed`` for each split of `gaussian_splits`.
GAUSSIAN_SEEDS = Splits(train=11, validation=12, test=13)


def gaussian(
    dim: int,
    n: int,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``n`` points from ``N(mean·1, std²·I)`` in ``dim`` dimensions.

    ``generator`` must be a CPU generator; the result is on the CPU.

    Returns ``(n, dim)`` of ``dtype``.
    """
    dim = check_int(dim, "dim", minimum=1)
    n = check_int(n, "n", minimum=1)
    mean = check_real(mean, "mean")
    std = check_real(std, "std", positive=True)
    check_generator(generator, cpu=True)
    dtype = check_float_dtype(dtype)
    return mean + std * torch.randn(n, dim, generator=generator, dtype=dtype)


def gaussian_splits(
    dim: int, *, n_train: int = 16000, n_validation: int = 2000, n_test: int = 2000
) -> Splits:
    """Fixed ``N(0, I)`` splits, each ``(n, dim)`` float32.

    Split ``s`` is ``gaussian(dim, n_s, generator=torch.Generator().manual_seed(seed_s))``
    with the seeds in `GAUSSIAN_SEEDS` (train 11, validation 12, test 13).
    """
    dim = check_int(dim, "dim", minimum=1)
    return seeded_splits(
        lambda size, generator: gaussian(dim, size, generator=generator),
        GAUSSIAN_SEEDS,
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
    )

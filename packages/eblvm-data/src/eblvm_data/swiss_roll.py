"""The 2-D swiss roll: a noisy spiral of one and a half turns."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eblvm_data._common_checks import check_float_dtype, check_generator, check_int, check_real
from eblvm_data.splits import Splits, seeded_splits

#: Seeds of ``torch.Generator().manual_seed`` for each split of `swiss_roll_splits`.
SWISS_ROLL_SEEDS = Splits(train=31, validation=32, test=33)


def swiss_roll(
    n: int,
    *,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``n`` points ``r · (cos 1.5πr, sin 1.5πr) + noise · ε``, ``ε ~ N(0, I)``.

    The radius ``r = 1 + 2u``, ``u ~ U[0, 1)``, runs from 1 to 3 while the
    angle ``1.5πr`` turns one and a half times, so noiseless points lie within
    3 of the origin. The density (the spiral's measure blurred by the noise)
    has no closed form. ``noise`` may be 0; ``generator`` must be a CPU
    generator; the result is on the CPU.

    Returns ``(n, 2)`` of ``dtype``.
    """
    n = check_int(n, "n", minimum=1)
    noise = check_real(noise, "noise", non_negative=True)
    check_generator(generator, cpu=True)
    dtype = check_float_dtype(dtype)
    radius = 1 + 2 * torch.rand(n, 1, generator=generator, dtype=dtype)
    angle = 1.5 * math.pi * radius
    epsilon = torch.randn(n, 2, generator=generator, dtype=dtype)
    return radius * torch.cat([angle.cos(), angle.sin()], dim=1) + noise * epsilon


def swiss_roll_splits(
    *, noise: float = 0.1, n_train: int = 60000, n_validation: int = 10000, n_test: int = 10000
) -> Splits:
    """Fixed swiss roll splits, each ``(n, 2)`` float32.

    Split ``s`` is ``swiss_roll(n_s, noise=noise,
    generator=torch.Generator().manual_seed(seed_s))`` with the seeds in
    `SWISS_ROLL_SEEDS` (train 31, validation 32, test 33).
    """
    return seeded_splits(
        lambda size, generator: swiss_roll(size, noise=noise, generator=generator),
        SWISS_ROLL_SEEDS,
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
    )

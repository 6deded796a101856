"""Two moons: two interleaving noisy half circles."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eblvm_data._common_checks import check_float_dtype, check_generator, check_int, check_real
from eblvm_data.splits import Splits, seeded_splits

#: Seeds of ``torch.Generator().manual_seed`` for each split of `moons_splits`.
MOONS_SEEDS = Splits(train=41, validation=42, test=43)


def moons(
    n: int,
    *,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``n`` points from two interleaving half circles plus ``noise · ε``, ``ε ~ N(0, I)``.

    Before noise, with ``θ ~ U[0, π)`` and each moon chosen with probability
    ½, the upper moon is ``(2 cos θ - 1, 2 sin θ - ½)`` and the lower moon its
    reflection through the origin: the unit half circles ``(cos θ, sin θ)``
    and ``(1 - cos θ, ½ - sin θ)``, centred on ``(½, ¼)`` and scaled by 2, so
    that noiseless points lie in ``[-3, 3] × [-1.5, 1.5]``. The density has no
    closed form. ``noise`` may be 0; ``generator`` must be a CPU generator; the
    result is on the CPU.

    Returns ``(n, 2)`` of ``dtype``.
    """
    n = check_int(n, "n", minimum=1)
    noise = check_real(noise, "noise", non_negative=True)
    check_generator(generator, cpu=True)
    dtype = check_float_dtype(dtype)
    sign = 1 - 2 * torch.randint(0, 2, (n, 1), generator=generator).to(dtype)
    angle = math.pi * torch.rand(n, 1, generator=generator, dtype=dtype)
    epsilon = torch.randn(n, 2, generator=generator, dtype=dtype)
    upper = torch.cat([2 * angle.cos() - 1, 2 * angle.sin() - 0.5], dim=1)
    return sign * upper + noise * epsilon


def moons_splits(
    *, noise: float = 0.1, n_train: int = 60000, n_validation: int = 10000, n_test: int = 10000
) -> Splits:
    """Fixed two-moons splits, each ``(n, 2)`` float32.

    Split ``s`` is ``moons(n_s, noise=noise,
    generator=torch.Generator().manual_seed(seed_s))`` with the seeds in
    `MOONS_SEEDS` (train 41, validation 42, test 43).
    """
    return seeded_splits(
        lambda size, generator: moons(size, noise=noise, generator=generator),
        MOONS_SEEDS,
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
    )

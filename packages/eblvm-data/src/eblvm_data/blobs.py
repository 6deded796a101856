"""Blobs: an equal-weight mixture of isotropic Gaussians centred on a circle."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eblvm_data._checks import check_points
from eblvm_data._common_checks import check_float_dtype, check_generator, check_int, check_real
from eblvm_data.splits import Splits, seeded_splits

#: Seeds of ``torch.Generator().manual_seed`` for each split of `blobs_splits`.
BLOBS_SEEDS = Splits(train=21, validation=22, test=23)


def blobs_means(*, modes: int = 8, radius: float = 2.0) -> Tensor:
    """The blob centres ``radius · (cos 2πk/modes, sin 2πk/modes)``, ``k = 0 .. modes - 1``.

    Returns ``(modes, 2)`` float64 on the CPU.
    """
    modes = check_int(modes, "modes", minimum=1)
    radius = check_real(radius, "radius", positive=True)
    angle = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return radius * torch.stack([angle.cos(), angle.sin()], dim=1)


def blobs(
    n: int,
    *,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.25,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``n`` points from ``(1/modes) Σ_k N(μ_k, std² I)``, ``μ_k`` = `blobs_means`.

    A blob is chosen with equal probability, then the point is its centre plus
    ``std`` times standard normal noise. The default is 8 blobs on the circle
    of radius 2 with std 0.25 (points within about 3 of the origin).
    ``generator`` must be a CPU generator; the result is on the CPU.

    Returns ``(n, 2)`` of ``dtype``.
    """
    n = check_int(n, "n", minimum=1)
    means = blobs_means(modes=modes, radius=radius)
    std = check_real(std, "std", positive=True)
    check_generator(generator, cpu=True)
    dtype = check_float_dtype(dtype)
    mode = torch.randint(0, len(means), (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=dtype)
    return means.to(dtype)[mode] + std * noise


def blobs_log_density(
    x: Tensor, *, modes: int = 8, radius: float = 2.0, std: float = 0.25
) -> Tensor:
    """The exact ``log p(x)`` of `blobs`: ``x: (B, 2) -> (B,)``.

    ``log p(x) = logsumexp_k(-|x - μ_k|² / (2 std²)) - log modes - log(2π std²)``,
    in ``x``'s dtype and on its device (differentiable in ``x``).
    """
    x = check_points(x)
    means = blobs_means(modes=modes, radius=radius).to(x)
    std = check_real(std, "std", positive=True)
    squared = (x[:, None, :] - means).square().sum(dim=-1)
    log_normaliser = math.log(len(means)) + math.log(2 * math.pi * std**2)
    return torch.logsumexp(-squared / (2 * std**2), dim=1) - log_normaliser


def blobs_splits(
    *,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.25,
    n_train: int = 60000,
    n_validation: int = 10000,
    n_test: int = 10000,
) -> Splits:
    """Fixed blobs splits, each ``(n, 2)`` float32.

    Split ``s`` is ``blobs(n_s, modes=modes, radius=radius, std=std,
    generator=torch.Generator().manual_seed(seed_s))`` with the seeds in
    `BLOBS_SEEDS` (train 21, validation 22, test 23).
    """
    return seeded_splits(
        lambda size, generator: blobs(
            size, modes=modes, radius=radius, std=std, generator=generator
        ),
        BLOBS_SEEDS,
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
    )

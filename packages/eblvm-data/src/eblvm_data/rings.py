"""Rings: noisy concentric circles of radius 1, 2, 3, …"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eblvm_data._checks import check_points
from eblvm_data._common_checks import check_float_dtype, check_generator, check_int, check_real
from eblvm_data.splits import Splits, seeded_splits

#: Seeds of ``torch.Generator().manual_seed`` for each split of `rings_splits`.
RINGS_SEEDS = Splits(train=51, validation=52, test=53)


def rings(
    n: int,
    *,
    count: int = 3,
    noise: float = 0.1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``n`` points ``k · (cos φ, sin φ) + noise · ε``, ``ε ~ N(0, I)``.

    The ring ``k`` is uniform on ``1 .. count`` (equal weights, not weights by
    length) and the angle ``φ ~ U[0, 2π)``; ``count=1`` is the unit circle.
    With the default 3 rings, points lie within about 3.3 of the origin.
    ``generator`` must be a CPU generator; the result is on the CPU.

    Returns ``(n, 2)`` of ``dtype``.
    """
    n = check_int(n, "n", minimum=1)
    count = check_int(count, "count", minimum=1)
    noise = check_real(noise, "noise", positive=True)
    check_generator(generator, cpu=True)
    dtype = check_float_dtype(dtype)
    radius = torch.randint(1, count + 1, (n, 1), generator=generator).to(dtype)
    angle = 2 * math.pi * torch.rand(n, 1, generator=generator, dtype=dtype)
    epsilon = torch.randn(n, 2, generator=generator, dtype=dtype)
    return radius * torch.cat([angle.cos(), angle.sin()], dim=1) + noise * epsilon


def rings_log_density(x: Tensor, *, count: int = 3, noise: float = 0.1) -> Tensor:
    """The exact ``log p(x)`` of `rings`: ``x: (B, 2) -> (B,)``.

    Averaging ``N(x; k (cos φ, sin φ), σ² I)`` over the angle gives, with
    ``ρ = |x|`` and ``σ = noise``,
    ``p(x | k) = exp(-(ρ - k)² / (2σ²)) · i0e(ρk / σ²) / (2πσ²)``, where
    ``i0e(z) = e^{-z} I₀(z)`` is the scaled modified Bessel function; ``p`` is
    their mean over ``k = 1 .. count``. In ``x``'s dtype and on its device.
    """
    x = check_points(x)
    count = check_int(count, "count", minimum=1)
    noise = check_real(noise, "noise", positive=True)
    rho = x.norm(dim=1, keepdim=True)
    radius = torch.arange(1, count + 1, dtype=x.dtype, device=x.device)
    log_ring = (
        -(rho - radius).square() / (2 * noise**2) + torch.special.i0e(rho * radius / noise**2).log()
    )
    log_normaliser = math.log(count) + math.log(2 * math.pi * noise**2)
    return torch.logsumexp(log_ring, dim=1) - log_normaliser


def rings_splits(
    *,
    count: int = 3,
    noise: float = 0.1,
    n_train: int = 60000,
    n_validation: int = 10000,
    n_test: int = 10000,
) -> Splits:
    """Fixed rings splits, each ``(n, 2)`` float32.

    Split ``s`` is ``rings(n_s, count=count, noise=noise,
    generator=torch.Generator().manual_seed(seed_s))`` with the seeds in
    `RINGS_SEEDS` (train 51, validation 52, test 53).
    """
    return seeded_splits(
        lambda size, generator: rings(size, count=count, noise=noise, generator=generator),
        RINGS_SEEDS,
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
    )

"""Random GRBMs and independent reference computations for the eblvm-eval tests."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from ebm_models import GRBM


def random_grbm(
    v_dim: int,
    h_dim: int,
    *,
    seed: int,
    weight_std: float = 0.5,
    dtype: torch.dtype = torch.float64,
) -> GRBM:
    """A GRBM with random W ~ N(0, weight_std²), b, c ~ N(0, 1), log σ ~ N(0, 0.3²)."""
    generator = torch.Generator().manual_seed(seed)
    grbm = GRBM(v_dim, h_dim, weight_std=weight_std, generator=generator)
    with torch.no_grad():
        grbm.b.copy_(torch.randn(v_dim, generator=generator))
        grbm.c.copy_(torch.randn(h_dim, generator=generator))
        grbm.log_std.copy_(0.3 * torch.randn(v_dim, generator=generator))
    return grbm.to(dtype)


def numpy_parameters(grbm: GRBM) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """W (D, H), b (D,), c (H,), σ (D,) as float64 arrays."""
    return (
        grbm.W.detach().double().numpy(),
        grbm.b.detach().double().numpy(),
        grbm.c.detach().double().numpy(),
        grbm.log_std.detach().double().exp().numpy(),
    )


def log_marginal_by_loop(grbm: GRBM, h: np.ndarray, *, beta: float = 1.0) -> float:
    """log ∫ exp(−E_β(v, h)) dv for one h: (H,), with W and c scaled by β, as a plain loop
    over the dimensions of v: ∫ exp(−(v − b)²/(2σ²) + v f) dv = √(2π) σ exp(f b + f² σ² / 2)
    for the field f = β (W h)_d."""
    W, b, c, std = numpy_parameters(grbm)
    total = beta * float(c @ h)
    for d in range(W.shape[0]):
        field = beta * sum(W[d, j] * h[j] for j in range(W.shape[1]))
        total += 0.5 * math.log(2 * math.pi) + math.log(std[d])
        total += field * b[d] + 0.5 * field**2 * std[d] ** 2
    return total


def log_partition_by_loop(grbm: GRBM) -> float:
    """log Z as a plain loop over h ∈ {0, 1}^H of ``log_marginal_by_loop``."""
    terms = [
        log_marginal_by_loop(grbm, np.array(bits))
        for bits in itertools.product((0.0, 1.0), repeat=grbm.h_dim)
    ]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms))


def neg_free_energy_numpy(grbm: GRBM, v: np.ndarray) -> np.ndarray:
    """−F(v) = −½‖(v − b)/σ‖² + Σ_j softplus(c_j + (vᵀW)_j). v: (B, D) -> (B,)."""
    W, b, c, std = numpy_parameters(grbm)
    return -0.5 * (((v - b) / std) ** 2).sum(-1) + np.logaddexp(0.0, c + v @ W).sum(-1)

"""Score functions with known properties, shared by the tests."""

from __future__ import annotations

import torch
from torch import nn


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_spd(dim: int, *, generator: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """A symmetric positive definite matrix with eigenvalues in about [0.5, 2]."""
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=dtype))
    eigenvalues = 0.5 + 1.5 * torch.rand(dim, generator=generator, dtype=dtype)
    return q @ torch.diag(eigenvalues) @ q.T


class GaussianScore(nn.Module):
    """Score of N(μ, P⁻¹): s(x) = −P(x − μ), with P = (R + Rᵀ)/2 and learnable R, μ."""

    def __init__(self, precision: torch.Tensor, mean: torch.Tensor) -> None:
        super().__init__()
        self.raw = nn.Parameter(precision.clone())
        self.mean = nn.Parameter(mean.clone())

    @property
    def precision(self) -> torch.Tensor:
        return 0.5 * (self.raw + self.raw.T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x - self.mean) @ self.precision


class GaussianEnergyScore(GaussianScore):
    """The same score, obtained as −∇F by autograd from F(x) = ½(x − μ)ᵀP(x − μ)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x if x.requires_grad else x.detach().requires_grad_(True)
        centred = x - self.mean
        energy = 0.5 * ((centred @ self.precision) * centred).sum()
        (grad,) = torch.autograd.grad(energy, x, create_graph=True)
        return -grad


class TanhScore(nn.Module):
    """A nonlinear score on (B, D): s(x) = −x + tanh(xW + b)Wᵀ, learnable W and b."""

    def __init__(self, dim: int, *, generator: torch.Generator, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = nn.Parameter(0.7 * torch.randn(dim, dim, generator=generator, dtype=dtype))
        self.bias = nn.Parameter(0.3 * torch.randn(dim, generator=generator, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -x + torch.tanh(x @ self.weight + self.bias) @ self.weight.T


class ElementwiseScore(nn.Module):
    """A nonlinear score acting elementwise on any shape: s(x) = −a·x + b·tanh(x)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(1.3, dtype=dtype))
        self.b = nn.Parameter(torch.tensor(0.4, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.a * x + self.b * torch.tanh(x)

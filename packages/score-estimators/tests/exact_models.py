"""Small models with exact answers, built here so that the package is tested alone.

``BinaryLatentEnergy`` has h ∈ {0, 1}^H and a factorised posterior; its exact score
comes from enumerating h (no closed form is trusted). ``GaussianLatentEnergy`` has a
scalar Gaussian h, so a diagonal Gaussian q can equal p(h | v) exactly.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

DTYPE = torch.float64


class BinaryLatentEnergy(nn.Module):
    """E(v, h) = ½‖(v − b)/σ‖² + ¼ α Σ v⁴ − cᵀh − vᵀWh; h: (*S, B, H) -> (*S, B)."""

    def __init__(self, v_dim: int, h_dim: int, *, scale: float, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(scale * torch.randn(v_dim, h_dim, generator=g, dtype=DTYPE))
        self.b = nn.Parameter(0.5 * torch.randn(v_dim, generator=g, dtype=DTYPE))
        self.c = nn.Parameter(0.5 * torch.randn(h_dim, generator=g, dtype=DTYPE))
        self.log_std = nn.Parameter(0.2 * torch.randn(v_dim, generator=g, dtype=DTYPE))
        self.alpha = 0.1
        self.h_dim = h_dim

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        quadratic = 0.5 * ((v - self.b) / self.log_std.exp()).square().sum(-1)
        quartic = 0.25 * self.alpha * v.pow(4).sum(-1)
        return quadratic + quartic - h @ self.c - ((v @ self.W) * h).sum(-1)

    def logits(self, v: Tensor) -> Tensor:
        return self.c + v @ self.W

    def log_marginal(self, v: Tensor) -> Tensor:
        """log Σ_h exp(−E(v, h)) by enumeration. v: (B, D) -> (B,)."""
        states = torch.tensor(list(itertools.product([0.0, 1.0], repeat=self.h_dim)), dtype=DTYPE)
        energies = self(v, states[:, None, :].expand(-1, len(v), -1))
        return torch.logsumexp(-energies, dim=0)

    def enumerated_score(self, v: Tensor) -> Tensor:
        """∇_v log p(v) by autograd through the enumeration, differentiable in θ."""
        node = v.detach().requires_grad_(True) if not v.requires_grad else v.view_as(v)
        (score,) = torch.autograd.grad(self.log_marginal(node).sum(), node, create_graph=True)
        return score


class ExactBinaryPosterior:
    """p(h | v) of a BinaryLatentEnergy: exact binary draws, Bernoulli log-mass."""

    def __init__(self, energy: BinaryLatentEnergy) -> None:
        self.energy = energy

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        probs = torch.sigmoid(self.energy.logits(v)).detach()
        return torch.bernoulli(probs.expand(n, *probs.shape), generator=generator)

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        logits = self.energy.logits(v).expand_as(h)
        return -F.binary_cross_entropy_with_logits(logits, h, reduction="none").sum(-1)


class GaussianLatentEnergy(nn.Module):
    """E(v, h) = ½‖v − u h‖² + ½ h², h scalar: p(h | v) = N(uᵀv/(1+‖u‖²), 1/(1+‖u‖²)),
    p(v) = N(0, I + uuᵀ)."""

    def __init__(self, v_dim: int, *, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.u = nn.Parameter(torch.randn(v_dim, generator=g, dtype=DTYPE))

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        return 0.5 * (v - h * self.u).square().sum(-1) + 0.5 * h.squeeze(-1).square()

    def score(self, v: Tensor) -> Tensor:
        cov = torch.eye(len(self.u), dtype=DTYPE) + torch.outer(self.u, self.u)
        return -torch.linalg.solve(cov, v.T).T

    def posterior_mean_weight(self) -> Tensor:
        return self.u / (1 + self.u.square().sum())

    def posterior_log_std(self) -> Tensor:
        return -0.5 * torch.log1p(self.u.square().sum())


class LinearGaussianNet(nn.Module):
    """v -> (mean, log_std) with mean = v·m and a free log_std: (B, 1) each."""

    def __init__(self, v_dim: int) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(v_dim, dtype=DTYPE))
        self.log_std = nn.Parameter(torch.zeros((), dtype=DTYPE))

    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]:
        mean = (v @ self.m)[:, None]
        return mean, self.log_std.expand_as(mean)


def flat_grad(loss: Tensor, params: list[nn.Parameter]) -> Tensor:
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat(
        [
            torch.zeros_like(p).flatten() if g is None else g.flatten()
            for g, p in zip(grads, params, strict=True)
        ]
    )

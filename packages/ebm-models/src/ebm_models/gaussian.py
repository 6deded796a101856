"""Gaussian energy-based latent variable model: v and h jointly Gaussian.

E(v, h) = ½‖(v − b)/σ‖² − vᵀWh + ½‖σ ⊙ Wh‖² + ½‖h/τ‖² − cᵀh,
v ∈ R^D, h ∈ R^H, σ = exp(log_std), τ = exp(h_log_std).

The joint precision is [[A, −W], [−Wᵀ, C]] with A = diag(σ⁻²) and
C = Wᵀ diag(σ²) W + diag(τ⁻²); its Schur complement C − WᵀA⁻¹W = diag(τ⁻²) is
positive definite, so every parameter value gives a proper Gaussian. Equivalently

    h ~ N(τ² ⊙ (c + Wᵀb), diag τ²),   v | h ~ N(b + σ² ⊙ Wh, diag σ²),

and the posterior is p(h | v) = N(C⁻¹(c + Wᵀv), C⁻¹).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ebm_models._checks import check_data
from ebm_models._common_checks import check_count, check_real


class GaussianEBLVM(nn.Module):
    """Jointly Gaussian EBLVM with parameters ``W (D, H)``, ``b (D,)``, ``c (H,)``,
    ``log_std (D,)`` (σ) and ``h_log_std (H,)`` (τ).

    ``energy(v, h)`` broadcasts over leading sample dimensions of ``h``:
    ``v: (B, D)``, ``h: (*S, B, H)`` gives ``(*S, B)``. Score, posterior and log Z are
    exact and differentiable with respect to the parameters.
    """

    def __init__(
        self,
        v_dim: int,
        h_dim: int,
        *,
        weight_std: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_count(v_dim, "v_dim")
        check_count(h_dim, "h_dim")
        self.v_dim = v_dim
        self.h_dim = h_dim
        weight_std = check_real(weight_std, "weight_std", non_negative=True)
        self.W = nn.Parameter(weight_std * torch.randn(v_dim, h_dim, generator=generator))
        self.b = nn.Parameter(torch.zeros(v_dim))
        self.c = nn.Parameter(torch.zeros(h_dim))
        self.log_std = nn.Parameter(torch.zeros(v_dim))
        self.h_log_std = nn.Parameter(torch.zeros(h_dim))

    @property
    def std(self) -> Tensor:
        """σ: (D,)."""
        return self.log_std.exp()

    @property
    def h_std(self) -> Tensor:
        """τ: (H,)."""
        return self.h_log_std.exp()

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h). v: (B, D); h: (*S, B, H) -> (*S, B)."""
        wh = h @ self.W.T
        quadratic_v = 0.5 * ((v - self.b) / self.std).square().sum(-1)
        coupling = 0.5 * (self.std * wh).square().sum(-1) - (v * wh).sum(-1)
        quadratic_h = 0.5 * (h / self.h_std).square().sum(-1)
        return quadratic_v + coupling + quadratic_h - h @ self.c

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        """The energy: the model is itself an energy callable."""
        return self.energy(v, h)

    def posterior_precision(self) -> Tensor:
        """C = Wᵀ diag(σ²) W + diag(τ⁻²), the precision of p(h | v): (H, H)."""
        weighted = self.W * self.std.square()[:, None]
        return weighted.T @ self.W + torch.diag(self.h_std.pow(-2))

    def _precision_cholesky(self) -> Tensor:
        return torch.linalg.cholesky(self.posterior_precision())

    def posterior_cov(self) -> Tensor:
        """C⁻¹, the covariance of p(h | v) (the same for every v): (H, H)."""
        chol = self._precision_cholesky()
        return torch.cholesky_solve(
            torch.eye(self.h_dim, dtype=chol.dtype, device=chol.device), chol
        )

    def posterior_mean(self, v: Tensor) -> Tensor:
        """E[h | v] = C⁻¹(c + Wᵀv). v: (B, D) -> (B, H)."""
        check_data(v, (self.v_dim,), "v", dtype=self.W.dtype)
        return self._posterior_mean(v, self._precision_cholesky())

    def _posterior_mean(self, v: Tensor, chol: Tensor) -> Tensor:
        natural = self.c + v @ self.W
        return torch.cholesky_solve(natural.T, chol).T

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = −log ∫ exp(−E(v, h)) dh
        = ½‖(v − b)/σ‖² − ½ηᵀC⁻¹η + ½ log det C − (H/2) log 2π, η = c + Wᵀv.

        v: (B, D) -> (B,).
        """
        check_data(v, (self.v_dim,), "v", dtype=self.W.dtype)
        chol = self._precision_cholesky()
        natural = self.c + v @ self.W
        whitened = torch.linalg.solve_triangular(chol, natural.T, upper=False)
        quadratic = 0.5 * ((v - self.b) / self.std).square().sum(-1)
        log_det = torch.diagonal(chol).log().sum()
        return (
            quadratic
            - 0.5 * whitened.square().sum(0)
            + log_det
            - 0.5 * self.h_dim * math.log(2 * math.pi)
        )

    def score(self, v: Tensor) -> Tensor:
        """Exact marginal score ∇_v log p(v) = −(v − b)/σ² + W E[h | v].

        v: (B, D) -> (B, D). Differentiable with respect to the parameters and v.
        """
        check_data(v, (self.v_dim,), "v", dtype=self.W.dtype)
        mean = self._posterior_mean(v, self._precision_cholesky())
        return -(v - self.b) / self.std.square() + mean @ self.W.T

    def log_partition(self) -> Tensor:
        """log Z = ((D + H)/2) log 2π + Σ log σ + Σ log τ + ½‖τ ⊙ (c + Wᵀb)‖². -> ()."""
        prior_natural = self.c + self.b @ self.W
        return (
            0.5 * (self.v_dim + self.h_dim) * math.log(2 * math.pi)
            + self.log_std.sum()
            + self.h_log_std.sum()
            + 0.5 * (self.h_std * prior_natural).square().sum()
        )

    def log_prob(self, v: Tensor) -> Tensor:
        """Exact log p(v) = −F(v) − log Z. v: (B, D) -> (B,)."""
        return -self.free_energy(v) - self.log_partition()

    def exact_posterior(self) -> ExactGaussianPosterior:
        """p(h | v) as a posterior object (``rsample``, ``log_prob``, ``mean``, ``cov``)."""
        return ExactGaussianPosterior(self)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` exact visible samples by ancestral sampling. -> (n, D)."""
        check_count(n, "n")
        dtype, device = self.W.dtype, self.W.device
        prior_mean = self.h_std.square() * (self.c + self.b @ self.W)
        eps_h = torch.randn(n, self.h_dim, generator=generator, dtype=dtype, device=device)
        mean = self.b + self.std.square() * ((prior_mean + self.h_std * eps_h) @ self.W.T)
        eps_v = torch.randn(n, self.v_dim, generator=generator, dtype=dtype, device=device)
        return mean + self.std * eps_v


class ExactGaussianPosterior:
    """The Gaussian model's exact posterior p(h | v) = N(C⁻¹(c + Wᵀv), C⁻¹).

    Follows the posterior contract: ``rsample(v, n) -> (n, B, H)`` (reparameterised,
    differentiable in the model's parameters) and ``log_prob(h, v) -> (n, B)``.
    """

    def __init__(self, model: GaussianEBLVM) -> None:
        self.model = model

    def mean(self, v: Tensor) -> Tensor:
        """E[h | v]. v: (B, D) -> (B, H)."""
        return self.model.posterior_mean(v)

    def cov(self) -> Tensor:
        """Cov[h | v] = C⁻¹: (H, H)."""
        return self.model.posterior_cov()

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws μ(v) + L⁻ᵀε with C = LLᵀ. v: (B, D) -> (n, B, H)."""
        check_count(n, "n")
        check_data(v, (self.model.v_dim,), "v", dtype=self.model.W.dtype)
        chol = self.model._precision_cholesky()
        mean = self.model._posterior_mean(v, chol)
        eps = torch.randn(
            (n, *mean.shape), generator=generator, dtype=mean.dtype, device=mean.device
        )
        # x = L⁻ᵀε has covariance L⁻ᵀL⁻¹ = C⁻¹.
        flat = eps.reshape(-1, self.model.h_dim).T
        noise = torch.linalg.solve_triangular(chol.T, flat, upper=True).T
        return mean + noise.reshape(eps.shape)

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        """log p(h | v). h: (n, B, H), v: (B, D) -> (n, B)."""
        check_data(v, (self.model.v_dim,), "v", dtype=self.model.W.dtype)
        if h.dim() != 3 or h.shape[1:] != (v.shape[0], self.model.h_dim):
            raise ValueError(
                f"h must have shape (n, {v.shape[0]}, {self.model.h_dim}), got {tuple(h.shape)}"
            )
        chol = self.model._precision_cholesky()
        centred = h - self.model._posterior_mean(v, chol)
        # (h − μ)ᵀC(h − μ) = ‖Lᵀ(h − μ)‖².
        quadratic = (centred @ chol).square().sum(-1)
        log_det = torch.diagonal(chol).log().sum()
        return -0.5 * quadratic + log_det - 0.5 * self.model.h_dim * math.log(2 * math.pi)

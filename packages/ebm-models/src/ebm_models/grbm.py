"""Gaussian-Bernoulli restricted Boltzmann machine and its conditionals (block-Gibbs
sampling from them is ``eblvm_eval.gibbs_transition``).

E(v, h) = ½‖(v − b)/σ‖² − cᵀh − vᵀWh,   v ∈ R^D, h ∈ {0, 1}^H, σ = exp(log_std).

p(h_j = 1 | v) = sigmoid(c + vᵀW)_j,   p(v | h) = N(b + σ² ⊙ Wh, diag σ²),
F(v) = ½‖(v − b)/σ‖² − Σ_j softplus(c_j + (vᵀW)_j).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ebm_models._checks import check_data, check_latents
from ebm_models._common_checks import check_count, check_real


class GRBM(nn.Module):
    """Gaussian-Bernoulli RBM with parameters ``W (D, H)``, ``b (D,)``, ``c (H,)``,
    ``log_std (D,)``.

    ``energy(v, h)`` broadcasts over leading sample dimensions of ``h``:
    ``v: (B, D)``, ``h: (*S, B, H)`` gives ``(*S, B)``.
    """

    def __init__(
        self,
        v_dim: int,
        h_dim: int,
        *,
        learn_std: bool = True,
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
        self.log_std = nn.Parameter(torch.zeros(v_dim), requires_grad=learn_std)

    @property
    def std(self) -> Tensor:
        """σ: (D,)."""
        return self.log_std.exp()

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h). v: (B, D); h: (*S, B, H) -> (*S, B)."""
        return self.__energy_at_v__(v)(h)

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        """The energy: the model is itself an energy callable."""
        return self.energy(v, h)

    def __energy_at_v__(self, v: Tensor) -> Callable[[Tensor], Tensor]:
        """h ↦ E(v, h) for a fixed v, with the v-terms (½‖(v − b)/σ‖² and c + vᵀW)
        computed once, now: the conditioned-energy capability of the score estimators'
        contract. v: (B, D); the returned function maps h: (*S, B, H) -> (*S, B).
        """
        self._check_v(v, finite=False)
        quadratic, logits = self._quadratic(v), self._logits(v)

        def energy_at_v(h: Tensor) -> Tensor:  # h in the v-terms' dtype (autocast's, under it)
            check_latents(h, self.h_dim, dtype=logits.dtype, batch=len(v))
            return quadratic - (h * logits).sum(-1)

        return energy_at_v

    def _check_v(self, v: object, *, finite: bool = True) -> Tensor:
        """v: (B, D) in the model's dtype; its values are read only when ``finite``."""
        return check_data(v, (self.v_dim,), "v", dtype=self.W.dtype, finite=finite)

    def _check_h(self, h: object, *, batch: int | None = None) -> Tensor:
        """h: (*S, B, H) in the model's dtype, with B = ``batch`` when given."""
        return check_latents(h, self.h_dim, dtype=self.W.dtype, batch=batch)

    def _quadratic(self, v: Tensor) -> Tensor:
        """½‖(v − b)/σ‖². v: (B, D) -> (B,)."""
        return 0.5 * ((v - self.b) / self.std).square().sum(-1)

    def _logits(self, v: Tensor) -> Tensor:
        """c + vᵀW for a v already checked. v: (B, D) -> (B, H)."""
        return self.c + v @ self.W

    def posterior_logits(self, v: Tensor) -> Tensor:
        """logit p(h = 1 | v) = c + vᵀW. v: (B, D) -> (B, H)."""
        return self._logits(self._check_v(v, finite=False))

    def posterior_probs(self, v: Tensor) -> Tensor:
        """p(h = 1 | v). v: (B, D) -> (B, H)."""
        return torch.sigmoid(self._logits(self._check_v(v)))

    def visible_mean(self, h: Tensor) -> Tensor:
        """E[v | h] = b + σ² ⊙ Wh. h: (B, H) -> (B, D)."""
        return self.b + self.std.square() * (self._check_h(h) @ self.W.T)

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = −log Σ_h exp(−E(v, h)). v: (B, D) -> (B,)."""
        self._check_v(v)
        return self._quadratic(v) - F.softplus(self._logits(v)).sum(-1)

    def score(self, v: Tensor) -> Tensor:
        """Exact marginal score ∇_v log p(v) = −(v − b)/σ² + W sigmoid(c + vᵀW).

        v: (B, D) -> (B, D). Differentiable with respect to the parameters and v.
        """
        self._check_v(v)
        return -(v - self.b) / self.std.square() + torch.sigmoid(self._logits(v)) @ self.W.T

    def exact_posterior(self) -> ExactBernoulliPosterior:
        """p(h | v) as a posterior object (``rsample``, ``log_prob``, ``probs``)."""
        return ExactBernoulliPosterior(self)


class ExactBernoulliPosterior:
    """The GRBM's exact posterior p(h | v) = Π_j Bernoulli(sigmoid(c + vᵀW)_j).

    Follows the posterior contract: ``rsample(v, n) -> (n, B, H)`` (exact binary
    draws; no reparameterisation, no parameters) and ``log_prob(h, v) -> (n, B)``.
    """

    def __init__(self, grbm: GRBM) -> None:
        self.grbm = grbm

    def probs(self, v: Tensor) -> Tensor:
        """p(h = 1 | v). v: (B, D) -> (B, H)."""
        return self.grbm.posterior_probs(v)

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n exact draws h ~ p(h | v). v: (B, D) -> (n, B, H)."""
        check_count(n, "n")
        probs = self.probs(v).detach()
        return torch.bernoulli(probs.expand(n, *probs.shape), generator=generator)

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        """log p(h | v). h: (n, B, H), v: (B, D) -> (n, B)."""
        logits = self.grbm._logits(self.grbm._check_v(v))
        self.grbm._check_h(h, batch=len(v))
        return -F.binary_cross_entropy_with_logits(logits.expand_as(h), h, reduction="none").sum(-1)

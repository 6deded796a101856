"""Exact divergences between a variational posterior q and a model's posterior p.

Pure functions of the distributions' parameters, batched over leading dimensions:

- ``bernoulli_kl``: KL(q ‖ p) between factorised Bernoullis (a Bernoulli q against the
  GRBM's exact posterior p(h | v) = Π_j Bernoulli(sigmoid(c + Wᵀv)_j)).
- ``gaussian_kl`` and ``gaussian_fisher``: KL(q ‖ p) and the Fisher divergence
  ½ E_q‖∇_h log q(h) − ∇_h log p(h)‖² between Gaussians (a Gaussian q against the
  Gaussian model's exact posterior).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def _check_tensor(value: object, name: str, *, min_dim: int) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if value.dim() < min_dim:
        dims = "(..., H)" if min_dim == 1 else "(..., H, H)"
        raise ValueError(f"{name} must have shape {dims}, got {tuple(value.shape)}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains non-finite values")
    return value


def _check_same(first: Tensor, second: Tensor, names: tuple[str, str]) -> None:
    if first.dtype != second.dtype:
        raise TypeError(
            f"{names[0]} and {names[1]} must share a dtype, got {first.dtype} and {second.dtype}"
        )
    if first.shape[-1] != second.shape[-1]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same last dimension, got "
            f"{tuple(first.shape)} and {tuple(second.shape)}"
        )


def bernoulli_kl(*, q_logits: Tensor, p_logits: Tensor) -> Tensor:
    """KL(q ‖ p) = Σ_j π_j log(π_j/p_j) + (1 − π_j) log((1 − π_j)/(1 − p_j)) between
    factorised Bernoullis with q(h_j = 1) = π_j = sigmoid(q_logits_j), p(h_j = 1) =
    sigmoid(p_logits_j). Computed from the logits, so saturated probabilities stay exact.

    q_logits, p_logits: (..., H), broadcast against each other -> (...).
    """
    q_logits = _check_tensor(q_logits, "q_logits", min_dim=1)
    p_logits = _check_tensor(p_logits, "p_logits", min_dim=1)
    _check_same(q_logits, p_logits, ("q_logits", "p_logits"))
    q_probs = torch.sigmoid(q_logits)
    on = F.logsigmoid(q_logits) - F.logsigmoid(p_logits)
    off = F.logsigmoid(-q_logits) - F.logsigmoid(-p_logits)
    return (q_probs * on + (1 - q_probs) * off).sum(-1)


def _gaussian_arguments(
    q_mean: Tensor, q_cov: Tensor, p_mean: Tensor, p_cov: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Checks; returns the means, covariances and their Cholesky factors."""
    q_mean = _check_tensor(q_mean, "q_mean", min_dim=1)
    p_mean = _check_tensor(p_mean, "p_mean", min_dim=1)
    q_cov = _check_tensor(q_cov, "q_cov", min_dim=2)
    p_cov = _check_tensor(p_cov, "p_cov", min_dim=2)
    _check_same(q_mean, p_mean, ("q_mean", "p_mean"))
    for name, cov in (("q_cov", q_cov), ("p_cov", p_cov)):
        _check_same(q_mean, cov, ("q_mean", name))
        if cov.shape[-2] != cov.shape[-1]:
            raise ValueError(f"{name} must be square in its last two dimensions, got {cov.shape}")
    factors = []
    for name, cov in (("q_cov", q_cov), ("p_cov", p_cov)):
        factor, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()):
            raise ValueError(f"{name} must be symmetric positive definite")
        factors.append(factor)
    return q_mean, q_cov, p_mean, p_cov, factors[0], factors[1]


def _log_det(factor: Tensor) -> Tensor:
    return 2 * torch.diagonal(factor, dim1=-2, dim2=-1).log().sum(-1)


def gaussian_kl(*, q_mean: Tensor, q_cov: Tensor, p_mean: Tensor, p_cov: Tensor) -> Tensor:
    """KL(N(q_mean, q_cov) ‖ N(p_mean, p_cov))
    = ½[tr(Σ_p⁻¹Σ_q) + (μ_p − μ_q)ᵀΣ_p⁻¹(μ_p − μ_q) − H + log det Σ_p − log det Σ_q].

    Means: (..., H); covariances: (..., H, H), symmetric positive definite; leading
    dimensions broadcast -> (...).
    """
    q_mean, q_cov, p_mean, p_cov, q_factor, p_factor = _gaussian_arguments(
        q_mean, q_cov, p_mean, p_cov
    )
    # tr(Σ_p⁻¹Σ_q) = ‖L_p⁻¹L_q‖²_F and the Mahalanobis term ‖L_p⁻¹(μ_p − μ_q)‖², Σ = LLᵀ.
    trace = torch.linalg.solve_triangular(p_factor, q_factor, upper=False).square()
    diff = (p_mean - q_mean).unsqueeze(-1)
    mahalanobis = torch.linalg.solve_triangular(p_factor, diff, upper=False).square()
    return 0.5 * (
        trace.sum((-2, -1))
        + mahalanobis.sum((-2, -1))
        - q_mean.shape[-1]
        + _log_det(p_factor)
        - _log_det(q_factor)
    )


def gaussian_fisher(*, q_mean: Tensor, q_cov: Tensor, p_mean: Tensor, p_cov: Tensor) -> Tensor:
    """Fisher divergence ½ E_q‖∇_h log q(h) − ∇_h log p(h)‖² between Gaussians
    = ½[tr((Λ_p − Λ_q) Σ_q (Λ_p − Λ_q)) + ‖Λ_p(μ_q − μ_p)‖²], Λ = Σ⁻¹.

    (With h − μ_q = x ~ N(0, Σ_q): ∇ log q − ∇ log p = (Λ_p − Λ_q)x + Λ_p(μ_q − μ_p).)
    Means: (..., H); covariances: (..., H, H), symmetric positive definite; leading
    dimensions broadcast -> (...).
    """
    q_mean, q_cov, p_mean, p_cov, q_factor, p_factor = _gaussian_arguments(
        q_mean, q_cov, p_mean, p_cov
    )
    eye = torch.eye(q_mean.shape[-1], dtype=q_mean.dtype, device=q_mean.device)
    q_precision = torch.cholesky_solve(eye, q_factor)
    p_precision = torch.cholesky_solve(eye, p_factor)
    gap = p_precision - q_precision
    # tr(M Σ_q M) = ‖M L_q‖²_F for symmetric M.
    spread = (gap @ q_factor).square().sum((-2, -1))
    shift = (p_precision @ (q_mean - p_mean).unsqueeze(-1)).square().sum((-2, -1))
    return 0.5 * (spread + shift)

"""Bias of VaES and VaGES against the divergence between q(h | v) and p(h | v).

For a fixed v and θ, the bias of VaES is ‖E_q[∇_v log p̃(v, h)] − s(v)‖ and that of
VaGES is ‖E_q[∂∇_v log p̃/∂θ] + Cov_q(∇_v log p̃, ∇_θ log p̃) − ∂s/∂θ‖_F (Frobenius
norm of the D × P Jacobian). Both are bounded by a constant times √KL(q ‖ p), and for
continuous h by a constant times √Fisher(q ‖ p). Here they are computed in closed
form, with no Monte Carlo error:

- GRBM with a factorised Bernoulli q (exact binary h), mean π and variance π(1 − π);
- Gaussian model with a Gaussian q of mean m and covariance S (third central moments
  vanish, so every covariance term is linear in S).

The exact ∂s/∂θ is autograd of the model's exact score. A sweep starts q at the exact
posterior, perturbs φ (the parameters of q's fully connected layer, and for the
Gaussian q its Cholesky factor) with Gaussian noise of growing size, and records one
row per level (appendix F.4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.autograd.functional import jacobian
from torch.func import functional_call

from eblvm_eval.divergences import bernoulli_kl, gaussian_fisher, gaussian_kl
from ebm_models import GRBM, GaussianEBLVM

GRBM_NOISE_LEVELS = tuple(float(x) for x in np.geomspace(1e-5, 1e-1, 11))
GAUSSIAN_NOISE_LEVELS = tuple(float(x) for x in np.geomspace(1e-5, 1e-2, 11))


class BiasRow(NamedTuple):
    """One perturbation level: the divergence of q from p(h | v) and the exact biases."""

    model: str
    divergence_name: str
    noise: float
    divergence: float
    bias_vaes: float
    bias_vages: float


class SlopeFit(NamedTuple):
    """Least-squares line log bias = intercept + slope · log √divergence over the rows of
    one (model, divergence, estimator) with positive noise, divergence and bias, and the
    largest ratio bias/√divergence among them."""

    model: str
    divergence_name: str
    estimator: str
    slope: float
    intercept: float
    max_ratio: float
    n_points: int


def _check_param(value: object, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    if value.dtype != dtype:
        raise TypeError(f"{name} must have the model's dtype {dtype}, got {value.dtype}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains non-finite values")
    return value.detach()


def _check_point(v: object, dim: int, dtype: torch.dtype) -> Tensor:
    return _check_param(v, "v", (dim,), dtype)


def _flatten(model: nn.Module, blocks: dict[str, Tensor]) -> Tensor:
    """Per-parameter Jacobian blocks (D, *shape) -> (D, P) in ``named_parameters`` order."""
    names = [name for name, _ in model.named_parameters()]
    if sorted(names) != sorted(blocks):
        raise ValueError(
            f"the model's parameters {names} differ from the closed form's {sorted(blocks)}"
        )
    return torch.cat([blocks[name].flatten(1) for name in names], dim=1)


class _Score(nn.Module):
    """Calls ``model.score``, so that ``functional_call`` can swap the model's parameters."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, v: Tensor) -> Tensor:
        score = cast(Callable[[Tensor], Tensor], self.model.score)
        return score(v)


def score_jacobian(model: nn.Module, v: Tensor) -> Tensor:
    """∂s(v)/∂θ of ``model.score`` by autograd, one row per coordinate of s.

    v: (D,) -> (D, P), columns in ``model.named_parameters()`` order (each parameter
    flattened), whether or not a parameter requires grad.
    """
    if not callable(getattr(model, "score", None)):
        raise TypeError(f"model must have a score(v) method, got {type(model).__name__}")
    if not isinstance(v, Tensor) or v.dim() != 1 or not v.is_floating_point():
        got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
        raise ValueError(f"v must be a floating-point tensor of shape (D,), got {got}")
    wrapper = _Score(model)
    names = [f"model.{name}" for name, _ in model.named_parameters()]
    values = tuple(p.detach() for p in model.parameters())
    point = v.detach()[None]

    def score_of(*params: Tensor) -> Tensor:
        result: Tensor = functional_call(wrapper, dict(zip(names, params, strict=True)), (point,))
        return result[0]

    blocks = jacobian(score_of, values)
    return torch.cat([block.flatten(1) for block in blocks], dim=1)


def grbm_vaes_expectation(grbm: GRBM, v: Tensor, *, q_probs: Tensor) -> Tensor:
    """E_q[∇_v log p̃(v, h)] = −(v − b)/σ² + Wπ for a factorised Bernoulli q with
    q(h_j = 1) = π_j. v: (D,), q_probs: (H,) -> (D,)."""
    v = _check_point(v, grbm.v_dim, grbm.W.dtype)
    probs = _check_param(q_probs, "q_probs", (grbm.h_dim,), grbm.W.dtype)
    W, b, std = grbm.W.detach(), grbm.b.detach(), grbm.std.detach()
    return -(v - b) / std.square() + W @ probs


def grbm_vages_expectation(grbm: GRBM, v: Tensor, *, q_probs: Tensor) -> Tensor:
    """E_q[∂∇_v log p̃/∂θ] + Cov_q(∇_v log p̃, ∇_θ log p̃) for a factorised Bernoulli q
    (the value VaGES estimates). v: (D,), q_probs: (H,) -> (D, P), columns in
    ``grbm.named_parameters()`` order.

    With a_i = ∇_{v_i} log p̃ = −(v_i − b_i)/σ_i² + (Wh)_i and ν = π(1 − π), row i is
    W_kj: δ_ik π_j + v_k W_ij ν_j;  b_k: δ_ik/σ_i²;  c_j: W_ij ν_j;
    log σ_k: δ_ik 2(v_i − b_i)/σ_i².
    """
    v = _check_point(v, grbm.v_dim, grbm.W.dtype)
    probs = _check_param(q_probs, "q_probs", (grbm.h_dim,), grbm.W.dtype)
    W, b, std = grbm.W.detach(), grbm.b.detach(), grbm.std.detach()
    eye = torch.eye(grbm.v_dim, dtype=W.dtype, device=W.device)
    spread = W * (probs * (1 - probs))  # W_ij ν_j: (D, H)
    blocks = {
        "W": eye[:, :, None] * probs + spread[:, None, :] * v[None, :, None],
        "b": torch.diag(std.pow(-2)),
        "c": spread,
        "log_std": torch.diag(2 * (v - b) / std.square()),
    }
    return _flatten(grbm, blocks)


def gaussian_vaes_expectation(model: GaussianEBLVM, v: Tensor, *, q_mean: Tensor) -> Tensor:
    """E_q[∇_v log p̃(v, h)] = −(v − b)/σ² + Wm for any q with mean m.
    v: (D,), q_mean: (H,) -> (D,)."""
    v = _check_point(v, model.v_dim, model.W.dtype)
    mean = _check_param(q_mean, "q_mean", (model.h_dim,), model.W.dtype)
    W, b, std = model.W.detach(), model.b.detach(), model.std.detach()
    return -(v - b) / std.square() + W @ mean


def gaussian_vages_expectation(
    model: GaussianEBLVM, v: Tensor, *, q_mean: Tensor, q_cov: Tensor
) -> Tensor:
    """E_q[∂∇_v log p̃/∂θ] + Cov_q(∇_v log p̃, ∇_θ log p̃) for a Gaussian q = N(m, S).
    v: (D,), q_mean: (H,), q_cov: (H, H) -> (D, P), columns in
    ``model.named_parameters()`` order.

    With a_i = −(v_i − b_i)/σ_i² + (Wh)_i, G = WS, K = WSWᵀ and u = Wm, row i is
    W_kl: δ_ik m_l + (v_k − σ_k² u_k) G_il − σ_k² m_l K_ik;  b_k: δ_ik/σ_i²;  c_l: G_il;
    log σ_k: δ_ik 2(v_i − b_i)/σ_i² − 2σ_k² u_k K_ik;  log τ_l: 2 m_l G_il/τ_l².
    """
    v = _check_point(v, model.v_dim, model.W.dtype)
    mean = _check_param(q_mean, "q_mean", (model.h_dim,), model.W.dtype)
    cov = _check_param(q_cov, "q_cov", (model.h_dim, model.h_dim), model.W.dtype)
    W, b = model.W.detach(), model.b.detach()
    var, h_var = model.std.detach().square(), model.h_std.detach().square()
    eye = torch.eye(model.v_dim, dtype=W.dtype, device=W.device)
    gain = W @ cov  # G: (D, H)
    kernel = gain @ W.T  # K: (D, D)
    projected = W @ mean  # u: (D,)
    blocks = {
        "W": eye[:, :, None] * mean
        + gain[:, None, :] * (v - var * projected)[None, :, None]
        - (kernel * var)[:, :, None] * mean,
        "b": torch.diag(var.reciprocal()),
        "c": gain,
        "log_std": torch.diag(2 * (v - b) / var) - 2 * kernel * (var * projected),
        "h_log_std": 2 * gain * (mean / h_var),
    }
    return _flatten(model, blocks)


def _check_levels(noise_levels: object) -> list[float]:
    message = (
        f"noise_levels must be a non-empty sequence of finite numbers >= 0, got {noise_levels!r}"
    )
    if not isinstance(noise_levels, Sequence) or len(noise_levels) == 0:
        raise ValueError(message)
    levels = []
    for level in noise_levels:
        if isinstance(level, bool) or not isinstance(level, (int, float)):
            raise ValueError(message)
        if not (math.isfinite(level) and level >= 0):
            raise ValueError(message)
        levels.append(float(level))
    return levels


def _noise(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


@torch.no_grad()
def grbm_bias_sweep(
    grbm: GRBM,
    v: Tensor,
    *,
    noise_levels: Sequence[float] = GRBM_NOISE_LEVELS,
    generator: torch.Generator | None = None,
) -> list[BiasRow]:
    """Bias of VaES and VaGES against KL(q ‖ p(h | v)) for a GRBM at the point v: (D,).

    q(h | v) = Π_j Bernoulli(sigmoid(Uv + d)_j), starting at the exact posterior
    (U = Wᵀ, d = c); at each level ε, φ = (U, d) gets fresh N(0, ε²) noise in every
    entry. One row per level, model "grbm", divergence "kl".
    """
    v = _check_point(v, grbm.v_dim, grbm.W.dtype)
    levels = _check_levels(noise_levels)
    W, c = grbm.W.detach(), grbm.c.detach()
    p_logits = c + v @ W
    score = grbm.score(v[None])[0].detach()
    exact_jacobian = score_jacobian(grbm, v)
    rows = []
    for level in levels:
        weight = W.T + level * _noise((grbm.h_dim, grbm.v_dim), W, generator)
        bias = c + level * _noise((grbm.h_dim,), W, generator)
        q_logits = weight @ v + bias
        probs = torch.sigmoid(q_logits)
        vaes = grbm_vaes_expectation(grbm, v, q_probs=probs) - score
        vages = grbm_vages_expectation(grbm, v, q_probs=probs) - exact_jacobian
        divergence = bernoulli_kl(q_logits=q_logits, p_logits=p_logits)
        rows.append(
            BiasRow(
                "grbm",
                "kl",
                level,
                float(divergence),
                float(torch.linalg.vector_norm(vaes)),
                float(torch.linalg.matrix_norm(vages)),
            )
        )
    return rows


@torch.no_grad()
def gaussian_bias_sweep(
    model: GaussianEBLVM,
    v: Tensor,
    *,
    noise_levels: Sequence[float] = GAUSSIAN_NOISE_LEVELS,
    generator: torch.Generator | None = None,
) -> list[BiasRow]:
    """Bias of VaES and VaGES against Fisher(q ‖ p(h | v)) and KL(q ‖ p(h | v)) for the
    Gaussian model at the point v: (D,).

    q(h | v) = N(Uv + d, LLᵀ) with L = tril(M, −1) + diag(exp(ℓ)), starting at the exact
    posterior (U = C⁻¹Wᵀ, d = C⁻¹c, LLᵀ = C⁻¹); at each level ε, φ = (U, d, M, ℓ) gets
    fresh N(0, ε²) noise in every entry. Two rows per level (divergences "fisher" and
    "kl", the same biases), model "gaussian".
    """
    v = _check_point(v, model.v_dim, model.W.dtype)
    levels = _check_levels(noise_levels)
    W, c = model.W.detach(), model.c.detach()
    h_dim, v_dim = model.h_dim, model.v_dim
    p_cov = model.posterior_cov().detach()
    p_mean = p_cov @ (c + v @ W)
    score = model.score(v[None])[0].detach()
    exact_jacobian = score_jacobian(model, v)
    factor = torch.linalg.cholesky(p_cov)
    weight0, bias0 = p_cov @ W.T, p_cov @ c
    lower0, log_diag0 = torch.tril(factor, -1), torch.diagonal(factor).log()
    rows = []
    for level in levels:
        weight = weight0 + level * _noise((h_dim, v_dim), W, generator)
        bias = bias0 + level * _noise((h_dim,), W, generator)
        lower = torch.tril(lower0 + level * _noise((h_dim, h_dim), W, generator), -1)
        log_diag = log_diag0 + level * _noise((h_dim,), W, generator)
        q_factor = lower + torch.diag(log_diag.exp())
        q_mean, q_cov = weight @ v + bias, q_factor @ q_factor.T
        vaes = gaussian_vaes_expectation(model, v, q_mean=q_mean) - score
        vages = gaussian_vages_expectation(model, v, q_mean=q_mean, q_cov=q_cov) - exact_jacobian
        bias_vaes = float(torch.linalg.vector_norm(vaes))
        bias_vages = float(torch.linalg.matrix_norm(vages))
        moments = {"q_mean": q_mean, "q_cov": q_cov, "p_mean": p_mean, "p_cov": p_cov}
        for name, divergence in (("fisher", gaussian_fisher), ("kl", gaussian_kl)):
            value = float(divergence(**moments))
            rows.append(BiasRow("gaussian", name, level, value, bias_vaes, bias_vages))
    return rows


def _check_rows(rows: object) -> list[BiasRow]:
    if not isinstance(rows, Sequence) or len(rows) == 0:
        raise ValueError(f"rows must be a non-empty sequence of BiasRow, got {rows!r}")
    for row in rows:
        if not isinstance(row, BiasRow):
            raise TypeError(f"rows must hold BiasRow values, got {type(row).__name__}")
    return list(rows)


def _points(rows: list[BiasRow], estimator: str) -> list[tuple[float, float]]:
    """(√divergence, bias) of the rows away from q = p (at zero noise both are rounding
    errors) with positive divergence and bias."""
    pairs = [(row.noise, row.divergence, getattr(row, f"bias_{estimator}")) for row in rows]
    return [(math.sqrt(d), b) for noise, d, b in pairs if noise > 0 and d > 0 and b > 0]


def fit_bias_slopes(rows: Sequence[BiasRow]) -> list[SlopeFit]:
    """One least-squares fit of log bias against log √divergence per (model, divergence,
    estimator), over the rows whose noise, divergence and bias are positive. A bias of order
    √divergence gives slope 1; ``max_ratio`` is the largest bias/√divergence."""
    rows = _check_rows(rows)
    groups = dict.fromkeys((row.model, row.divergence_name) for row in rows)
    fits = []
    for model, divergence_name in groups:
        group = [r for r in rows if (r.model, r.divergence_name) == (model, divergence_name)]
        for estimator in ("vaes", "vages"):
            points = _points(group, estimator)
            if len(points) < 2:
                raise ValueError(
                    f"fitting a slope needs two rows with positive noise, divergence and bias; "
                    f"{model}/{divergence_name}/{estimator} has {len(points)}"
                )
            x, y = np.log(np.array(points)).T
            slope, intercept = np.polyfit(x, y, 1)
            ratio = max(bias / root for root, bias in points)
            fits.append(
                SlopeFit(
                    model,
                    divergence_name,
                    estimator,
                    float(slope),
                    float(intercept),
                    float(ratio),
                    len(points),
                )
            )
    return fits

"""Annealed importance sampling (AIS) for the log-partition function of a GRBM.

The path runs from the base model p_0 (W = 0, c = 0, the same b and σ: v ~ N(b, σ²)
and h ~ Bernoulli(½), with log Z_0 = Σ log σ + (D/2) log 2π + H log 2) to the model
p_1, through p_β with W and c scaled by β. With h summed out,

    log p̃_β(v) = −½‖(v − b)/σ‖² + Σ_j softplus(β (c + vᵀW)_j),

so the weight update at β_{k−1} → β_k needs only the logits c + vᵀW, which the Gibbs
sweep (h | v, then v | h, leaving p_{β_k} invariant) also needs: each step costs one
(N, D)·(D, H) and one (N, H)·(H, D) matrix product.

The pieces follow the kernel style: ``ais_params`` computes the constants once,
``ais_init`` draws exact base samples, ``ais_kernel`` is one step with every input
explicit (β and the random numbers included), ``ais_estimate`` turns log-weights into
the estimate, and ``ais_log_partition`` runs the whole schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

from eblvm_eval._checks import check_finite_scalar, check_positive_int, check_tensor
from eblvm_eval._grbm import GRBMParameters, grbm_tensors


class AISParams(NamedTuple):
    """The GRBM's constants along the path, computed once by ``ais_params``.

    ``W: (D, H)``; ``var_W_t: (H, D)``, (σ² ⊙ W)ᵀ so that E_β[v | h] = b + β (h @ var_W_t);
    ``b: (D,)``; ``c: (H,)``; ``std: (D,)``, σ; ``log_z_base``: log Z_0 of the base model.
    """

    W: Tensor
    var_W_t: Tensor
    b: Tensor
    c: Tensor
    std: Tensor
    log_z_base: float


class AISState(NamedTuple):
    """The chains after the transition at inverse temperature ``beta``.

    ``v: (N, D)`` chain positions; ``log_weights: (N,)`` float64 accumulated log
    importance weights; ``beta``: the inverse temperature of the last transition.
    """

    v: Tensor
    log_weights: Tensor
    beta: float


class AISInfo(NamedTuple):
    """Diagnostics of one step: ``log_weight_increment: (N,)`` float64,
    log p̃_β(v) − log p̃_β_prev(v) at the positions before the step."""

    log_weight_increment: Tensor


class AISResult(NamedTuple):
    """An AIS estimate of log Z.

    ``log_z``: scalar float64, logsumexp(log_weights) − log N + log Z_0;
    ``log_z_std_err``: scalar float64, the delta-method standard error of ``log_z``,
    std(w / mean(w)) / √N (NaN for a single chain);
    ``log_weights: (N,)`` float64; ``effective_sample_size``: scalar float64,
    (Σ w)² / Σ w², between 1 and N.
    """

    log_z: Tensor
    log_z_std_err: Tensor
    log_weights: Tensor
    effective_sample_size: Tensor


@torch.no_grad()
def ais_params(grbm: GRBMParameters) -> AISParams:
    """Check ``grbm``'s parameters and precompute the constants of the path (detached)."""
    params = grbm_tensors(grbm)
    v_dim, h_dim = params.W.shape
    std = params.log_std.exp()
    log_z_base = (
        params.log_std.to(torch.float64).sum().item()
        + 0.5 * v_dim * math.log(2 * math.pi)
        + h_dim * math.log(2.0)
    )
    return AISParams(
        W=params.W.contiguous(),
        var_W_t=(std.square()[:, None] * params.W).T.contiguous(),
        b=params.b,
        c=params.c,
        std=std,
        log_z_base=log_z_base,
    )


@torch.no_grad()
def ais_init(
    params: AISParams, *, n_chains: int, generator: torch.Generator | None = None
) -> AISState:
    """Exact draws from the base model, v ~ N(b, σ²): the state at β = 0, zero log-weights."""
    check_positive_int(n_chains, "n_chains")
    _check_generator(generator)
    noise = torch.randn(
        n_chains,
        params.b.numel(),
        generator=generator,
        dtype=params.b.dtype,
        device=params.b.device,
    )
    return AISState(
        v=torch.addcmul(params.b, params.std, noise),
        log_weights=torch.zeros(n_chains, dtype=torch.float64, device=params.b.device),
        beta=0.0,
    )


@torch.no_grad()
def ais_kernel(
    state: AISState, *, params: AISParams, beta: float, uniforms: Tensor, normals: Tensor
) -> tuple[AISState, AISInfo]:
    """One AIS step from ``state.beta`` to ``beta``: weight update, then one Gibbs sweep.

    ``uniforms: (N, H)`` in [0, 1) draw h | v (h_j = 1 where u_j < p(h_j = 1 | v));
    ``normals: (N, D)`` standard normal draw v | h. Pass fresh draws at every step, e.g.
    ``torch.rand(N, H, generator=g)`` and ``torch.randn(N, D, generator=g)``.
    """
    if not isinstance(params, AISParams):
        raise TypeError(f"params must be AISParams (see ais_params), got {type(params).__name__}")
    v_dim, h_dim = params.W.shape
    n_chains = check_tensor(state.v, "state.v", shape=(None, v_dim)).shape[0]
    check_tensor(state.log_weights, "state.log_weights", shape=(n_chains,))
    state = state._replace(beta=check_finite_scalar(state.beta, "state.beta"))
    beta = check_finite_scalar(beta, "beta")
    check_tensor(uniforms, "uniforms", shape=(n_chains, h_dim))
    check_tensor(normals, "normals", shape=(n_chains, v_dim))
    for name, t in (("state.v", state.v), ("uniforms", uniforms), ("normals", normals)):
        if t.dtype != params.W.dtype:
            raise TypeError(f"{name} must have dtype {params.W.dtype}, got {t.dtype}")
    return _step(state, params, beta, uniforms, normals)


def _step(
    state: AISState, params: AISParams, beta: float, uniforms: Tensor, normals: Tensor
) -> tuple[AISState, AISInfo]:
    logits = torch.addmm(params.c, state.v, params.W)  # c + vᵀW: (N, H), used twice
    scaled = logits * beta
    increment = F.softplus(scaled)
    increment -= F.softplus(logits.mul_(state.beta))
    log_weight_increment = increment.sum(-1).to(torch.float64)
    hidden = scaled.sigmoid_().gt_(uniforms)  # h ~ p_β(h | v), as 0/1 in v's dtype
    v = torch.addmm(params.b, hidden, params.var_W_t, alpha=beta).addcmul_(params.std, normals)
    return (
        AISState(v=v, log_weights=state.log_weights + log_weight_increment, beta=beta),
        AISInfo(log_weight_increment=log_weight_increment),
    )


@torch.no_grad()
def ais_estimate(log_weights: Tensor, *, log_z_base: float) -> AISResult:
    """The AIS estimate of log Z from the chains' ``log_weights: (N,)`` and log Z_0."""
    log_weights = check_tensor(log_weights, "log_weights", shape=(None,))
    n_chains = log_weights.numel()
    if n_chains < 1:
        raise ValueError("log_weights must hold at least one chain")
    log_z_base = check_finite_scalar(log_z_base, "log_z_base")
    log_weights = log_weights.to(torch.float64)
    log_sum = torch.logsumexp(log_weights, dim=0)
    normalised = torch.exp(log_weights - log_sum) * n_chains  # w / mean(w)
    if n_chains > 1:
        std_err = normalised.std() / math.sqrt(n_chains)
    else:
        std_err = torch.tensor(math.nan, dtype=torch.float64, device=log_weights.device)
    return AISResult(
        log_z=log_sum - math.log(n_chains) + log_z_base,
        log_z_std_err=std_err,
        log_weights=log_weights,
        effective_sample_size=torch.exp(2 * log_sum - torch.logsumexp(2 * log_weights, dim=0)),
    )


@torch.no_grad()
def ais_log_partition(
    grbm: GRBMParameters,
    *,
    n_chains: int = 2000,
    n_steps: int = 2000,
    generator: torch.Generator | None = None,
    progress: Callable[[int, int], object] | None = None,
) -> AISResult:
    """Estimate log Z of ``grbm`` by AIS: ``n_chains`` chains, β_k = k / n_steps, k = 0..n_steps.

    ``progress``, if given, is called as ``progress(step, n_steps)`` after each step.
    """
    check_positive_int(n_steps, "n_steps")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
    params = ais_params(grbm)
    state = ais_init(params, n_chains=n_chains, generator=generator)
    uniforms = torch.empty(n_chains, params.c.numel(), dtype=state.v.dtype, device=state.v.device)
    normals = torch.empty_like(state.v)
    for step in range(1, n_steps + 1):
        uniforms.uniform_(generator=generator)
        normals.normal_(generator=generator)
        state, _ = _step(state, params, step / n_steps, uniforms, normals)
        if progress is not None:
            progress(step, n_steps)
    return ais_estimate(state.log_weights, log_z_base=params.log_z_base)


def _check_generator(generator: object) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )

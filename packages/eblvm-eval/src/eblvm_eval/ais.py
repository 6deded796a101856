"""Annealed importance sampling (AIS) for the log-partition function of a GRBM.

The path runs from the base model p_0 (W = 0, c = 0, the same b and σ, so that
h ~ Bernoulli(½); log Z_0 = Σ log σ + (D/2) log 2π + H log 2) to the model p_1, through
p_β with W and c scaled by β. The chains run on the hidden units, with v summed out
exactly: with S = σ ⊙ W (the rows of W scaled by σ) and a = c + Wᵀb,

    log p̃_β(h) = β aᵀh + ½ β² ‖S h‖² + Σ log σ + (D/2) log 2π,

so the weight update at β_{k−1} → β_k is (β_k − β_{k−1}) aᵀh + ½ (β_k² − β_{k−1}²) ‖S h‖²,
with no transcendental function. The transition is the Gibbs sweep v | h, then h | v,
at β_k with v never formed: given h, the logits c + Wᵀv of the new h are

    a + β G h + Sᵀε,    G = SᵀS,  ε ~ N(0, I_D),

and h_j = 1 with probability sigmoid(β · logit_j). The noise Sᵀε has covariance G, so
Fᵀz with z ~ N(0, I_r) has its law for any F (r, H) with FᵀF = G. F = S (r = D) when
H ≥ D: that is the sweep itself, v = b + σ ⊙ (β S h + z). F = R, the triangular factor of
the thin QR of S (r = H), when H < D. With m = F h, ‖S h‖² = ‖m‖² and the logits are
a + Fᵀ(β m + z): a step costs two products of N·r·H multiply-adds and N·r normals for
N chains, against N·D·H each and N·D normals for the sweep in v.

On CPU the triangular R is multiplied in blocks of about 80 of its rows and columns:
block i of the rows of m = R h needs only the rows of h from i on, block j of the
columns of Rᵀ(β m + z) only the rows of β m + z up to j, so most of the zero triangle
is skipped (at H = 400, five blocks: 0.6 of the dense multiply-adds). The chains are
laid out as columns, (H, N), so that each block is one product into a contiguous slice.
The uniforms come from numpy's SFC64 seeded from the torch generator, drawn in bulk into
one buffer; the normals are torch's. On other devices the products are dense and every
random number is torch's. The chains run in the model's dtype, the log-weights in float64.

The pieces are split as in every sampler here: ``ais_params`` computes the constants once,
``ais_init`` draws exact base samples, ``ais_transition`` is one step with every input
explicit (β and the random numbers included), ``ais_estimate`` turns log-weights into
the estimate, and ``ais_log_partition`` runs the whole schedule.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from eblvm_eval._checks import check_finite_scalar, check_tensor
from eblvm_eval._common_checks import check_count, check_generator
from eblvm_eval._deprecated import renamed_attributes
from eblvm_eval._grbm import GRBMParameters, grbm_tensors


class AISParams(NamedTuple):
    """The GRBM's constants along the path, computed once by ``ais_params``.

    ``hidden_bias: (H,)``, a = c + Wᵀb, the linear coefficient of log p̃_β(h);
    ``gram_factor: (r, H)``, F with FᵀF = SᵀS for S = σ ⊙ W: S itself (r = D) when
    H ≥ D, else the R of its thin QR (r = H); ``log_z_base``: log Z_0 of the base model.
    ``noise_dim`` is r = min(D, H), the width of the transition's normals. On CPU a square,
    upper-triangular F is multiplied block by block, skipping its zero triangle.
    """

    hidden_bias: Tensor
    gram_factor: Tensor
    log_z_base: float

    @property
    def noise_dim(self) -> int:
        """r = min(D, H): the number of normals each chain draws per step."""
        return self.gram_factor.shape[0]


class AISState(NamedTuple):
    """The chains after the transition at inverse temperature ``beta``.

    ``h: (N, H)`` hidden units, 0 or 1 in the model's dtype (from ``ais_transition`` the
    transpose of an (H, N) tensor, the layout of its products); ``log_weights: (N,)``
    float64 accumulated log importance weights; ``beta``: the inverse temperature of
    the last transition.
    """

    h: Tensor
    log_weights: Tensor
    beta: float


class AISInfo(NamedTuple):
    """Diagnostics of one step: ``log_weight_increment: (N,)`` float64,
    log p̃_β(h) − log p̃_β_prev(h) at the hidden units before the step."""

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
    scaled = params.log_std.exp()[:, None] * params.W  # S = σ ⊙ W: (D, H)
    factor = scaled if h_dim >= v_dim else torch.linalg.qr(scaled, mode="r").R
    log_z_base = (
        params.log_std.to(torch.float64).sum().item()
        + 0.5 * v_dim * math.log(2 * math.pi)
        + h_dim * math.log(2.0)
    )
    return AISParams(
        hidden_bias=torch.addmv(params.c, params.W.T, params.b),
        gram_factor=factor.contiguous(),
        log_z_base=log_z_base,
    )


@torch.no_grad()
def ais_init(
    params: AISParams, *, n_chains: int, generator: torch.Generator | None = None
) -> AISState:
    """Exact draws from the base model, h ~ Bernoulli(½): the state at β = 0, zero
    log-weights."""
    check_count(n_chains, "n_chains")
    check_generator(generator)
    bias = params.hidden_bias
    hidden = torch.randint(
        0, 2, (n_chains, bias.numel()), generator=generator, dtype=bias.dtype, device=bias.device
    )
    return AISState(
        h=hidden,
        log_weights=torch.zeros(n_chains, dtype=torch.float64, device=bias.device),
        beta=0.0,
    )


@torch.no_grad()
def ais_transition(
    state: AISState, *, params: AISParams, beta: float, uniforms: Tensor, normals: Tensor
) -> tuple[AISState, AISInfo]:
    """One AIS step from ``state.beta`` to ``beta``: weight update, then one Gibbs sweep.

    ``normals: (N, params.noise_dim)`` standard normal, the noise of the logits of the
    new h (with ``gram_factor`` = σ ⊙ W they are the noise of v | h, in units of σ);
    ``uniforms: (N, H)`` in [0, 1) then draw h (h_j = 1 where u_j < sigmoid(β logit_j)).
    Pass fresh draws at every step, e.g. ``torch.rand(N, H, generator=g)`` and
    ``torch.randn(N, params.noise_dim, generator=g)``; ``ais_log_partition`` draws them
    as ``(H, N)`` and ``(r, N)`` and passes their transposes, the step's own layout.
    """
    if not isinstance(params, AISParams):
        raise TypeError(f"params must be AISParams (see ais_params), got {type(params).__name__}")
    h_dim = params.hidden_bias.numel()
    n_chains = check_tensor(state.h, "state.h", shape=(None, h_dim)).shape[0]
    if not bool(((state.h == 0) | (state.h == 1)).all()):
        raise ValueError("state.h must hold only 0 and 1")
    check_tensor(state.log_weights, "state.log_weights", shape=(n_chains,))
    state = state._replace(beta=check_finite_scalar(state.beta, "state.beta"))
    beta = check_finite_scalar(beta, "beta")
    check_tensor(uniforms, "uniforms", shape=(n_chains, h_dim))
    check_tensor(normals, "normals", shape=(n_chains, params.noise_dim))
    dtype = params.gram_factor.dtype
    for name, t in (("state.h", state.h), ("uniforms", uniforms), ("normals", normals)):
        if t.dtype != dtype:
            raise TypeError(f"{name} must have dtype {dtype}, got {t.dtype}")
    return _step(state, params, beta, uniforms, normals, _blocks(params.gram_factor))


# The width of the blocks of a triangular F on CPU: wide enough for efficient products,
# narrow enough to skip most of the zero triangle. At H = 400 with 2000 chains and one
# thread, widths 50 to 100 step alike; 134 is about 5 % slower, 200 14 %, 400 (dense) 37 %.
_BLOCK_WIDTH = 80


def _blocks(factor: Tensor) -> tuple[tuple[int, int], ...]:
    """The column blocks [start, end) in which ``factor`` (r, H) is multiplied: about
    ``_BLOCK_WIDTH`` wide for an upper-triangular square F on CPU, else one, [0, H)."""
    h_dim = factor.shape[1]
    on_cpu = factor.device.type == "cpu"
    if not (on_cpu and factor.shape[0] == h_dim and torch.equal(factor, factor.triu())):
        return ((0, h_dim),)
    count = max(1, round(h_dim / _BLOCK_WIDTH))
    bounds = [h_dim * i // count for i in range(count + 1)]
    return tuple(itertools.pairwise(bounds))


def _step(
    state: AISState,
    params: AISParams,
    beta: float,
    uniforms: Tensor,
    normals: Tensor,
    blocks: tuple[tuple[int, int], ...],
) -> tuple[AISState, AISInfo]:
    """One step with the chains as columns: ``state.h.T`` is (H, N), the products give
    (r, N) and (H, N), and ``uniforms.T``, ``normals.T`` are read in that layout. With
    one block [0, H) the products are dense (the slices of F and of its operands clip
    to r rows); with several, F is upper triangular and its zero blocks are skipped."""
    factor, bias = params.gram_factor, params.hidden_bias
    hidden = state.h.T  # (H, N)
    projected = factor.new_empty(factor.shape[0], hidden.shape[1])  # m = F h: (r, N)
    for start, end in blocks:
        torch.mm(factor[start:end, start:], hidden[start:], out=projected[start:end])
    linear = torch.mv(state.h, bias).to(torch.float64)  # aᵀh
    quadratic = torch.linalg.vecdot(projected, projected, dim=0).to(torch.float64)  # ‖m‖²
    log_weight_increment = linear.mul_(beta - state.beta).add_(
        quadratic, alpha=0.5 * (beta**2 - state.beta**2)
    )
    noisy = torch.add(normals.T, projected, alpha=beta, out=projected)  # β m + z: (r, N)
    logits = factor.new_empty(hidden.shape)  # (H, N)
    for start, end in blocks:  # β (a + β G h + noise), block j from rows :end of β m + z
        torch.addmm(
            bias[start:end, None],
            factor[:end, start:end].T,
            noisy[:end],
            beta=beta,
            alpha=beta,
            out=logits[start:end],
        )
    hidden = logits.sigmoid_().gt_(uniforms.T)  # the new h, 0/1 in the model dtype
    return (
        AISState(h=hidden.T, log_weights=state.log_weights + log_weight_increment, beta=beta),
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

    Every random number comes from ``generator`` (torch's default generator when None):
    the base draws and the normals directly, and on CPU the seed of the numpy SFC64
    stream of the uniforms, so that the same seed gives the same estimate.
    ``progress``, if given, is called as ``progress(step, n_steps)`` after each step.
    """
    check_count(n_steps, "n_steps")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
    params = ais_params(grbm)
    state = ais_init(params, n_chains=n_chains, generator=generator)
    # Buffers with the chains as columns, the layout of the step; refilled at each step.
    uniforms = state.h.new_empty(state.h.shape[1], n_chains)
    normals = state.h.new_empty(params.noise_dim, n_chains)
    draw_uniforms = _uniform_sampler(uniforms, generator)
    blocks = _blocks(params.gram_factor)
    for step in range(1, n_steps + 1):
        draw_uniforms()
        normals.normal_(generator=generator)
        state, _ = _step(state, params, step / n_steps, uniforms.T, normals.T, blocks)
        if progress is not None:
            progress(step, n_steps)
    return ais_estimate(state.log_weights, log_z_base=params.log_z_base)


def _uniform_sampler(out: Tensor, generator: torch.Generator | None) -> Callable[[], object]:
    """A function that refills ``out`` with uniforms on [0, 1). On CPU in float32 or
    float64 they come from numpy's SFC64 (about 1.2 ns a number against torch's 1.8 on
    one thread), written into ``out``'s memory and seeded from ``generator``; else from
    torch's ``uniform_``."""
    if out.device.type == "cpu" and out.dtype in (torch.float32, torch.float64):
        seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
        array = out.numpy()
        return partial(
            np.random.Generator(np.random.SFC64(seed)).random, out=array, dtype=array.dtype
        )
    return partial(out.uniform_, generator=generator)


__getattr__ = renamed_attributes(__name__, ("ais_transition",))

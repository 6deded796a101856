"""Exact log-partition function of a GRBM by enumerating the hidden states.

Integrating v out in closed form,

    log Z = Σ_d log σ_d + (D/2) log 2π + logsumexp_h [cᵀh + bᵀWh + ½‖σ ⊙ Wh‖²],

a sum over the 2^H binary h. The h are split into a low and a high half,
h = (h_lo, h_hi), so that the cross term of ½‖σ ⊙ (W_lo h_lo + W_hi h_hi)‖² is one
matrix product per chunk of high halves: memory stays bounded and the work runs at
matrix-product speed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eblvm_eval._grbm import GRBMParameters, grbm_tensors

MAX_EXACT_H_DIM = 24
# Upper bound on the number of (h_hi, h_lo) pairs scored at once (float64: 8 MiB).
_CHUNK_ELEMENTS = 2**20


def _binary_states(n_bits: int, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """All 2^n_bits binary vectors, one per row: (2^n_bits, n_bits); row i holds i's bits."""
    index = torch.arange(2**n_bits, device=device)
    bits = torch.arange(n_bits, device=device)
    return ((index[:, None] >> bits) & 1).to(dtype)


@torch.no_grad()
def exact_log_partition(grbm: GRBMParameters) -> Tensor:
    """log Z of ``grbm`` by enumerating h ∈ {0, 1}^H, in float64. -> scalar tensor.

    Costs O(2^H · D) time; refuses H > 24 (use ``ais_log_partition`` there).
    """
    params = grbm_tensors(grbm)
    v_dim, h_dim = params.W.shape
    if h_dim > MAX_EXACT_H_DIM:
        raise ValueError(
            f"h_dim = {h_dim} is too large for exact enumeration (2^{h_dim} hidden states; "
            f"at most h_dim = {MAX_EXACT_H_DIM}); estimate log Z with ais_log_partition"
        )
    W, b, c, log_std = (t.to(torch.float64) for t in params)
    std = log_std.exp()
    linear = c + b @ W  # (H,): coefficient of h in cᵀh + bᵀWh
    n_lo = h_dim // 2
    halves = []
    for part in (slice(0, n_lo), slice(n_lo, h_dim)):
        h = _binary_states(part.stop - part.start, dtype=W.dtype, device=W.device)
        scaled = (h @ W[:, part].T) * std  # σ ⊙ (W_part h): (2^n, D)
        halves.append((scaled, h @ linear[part] + 0.5 * scaled.square().sum(-1)))
    (scaled_lo, term_lo), (scaled_hi, term_hi) = halves
    rows = max(1, _CHUNK_ELEMENTS // term_lo.numel())
    chunks = [
        torch.logsumexp(
            (
                torch.addmm(term_lo, scaled_hi[start : start + rows], scaled_lo.T)
                + term_hi[start : start + rows, None]
            ).flatten(),
            dim=0,
        )
        for start in range(0, term_hi.numel(), rows)
    ]
    log_sum = torch.logsumexp(torch.stack(chunks), dim=0)
    return log_std.sum() + 0.5 * v_dim * math.log(2 * math.pi) + log_sum

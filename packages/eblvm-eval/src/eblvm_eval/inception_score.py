"""Inception Score (IS) of generated images, from the FID network's class logits.

For class probabilities p(y|x) of N images, taken in ``splits`` contiguous chunks,

    IS_s = exp( mean_{x in chunk s} KL( p(y|x) || p_s(y) ) ),   p_s(y) = mean_{x in s} p(y|x),

and the score is the mean and the (population, divisor S) standard deviation of the
S values, the definition of the original code and of torch-fidelity. Chunk s holds
rows ``s·N // S`` to ``(s + 1)·N // S``. torch-fidelity permutes the rows first (numpy
``RandomState(2020).permutation(N)``); here they are taken in the order given.

The logits are those of the FID network (``load_inception``) without its classifier's
bias (``InceptionV3Features.logits``), 1008 classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from eblvm_eval._inception import InceptionV3Features
from eblvm_eval.fid import _as_float64, compute_features

__all__ = ["InceptionScore", "inception_score", "inception_score_from_logits"]


class InceptionScore(NamedTuple):
    """The mean and the standard deviation (divisor S) of the S chunks' scores."""

    mean: float
    std: float


def _check_logits(logits: object) -> Tensor:
    """``logits`` as a float64 CPU tensor ``(N, K)``, refused unless finite and real."""
    array = _as_float64(logits, "logits")
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"logits must have shape (N, K) with N, K >= 1, got {array.shape}")
    return torch.from_numpy(array)


def inception_score_from_logits(logits: Tensor | np.ndarray, *, splits: int = 10) -> InceptionScore:
    """The Inception Score of class ``logits: (N, K)`` (unnormalised log-probabilities of
    p(y|x), one row per image), in ``splits`` contiguous chunks, 1 <= splits <= N.

    In float64; p_s(y) is formed in log space, so that no class's probability rounds to
    zero. Uniform rows give 1; rows certain of one class each, the k classes used equally
    in every chunk, give k.
    """
    log_p = torch.log_softmax(_check_logits(logits), dim=1)
    count = log_p.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, int) or not 1 <= splits <= count:
        raise ValueError(
            f"splits must be an integer from 1 to the {count} rows of logits, got {splits!r}"
        )
    scores = []
    for s in range(splits):
        chunk = log_p[s * count // splits : (s + 1) * count // splits]
        log_marginal = torch.logsumexp(chunk, dim=0) - math.log(chunk.shape[0])
        kl = (chunk.exp() * (chunk - log_marginal)).sum(dim=1)
        scores.append(math.exp(float(kl.mean())))
    values = np.asarray(scores)
    return InceptionScore(mean=float(values.mean()), std=float(values.std()))


def inception_score(
    images: Tensor | Iterable[Tensor],
    inception: InceptionV3Features,
    *,
    splits: int = 10,
    batch_size: int = 50,
    progress: Callable[[int, int | None], object] | None = None,
) -> InceptionScore:
    """The Inception Score of ``images`` under the FID network ``inception`` (from
    ``load_inception``, in eval mode).

    ``images``: one tensor ``(N, C, H, W)`` or an iterable of batches, C in {1, 3},
    values in [0, 1]; run through ``inception.logits`` ``batch_size`` images at a time
    (``progress`` as in ``compute_features``), then scored by
    ``inception_score_from_logits`` in ``splits`` contiguous chunks (1 <= splits <= N).
    """
    if not isinstance(inception, InceptionV3Features):
        raise TypeError(
            f"inception must be an InceptionV3Features (load_inception), got "
            f"{type(inception).__name__}"
        )
    if inception.training:
        raise ValueError(
            "inception is in training mode (batch norm would use batch statistics); "
            "call inception.eval() first"
        )
    logits = compute_features(images, inception.logits, batch_size=batch_size, progress=progress)
    return inception_score_from_logits(logits, splits=splits)

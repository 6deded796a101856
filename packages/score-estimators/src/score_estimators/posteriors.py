"""Variational posteriors q_φ(h | v).

A posterior offers ``rsample(v, n) -> (n, B, H)`` and ``log_prob(h, v) -> (n, B)``;
its parameters φ are those of the network that maps v to the distribution's
parameters. Both posteriors here are noise-driven (``score_estimators.protocols``):
``rsample(v, n, noise=ε)`` transforms injected standard noise instead of drawing it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from score_estimators._checks import check_data, check_positive, dtypes_named
from score_estimators._common_checks import check_count
from score_estimators.protocols import standard_noise

T = TypeVar("T")


def _apply_net(net: Callable[[Tensor], T], v: Tensor) -> T:
    """Run the parameter network, turning a dtype or shape clash into an error naming ``v``."""
    check_data(v)
    try:
        with dtypes_named(net, v, what="the posterior network's parameters"):
            return net(v)
    except RuntimeError as error:
        raise ValueError(
            f"v of shape {tuple(v.shape)} does not fit the posterior's network: {error}"
        ) from error


def _check_batch(params: Tensor, v: Tensor) -> Tensor:
    if params.dim() < 2 or params.shape[0] != v.shape[0]:
        raise ValueError(
            f"the posterior's network must return (B, H) with B the batch of v "
            f"({v.shape[0]}), got {tuple(params.shape)}"
        )
    return params


def _check_draws(h: Tensor, params: Tensor) -> None:
    if h.shape[1:] != params.shape:
        raise ValueError(
            f"h must have shape (n, {', '.join(map(str, params.shape))}), got {tuple(h.shape)}"
        )


def _noise_for(
    law: str, n: int, params: Tensor, generator: torch.Generator | None, noise: Tensor | None
) -> Tensor:
    """Standard noise (n, *params.shape): ``noise`` checked, or drawn from ``generator``."""
    shape = (n, *params.shape)
    if noise is None:
        return standard_noise(
            law, shape, dtype=params.dtype, device=params.device, generator=generator
        )
    if generator is not None:
        raise ValueError("noise and generator are exclusive: pass one of them, not both")
    if not isinstance(noise, Tensor) or tuple(noise.shape) != shape:
        got = tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
        raise ValueError(f"noise must be a tensor of shape {shape}, got {got}")
    if noise.dtype != params.dtype or noise.device != params.device:
        raise ValueError(
            f"noise must have the draws' dtype and device ({params.dtype}, {params.device}), "
            f"got ({noise.dtype}, {noise.device})"
        )
    return noise


class BernoulliPosterior(nn.Module):
    """Factorised Bernoulli q(h | v) with logits from ``logits_net(v) -> (B, H)``.

    ``temperature`` > 0 draws relaxed Bernoulli (binary Concrete / Gumbel-softmax)
    samples, differentiable in φ; ``temperature=None`` draws exact binary samples,
    which carry no gradient (the posterior losses refuse them). ``log_prob`` is the
    Bernoulli log-mass Σ h log p + (1 − h) log(1 − p), which relaxed samples evaluate
    by continuity. Draws transform uniform noise u: relaxed h = sigmoid((logit + log u
    − log(1 − u))/temperature), exact h = [u < p].
    """

    noise_law = "uniform"

    def __init__(self, logits_net: nn.Module, *, temperature: float | None = 0.1) -> None:
        super().__init__()
        if temperature is not None:
            check_positive(temperature, "temperature")
        self.logits_net = logits_net
        self.temperature = temperature

    def logits(self, v: Tensor) -> Tensor:
        """logit q(h = 1 | v). v: (B, ...) -> (B, H)."""
        return _check_batch(_apply_net(self.logits_net, v), v)

    def rsample(
        self,
        v: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """n draws, from ``noise`` (n, B, H) uniforms when given. v: (B, ...) -> (n, B, H)."""
        check_count(n, "n")
        return self._draw(self.logits(v), n, generator, noise)

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        """Σ_j h_j log p_j + (1 − h_j) log(1 − p_j). h: (n, B, H), v: (B, ...) -> (n, B)."""
        logits = self.logits(v)
        _check_draws(h, logits)
        return _bernoulli_log_prob(h, logits)

    def rsample_and_log_prob(
        self,
        v: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """n draws and the log-mass of each, the network run once.
        v: (B, ...) -> ((n, B, H), (n, B))."""
        check_count(n, "n")
        logits = self.logits(v)
        h = self._draw(logits, n, generator, noise)
        return h, _bernoulli_log_prob(h, logits)

    def _draw(
        self, logits: Tensor, n: int, generator: torch.Generator | None, noise: Tensor | None
    ) -> Tensor:
        u = _noise_for(self.noise_law, n, logits, generator, noise)
        if self.temperature is None:
            return (u < torch.sigmoid(logits.detach())).to(logits.dtype)
        u = u.clamp(torch.finfo(logits.dtype).tiny, 1.0 - torch.finfo(logits.dtype).eps)
        return torch.sigmoid((logits + u.log() - (-u).log1p()) / self.temperature)


def _bernoulli_log_prob(h: Tensor, logits: Tensor) -> Tensor:
    """h: (n, B, H), logits: (B, H) -> (n, B)."""
    return -F.binary_cross_entropy_with_logits(logits.expand_as(h), h, reduction="none").sum(-1)


class GaussianPosterior(nn.Module):
    """Diagonal Gaussian q(h | v) = N(μ(v), diag σ(v)²), reparameterised: h = μ + σ ⊙ ε.

    ``net(v)`` returns the pair ``(mean, log_std)``, each (B, H).
    """

    noise_law = "normal"

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def mean_and_log_std(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """v: (B, ...) -> ((B, H), (B, H))."""
        mean, log_std = _apply_net(self.net, v)
        _check_batch(mean, v)
        if mean.shape != log_std.shape:
            raise ValueError(
                f"the posterior's network must return mean and log_std of one shape, "
                f"got {tuple(mean.shape)} and {tuple(log_std.shape)}"
            )
        return mean, log_std

    def rsample(
        self,
        v: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> Tensor:
        """n draws μ + σ ⊙ ε, ε = ``noise`` (n, B, H) when given. v: (B, ...) -> (n, B, H)."""
        check_count(n, "n")
        mean, log_std = self.mean_and_log_std(v)
        return mean + log_std.exp() * _noise_for(self.noise_law, n, mean, generator, noise)

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        """log N(h; μ(v), σ(v)²). h: (n, B, H), v: (B, ...) -> (n, B)."""
        mean, log_std = self.mean_and_log_std(v)
        _check_draws(h, mean)
        return _gaussian_log_prob(h, mean, log_std)

    def rsample_and_log_prob(
        self,
        v: Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        noise: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """n draws and the log-density of each, the network run once.
        v: (B, ...) -> ((n, B, H), (n, B))."""
        check_count(n, "n")
        mean, log_std = self.mean_and_log_std(v)
        h = mean + log_std.exp() * _noise_for(self.noise_law, n, mean, generator, noise)
        return h, _gaussian_log_prob(h, mean, log_std)


def _gaussian_log_prob(h: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """h: (n, B, H), mean and log_std: (B, H) -> (n, B)."""
    z = (h - mean) / log_std.exp()
    return (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

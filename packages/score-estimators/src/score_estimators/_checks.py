"""Checks of the estimators' own arguments at the package's public boundary; the checks
every package states the same way are in ``_common_checks``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from score_estimators._common_checks import values_readable


def check_data(v: object, name: str = "v", *, finite: bool = True) -> Tensor:
    """Refuse anything but a floating tensor with a non-empty batch dimension, (B, ...) with
    B ≥ 1, and with finite values unless ``finite=False`` (the shape checks are static and
    free; the finiteness check reads the values, and waits under make_fx and vmap)."""
    if not isinstance(v, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
    if v.dim() < 2:
        raise ValueError(f"{name} must have shape (B, ...) with B the batch, got {tuple(v.shape)}")
    if v.shape[0] == 0:
        raise ValueError(
            f"{name} must hold at least one example, got an empty batch of shape {tuple(v.shape)}"
        )
    if finite and values_readable(v) and not bool(v.isfinite().all()):
        raise ValueError(f"{name} contains non-finite values")
    return v


@contextmanager
def dtypes_named(
    owner: object,
    v: Tensor,
    h: Tensor | None = None,
    *,
    what: str = "the energy's parameters",
) -> Iterator[None]:
    """Run a call into ``owner`` (the energy, a posterior's network): a RuntimeError it
    raises while v (or the draws h) has another dtype than the owner's first floating
    parameter becomes a TypeError naming both dtypes, instead of torch's "expected m1 and
    m2 to have the same dtype" from deep inside. Costs nothing unless the call fails."""
    try:
        yield
    except RuntimeError as error:
        expected = _parameter_dtype(owner)
        for named, t in (("v has", v), ("the posterior's draws h have", h)):
            if expected is not None and t is not None and t.dtype != expected:
                message = f"{named} dtype {t.dtype} but {what} have dtype {expected}"
                raise TypeError(message) from error
        raise


def _parameter_dtype(owner: object) -> torch.dtype | None:
    """The dtype of a module's first floating parameter; None for anything else."""
    if isinstance(owner, nn.Module):
        for parameter in owner.parameters():
            if parameter.is_floating_point():
                return parameter.dtype
    return None


def check_positive(value: object, name: str) -> float:
    """Refuse anything but a finite positive number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < float("inf")
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_non_negative(value: object, name: str) -> float:
    """Refuse anything but a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


def check_samples(h: Tensor, n: int, batch: int) -> Tensor:
    """Posterior draws must be (n, B, ...) for ``n`` draws at a batch of ``batch``."""
    if h.dim() < 3 or tuple(h.shape[:2]) != (n, batch):
        raise ValueError(
            f"posterior.rsample must return shape ({n}, {batch}, ...) for v with batch "
            f"{batch}, got {tuple(h.shape)}"
        )
    return h


def check_energy_values(values: Tensor, n: int, batch: int) -> Tensor:
    """Energies of (n, B, ...) draws must come back as (n, B)."""
    if tuple(values.shape) != (n, batch):
        raise ValueError(
            f"energy(v, h) must broadcast over the sample dimension of h and return shape "
            f"({n}, {batch}), got {tuple(values.shape)}"
        )
    return values

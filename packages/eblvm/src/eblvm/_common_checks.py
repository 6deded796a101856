"""Argument checks stated the same way in every package of the toolkit.

This file is copied, unchanged, into score_estimators, score_objectives, ebm_models,
eblvm_data, eblvm_eval and eblvm: score-estimators and score-objectives (and ebm-models
and eblvm-data) depend on torch only and not on each other, so each carries its own
copy (and the others, which could import one, keep theirs private too).
tests/integration/test_common_checks.py fails when the copies differ: change them all
together. Every refusal names the argument and what was expected; a wrong type is a
TypeError, a wrong value a ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

REDUCTIONS = ("mean", "none")


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    """An int (bools refused) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_count(value: object, name: str, *, minimum: int = 1) -> int:
    """A count (of draws, steps, units, images) of at least ``minimum``: "a positive
    integer" for ``minimum`` 1. Anything else is a ValueError, a wrong type too: the
    message the estimators, models and evaluation have always given, kept apart from
    :func:`check_int`'s until a release may change messages."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_real(
    value: object, name: str, *, positive: bool = False, non_negative: bool = False
) -> float:
    """A finite real number (bools refused) as a float; > 0 with ``positive``, >= 0 with
    ``non_negative``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if positive and not (math.isfinite(result) and result > 0):
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    if non_negative and not (math.isfinite(result) and result >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def check_bool(value: object, name: str) -> bool:
    """A bool, nothing else (not 0 or 1)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return str(value)


def check_reduction(reduction: object) -> str:
    """``"mean"`` (one value) or ``"none"`` (one value per example)."""
    return check_choice(reduction, "reduction", REDUCTIONS)


def check_generator(generator: object, *, cpu: bool = False) -> torch.Generator | None:
    """None or a ``torch.Generator`` (on the CPU when ``cpu``)."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if cpu and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU generator, got one on {generator.device}")
    return generator


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """A floating-point ``torch.dtype``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point torch.dtype, got {dtype!r}")
    return dtype


def check_finite_result(
    value: torch.Tensor, function: str, *, what: str, cause: str
) -> torch.Tensor:
    """``value`` when every entry is finite, else a FloatingPointError: ``"{function}:
    {what} is not finite (nan); {cause}"``, with the count of NaN and infinite entries
    of a value of more than one entry. The output check of a library function called
    with ``check_finite=True``; it waits, as the value checks do, while values cannot be
    read (make_fx, vmap)."""
    if not values_readable(value) or bool(value.isfinite().all()):
        return value
    if value.numel() == 1:
        found = str(value.item())
    else:
        counts = ((int(value.isnan().sum()), "nan"), (int(value.isinf().sum()), "infinite"))
        found = " and ".join(f"{n} {kind}" for n, kind in counts if n)
        found += f" of {value.numel()} entries"
    raise FloatingPointError(f"{function}: {what} is not finite ({found}); {cause}")


def values_readable(t: torch.Tensor) -> bool:
    """Whether a check may read t's values now: not while torch records the code as a graph
    (make_fx) or maps it over a batch (torch.func.vmap), where reading a value is an error;
    the caller outside checks its inputs instead."""
    if torch._C._get_dispatch_mode(torch._C._TorchDispatchModeKey.PROXY) is not None:
        return False
    return not torch._C._functorch.is_functorch_wrapped_tensor(t)

"""The rules that decide the paper's claims in ``eblvm reproduce``: pure functions of
measured means, standard deviations and seed counts, fixed before any number exists.

- similar: the means differ by at most two pooled standard errors, or by at most
  ``SIMILAR_NATS`` (0.01 nats), whichever is larger;
- better: the mean is higher by more than two pooled standard errors;
- not worse: the mean is at most two pooled standard errors (or 0.01 nats) lower.

The pooled standard error of two means is sqrt(s_a²/n_a + s_b²/n_b).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

SIMILAR_NATS = 0.01

SIMILAR_RULE = (
    "similar: the means differ by at most two pooled standard errors "
    f"(sqrt(s_a²/n_a + s_b²/n_b)) or {SIMILAR_NATS} nats, whichever is larger"
)
BETTER_RULE = "better: the mean is higher by more than two pooled standard errors"
NOT_WORSE_RULE = (
    f"not worse: the mean is lower by at most two pooled standard errors or {SIMILAR_NATS} nats"
)


class Measured(NamedTuple):
    """A quantity over seeds: mean, sample standard deviation and the number of seeds."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.std:.4f}"


class Check(NamedTuple):
    """One part of a claim: what is compared, whether it holds, and the numbers behind it."""

    name: str
    holds: bool
    detail: str


def pooled_stderr(a: Measured, b: Measured) -> float:
    """The standard error of the difference of the two means."""
    return math.sqrt(a.std**2 / max(a.n, 1) + b.std**2 / max(b.n, 1))


def similar(name: str, a: Measured, b: Measured) -> Check:
    """``a`` and ``b`` similar (module docstring)."""
    margin = max(2 * pooled_stderr(a, b), SIMILAR_NATS)
    gap = abs(a.mean - b.mean)
    return Check(name, gap <= margin, f"gap {gap:.4f}, allowed {margin:.4f}")


def better(name: str, a: Measured, b: Measured) -> Check:
    """``a`` better than ``b`` (module docstring)."""
    margin = 2 * pooled_stderr(a, b)
    gap = a.mean - b.mean
    return Check(name, gap > margin, f"Δ = {gap:+.4f}, needed > {margin:.4f}")


def not_worse(name: str, a: Measured, b: Measured) -> Check:
    """``a`` not worse than ``b`` (module docstring)."""
    margin = max(2 * pooled_stderr(a, b), SIMILAR_NATS)
    gap = a.mean - b.mean
    return Check(name, gap >= -margin, f"Δ = {gap:+.4f}, allowed ≥ {-margin:.4f}")


def within(name: str, value: float, low: float, high: float) -> Check:
    """``value`` in [low, high]."""
    return Check(name, low <= value <= high, f"{value:.3g} in [{low:.3g}, {high:.3g}]")


def verdict(checks: Sequence[Check]) -> str:
    """``holds`` when every check holds, else ``does not hold`` naming the failed ones."""
    if not checks:
        raise ValueError("a verdict needs at least one check")
    failed = [check.name for check in checks if not check.holds]
    if not failed:
        return "holds"
    return f"does not hold ({len(failed)} of {len(checks)} checks fail: {'; '.join(failed)})"


def checks_table(checks: Sequence[Check]) -> str:
    """The checks as a Markdown table."""
    lines = ["| check | holds | numbers |", "| --- | --- | --- |"]
    lines += [f"| {c.name} | {'yes' if c.holds else 'no'} | {c.detail} |" for c in checks]
    return "\n".join(lines)

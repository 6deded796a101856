"""Appendix F.3: the learned Fisher divergence D_F^m (a critic, the model score by VaES
with a fitted posterior) against the exact one, for GRBMs perturbed away from the
data N(0, I); the experiment's driver, table and figure (the maths is
``eblvm_eval.fisher``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from eblvm._common_checks import check_count
from eblvm.experiments.bias import _png
from eblvm.runs import atomic_write_bytes
from eblvm_eval import (
    bernoulli_kl,
    fisher_divergence,
    fitted_vaes_score,
    learned_fisher_divergence,
    perturbed_grbm,
)

F3_LEVELS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


class FisherRow(NamedTuple):
    """One GRBM of the F.3 experiment: exact and learned Fisher divergence from the data,
    and the mean exact KL(q ‖ p(h | v)) of the posterior that VaES used."""

    v_dim: int
    level: float
    exact: float
    exact_stderr: float
    learned: float
    learned_stderr: float
    posterior_kl: float


def _fisher_figure(rows: list[FisherRow]) -> Figure:
    dims = list(dict.fromkeys(row.v_dim for row in rows))
    figure = Figure(figsize=(4.8 * len(dims), 4.2))
    FigureCanvasAgg(figure)
    for axes, dim in zip(figure.subplots(1, len(dims), squeeze=False)[0], dims, strict=True):
        group = [row for row in rows if row.v_dim == dim]
        levels = np.array([row.level for row in group])
        axes.errorbar(
            levels,
            [r.exact for r in group],
            yerr=[r.exact_stderr for r in group],
            fmt="o-",
            label="exact $D_F$",
        )
        axes.errorbar(
            levels,
            [r.learned for r in group],
            yerr=[r.learned_stderr for r in group],
            fmt="s--",
            label="learned $D_F^m$ (VaES)",
        )
        axes.set_xlabel("perturbation level")
        axes.set_ylabel("Fisher divergence")
        axes.set_title(f"GRBM vs N(0, I), D = {dim}")
        axes.legend()
    figure.tight_layout()
    return figure


def format_fisher_table(rows: Sequence[FisherRow]) -> str:
    """A Markdown table of the rows, with the relative error (learned − exact)/exact
    ("n/a" where the exact value is 0)."""
    lines = [
        "| D | level | exact D_F | learned D_F^m | relative error | KL(q‖p) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        relative = f"{(r.learned - r.exact) / r.exact:+.1%}" if r.exact > 0 else "n/a"
        lines.append(
            f"| {r.v_dim} | {r.level:.1f} | {r.exact:.4f} ± {r.exact_stderr:.4f} "
            f"| {r.learned:.4f} ± {r.learned_stderr:.4f} | {relative} | {r.posterior_kl:.4f} |"
        )
    return "\n".join(lines)


def run_fisher_experiment(
    out_dir: str | os.PathLike[str],
    *,
    quick: bool = False,
    seed: int = 0,
    dims: Sequence[int] | None = None,
    levels: Sequence[float] = F3_LEVELS,
) -> list[FisherRow]:
    """Appendix F.3: data N(0, I), GRBMs (H = 50) from :func:`perturbed_grbm` at each level,
    the exact Fisher divergence (exact scores, 100k fresh data samples) against the
    learned D_F^m with the VaES score (L = 1) of a posterior fitted for 1000 steps. The
    critic (width 128) trains for 2000 steps on fresh batches of 500 data samples, with
    10000 validation and 10000 test samples. ``dims`` defaults to (200, 500). ``quick``:
    H = 10, 20k exact samples, 2000 held-out samples, 200 posterior steps, a critic of
    width 32 trained for 300 steps on batches of 200, and ``dims`` (10,) by default.
    Writes ``fisher.json`` (rows), ``fisher.md`` (the table) and ``fisher.png`` into
    ``out_dir``; returns the rows."""
    if not isinstance(quick, bool):
        raise TypeError(f"quick must be a bool, got {type(quick).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if dims is None:
        dims = (10,) if quick else (200, 500)
    if quick:
        h_dim, n_exact, n_held_out, posterior_steps = 10, 20000, 2000, 200
        steps, batch_size, width, eval_every = 300, 200, 32, 100
    else:
        h_dim, n_exact, n_held_out, posterior_steps = 50, 100000, 10000, 1000
        steps, batch_size, width, eval_every = 2000, 500, 128, 250
    for dim in dims:
        check_count(dim, "dims")
    generator = torch.Generator().manual_seed(seed)
    model_generator = torch.Generator().manual_seed(seed + 1)
    rows = []
    for dim in dims:
        for level in levels:
            grbm = perturbed_grbm(dim, h_dim, level, generator=model_generator)

            def draw(n: int, dim: int = dim) -> Tensor:
                return torch.randn(n, dim, generator=generator)

            exact_v = draw(n_exact)
            exact = fisher_divergence(model_score=grbm.score(exact_v), data_score=-exact_v)
            score_fn, posterior = fitted_vaes_score(
                grbm, draw, steps=posterior_steps, generator=generator
            )
            valid, test = draw(n_held_out), draw(n_held_out)
            with torch.no_grad():
                posterior_kl = bernoulli_kl(
                    q_logits=posterior.logits(test), p_logits=grbm.posterior_logits(test)
                ).mean()
            learned = learned_fisher_divergence(
                score_fn,
                draw,
                valid,
                test,
                width=width,
                steps=steps,
                batch_size=batch_size,
                eval_every=eval_every,
                generator=generator,
            )
            rows.append(
                FisherRow(
                    dim,
                    float(level),
                    exact.value,
                    exact.stderr,
                    learned.value,
                    learned.stderr,
                    float(posterior_kl),
                )
            )
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        folder / "fisher.json", json.dumps([r._asdict() for r in rows], indent=2).encode()
    )
    atomic_write_bytes(folder / "fisher.md", (format_fisher_table(rows) + "\n").encode())
    atomic_write_bytes(folder / "fisher.png", _png(_fisher_figure(rows)))
    return rows

"""Appendix F.4: the bias of VaES and VaGES against the posterior divergence, the
experiment's driver, figure and report (the closed forms are ``eblvm_eval.bias``)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from eblvm.runs import atomic_write_bytes
from eblvm_eval import (
    GAUSSIAN_NOISE_LEVELS,
    GRBM_NOISE_LEVELS,
    BiasRow,
    SlopeFit,
    fit_bias_slopes,
    gaussian_bias_sweep,
    gibbs_sample,
    grbm_bias_sweep,
)
from eblvm_eval.bias import _check_rows, _points
from ebm_models import GRBM, GaussianEBLVM

_LABELS = {"grbm": "GRBM", "gaussian": "Gaussian model", "kl": "KL", "fisher": "Fisher"}


def _bias_figure(rows: list[BiasRow], fits: list[SlopeFit]) -> Figure:
    groups = list(dict.fromkeys((row.model, row.divergence_name) for row in rows))
    figure = Figure(figsize=(4.6 * len(groups), 4.2))
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(1, len(groups), squeeze=False)[0]
    for axes, (model, divergence_name) in zip(axes_list, groups, strict=True):
        group = [r for r in rows if (r.model, r.divergence_name) == (model, divergence_name)]
        for estimator, marker in (("vaes", "o"), ("vages", "s")):
            fit = next(
                f
                for f in fits
                if (f.model, f.divergence_name, f.estimator) == (model, divergence_name, estimator)
            )
            points = np.array(_points(group, estimator))
            label = "VaES" if estimator == "vaes" else "VaGES"
            (line,) = axes.loglog(points[:, 0], points[:, 1], marker, label=label)
            span = np.geomspace(points[:, 0].min(), points[:, 0].max(), 50)
            axes.loglog(
                span,
                np.exp(fit.intercept) * span**fit.slope,
                "-",
                color=line.get_color(),
                label=f"{label} fit, slope {fit.slope:.3f}",
            )
        name = _LABELS.get(divergence_name, divergence_name)
        axes.set_xlabel(f"√{name}(q ‖ p)")
        axes.set_ylabel("bias")
        axes.set_title(f"{_LABELS.get(model, model)}, {name}")
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def write_bias_report(
    rows: Sequence[BiasRow], out_dir: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Write ``bias.json`` (``{"rows": [...], "fits": [...]}``, one row per perturbation
    level and divergence, the fits of :func:`fit_bias_slopes`) and ``bias.png`` (log-log
    bias against √divergence with the fitted lines) into ``out_dir``, each atomically.
    Returns the two paths."""
    rows = _check_rows(rows)
    fits = fit_bias_slopes(rows)
    folder = Path(out_dir)
    report = {"rows": [r._asdict() for r in rows], "fits": [f._asdict() for f in fits]}
    folder.mkdir(parents=True, exist_ok=True)
    json_path, png_path = folder / "bias.json", folder / "bias.png"
    atomic_write_bytes(json_path, json.dumps(report, indent=2).encode())
    atomic_write_bytes(png_path, _png(_bias_figure(rows, fits)))
    return json_path, png_path


def _uniform(shape: tuple[int, ...], scale: float, generator: torch.Generator) -> Tensor:
    return scale * (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1)


def run_bias_experiment(
    out_dir: str | os.PathLike[str], *, quick: bool = False, seed: int = 0
) -> list[BiasRow]:
    """Appendix F.4: a GRBM with a Bernoulli q (KL) and a Gaussian model with a Gaussian
    q (Fisher and KL), θ uniform noise (W ~ U(±1/√D), b, c ~ U(±1), log σ, log τ ~
    U(±½)), v one exact or long-run Gibbs draw from the model, float64. D = 50, H = 400;
    ``quick``: D = 10, H = 50 and 7 levels instead of 11. Writes ``bias.json`` and
    ``bias.png`` into ``out_dir`` and returns the rows."""
    if not isinstance(quick, bool):
        raise TypeError(f"quick must be a bool, got {type(quick).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    v_dim, h_dim, n_levels = (10, 50, 7) if quick else (50, 400, 11)
    generator = torch.Generator().manual_seed(seed)
    weight_scale = 1 / math.sqrt(v_dim)

    grbm = GRBM(v_dim, h_dim).to(torch.float64)
    gaussian = GaussianEBLVM(v_dim, h_dim).to(torch.float64)
    with torch.no_grad():
        for model in (grbm, gaussian):
            model.W.copy_(_uniform((v_dim, h_dim), weight_scale, generator))
            model.b.copy_(_uniform((v_dim,), 1.0, generator))
            model.c.copy_(_uniform((h_dim,), 1.0, generator))
            model.log_std.copy_(_uniform((v_dim,), 0.5, generator))
        gaussian.h_log_std.copy_(_uniform((h_dim,), 0.5, generator))
    grbm_v = gibbs_sample(grbm, 1, steps=1000, generator=generator)[0]
    gaussian_v = gaussian.sample(1, generator=generator)[0]

    def levels(default: tuple[float, ...]) -> list[float]:
        return [float(x) for x in np.geomspace(default[0], default[-1], n_levels)]

    rows = grbm_bias_sweep(
        grbm, grbm_v, noise_levels=levels(GRBM_NOISE_LEVELS), generator=generator
    ) + gaussian_bias_sweep(
        gaussian, gaussian_v, noise_levels=levels(GAUSSIAN_NOISE_LEVELS), generator=generator
    )
    write_bias_report(rows, out_dir)
    return rows


def _png(figure: Figure) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()

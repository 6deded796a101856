"""A run's curves as one PNG: training loss, posterior loss, gradient norm and the
evaluation (test and validation log-likelihood, or FID) against the iteration."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from eblvm.runs import METRICS, RunError, read_metrics
from eblvm_eval.files import write_atomically

PANELS = (
    ("loss", ("loss",), "training loss"),
    ("posterior_loss", ("posterior_loss",), "posterior loss (last fit step)"),
    ("grad_norm", ("grad_norm",), "‖∇θ‖"),
    (
        "evaluation",
        ("test_log_likelihood", "validation_log_likelihood", "fid"),
        "evaluation",
    ),
)


def plot_run(run_dir: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Draw the curves of ``run_dir/metrics.jsonl`` into ``out`` (default
    ``run_dir/curves.png``); each panel holds the keys the metrics have. Returns the path."""
    folder = Path(os.path.expanduser(str(run_dir)))
    if not folder.is_dir():
        raise RunError(f"{folder} is not a folder: name the --out folder of `eblvm train`")
    if (folder / "comparison.json").is_file():
        raise RunError(
            f"{folder} is a comparison folder: its plot is {folder / 'comparison.png'}; "
            "plot one of its runs (a folder inside it)"
        )
    rows, note = read_metrics(folder / METRICS)
    if not rows:
        why = f" ({note})" if note else ""
        raise RunError(f"{folder / METRICS} holds no metrics{why}: train the run first")
    path = Path(out) if out else folder / "curves.png"
    if path.suffix.lower() != ".png":
        raise ValueError(f"the plot is a PNG: name a .png file, got {str(path)!r}")
    panels = [
        (title, [(key, _series(rows, key)) for key in keys if _series(rows, key)[0]])
        for _, keys, title in PANELS
    ]
    panels = [(title, series) for title, series in panels if series]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for axis, (title, series) in zip(axes[0], panels, strict=True):
        for key, (x, y) in series:
            axis.plot(x, y, marker="." if len(x) < 50 else None, label=key.replace("_", " "))
        if title == "training loss" and spans_decades([v for _, (_, y) in series for v in y]):
            axis.set_yscale("log")
        axis.set_xlabel("iteration")
        axis.set_title(title)
        if len(series) > 1:
            axis.legend(fontsize="small")
    figure.suptitle(str(folder), fontsize="small")
    figure.tight_layout()
    write_atomically(path, lambda file: figure.savefig(file, format="png", dpi=110))
    plt.close(figure)
    return path


def spans_decades(values: list[float]) -> bool:
    """Whether positive ``values`` span at least a factor of 10, so that a log axis shows
    them better than a linear one (whose ticks then stay plain numbers)."""
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 10


def _series(rows: list[dict[str, object]], key: str) -> tuple[list[int], list[float]]:
    points = [
        (int(row["iteration"]), float(value))  # type: ignore[call-overload]
        for row in rows
        if isinstance(value := row.get(key), (int, float))
    ]
    return [p[0] for p in points], [p[1] for p in points]

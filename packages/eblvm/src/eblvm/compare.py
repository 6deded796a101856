"""Several methods, several seeds: test log-likelihood curves on one plot and a table."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from eblvm.config import TrainConfig
from eblvm.runs import METRICS, atomic_write_bytes, read_metrics, write_json
from eblvm.training import train


def _curve(run_dir: Path) -> list[tuple[int, float]]:
    rows = read_metrics(run_dir / METRICS)
    return [(row["iteration"], row["test_log_likelihood"]) for row in rows]


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))


def compare(
    configs: dict[str, TrainConfig],
    out_dir: str | Path,
    *,
    seeds: list[int],
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train every configuration with every seed under ``out_dir/<name>/seed<k>`` (resuming
    finished or interrupted runs), then write ``comparison.png``, ``comparison.md`` and
    ``comparison.json``. Returns the table rows (mean and standard deviation over seeds).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    rows = []
    for name, config in configs.items():
        finals, seconds, curves = [], [], []
        for seed in seeds:
            run_dir = out / name / f"seed{seed}"
            summary = train(dataclasses.replace(config, seed=seed), run_dir, progress=progress)
            finals.append(summary["test_log_likelihood"])
            seconds.append(summary["seconds"])
            curves.append(_curve(run_dir))
        mean, std = _mean_std(finals)
        rows.append(
            {
                "method": name,
                "seeds": len(seeds),
                "test_log_likelihood_mean": mean,
                "test_log_likelihood_std": std,
                "seconds_mean": sum(seconds) / len(seconds),
            }
        )
        length = min(len(curve) for curve in curves)
        iterations = [curves[0][i][0] for i in range(length)]
        stats = [_mean_std([curve[i][1] for curve in curves]) for i in range(length)]
        means = [m for m, _ in stats]
        axis.plot(iterations, means, label=name)
        axis.fill_between(
            iterations, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.2
        )
    axis.set_xlabel("iteration")
    axis.set_ylabel("test log-likelihood")
    axis.set_title(f"mean ± std over {len(seeds)} seed(s)")
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(out / ".comparison.png.tmp", format="png", dpi=120)
    plt.close(figure)
    (out / ".comparison.png.tmp").replace(out / "comparison.png")
    write_json(out / "comparison.json", rows)
    atomic_write_bytes(out / "comparison.md", format_table(rows).encode())
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the comparison rows."""
    lines = [
        "| method | seeds | test log-likelihood (mean ± std) | seconds per run |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {row['seeds']} | {row['test_log_likelihood_mean']:.4f} ± "
            f"{row['test_log_likelihood_std']:.4f} | {row['seconds_mean']:.1f} |"
        )
    return "\n".join(lines) + "\n"

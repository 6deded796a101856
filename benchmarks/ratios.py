"""Print the performance goals as ratios of benchmarks measured in one asv run.

    python ratios.py [--results DIR | --file RESULTS.json] [--markdown] [--readme README.md]

Reads the results of the newest commit under DIR (default: this folder's
``.asv/results``), or the file given, and prints each ratio next to its goal and
the paper's value. Each ratio uses the largest size that has both of its
measurements on the device (so a CPU run compares the sizes that ran on CPU).
Goals are reported, not enforced.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asv.results import Results, iter_results

HERE = Path(__file__).parent
TRAINING = "training."
GRBM_SIZES = ("frey", "checkerboard")  # preferred first
DEEP_SIZES = ("cifar10", "small")
AIS_STEPS = (2000, 200)


@dataclass(frozen=True)
class Side:
    """One benchmark at fixed parameters (all but the size)."""

    key: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Ratio:
    name: str
    workload: str
    device: str
    top: Side
    bottom: Side
    sizes: tuple[Any, ...]
    size_name: str
    goal: float
    paper: float | None
    unit: str


class Measurements:
    """The values of one results file, by benchmark key and parameter values;
    ``param_names`` from the ``benchmarks.json`` asv writes beside the results.

    Where asv recorded the samples (``--record-samples``), a value is the smallest
    sample, the least disturbed by other load on the machine, and ``ranges`` holds the
    smallest and the largest; otherwise the value is asv's (the median).
    """

    def __init__(self, result: Any, param_names: dict[str, list[str]]) -> None:
        self.param_names = param_names
        self.values: dict[str, dict[tuple[Any, ...], float]] = {}
        self.ranges: dict[str, dict[tuple[Any, ...], tuple[float, float]]] = {}
        for key in result.get_all_result_keys():
            params = result.get_result_params(key)
            values = result.get_result_value(key, params)
            samples = result.get_result_samples(key, params)
            combos = list(itertools.product(*[[ast.literal_eval(p) for p in a] for a in params]))
            if not params:
                values, samples = [values], [samples]
            if samples is None:
                samples = [None] * len(combos)
            self.values[key] = {
                combo: min(sample) if sample else value
                for combo, value, sample in zip(combos, values, samples, strict=True)
                if isinstance(value, (int, float)) and math.isfinite(value)
            }
            self.ranges[key] = {
                combo: (min(sample), max(sample))
                for combo, sample in zip(combos, samples, strict=True)
                if sample and len(sample) > 1
            }

    def get(self, key: str, params: dict[str, Any]) -> float | None:
        return self.values.get(key, {}).get(self._combo(key, params), None)

    def range(self, key: str, params: dict[str, Any]) -> tuple[float, float] | None:
        """The smallest and the largest sample, where asv recorded several."""
        return self.ranges.get(key, {}).get(self._combo(key, params), None)

    def _combo(self, key: str, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params[name] for name in self.param_names.get(key, ()))


def ratios() -> list[Ratio]:
    """Every ratio of the goals, for every device and workload it applies to."""
    rows: list[Ratio] = []
    for device in ("cpu", "cuda"):
        on = {"device": device}
        for workload, prefix, sizes in (
            ("GRBM", "GRBM", GRBM_SIZES),
            ("deep EBLVM", "Deep", DEEP_SIZES),
        ):
            timing = f"{TRAINING}{prefix}Iteration.time_iteration"
            for other, goal, paper in (("bism0", 1.0, 1.26), ("bism5", 0.5, 0.71)):
                rows.append(
                    Ratio(
                        name=f"VaGES / BiSM N={other[-1]}, iteration time",
                        workload=workload,
                        device=device,
                        top=Side(timing, {"method": "vages", **on}),
                        bottom=Side(timing, {"method": other, **on}),
                        sizes=sizes,
                        size_name="size",
                        goal=goal,
                        paper=paper,
                        unit="s",
                    )
                )
            memory = (
                [
                    ("IterationMemory.track_working_mib", "peak tensor memory", "MiB"),
                    ("IterationMemory.track_saved_mib", "saved-tensor memory", "MiB"),
                    ("IterationMemory.peakmem_iteration", "process peak RSS", "bytes"),
                ]
                if device == "cpu"
                else [("IterationGPU.track_gpu_peak_mib", "peak GPU memory", "MiB")]
            )
            for suffix, what, unit in memory:
                key = f"{TRAINING}{prefix}{suffix}"
                rows.append(
                    Ratio(
                        name=f"VaGES / BiSM N=0, {what}",
                        workload=workload,
                        device=device,
                        top=Side(key, {"method": "vages"}),
                        bottom=Side(key, {"method": "bism0"}),
                        sizes=sizes,
                        size_name="size",
                        goal=0.75,
                        paper=0.85,
                        unit=unit,
                    )
                )
        deep_timing = f"{TRAINING}DeepIteration.time_iteration"
        rows.append(
            Ratio(
                name="EBLVM (VaGES-MDSM) / EBM (MDSM), iteration time",
                workload="deep EBLVM",
                device=device,
                top=Side(deep_timing, {"method": "vages", **on}),
                bottom=Side(deep_timing, {"method": "ebm", **on}),
                sizes=DEEP_SIZES,
                size_name="size",
                goal=2.0,
                paper=2.8,
                unit="s",
            )
        )
        rows.append(
            Ratio(
                name="AIS / its matrix products, time",
                workload="AIS, 2000 chains",
                device=device,
                top=Side("evaluation.AIS.time_ais", on),
                bottom=Side("evaluation.AIS.time_matrix_products", on),
                sizes=AIS_STEPS,
                size_name="steps",
                goal=1.3,
                paper=None,
                unit="s",
            )
        )
    return rows


STACKED = f"{TRAINING}StackedGRBM"


def stacked_rows(measurements: Measurements) -> list[list[str]]:
    """Per-run iteration cost of each checkerboard method's compiled stack of S runs,
    as a fraction of one run's eager step (measured in the same run), and the compile
    time."""
    timing, compile_time = f"{STACKED}.time_iteration", f"{STACKED}.track_compile_seconds"
    names = measurements.param_names.get(timing)
    if not names:
        return []
    rows = []
    methods = dict.fromkeys(combo[0] for combo in measurements.values.get(timing, {}))
    for device in ("cpu", "cuda"):
        for method in methods:
            base = {"method": method, "runs": 1, "mode": "eager", "device": device}
            eager = measurements.get(timing, base)
            if eager is None:
                continue
            cells = [method, device, _format(eager, "s")]
            for runs in (1, 3, 10, 30):
                params = {**base, "runs": runs, "mode": "compiled"}
                value = measurements.get(timing, params)
                cells.append("-" if value is None else f"{value / runs / eager:.3f}")
            seconds = measurements.get(compile_time, {**base, "runs": 1, "mode": "compiled"})
            cells.append("-" if seconds is None else f"{seconds:.0f} s")
            rows.append(cells)
    return rows


STACKED_HEADER = ["method", "device", "eager, 1 run", "S=1", "S=3", "S=10", "S=30", "compile"]


def _format(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1e3:.1f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "bytes":
        return f"{value / 2**20:.0f} MiB"
    return f"{value:.2f} {unit}"


def table(measurements: Measurements) -> list[list[str]]:
    """Rows of the printed table, for the ratios whose measurements are present."""
    lines = []
    for ratio in ratios():
        for size in ratio.sizes:
            sides = [
                (side.key, {**side.params, ratio.size_name: size})
                for side in (ratio.top, ratio.bottom)
            ]
            top, bottom = (measurements.get(*side) for side in sides)
            if top is not None and bottom is not None and bottom > 0:
                measured = top / bottom
                top_range, bottom_range = (measurements.range(*side) for side in sides)
                spread = "-"
                if top_range is not None and bottom_range is not None:
                    spread = (
                        f"{top_range[0] / bottom_range[1]:.2f}–{top_range[1] / bottom_range[0]:.2f}"
                    )
                lines.append(
                    [
                        ratio.name,
                        f"{ratio.workload} ({ratio.size_name} {size})",
                        ratio.device,
                        f"{_format(top, ratio.unit)} / {_format(bottom, ratio.unit)}",
                        f"{measured:.2f}",
                        spread,
                        f"<= {ratio.goal:g}",
                        "-" if ratio.paper is None else f"{ratio.paper:g}",
                        "met" if measured <= ratio.goal else "missed",
                    ]
                )
                break
    return lines


def newest(results_dir: Path) -> Any:
    """The results file of the newest commit under ``results_dir`` (of its most
    recent run, where several environments ran it)."""
    found = list(iter_results(str(results_dir)))
    if not found:
        raise SystemExit(f"no asv results under {results_dir}")
    return max(found, key=lambda r: (r.date or 0, max(r.started_at.values(), default=0)))


def param_names(results_dir: Path) -> dict[str, list[str]]:
    """Each benchmark's parameter names, from asv's ``benchmarks.json``."""
    path = results_dir / "benchmarks.json"
    if not path.is_file():
        raise SystemExit(f"no {path}: run asv first")
    benchmarks = json.loads(path.read_text())
    return {
        key: list(info.get("param_names", []))
        for key, info in benchmarks.items()
        if isinstance(info, dict)
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--results", type=Path, default=HERE / ".asv" / "results")
    source.add_argument("--file", type=Path, help="one asv results JSON file")
    parser.add_argument(
        "--markdown", action="store_true", help="also print the tables as Markdown (the README's)"
    )
    parser.add_argument(
        "--readme", type=Path, help="write the tables into this README's measured section"
    )
    args = parser.parse_args(argv)
    if args.file is not None:
        result = Results.load(str(args.file))
        results_dir = args.file.parent.parent
    else:
        result = newest(args.results)
        results_dir = args.results
    header = ["ratio", "workload", "device", "measured", "ratio", "range", "goal", "paper", ""]
    measurements = Measurements(result, param_names(results_dir))
    rows = table(measurements)
    stacked = stacked_rows(measurements)
    if not rows and not stacked:
        raise SystemExit("the results hold none of the measurements the ratios need")
    print(f"commit {result.commit_hash[:8]}, environment {result.env_name}")
    _print(header, rows)
    if stacked:
        print("\nper-run iteration cost of a compiled stack of S runs / one eager run")
        _print(STACKED_HEADER, stacked)
    tables = _markdown(header, rows)
    if stacked:
        tables += "\n\nPer-run iteration cost of a compiled stack of S runs, against one run's "
        tables += "eager step:\n\n" + _markdown(STACKED_HEADER, stacked)
    if args.markdown:
        print("\n" + tables)
    if args.readme is not None:
        _write_readme(args.readme, tables, result)


START, END = "<!-- ratios: written by ratios.py --readme -->", "<!-- /ratios -->"


def _write_readme(path: Path, tables: str, result: Any) -> None:
    """Replace the README's measured section (between the two markers) by the tables."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} section to write")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    measured = (
        f"{START}\nCommit {result.commit_hash[:8]}, machine "
        f"{result.params.get('machine', '?')}:\n\n{tables}\n{END}"
    )
    path.write_text(head + measured + tail)


def _print(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""The GPU check, one script: on a CUDA machine, in a few minutes, run

1. the CUDA tests (``pytest -m cuda``);
2. the GPU benchmarks of the asv suites (training iterations of every method, GRBM
   and deep, with their peak GPU memory and throughput; AIS);
3. the paper's Table 2 comparison on CIFAR10-shaped data at batch 64: VaGES, BiSM
   N = 0, 2, 5 and the EBM (MDSM), iterations per second and peak GPU memory, side by
   side, and each against VaGES;
4. stacks of checkerboard runs compiled into one step (S = 1, 100, 1000 seeds): the
   per-run iteration time;

and print one table (also written as JSON to ``--out``). The packages are used from
this checkout (``packages/*/src`` on the path); nothing is installed.

    python benchmarks/gpu_check.py [--out DIR] [--dry]

Without a CUDA device it stops at once with a message and status 2; ``--dry`` runs
every stage on the CPU at tiny sizes instead, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [str(p) for p in sorted((ROOT / "packages").glob("*/src"))]
sys.path[:0] = [*SOURCES, str(ROOT / "benchmarks")]

import torch  # noqa: E402

from benchmarks import workloads as w  # noqa: E402

TABLE2 = ("vages", "bism0", "bism2", "bism5", "ebm")
STACKS = (1, 100, 1000)


def _seconds(fn: Callable[[], object], dev: torch.device, repeats: int) -> float:
    """Mean seconds per call of ``fn`` after one warm-up call."""
    fn()
    w.synchronize(dev)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    w.synchronize(dev)
    return (time.perf_counter() - start) / repeats


def _peak_mib(fn: Callable[[], object], dev: torch.device) -> float | None:
    return w.gpu_peak_mib(fn, dev) if dev.type == "cuda" else None


def cuda_tests(dry: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]
    command += [str(p) for p in sorted((ROOT / "packages").glob("*/tests"))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(SOURCES)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    last = (done.stdout.strip().splitlines() or ["no output"])[-1]
    ok = done.returncode in (0, 5) if dry else done.returncode == 0  # 5: none collected
    return {"stage": "CUDA tests", "result": last, "ok": ok}


def iterations(dev: torch.device, dry: bool) -> list[dict[str, Any]]:
    """Every training iteration of the GPU suites: time, peak memory, examples/s."""
    rows = []
    grbm_sizes = ["checkerboard"] if dry else list(w.GRBM_SIZES)
    deep_sizes = ["small"] if dry else list(w.DEEP_SIZES)
    cases = [("GRBM", s, m, w.grbm_iteration) for s in grbm_sizes for m in w.GRBM_METHODS]
    cases += [("deep", s, m, w.deep_iteration) for s in deep_sizes for m in w.DEEP_METHODS]
    for family, size, method, build in cases:
        try:
            iteration = build(size, method, dev)
        except NotImplementedError as skipped:  # a large size on the CPU
            rows.append({"workload": f"{family} {size}", "method": method, "skipped": str(skipped)})
            continue
        seconds = _seconds(iteration.step, dev, 2 if dry else 10)
        rows.append(
            {
                "workload": f"{family} {size}",
                "method": method,
                "ms_per_iteration": 1e3 * seconds,
                "examples_per_second": len(iteration.v) / seconds,
                "peak_gpu_mib": _peak_mib(iteration.step, dev),
            }
        )
    return rows


def table2(dev: torch.device, dry: bool) -> list[dict[str, Any]]:
    """CIFAR10 at batch 64 (the paper's network; ``small`` when dry)."""
    size = "small" if dry else "cifar10"
    rows = []
    for method in TABLE2:
        iteration = w.deep_iteration(size, method, dev)
        seconds = _seconds(iteration.step, dev, 2 if dry else 10)
        rows.append(
            {
                "method": method,
                "iterations_per_second": 1 / seconds,
                "peak_gpu_mib": _peak_mib(iteration.step, dev),
            }
        )
    vages = rows[0]
    for row in rows:
        row["time_vs_vages"] = vages["iterations_per_second"] / row["iterations_per_second"]
        if row["peak_gpu_mib"] is not None:
            row["memory_vs_vages"] = row["peak_gpu_mib"] / vages["peak_gpu_mib"]
    return rows


def stacks(dev: torch.device, dry: bool) -> list[dict[str, Any]]:
    """Checkerboard VaGES-DSM and DSM: a compiled stack of S runs, per-run time."""
    rows = []
    for method in ("vages-dsm", "dsm"):
        eager = w.checkerboard_iteration(method, 1, dev, compiled=False)
        baseline = _seconds(eager.step, dev, 3 if dry else 50)
        for runs in (1, 2) if dry else STACKS:
            start = time.perf_counter()
            stacked = w.checkerboard_iteration(method, runs, dev, compiled=True)
            stacked.step()
            compile_seconds = time.perf_counter() - start
            seconds = _seconds(stacked.step, dev, 3 if dry else 100)
            rows.append(
                {
                    "method": method,
                    "runs": runs,
                    "ms_per_stack_iteration": 1e3 * seconds,
                    "per_run_vs_one_eager_run": seconds / runs / baseline,
                    "compile_seconds": compile_seconds,
                    "peak_gpu_mib": _peak_mib(stacked.step, dev),
                }
            )
    return rows


def _print(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    if not rows:
        return
    keys = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(n) for k, n in zip(keys, widths, strict=True)))
    for line in cells:
        print("  ".join(c.ljust(n) for c, n in zip(line, widths, strict=True)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path("gpu-check"), help="folder for gpu_check.json"
    )
    parser.add_argument("--dry", action="store_true", help="every stage on the CPU at tiny sizes")
    args = parser.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False): run it on a GPU "
            "machine, or with --dry to check the script on the CPU",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(1 if args.dry else torch.get_num_threads())
    dev = torch.device("cpu" if args.dry else "cuda")
    started = time.perf_counter()
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (dry run)",
        "torch": torch.__version__,
    }
    report["tests"] = cuda_tests(args.dry)
    report["iterations"] = iterations(dev, args.dry)
    report["table2"] = table2(dev, args.dry)
    report["stacks"] = stacks(dev, args.dry)
    report["seconds"] = time.perf_counter() - started
    print(f"device {report['device']}, torch {report['torch']}")
    print(f"CUDA tests: {report['tests']['result']}")
    _print("training iterations", report["iterations"])
    _print("Table 2 (CIFAR10, batch 64): VaGES against BiSM and the EBM", report["table2"])
    _print("compiled stacks of checkerboard runs", report["stacks"])
    print(f"\n{report['seconds']:.0f} s in all")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["tests"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Compare score estimators on speed and quality: VaGES-DSM, importance-sampling DSM
and DSM with the GRBM's exact score on the checkerboard, over a few seeds.

``eblvm.compare`` trains every (method, seed) run, the seeds of one method as one
compiled stack, evaluates the test log-likelihood (exact log Z) as training goes, and
writes a table and the mean ± std curves (``comparison.png``). This script prints the
final test log-likelihood and the training time per iteration of each method.

    python examples/compare_estimators.py            # a few minutes on a laptop CPU
    python examples/compare_estimators.py --tiny     # seconds: a check that it runs
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from eblvm import apply_overrides, compare, get_preset

# Each compared method: the preset it starts from and what changes.
METHODS = {
    "vages-dsm": ("checkerboard-vages-dsm", []),  # VaGES, L = 2 draws of a fitted q
    "is-dsm": ("checkerboard-vages-dsm", ["method=is"]),  # self-normalised IS, the same q
    "exact-dsm": ("checkerboard-dsm", []),  # the GRBM's exact score
}


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: CI's check")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/examples/...")
    parser.add_argument("--seeds", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    out = args.out or Path(f"runs/examples/compare_estimators{'-tiny' if args.tiny else ''}")
    torch.set_num_threads(1)  # GRBM steps are small; one thread each
    iterations, n_train, every = (100, 2000, 50) if args.tiny else (10_000, 20_000, 1000)
    seeds = range(2 if args.tiny else args.seeds)
    common = [
        f"iterations={iterations}",
        f"n_train={n_train}",
        "lr=3e-3",  # checkerboard-quick's step size: the two squares within 10k iterations
        "posterior_lr=3e-3",
        f"log_every={every}",
        f"eval_every={every}",
        f"checkpoint_every={iterations}",
        # Compiling takes seconds per method: worth it for 10k iterations, not for 100.
        f"compile={'off' if args.tiny else 'auto'}",
    ]
    configs = {
        name: apply_overrides(get_preset(preset), [*changes, *common])
        for name, (preset, changes) in METHODS.items()
    }
    rows = compare(configs, out, seeds=seeds, progress=False)

    print(f"\n{len(seeds)} seeds × {iterations} iterations, checkerboard GRBM (h = 4)\n")
    print(f"{'method':10s}  {'test log-likelihood':>20s}  {'ms / iteration':>14s}  compile s")
    for row in rows:
        mean, std = row["test_log_likelihood_mean"], row["test_log_likelihood_std"]
        per_iteration = 1000 * row["seconds_per_run"] / iterations
        # Each run's summary.json (out/<name>/seed<k>/) has its stack's compile time.
        summary = json.loads((out / row["method"] / f"seed{seeds[0]}" / "summary.json").read_text())
        compiled = summary["compile_seconds"] if summary.get("compiled") else None
        print(
            f"{row['method']:10s}  {mean:10.4f} ± {std:.4f}  {per_iteration:14.3f}  "
            f"{'–' if compiled is None else f'{compiled:9.1f}'}"
        )
    ceiling = rows[0].get("data_log_likelihood")
    if ceiling is not None:
        print(f"the data's own test log-density: {ceiling:.4f}")
    print(
        "ms / iteration: a stack's training time ÷ its runs ÷ iterations (each method's\n"
        "seeds train as one stack); compile s: tracing and compiling the stack's step, once"
    )
    print(f"curves: {out / 'comparison.png'}; table: {out / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

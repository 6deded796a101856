"""A deep EBLVM on Fashion-MNIST, trained with VaGES-MDSM, sampled by annealed Langevin
dynamics.

The ``fashion-vages-mdsm`` preset (a residual-net energy E(v, h) with h = 50, a
Gaussian q(h | v) fitted by the posterior Fisher divergence, VaGES with L = 2 refined
draws, multiscale DSM) shrunk to a CPU: half the network's width, batch 32, a few
hundred iterations. Then a grid of samples: h is the posterior mean of a training
image, v starts as noise and follows annealed Langevin dynamics of E(v, h).

The images are read from Debian's ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``; ``--data-root`` for another folder). A few
hundred iterations give blurred shapes, not recognisable clothing.

    python examples/fashion_deep_eblvm.py            # minutes on a laptop CPU
    python examples/fashion_deep_eblvm.py --tiny     # seconds: a check that it runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from eblvm import apply_overrides, get_preset, task_for, train
from eblvm.images import sample_run
from eblvm_data import FASHION_MNIST_ROOT

# The preset shrunk: one block per stage of width 16 (the preset's: 32), q's network
# width 8, batch 32, a larger step size with cosine decay.
SHRUNK = [
    "base_width=16",
    "posterior_width=8",
    "batch_size=32",
    "lr=1e-3",
    "posterior_lr=1e-3",
    "lr_min=1e-5",
    "evaluation.select_by=none",
]
# A step in milliseconds, for CI.
TINY = [
    "h_dim=4",
    "base_width=4",
    "posterior_width=4",
    "batch_size=8",
    "posterior_steps=1",
    "refine_steps=1",
    "device=cpu",
    "evaluation.select_by=none",
]


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: CI's check")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/examples/...")
    parser.add_argument("--data-root", default=FASHION_MNIST_ROOT)
    parser.add_argument("--iterations", type=int, default=400)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    out = args.out or Path(f"runs/examples/fashion_deep_eblvm{'-tiny' if args.tiny else ''}")
    iterations = 6 if args.tiny else args.iterations
    every = max(1, iterations // 8)
    settings = apply_overrides(
        get_preset("fashion-vages-mdsm"),
        [
            *(TINY if args.tiny else SHRUNK),
            f"data_root={args.data_root}",
            f"iterations={iterations}",
            f"log_every={every}",
            f"eval_every={iterations}",
            f"checkpoint_every={iterations}",
        ],
    )
    try:
        task = task_for(settings)  # reads the images
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run = out / "run"
    shutil.rmtree(run, ignore_errors=True)  # a finished run would not train again
    start = time.perf_counter()
    summary = train(task, settings, run, progress=False)
    print(
        f"trained {summary['iterations']} iterations in {time.perf_counter() - start:.0f} s "
        f"(batch {settings.data.batch_size}, base width {settings.model.base_width}); "
        f"MDSM loss every {every} iterations:"
    )
    for row in _losses(run):
        print(f"  iteration {row[0]:5d}  loss {row[1]:12.1f}")

    start = time.perf_counter()
    n, steps = (4, (2, 4, 2)) if args.tiny else (36, (100, 400, 50))
    path = sample_run(run, n=n, steps=steps, out=out / "samples.png")
    print(
        f"{n} samples by annealed Langevin dynamics ({sum(steps)} steps, the EMA of the "
        f"model) in {time.perf_counter() - start:.0f} s: {path}"
    )
    return 0


def _losses(run: Path) -> list[tuple[int, float]]:
    """(iteration, mean loss) of each row of the run's metrics.jsonl that has a loss."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(row["iteration"], row["loss"]) for row in rows if "loss" in row]


if __name__ == "__main__":
    raise SystemExit(main())

"""Train a GRBM with the toolkit's trainer and evaluate it by AIS, checked against the
exact log-partition function.

The GRBM (ebm-models) and its Bernoulli posterior are built here and handed to the
trainer (eblvm) through ``ModelTask``, with the settings of the ``checkerboard-vages-dsm``
preset (VaGES-DSM). At every evaluation the trainer calls ``evaluate`` below: log Z by
annealed importance sampling (eblvm-eval's ``ais_log_partition``) and, since h is small
(2^12 states), exactly by enumeration (``exact_log_partition``); the test
log-likelihood under each. At the end, the AIS estimate of the trained model against
the number of annealing steps is drawn beside the exact value.

    python examples/grbm_ais.py            # a few minutes on a laptop CPU
    python examples/grbm_ais.py --tiny     # seconds: a check that it runs
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

from eblvm import Model, ModelTask, apply_overrides, get_preset, train
from eblvm_data import CHECKERBOARD_LOG_DENSITY, checkerboard_splits
from eblvm_eval import ais_log_partition, exact_log_partition, log_likelihood
from ebm_models import GRBM
from score_estimators import BernoulliPosterior

H_DIM = 12  # small enough for the exact log Z: 2^12 hidden states


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: CI's check")
    parser.add_argument("--out", type=Path, default=None, help="default: runs/examples/...")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    out = args.out or Path(f"runs/examples/grbm_ais{'-tiny' if args.tiny else ''}")
    torch.manual_seed(args.seed)  # q's initial network
    torch.set_num_threads(1)  # a model this small gains nothing from more threads
    tiny = args.tiny
    iterations, n_train = (200, 2000) if tiny else (10_000, 20_000)
    chains, steps = (100, 100) if tiny else (1000, 1000)
    data = checkerboard_splits(n_train=n_train)

    def build(generator: torch.Generator) -> Model:
        grbm = GRBM(2, H_DIM, weight_std=0.5, generator=generator)
        with torch.no_grad():
            grbm.b.copy_(data.train.mean(0))
        posterior = BernoulliPosterior(nn.Linear(2, H_DIM), temperature=0.1)
        return Model(grbm, posterior, (H_DIM,))

    final: dict[str, GRBM] = {}

    def evaluate(model: Model, iteration: int) -> dict[str, Any]:
        grbm = model.energy
        assert isinstance(grbm, GRBM)
        final["grbm"] = copy.deepcopy(grbm)
        generator = torch.Generator().manual_seed(args.seed + iteration)
        with torch.no_grad():
            exact = float(exact_log_partition(grbm))
            ais = ais_log_partition(grbm, n_chains=chains, n_steps=steps, generator=generator)
            log_z = float(ais.log_z)
            return {
                "log_z_exact": exact,
                "log_z_ais": log_z,
                "log_z_ais_std_err": float(ais.log_z_std_err),
                "validation_log_likelihood": float(
                    log_likelihood(grbm, data.validation, log_z=log_z).mean()
                ),
                "test_log_likelihood_ais": float(
                    log_likelihood(grbm, data.test, log_z=log_z).mean()
                ),
                "test_log_likelihood_exact": float(
                    log_likelihood(grbm, data.test, log_z=exact).mean()
                ),
            }

    every = iterations // 5
    settings = apply_overrides(
        get_preset("checkerboard-vages-dsm"),
        [
            "dataset=custom",
            f"seed={args.seed}",
            "lr=3e-3",
            "posterior_lr=3e-3",
            f"iterations={iterations}",
            f"log_every={every}",
            f"eval_every={every}",
            f"checkpoint_every={iterations}",
            "evaluation.select_by=validation",
        ],
    )
    task = ModelTask(
        data.train, build, evaluate=evaluate, selection=("validation_log_likelihood", "max")
    )
    run = out / "run"
    shutil.rmtree(run, ignore_errors=True)  # a finished run would not train (or evaluate) again
    summary = train(task, settings, run, progress=False)

    rows = [row for row in _metrics(run) if "log_z_exact" in row]
    print(f"AIS: {chains} chains × {steps} steps; exact: enumeration of 2^{H_DIM} states\n")
    print("iteration  log Z exact  log Z AIS (± s.e.)   test log-lik. exact   AIS")
    for row in rows:
        print(
            f"{row['iteration']:9d}  {row['log_z_exact']:11.4f}  "
            f"{row['log_z_ais']:9.4f} (± {row['log_z_ais_std_err']:.4f})   "
            f"{row['test_log_likelihood_exact']:19.4f}  {row['test_log_likelihood_ais']:7.4f}"
        )
    gap = summary["log_z_ais"] - summary["log_z_exact"]
    print(
        f"\nselected by validation log-likelihood: test {summary['test_log_likelihood_ais']:.4f} "
        f"nats by AIS, {summary['test_log_likelihood_exact']:.4f} exact (the data's own "
        f"{CHECKERBOARD_LOG_DENSITY:.4f}); log Z by AIS − exact = {gap:+.1e}, "
        f"{gap / max(summary['log_z_ais_std_err'], 1e-12):+.2f} standard errors"
    )
    path = _ais_against_steps(final["grbm"], out / "ais.png", tiny=tiny, seed=args.seed)
    print(f"AIS against its number of steps: {path}")
    return 0


def _metrics(run: Path) -> list[dict[str, Any]]:
    """The rows of the run's metrics.jsonl (one JSON object a line)."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _ais_against_steps(grbm: GRBM, path: Path, *, tiny: bool, seed: int) -> Path:
    """Plot AIS's log Z (± 2 standard errors) against the number of annealing steps, with
    the exact value; returns the path."""
    counts = [10, 30, 100] if tiny else [10, 30, 100, 300, 1000, 3000]
    chains = 100 if tiny else 500
    with torch.no_grad():
        exact = float(exact_log_partition(grbm))
        results = [
            ais_log_partition(
                grbm, n_chains=chains, n_steps=n, generator=torch.Generator().manual_seed(seed)
            )
            for n in counts
        ]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.errorbar(
        counts,
        [float(r.log_z) for r in results],
        yerr=[2 * float(r.log_z_std_err) for r in results],
        marker="o",
        capsize=3,
        label=f"AIS, {chains} chains (± 2 s.e.)",
    )
    axis.axhline(exact, color="black", linestyle="--", label=f"exact log Z = {exact:.4f}")
    axis.set_xscale("log")
    axis.set_xlabel("annealing steps")
    axis.set_ylabel("log Z")
    axis.set_title(f"the trained GRBM (h = {H_DIM}): AIS against enumeration")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


if __name__ == "__main__":
    raise SystemExit(main())

"""The ``eblvm`` command: list presets, train one, compare several."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eblvm.compare import compare, format_table
from eblvm.config import TrainConfig, apply_overrides
from eblvm.presets import PRESETS, get_preset
from eblvm.training import RunMismatch, TrainingDiverged, train


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eblvm",
        description="Train and evaluate energy-based latent variable models (VaGES and baselines).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the presets")

    train_parser = commands.add_parser("train", help="train one preset")
    train_parser.add_argument("preset")
    train_parser.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    train_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    train_parser.add_argument("--no-progress", action="store_true")

    compare_parser = commands.add_parser("compare", help="compare presets over seeds")
    compare_parser.add_argument("presets", nargs="+")
    compare_parser.add_argument("--out", required=True)
    compare_parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    compare_parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    compare_parser.add_argument(
        "--sweep",
        metavar="KEY=V1,V2,...",
        help="also vary one setting: each preset runs once per value",
    )
    compare_parser.add_argument("--no-progress", action="store_true")
    return parser


def _describe(name: str, config: TrainConfig) -> str:
    return (
        f"{name:28s} {config.dataset:12s} {config.method}-{config.objective:5s} "
        f"h={config.h_dim} L={config.n_samples} K={config.posterior_steps} "
        f"iterations={config.iterations}"
    )


def _configs(args: argparse.Namespace) -> dict[str, TrainConfig]:
    configs = {name: apply_overrides(get_preset(name), args.set) for name in args.presets}
    if not args.sweep:
        return configs
    key, sep, values = args.sweep.partition("=")
    if not sep or not values:
        raise ValueError(f"--sweep expects KEY=V1,V2,..., got {args.sweep!r}")
    return {
        f"{name}-{key}={value}": apply_overrides(config, [f"{key}={value}"])
        for name, config in configs.items()
        for value in values.split(",")
    }


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name, config in PRESETS.items():
            print(_describe(name, config))
        return 0
    if args.command == "train":
        config = apply_overrides(get_preset(args.preset), args.set)
        summary = train(config, args.out, progress=not args.no_progress)
        print(
            f"test log-likelihood {summary['test_log_likelihood']:.4f} "
            f"(log Z by {summary['log_z_method']}) after {summary['iterations']} iterations "
            f"in {summary['seconds']:.1f} s; summary: {args.out}/summary.json"
        )
        if "density_plot" in summary:
            print(f"density plot: {summary['density_plot']}")
        return 0
    rows = compare(
        _configs(args),
        args.out,
        seeds=list(range(args.seeds)),
        progress=not args.no_progress,
    )
    print(format_table(rows), end="")
    print(f"plot: {args.out}/comparison.png")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input and diverged runs end with a message, not a traceback."""
    try:
        return run(argv)
    except TrainingDiverged as error:
        print(f"eblvm: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, RunMismatch) as error:
        print(f"eblvm: error: {error}", file=sys.stderr)
        return 2

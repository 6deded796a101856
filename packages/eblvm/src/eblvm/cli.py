"""The ``eblvm`` command: list presets, train one, compare several, sample and score
image runs, compute a data set's FID reference statistics.

Each subcommand is a pair of functions: ``_add_<name>(commands)`` declares its
arguments and names ``_<name>(args) -> exit status`` as its handler; ``SUBCOMMANDS``
lists the first of each pair.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import distributed as dist

from eblvm.compare import compare, format_table
from eblvm.config import TrainConfig, apply_overrides
from eblvm.image_config import IMAGE_DATASETS, ImageTrainConfig
from eblvm.image_presets import IMAGE_PRESETS
from eblvm.image_training import train_images
from eblvm.presets import PRESETS, get_preset
from eblvm.runs import RunMismatch, TrainingDiverged
from eblvm.sampling import fid_of_run, reference_stats, sample_run
from eblvm.training import train
from eblvm_eval.bias import fit_bias_slopes, run_bias_experiment
from eblvm_eval.fisher import format_fisher_table, run_fisher_experiment

Handler = Callable[[argparse.Namespace], int]


def _preset(name: str) -> TrainConfig | ImageTrainConfig:
    """A GRBM or an image preset by name."""
    if name in IMAGE_PRESETS:
        return IMAGE_PRESETS[name]
    if name in PRESETS:
        return PRESETS[name]
    raise ValueError(
        f"unknown preset {name!r}; run `eblvm list` to see them: "
        f"{', '.join([*PRESETS, *IMAGE_PRESETS])}"
    )


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _device(name: str | None) -> torch.device | None:
    return None if name is None else torch.device(name)


# ----------------------------------------------------------------------------- list


def _add_list(commands: Any) -> None:
    parser = commands.add_parser("list", help="list the presets (GRBM and image)")
    parser.set_defaults(handler=_list)


def _describe(name: str, config: TrainConfig) -> str:
    return (
        f"{name:28s} {config.dataset:12s} {config.method}-{config.objective:5s} "
        f"h={config.h_dim} L={config.n_samples} K={config.posterior_steps} "
        f"iterations={config.iterations}"
    )


def _describe_image(name: str, config: ImageTrainConfig) -> str:
    latent = f"h={config.h_dim} K={config.posterior_steps} "
    estimator = {
        "vages": f"{latent}L={config.n_samples} ",
        "bism": f"{latent}N={config.n_unroll} ",
        "ebm": "",
    }
    shape = f"{config.channels}x{config.image_size}x{config.image_size}"
    return (
        f"{name:28s} {config.dataset:12s} {config.method + '-mdsm':10s} {shape:9s} "
        f"k={config.blocks_per_stage} {estimator[config.method]}iterations={config.iterations}"
    )


def _list(args: argparse.Namespace) -> int:
    print("GRBM presets:")
    for name, config in PRESETS.items():
        print(_describe(name, config))
    print("\nimage presets (deep EBLVM and EBM, MDSM):")
    for name, image_config in IMAGE_PRESETS.items():
        print(_describe_image(name, image_config))
    return 0


# ----------------------------------------------------------------------------- train


def _add_train(commands: Any) -> None:
    parser = commands.add_parser("train", help="train one preset (GRBM or image)")
    parser.add_argument("preset")
    parser.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    config = apply_overrides(_preset(args.preset), args.set)
    if isinstance(config, ImageTrainConfig):
        return _train_image_preset(config, args)
    return _train_grbm_preset(config, args)


def _train_image_preset(config: ImageTrainConfig, args: argparse.Namespace) -> int:
    summary = train_images(config, args.out, progress=not args.no_progress)
    if _distributed() and dist.get_rank() != 0:
        return 0  # rank 0 reports for every process
    selection = summary["checkpoint_selection"]
    chosen = (
        f"best FID {selection['best_fid']:.2f} at iteration {selection['best_iteration']}"
        if selection["by"] == "fid"
        else selection["reason"]
    )
    print(
        f"MDSM loss {summary['loss']:.6g} after {summary['iterations']} iterations "
        f"in {summary['seconds']:.1f} s on {summary['processes']} process(es); {chosen}; "
        f"summary: {args.out}/summary.json"
    )
    return 0


def _train_grbm_preset(config: TrainConfig, args: argparse.Namespace) -> int:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(
            f"{args.preset} is a GRBM preset, which trains on one process; run it without "
            "torchrun (only the image presets train data-parallel)"
        )
    summary = train(config, args.out, progress=not args.no_progress)
    print(
        f"test log-likelihood {summary['test_log_likelihood']:.4f} "
        f"(log Z by {summary['log_z_method']}) after {summary['iterations']} iterations "
        f"in {summary['seconds']:.1f} s; summary: {args.out}/summary.json"
    )
    if "density_plot" in summary:
        print(f"density plot: {summary['density_plot']}")
    return 0


# ----------------------------------------------------------------------------- compare


def _add_compare(commands: Any) -> None:
    parser = commands.add_parser("compare", help="compare GRBM presets over seeds")
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--sweep",
        metavar="KEY=V1,V2,...",
        help="also vary one setting: each preset runs once per value",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(handler=_compare)


def _compare_configs(args: argparse.Namespace) -> dict[str, TrainConfig]:
    for name in args.presets:
        if name in IMAGE_PRESETS:
            raise ValueError(
                f"compare works on the GRBM presets only; {name!r} is an image preset: "
                "train it with `eblvm train`"
            )
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


def _compare(args: argparse.Namespace) -> int:
    rows = compare(
        _compare_configs(args),
        args.out,
        seeds=list(range(args.seeds)),
        progress=not args.no_progress,
    )
    print(format_table(rows), end="")
    print(f"plot: {args.out}/comparison.png")
    return 0


# ----------------------------------------------------------------------------- sample, fid


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", help="Inception weights file (default: the EBLVM_FID_WEIGHTS variable)"
    )


def _add_sampling_options(parser: argparse.ArgumentParser, *, n: int) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="folder of an image run")
    parser.add_argument("--n", type=int, default=n, help=f"number of samples (default {n})")
    parser.add_argument(
        "--steps",
        type=int,
        nargs=3,
        metavar=("HOLD", "ANNEAL", "FINAL"),
        help="annealing steps at T max, from T max to 1, from 1 to 0 (default: the run's)",
    )
    parser.add_argument("--step-size", type=float, help="Langevin step (default: the run's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--data-root", help="where the run's data set is (default: the run's)")


def _add_sample(commands: Any) -> None:
    parser = commands.add_parser(
        "sample", help="sample an image run (annealed Langevin) into samples.png"
    )
    _add_sampling_options(parser, n=64)
    parser.add_argument("--out", help="PNG path (default: RUN_DIR/samples.png)")
    parser.set_defaults(handler=_sample)


def _sample(args: argparse.Namespace) -> int:
    path = sample_run(
        args.run_dir,
        n=args.n,
        steps=tuple(args.steps) if args.steps else None,
        step_size=args.step_size,
        seed=args.seed,
        out=args.out,
        device=_device(args.device),
        data_root=args.data_root,
    )
    print(f"{args.n} samples: {path}")
    return 0


def _add_fid(commands: Any) -> None:
    parser = commands.add_parser("fid", help="FID of an image run's samples")
    _add_sampling_options(parser, n=5000)
    parser.add_argument(
        "--stats", required=True, help="reference statistics (.npz, e.g. from fid-stats)"
    )
    _add_weights_option(parser)
    parser.set_defaults(handler=_fid)


def _fid(args: argparse.Namespace) -> int:
    record = fid_of_run(
        args.run_dir,
        args.stats,
        weights=args.weights,
        n=args.n,
        steps=tuple(args.steps) if args.steps else None,
        step_size=args.step_size,
        seed=args.seed,
        device=_device(args.device),
        data_root=args.data_root,
    )
    print(f"FID {record['fid']:.3f} on {record['n']} samples; written to {args.run_dir}/fid.json")
    return 0


def _add_fid_stats(commands: Any) -> None:
    parser = commands.add_parser(
        "fid-stats",
        help="Inception statistics of a data set: the reference (.npz) of fid and of FID "
        "checkpoint selection",
    )
    parser.add_argument("dataset", metavar="DATASET", help=", ".join(IMAGE_DATASETS))
    parser.add_argument("--out", required=True, help="statistics file (.npz)")
    parser.add_argument(
        "--split",
        default="train",
        help="train (the images the presets train on: train and validation splits) or test "
        "(default train)",
    )
    parser.add_argument("--n", type=int, help="the first N images of the split (default: all)")
    parser.add_argument("--data-root", help="where the data set is (default: data)")
    _add_weights_option(parser)
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=100, help="images per Inception pass")
    parser.set_defaults(handler=_fid_stats)


def _fid_stats(args: argparse.Namespace) -> int:
    stats = reference_stats(
        args.dataset,
        args.out,
        split=args.split,
        n=args.n,
        weights=args.weights,
        device=_device(args.device),
        data_root=args.data_root,
        batch_size=args.batch_size,
    )
    print(
        f"statistics of {stats.count} {args.dataset} {args.split} images "
        f"({stats.mu.shape[0]} features): {args.out}"
    )
    return 0


# ----------------------------------------------------------------- theory checks


def _add_validate_theorems(commands: Any) -> None:
    parser = commands.add_parser(
        "validate-theorems",
        help="bias of VaES and VaGES against the posterior divergence (appendix F.4)",
    )
    parser.add_argument("--out", required=True, help="folder for bias.json and bias.png")
    parser.add_argument("--quick", action="store_true", help="a smaller sweep (h dim <= 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_validate_theorems)


def _validate_theorems(args: argparse.Namespace) -> int:
    rows = run_bias_experiment(args.out, quick=args.quick, seed=args.seed)
    fits = fit_bias_slopes(rows)
    print(f"{len(rows)} rows written to {args.out}/bias.json; plot: {args.out}/bias.png")
    for fit in fits:
        print(
            f"{fit.model:10s} {fit.divergence_name:7s} {fit.estimator:6s} "
            f"log-log slope of bias against sqrt(divergence): {fit.slope:.3f}, "
            f"max bias/sqrt(divergence): {fit.max_ratio:.3g}"
        )
    return 0


def _add_fisher_experiment(commands: Any) -> None:
    parser = commands.add_parser(
        "fisher-experiment",
        help="learned against exact Fisher divergence of perturbed GRBMs (appendix F.3)",
    )
    parser.add_argument("--out", required=True, help="folder for fisher.json/.md/.png")
    parser.add_argument("--quick", action="store_true", help="small dimensions, short training")
    parser.add_argument("--dims", type=int, nargs="+", help="data dimensions (default 200 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_fisher_experiment)


def _fisher_experiment(args: argparse.Namespace) -> int:
    rows = run_fisher_experiment(args.out, quick=args.quick, seed=args.seed, dims=args.dims)
    print(format_fisher_table(rows).rstrip("\n"))
    print(f"plot: {args.out}/fisher.png")
    return 0


# ----------------------------------------------------------------------------- entry


SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_list,
    _add_train,
    _add_compare,
    _add_sample,
    _add_fid,
    _add_fid_stats,
    _add_validate_theorems,
    _add_fisher_experiment,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eblvm",
        description="Train and evaluate energy-based latent variable models (VaGES and baselines).",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: the models are small, and more threads "
        "mostly add contention)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    handler: Handler = args.handler
    return handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; bad input and diverged runs end with a message, not a traceback."""
    try:
        return run(argv)
    except TrainingDiverged as error:
        print(f"eblvm: {error}", file=sys.stderr)
        return 1
    except FloatingPointError as error:
        print(f"eblvm: sampling failed: {error}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, RunMismatch) as error:
        print(f"eblvm: error: {error}", file=sys.stderr)
        return 2
    finally:
        if _distributed():
            dist.destroy_process_group()

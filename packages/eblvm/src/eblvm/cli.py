"""The ``eblvm`` command: list and show presets, train one, compare several, plot a
run, sample and score image runs, compute a data set's FID reference statistics, run
the appendix experiments.

Each subcommand is a pair of functions: ``_add_<name>(commands)`` declares its
arguments and names ``_<name>(args) -> exit status`` as its handler. Every expected
failure ends with one line on stderr and a non-zero status (2: bad input, 1: a run
that diverged, 130: interrupted); anything else is a bug and keeps its traceback.

This module imports torch and the training modules only when a subcommand runs, so
that ``eblvm --help`` answers at once.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eblvm.families import IMAGE_DATASETS

if TYPE_CHECKING:
    import torch

    from eblvm.settings import Settings

Handler = Callable[[argparse.Namespace], int]

PACKAGES = (
    "score_estimators",
    "score_objectives",
    "ebm_models",
    "eblvm_data",
    "eblvm_eval",
    "eblvm",
)


def _distributed() -> bool:
    """Whether this process is one of a distributed run (torch is not imported for it)."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and dist.is_available() and dist.is_initialized()


def _device(name: str | None) -> torch.device | None:
    """``--device``: None (the default), or a CPU or a CUDA GPU this machine has."""
    import torch

    if name is None:
        return None
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no CUDA GPU that torch can use")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def versions() -> str:
    """One line per package: its version, then torch's."""
    import importlib

    import torch

    lines = [
        f"{name.replace('_', '-')} {importlib.import_module(name).__version__}" for name in PACKAGES
    ]
    return "\n".join([*lines, f"torch {torch.__version__}"])


class _Versions(argparse.Action):
    """``--version``: every package's version and torch's (computed only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(versions())
        parser.exit()


class _Parser(argparse.ArgumentParser):
    """An argument parser that completes itself (``complete(parser)``: arguments or texts
    that need the libraries, hence torch) only when it parses or prints its help."""

    def __init__(
        self,
        *args: Any,
        complete: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._complete = complete

    def _completed(self) -> None:
        complete, self._complete = self._complete, None
        if complete is not None:
            complete(self)

    def parse_known_args(self, *args: Any, **kwargs: Any) -> Any:
        self._completed()
        return super().parse_known_args(*args, **kwargs)

    def format_help(self) -> str:
        self._completed()
        return super().format_help()


def _path(value: str) -> Path:
    """A path argument: ``~`` expanded, the empty string refused."""
    if not value.strip():
        raise argparse.ArgumentTypeError("a path must not be empty")
    return Path(os.path.expanduser(value))


def _positive(value: str) -> int:
    """A count of at least 1 (``1e3`` is 1000)."""
    from eblvm.settings import SettingsError, parse_value

    try:
        number = int(parse_value(value, 0, "a count"))
    except SettingsError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value!r}")
    return number


MOST_SAMPLES = 100_000  # more chains than any picture or score needs, in minutes of CPU


def _sample_count(value: str) -> int:
    """A number of samples: a positive count of at most MOST_SAMPLES."""
    number = _positive(value)
    if number > MOST_SAMPLES:
        raise argparse.ArgumentTypeError(
            f"must be at most {MOST_SAMPLES} (every sample is a chain run for every step), "
            f"got {value!r}"
        )
    return number


_SHARED = argparse.ArgumentParser(add_help=False)
_SHARED.add_argument(
    "--threads",
    type=_positive,
    default=argparse.SUPPRESS,
    help="CPU threads for torch (default: 2 for image runs, whose convolutions gain from "
    "the second core, else 1: the models are small, and more threads "
    "mostly add contention)",
)


def _settings_help(parser: argparse.ArgumentParser) -> None:
    """The parser's epilog: where the settings are listed, and the aliases."""
    import textwrap

    from eblvm.settings import ALIASES

    parser.epilog = "\n".join(
        textwrap.fill(paragraph, 79, break_on_hyphens=False)
        for paragraph in (
            "settings (--set section.key=value, or a TOML file of sections with --config): "
            "`eblvm settings [PRESET]` lists each with its type, value, allowed values and "
            "meaning; `eblvm show PRESET` prints the values a preset's run reads.",
            "aliases: " + ", ".join(f"{alias} ({name})" for alias, name in ALIASES.items()),
        )
    )


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=_path,
        metavar="FILE.toml",
        help="settings from a TOML file (sections as tables, the keys of --set); --set "
        "overrides it",
    )


def _add_progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (notes and errors still print, on stderr)",
    )


# ----------------------------------------------------------------------------- list, show


def describe(name: str, settings: Settings) -> str:
    """One aligned line: the preset, its data, method, and what matters for it (the
    method's declared columns, after h when the family has latents)."""
    from eblvm.settings import SECTIONS

    method = settings.method.declared
    sections = {section: getattr(settings, section) for section in SECTIONS}
    what = method.label.format(**sections)
    details = method.details.format(**sections)
    if "model.h_dim" in settings.reads():
        details = f"h={settings.model.h_dim} {details}".rstrip()
    return (
        f"{name:28} {settings.data.dataset:13} {what:12} {details:22} "
        f"iterations={settings.cadence.iterations}"
    )


def _add_list(commands: Any) -> None:
    parser = commands.add_parser(
        "list", parents=[_SHARED], help="list the presets, methods and model families"
    )
    parser.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from eblvm.families import FAMILIES
    from eblvm.methods import METHODS
    from eblvm.presets import PRESETS

    for family in FAMILIES.values():
        presets = {n: s for n, s in PRESETS.items() if s.family is family}
        if presets:
            print(f"{family.name} presets ({family.description}):")
            print("\n".join(describe(name, settings) for name, settings in presets.items()))
            print()
    print("methods (--set method.name=NAME):")
    width = max(len(name) for name in METHODS)
    for method in METHODS.values():
        print(f"  {method.name:{width}}  {method.description}")
    print("\nmodel families (by data.dataset and method):")
    for family in FAMILIES.values():
        print(f"  {family.name}: {', '.join(family.datasets)}; {family.served}")
    return 0


def _add_show(commands: Any) -> None:
    parser = commands.add_parser(
        "show",
        parents=[_SHARED],
        help="print the settings a preset's run reads (after --set)",
        complete=_settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset")
    _add_config_option(parser)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.set_defaults(handler=_show)


def _add_settings(commands: Any) -> None:
    parser = commands.add_parser(
        "settings",
        parents=[_SHARED],
        help="every setting with its type, value, allowed values and meaning (with a "
        "preset: those its run reads)",
    )
    parser.add_argument("preset", nargs="?")
    parser.set_defaults(handler=_settings)


def _settings(args: argparse.Namespace) -> int:
    from eblvm.presets import get_preset
    from eblvm.settings import Settings
    from eblvm.settings_doc import format_settings

    settings = get_preset(args.preset) if args.preset else Settings()
    print(format_settings(settings, args.preset), end="")
    return 0


def _show(args: argparse.Namespace) -> int:
    from eblvm.presets import get_preset
    from eblvm.settings import apply_overrides

    settings = apply_overrides(get_preset(args.preset), args.set, config=args.config, strict=True)
    read = list(settings.read_items())
    width = max(len(name) for name, _ in read)
    for name, value in read:
        print(f"{name:{width}}  {value!r}")
    return 0


# ----------------------------------------------------------------------------- train


def _add_train(commands: Any) -> None:
    parser = commands.add_parser(
        "train",
        parents=[_SHARED],
        help="train one preset (GRBM or image)",
        complete=_settings_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("preset")
    parser.add_argument(
        "--out", required=True, type=_path, help="run folder (resumed if it holds the run)"
    )
    _add_config_option(parser)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="change a setting"
    )
    parser.add_argument(
        "--init-from",
        type=_path,
        metavar="RUN_DIR",
        help="start from the weights of another run of the same model (e.g. a diverged one)",
    )
    _add_progress_option(parser)
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from eblvm.presets import get_preset
    from eblvm.settings import apply_overrides

    settings = apply_overrides(get_preset(args.preset), args.set, config=args.config, strict=True)
    return _train_run(args, settings, args.out, init_from=args.init_from, label=args.preset)


def _train_run(
    args: argparse.Namespace,
    settings: Settings,
    out: Path,
    *,
    init_from: Path | None = None,
    label: str | None = None,
) -> int:
    """Train (or continue) the run of ``settings`` in ``out`` and print its report;
    ``label`` names the run on the progress bar (the preset)."""
    import torch

    from eblvm.loop import train
    from eblvm.presets import task_for

    task = task_for(settings)
    if "threads" not in vars(args):
        torch.set_num_threads(task.cpu_threads)
    summary = train(
        task,
        settings,
        out,
        progress=not args.no_progress,
        init_from=init_from,
        label=label,
    )
    if _distributed() and torch.distributed.get_rank() != 0:
        return 0  # rank 0 reports for every process
    report = _report(summary, out)
    if summary.get("already_finished"):
        report = f"already finished at iteration {summary['iterations']}; nothing trained: {report}"
    print(report)
    return 0


def _add_resume(commands: Any) -> None:
    parser = commands.add_parser(
        "resume",
        parents=[_SHARED],
        help="continue a run from its folder (its config.json), for more iterations if asked",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=_path, help="folder of a run")
    parser.add_argument(
        "--iterations",
        type=_positive,
        help="train to this many iterations in all (default: the run's own); only "
        "cadence.iterations changes",
    )
    _add_progress_option(parser)
    parser.set_defaults(handler=_resume)


def _resume(args: argparse.Namespace) -> int:
    from eblvm.runs import CHECKPOINT, RunError, load_checkpoint, read_run_settings

    settings = read_run_settings(args.run_dir)
    if args.iterations is not None:
        checkpoint = args.run_dir / CHECKPOINT
        done = (
            int(load_checkpoint(checkpoint, required=("iteration",))["iteration"])
            if checkpoint.is_file()
            else 0
        )
        if args.iterations < done:
            raise RunError(
                f"{args.run_dir} is at iteration {done}; --iterations {args.iterations} is "
                "below it and a run is never shortened"
            )
        settings = settings.changed(cadence={"iterations": args.iterations})
    return _train_run(args, settings, args.run_dir, label=args.run_dir.name)


def _report(summary: dict[str, Any], out: Path) -> str:
    timing = f"{summary['iterations']} iterations in {summary['seconds']:.1f} s"
    if summary.get("compiled"):
        timing += f" (compiled in {summary['compile_seconds']:.1f} s)"
    if "test_log_likelihood" in summary:
        line = (
            f"test log-likelihood {summary['test_log_likelihood']:.4f} (log Z by "
            f"{summary['log_z_method']}) after {timing}"
        )
    else:
        selection = summary.get("checkpoint_selection", {})
        chosen = (
            f"best FID {selection['best_fid']:.2f} at iteration {selection['best_iteration']}"
            if selection.get("by") == "fid" and selection.get("best_fid") is not None
            else selection.get("reason", "")
        )
        loss = summary.get("loss")
        line = f"loss {loss:.6g} after {timing}" if loss is not None else f"after {timing}"
        line += f" on {summary['processes']} process(es); {chosen}"
    line += f"; summary: {out / 'summary.json'}"
    if "density_plot" in summary:
        line += f"\ndensity plot: {summary['density_plot']}"
    return line


# ----------------------------------------------------------------------------- compare


def _add_compare(commands: Any) -> None:
    parser = commands.add_parser(
        "compare",
        parents=[_SHARED],
        help="compare presets over seeds (runs of one shape train as one stack)",
    )
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--out", required=True, type=_path)
    parser.add_argument("--seeds", type=_positive, default=3, help="number of seeds (0..n-1)")
    _add_config_option(parser)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--sweep",
        metavar="KEY=V1,V2,...",
        help="also vary one setting: each preset runs once per value",
    )
    parser.add_argument("--jobs", type=_positive, default=1, help="stacks trained in parallel")
    parser.add_argument(
        "--no-stack", action="store_true", help="train every run alone (no stacking)"
    )
    parser.add_argument(
        "--x-axis",
        choices=("iteration", "seconds"),
        default="iteration",
        help="the plot's x-axis: iterations, or the training wall time of each run's stack "
        "(runs trained as one stack share it)",
    )
    _add_progress_option(parser)
    parser.add_argument(
        "--panel",
        action="append",
        default=[],
        metavar="TITLE=PRESET,PRESET,...",
        help="draw these presets (with their --sweep values) on a panel of their own; repeat "
        "for more panels",
    )
    parser.set_defaults(handler=_compare)


def sweep_configs(
    presets: Sequence[str],
    assignments: list[str],
    sweep: str | None,
    config: Path | None = None,
) -> dict[str, Settings]:
    """Each preset with the settings of ``config`` (a TOML file) and the assignments,
    once per value of the swept setting; a setting that none of them reads is refused."""
    from eblvm.presets import get_preset
    from eblvm.settings import ALIASES, SettingsError, apply_overrides, refuse_unread

    configs = {
        name: apply_overrides(get_preset(name), assignments, config=config) for name in presets
    }
    if not sweep:
        refuse_unread(assigned_names(presets, assignments, config), list(configs.values()))
        return configs
    key, sep, values = sweep.partition("=")
    if not sep or not values or "/" in values:
        raise SettingsError(f"--sweep expects KEY=V1,V2,... (no '/'), got {sweep!r}")
    swept = {}
    for name, settings in configs.items():
        for value in values.split(","):
            if not value or value in (".", "..") or os.sep in value:
                raise SettingsError(f"--sweep value {value!r} cannot name a run folder")
            swept[f"{name}-{key}={value}"] = apply_overrides(settings, [f"{key}={value}"])
    names = [*assigned_names(presets, assignments, config), ALIASES.get(key, key)]
    refuse_unread(names, list(swept.values()))
    return swept


def assigned_names(
    presets: Sequence[str], assignments: list[str], config: Path | None
) -> list[str]:
    """The dotted names of the settings that ``config`` and ``assignments`` give."""
    from eblvm.presets import get_preset
    from eblvm.settings import assigned_values

    return list(assigned_values(get_preset(presets[0]), assignments, config=config))


def compare_panels(
    specs: Sequence[str], presets: Sequence[str], sweep: str | None
) -> dict[str, list[str]] | None:
    """``--panel TITLE=PRESET,...`` as title -> the compared names of those presets (each
    preset's swept runs); None without panels."""
    from eblvm.settings import SettingsError

    if not specs:
        return None
    panels: dict[str, list[str]] = {}
    for spec in specs:
        title, sep, names = spec.partition("=")
        if not sep or not title or not names:
            raise SettingsError(f"--panel expects TITLE=PRESET,PRESET,..., got {spec!r}")
        unknown = [name for name in names.split(",") if name not in presets]
        if unknown:
            raise SettingsError(f"--panel {title!r} names {unknown}, which are not compared")
        panels[title] = [
            swept
            for name in names.split(",")
            for swept in (sweep_configs([name], [], sweep) if sweep else [name])
        ]
    return panels


def _compare(args: argparse.Namespace) -> int:
    from eblvm.experiments.compare import compare, default_metric, format_table

    configs = sweep_configs(args.presets, args.set, args.sweep, args.config)
    panels = compare_panels(args.panel, args.presets, args.sweep)
    rows = compare(
        configs,
        args.out,
        seeds=list(range(args.seeds)),
        progress=not args.no_progress,
        stack=not args.no_stack,
        jobs=args.jobs,
        x_axis=args.x_axis,
        panels=panels,
    )
    print(format_table(rows, default_metric(configs)), end="")
    print(f"plot: {args.out / 'comparison.png'}")
    failures = sum(len(row["failures"]) for row in rows)
    if failures:
        print(f"eblvm: {failures} run(s) diverged (listed above)", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------- plot


def _add_plot(commands: Any) -> None:
    parser = commands.add_parser(
        "plot", parents=[_SHARED], help="draw a run's loss and evaluation curves (PNG)"
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=_path)
    parser.add_argument("--out", type=_path, help="PNG path (default: RUN_DIR/curves.png)")
    parser.set_defaults(handler=_plot)


def _plot(args: argparse.Namespace) -> int:
    from eblvm.plots import plot_run

    print(f"curves: {plot_run(args.run_dir, args.out)}")
    return 0


# ----------------------------------------------------------------------------- sample, fid


def _add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights",
        type=_path,
        help="Inception weights file (default: the EBLVM_FID_WEIGHTS variable)",
    )


def _add_sampling_options(
    parser: argparse.ArgumentParser, *, n: int, run: str = "folder of an image run"
) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", type=_path, help=run)
    parser.add_argument(
        "--n", type=_sample_count, default=n, help=f"number of samples (default {n})"
    )
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
    parser.add_argument(
        "--raw", action="store_true", help="the model itself instead of its moving average"
    )


def _add_sample(commands: Any) -> None:
    parser = commands.add_parser(
        "sample",
        parents=[_SHARED],
        help="sample a run into a PNG: image runs by annealed Langevin, GRBM runs by Gibbs "
        "sampling (a grid for digits and Frey faces, a density plot for 2-D data)",
    )
    _add_sampling_options(parser, n=64, run="folder of an image or GRBM run")
    parser.add_argument("--out", type=_path, help="PNG path (default: RUN_DIR/samples.png)")
    parser.add_argument(
        "--gibbs-steps", type=_positive, default=1000, help="GRBM runs: Gibbs sweeps (default 1000)"
    )
    parser.set_defaults(handler=_sample)


def _sample(args: argparse.Namespace) -> int:
    from eblvm.families import GRBM
    from eblvm.images.sampling import sample_run
    from eblvm.runs import read_run_settings

    device = _device(args.device)  # refused before any work, even where GRBMs ignore it
    settings = read_run_settings(args.run_dir)
    if settings.family is GRBM:
        from eblvm.grbm.sampling import sample_grbm_run

        if args.data_root is not None:
            settings = settings.changed(data={"data_root": args.data_root})
        path = sample_grbm_run(
            args.run_dir,
            settings,
            n=args.n,
            steps=args.gibbs_steps,
            seed=args.seed,
            out=args.out,
            raw=args.raw,
        )
        print(f"{args.n} samples after {args.gibbs_steps} Gibbs sweeps: {path}")
        return 0

    path = sample_run(
        args.run_dir,
        n=args.n,
        steps=tuple(args.steps) if args.steps else None,
        step_size=args.step_size,
        seed=args.seed,
        out=args.out,
        device=device,
        data_root=args.data_root,
        raw=args.raw,
    )
    print(f"{args.n} samples: {path}")
    return 0


def _add_fid(commands: Any) -> None:
    parser = commands.add_parser("fid", parents=[_SHARED], help="FID of an image run's samples")
    _add_sampling_options(parser, n=5000)
    parser.add_argument(
        "--stats", required=True, type=_path, help="reference statistics (.npz, from fid-stats)"
    )
    _add_weights_option(parser)
    parser.set_defaults(handler=_fid)


def _fid(args: argparse.Namespace) -> int:
    from eblvm.images.sampling import fid_of_run

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
        raw=args.raw,
    )
    print(f"FID {record['fid']:.3f} on {record['n']} samples; written to {args.run_dir}/fid.json")
    return 0


def _add_fid_stats(commands: Any) -> None:
    parser = commands.add_parser(
        "fid-stats",
        parents=[_SHARED],
        help="Inception statistics of a data set: the reference (.npz) of fid and of FID "
        "evaluation",
    )
    parser.add_argument("dataset", metavar="DATASET", help=", ".join(IMAGE_DATASETS))
    parser.add_argument("--out", required=True, type=_path, help="statistics file (.npz)")
    parser.add_argument(
        "--split",
        default="train",
        help="train (the images the presets train on: train and validation splits) or test "
        "(default train)",
    )
    parser.add_argument("--n", type=int, help="the first N images of the split (default: all)")
    parser.add_argument(
        "--data-root",
        help="where the data set is (default: data; fashion_mnist: "
        "/usr/share/datasets/fashion-mnist)",
    )
    _add_weights_option(parser)
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=100, help="images per Inception pass")
    parser.set_defaults(handler=_fid_stats)


def _fid_stats(args: argparse.Namespace) -> int:
    from eblvm.images.sampling import reference_stats

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


# ----------------------------------------------------------------------------- classifier, evaluate


def _add_classifier(commands: Any) -> None:
    parser = commands.add_parser(
        "classifier",
        parents=[_SHARED],
        help="train the Fashion-MNIST classifier of the classifier metrics and cache it",
    )
    parser.add_argument(
        "--out",
        type=_path,
        help="weights file (default: $XDG_CACHE_HOME/eblvm/fashion-classifier.pt); its "
        "SHA-256 is written beside it (.sha256)",
    )
    parser.add_argument(
        "--data-root", type=_path, help="Fashion-MNIST's folder (default: Debian's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=_positive, default=3)
    parser.set_defaults(handler=_classifier)


def _classifier(args: argparse.Namespace) -> int:
    from eblvm.classifier import train_cached_classifier
    from eblvm_data import FASHION_MNIST_ROOT

    trained = train_cached_classifier(
        args.out, data_root=args.data_root or FASHION_MNIST_ROOT, seed=args.seed, epochs=args.epochs
    )
    print(
        f"test accuracy {trained.test_accuracy:.4f} after {trained.seconds:.1f} s of training; "
        f"classifier: {trained.path} (SHA-256 {trained.sha256})"
    )
    return 0


def _add_metric_option(parser: argparse.ArgumentParser) -> None:
    from eblvm.evaluate import METRICS

    parser.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        required=True,
        choices=METRICS,
        help="log-likelihood for GRBM runs; the others score samples of image runs: "
        "repeated, they score one set of samples, drawn once",
    )


def _add_evaluate(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate",
        parents=[_SHARED],
        help="metrics of a finished run, each beside that of the real test data",
        complete=_add_metric_option,
    )
    _add_sampling_options(parser, n=1000, run="folder of a finished image or GRBM run")
    parser.add_argument("--stats", type=_path, help="reference statistics (.npz) of fid")
    _add_weights_option(parser)
    parser.add_argument(
        "--classifier",
        type=_path,
        help="the classifier of classifier-fid and classifier-score (default: the cache "
        "of `eblvm classifier`)",
    )
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from eblvm.evaluate import describe_evaluation, evaluate_run

    records = evaluate_run(
        args.run_dir,
        args.metrics,
        n=args.n,
        steps=tuple(args.steps) if args.steps else None,
        step_size=args.step_size,
        seed=args.seed,
        device=_device(args.device),
        data_root=args.data_root,
        raw=args.raw,
        stats=args.stats,
        weights=args.weights,
        classifier=args.classifier,
    )
    for record in records:
        print(describe_evaluation(record, args.run_dir))
    return 0


def _add_endpoint_option(parser: argparse.ArgumentParser) -> None:
    from eblvm.interpolate import ENDPOINTS

    parser.add_argument(
        "--to",
        choices=ENDPOINTS,
        default="image",
        help="where a path ends: the second image's posterior mean (image), or the first "
        "one's negated, −m (negation: the path of the paper's code)",
    )


def _add_interpolate(commands: Any) -> None:
    parser = commands.add_parser(
        "interpolate",
        parents=[_SHARED],
        help="a deep EBLVM run's images along paths in h from the posterior means of test "
        "images (PNG grid: a row per path, a column per step)",
        complete=_add_endpoint_option,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=_path, help="folder of a deep EBLVM run")
    parser.add_argument("--pairs", type=_positive, default=4, help="pairs of test images (rows)")
    parser.add_argument("--steps", type=_positive, default=8, help="points per path (columns)")
    parser.add_argument("--method", choices=("linear", "spherical"), default="linear")
    parser.add_argument(
        "--langevin-steps",
        type=int,
        nargs=3,
        metavar=("HOLD", "ANNEAL", "FINAL"),
        help="annealing steps at T max, from T max to 1, from 1 to 0 (default: the run's)",
    )
    parser.add_argument("--step-size", type=float, help="Langevin step (default: the run's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--data-root", help="where the run's data set is (default: the run's)")
    parser.add_argument(
        "--raw", action="store_true", help="the model itself instead of its moving average"
    )
    parser.add_argument("--out", type=_path, help="PNG path (default: RUN_DIR/interpolation.png)")
    parser.set_defaults(handler=_interpolate)


def _interpolate(args: argparse.Namespace) -> int:
    from eblvm.interpolate import interpolate_run

    path = interpolate_run(
        args.run_dir,
        pairs=args.pairs,
        steps=args.steps,
        seed=args.seed,
        method=args.method,
        to=args.to,
        langevin_steps=tuple(args.langevin_steps) if args.langevin_steps else None,
        step_size=args.step_size,
        out=args.out,
        device=_device(args.device),
        data_root=args.data_root,
        raw=args.raw,
    )
    print(f"{args.pairs} interpolations of {args.steps} steps: {path}")
    return 0


# ----------------------------------------------------------------- theory checks


def _add_validate_theorems(commands: Any) -> None:
    parser = commands.add_parser(
        "validate-theorems",
        parents=[_SHARED],
        help="bias of VaES and VaGES against the posterior divergence (appendix F.4)",
    )
    parser.add_argument("--out", required=True, type=_path, help="folder for bias.json/.png")
    parser.add_argument("--quick", action="store_true", help="a smaller sweep (h dim <= 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_validate_theorems)


def _validate_theorems(args: argparse.Namespace) -> int:
    from eblvm.experiments.bias import run_bias_experiment
    from eblvm_eval import fit_bias_slopes

    rows = run_bias_experiment(args.out, quick=args.quick, seed=args.seed)
    print(f"{len(rows)} rows written to {args.out}/bias.json; plot: {args.out}/bias.png")
    for fit in fit_bias_slopes(rows):
        print(
            f"{fit.model:10s} {fit.divergence_name:7s} {fit.estimator:6s} "
            f"log-log slope of bias against sqrt(divergence): {fit.slope:.3f}, "
            f"max bias/sqrt(divergence): {fit.max_ratio:.3g}"
        )
    return 0


def _add_fisher_experiment(commands: Any) -> None:
    parser = commands.add_parser(
        "fisher-experiment",
        parents=[_SHARED],
        help="learned against exact Fisher divergence of perturbed GRBMs (appendix F.3)",
    )
    parser.add_argument("--out", required=True, type=_path, help="folder for fisher.json/.md/.png")
    parser.add_argument("--quick", action="store_true", help="small dimensions, short training")
    parser.add_argument("--dims", type=int, nargs="+", help="data dimensions (default 200 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_fisher_experiment)


def _fisher_experiment(args: argparse.Namespace) -> int:
    from eblvm.experiments.fisher import format_fisher_table, run_fisher_experiment

    rows = run_fisher_experiment(args.out, quick=args.quick, seed=args.seed, dims=args.dims)
    print(format_fisher_table(rows).rstrip("\n"))
    print(f"plot: {args.out}/fisher.png")
    return 0


def _add_reproduce(commands: Any) -> None:
    parser = commands.add_parser(
        "reproduce",
        parents=[_SHARED],
        help="run every claim of the paper's appendix this machine can run and write "
        "DIR/REPORT.md (finished claims are kept when run again)",
    )
    parser.add_argument("--out", required=True, type=_path, help="folder of the report and runs")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer seeds and iterations (about 5 minutes on two cores)",
    )
    parser.add_argument(
        "--only", nargs="+", metavar="CLAIM", help="only these claims (F.1, F.2, H, frey, ...)"
    )
    parser.add_argument(
        "--frey-root",
        type=_path,
        help="where frey_rawface.mat is (default: the frey presets' data_root); without "
        "it the Frey-face protocol runs on the bundled digits",
    )
    parser.add_argument(
        "--deep-runs",
        type=_path,
        metavar="DIR",
        help="finished deep runs, DIR/<preset> scored by `eblvm evaluate`, for the sample "
        "quality claim",
    )
    parser.set_defaults(handler=_reproduce)


def _reproduce(args: argparse.Namespace) -> int:
    from eblvm.experiments.reproduce import REPORT, reproduce

    reproduce(
        args.out,
        quick=args.quick,
        only=args.only,
        frey_root=args.frey_root,
        deep_runs=args.deep_runs,
    )
    print(f"report: {args.out / REPORT}")
    return 0


# ----------------------------------------------------------------------------- entry


SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_list,
    _add_show,
    _add_settings,
    _add_train,
    _add_resume,
    _add_compare,
    _add_plot,
    _add_sample,
    _add_fid,
    _add_fid_stats,
    _add_classifier,
    _add_evaluate,
    _add_interpolate,
    _add_validate_theorems,
    _add_fisher_experiment,
    _add_reproduce,
)


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="eblvm",
        description="Train and evaluate energy-based latent variable models (VaGES and baselines).",
        parents=[_SHARED],
    )
    top.add_argument(
        "--version", action=_Versions, help="print every package's version and torch's, and exit"
    )
    commands = top.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(commands)
    return top


def run(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import torch

    torch.set_num_threads(getattr(args, "threads", 1))
    handler: Handler = args.handler
    return handler(args)


_FULL = "run the same command again once there is room (a run resumes from its last checkpoint)"
_OS_REASONS = {
    errno.ENOTDIR: "a part of this path is a file, not a folder",
    errno.EISDIR: "a folder where a file belongs: remove or rename it",
    errno.EACCES: "permission denied (is the folder read-only?)",
    errno.EPERM: "permission denied (is the folder read-only?)",
    errno.EROFS: "the file system is read-only",
    errno.ENAMETOOLONG: "a name in this path is too long (at most 255 bytes a name)",
    errno.ENOSPC: f"no space (or no free inode) left on the device: {_FULL}",
    errno.EDQUOT: f"the disk quota is exceeded: {_FULL}",
    errno.EFBIG: "the file is too large for the file system",
    errno.EIO: "the device failed to read or write",
}
_FAILED_OPERATIONS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


def _os_error_line(error: OSError) -> str:
    """An operating system's refusal in one line that names the path."""
    because = _OS_REASONS.get(error.errno or 0, error.strerror or str(error))
    if error.filename is None:
        return because
    return f"{os.fsdecode(error.filename)}: {because}"


def _os_error_status(error: OSError) -> int:
    """1 for a write the device failed (full, over quota), 2 for a path the user chose
    that the system refuses."""
    return 1 if error.errno in _FAILED_OPERATIONS else 2


def _out_of_memory(error: Exception) -> bool:
    """torch's allocator refused a tensor (on the CPU or a GPU)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, (RuntimeError, MemoryError)) and (
        isinstance(error, MemoryError)
        or "can't allocate memory" in text
        or "not enough memory" in text
        or "out of memory" in text
    )


def _failure(error: Exception) -> tuple[int, str] | None:
    """The exit status and line of an expected failure; None for a bug."""
    from eblvm.runs import RunError, TrainingDiverged, TrainingInterrupted

    if isinstance(error, TrainingInterrupted):
        return 130, f"eblvm: {error}"
    if isinstance(error, TrainingDiverged):
        return 1, f"eblvm: {error}"
    if isinstance(error, FloatingPointError):
        return 1, f"eblvm: sampling failed: {error}"
    if _out_of_memory(error):
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return 2, (
            f"eblvm: error: out of memory ({first[:200]}): the settings ask for tensors larger "
            "than this machine holds; lower data.n_train, data.batch_size, method.n_samples or "
            "model.h_dim (or --n)"
        )
    if isinstance(error, (RunError, ValueError)):
        return 2, f"eblvm: error: {error}"
    if isinstance(error, OSError):
        return _os_error_status(error), f"eblvm: error: {_os_error_line(error)}"
    return None


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM outside training: as Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: expected failures end with one line and a non-zero status."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        return run(argv)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM outside training (e.g. while torch loads)
        print("eblvm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`eblvm list | head`)
        sys.stderr.close()
        return 0
    except Exception as error:
        failure = _failure(error)
        if failure is None:
            raise
        status, line = failure
        print(line, file=sys.stderr)
        return status
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        if _distributed():
            sys.modules["torch.distributed"].destroy_process_group()

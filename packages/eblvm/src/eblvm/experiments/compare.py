"""Several methods, several seeds: stacked training, a table, curves on one plot or on
several panels (one per family of methods).

Every run gets its own folder ``out/<name>/seed<k>`` with the files of a single run.
Runs of one model shape (their settings differ only in seed and learning rates) train
as one stack when their family allows it; a run that diverges is recorded (preset,
seed, iteration, reason) and the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from eblvm.checkpoints import resumed_iteration
from eblvm.loop import train_stack
from eblvm.presets import task_for
from eblvm.runs import (
    CHECKPOINT,
    METRICS,
    PREVIOUS,
    SUMMARY,
    RunError,
    TrainingInterrupted,
    atomic_write_bytes,
    load_checkpoint,
    read_json,
    read_metrics,
    write_json,
)
from eblvm.settings import Settings
from eblvm_eval.files import write_atomically

CONVERGED_WITHIN = 0.02  # nats: a method has converged once within this of its final value

# Ten colours that stay apart (matplotlib's tab10) and four line styles: series i takes
# colour i mod 10 and style (i + i div 10) mod 4, so that neighbours differ in both
# (curves that overlap stay visible) and 40 series have 40 distinct pairs.
COLOURS = tuple(f"C{i}" for i in range(10))
LINE_STYLES = ("-", "--", ":", "-.")


@dataclasses.dataclass(frozen=True)
class PlannedRun:
    name: str
    seed: int
    settings: Settings
    out: Path


def plan(configs: dict[str, Settings], out: Path, seeds: Sequence[int]) -> list[PlannedRun]:
    """Every (configuration, seed) run and its folder."""
    if not seeds:
        raise ValueError("compare needs at least one seed")
    return [
        PlannedRun(name, seed, dataclasses.replace(settings, seed=seed), out / name / f"seed{seed}")
        for name, settings in configs.items()
        for seed in seeds
    ]


def _saved(path: Path) -> tuple[int, list[str]] | None:
    """(iteration, stack) of the checkpoint at ``path``; None without one, (-1, []) when
    it is unreadable (its run trains alone and says why)."""
    if not path.exists():
        return None
    try:
        record = load_checkpoint(path, required=("iteration",))
        return int(record["iteration"]), list(record.get("stack", []))
    except Exception:
        return -1, []


def stacks(runs: Sequence[PlannedRun], *, stack: bool) -> list[list[PlannedRun]]:
    """Groups of runs that train as one stack: same model shape, same iteration to
    continue from (a stack stopped while writing its checkpoints stays one)."""
    if not stack:
        return [[run] for run in runs]
    current = {run.out: _saved(run.out / CHECKPOINT) or (0, []) for run in runs}
    groups: dict[tuple[str, int], list[PlannedRun]] = {}
    for run in runs:
        shape = run.settings.shape_key()
        others = [current[o.out] for o in runs if o is not run and o.settings.shape_key() == shape]
        iteration = resumed_iteration(current[run.out], _saved(run.out / PREVIOUS), others)
        groups.setdefault((shape, iteration), []).append(run)
    return list(groups.values())


def _train_group(
    group: list[PlannedRun], progress: bool, threads: int | None
) -> list[dict[str, Any]]:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    task = task_for(group[0].settings)
    if not task.stackable:
        return [
            train_stack(task, [(run.settings, run.out)], progress=progress, label=run.name)[0]
            for run in group
        ]
    runs = [(run.settings, run.out) for run in group]
    return train_stack(task, runs, progress=progress, label=group[0].name)


class CompareInterrupted(TrainingInterrupted):
    """SIGINT or SIGTERM stopped a comparison: its trainings checkpointed (or, after a
    second signal, kept their last checkpoints) and ended."""

    def __init__(self, unfinished: int, total: int) -> None:
        RunError.__init__(
            self,
            f"interrupted: {unfinished} of {total} stack(s) unfinished, each kept at its latest "
            "checkpoint: run the same command again to resume",
        )
        self.iteration = 0


def _train_in_workers(groups: list[list[PlannedRun]], jobs: int) -> None:
    """Train the groups in at most ``jobs`` worker processes at a time. The workers
    leave the terminal's process group, so that a signal reaches them once, from here:
    SIGINT or SIGTERM to this process (or Ctrl-C) is passed on to every worker, which
    checkpoints after its iteration (a second one: stops at once), no new group starts,
    and this process waits for every worker before it raises CompareInterrupted. A
    worker's failure stops new groups too, and is raised once the others have ended."""
    context = multiprocessing.get_context()
    pending = list(groups)
    running: dict[int, tuple[Any, Connection]] = {}  # sentinel -> process, its report
    signals: list[int] = []
    failure: BaseException | None = None
    unfinished = 0

    def pass_on(signum: int, frame: object) -> None:
        signals.append(signum)
        for process, _ in running.values():
            if process.exitcode is None:
                os.kill(process.pid, signal.SIGINT)
        if len(signals) == 1:
            with contextlib.suppress(OSError):  # a reader of stderr that went away
                os.write(
                    sys.stderr.fileno(),
                    b"eblvm: stopping: each training checkpoints after its iteration "
                    b"(Ctrl-C again to stop now)\n",
                )

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, pass_on) for sig in handled}
    try:
        while running or (pending and not signals and failure is None):
            while pending and len(running) < jobs and not signals and failure is None:
                receiver, sender = context.Pipe(duplex=False)
                work = (pending.pop(0), sender, os.getpid())
                process = context.Process(target=_worker, args=work)
                process.start()
                sender.close()
                running[process.sentinel] = (process, receiver)
            for sentinel in wait(list(running)):
                process, receiver = running.pop(sentinel)  # type: ignore[arg-type]
                process.join()
                try:
                    outcome = receiver.recv()
                except EOFError:  # the worker sent nothing: it finished or was interrupted
                    outcome = None
                receiver.close()
                if process.exitcode != 0:
                    unfinished += 1
                    if isinstance(outcome, BaseException) and failure is None and not signals:
                        failure = outcome
    finally:
        for process, _ in running.values():  # left by an error here: stopped as by a signal
            if process.exitcode is None:
                os.kill(process.pid, signal.SIGINT)
            process.join()
        for sig, old in previous.items():
            signal.signal(sig, old)
    if signals:
        raise CompareInterrupted(unfinished + len(pending), len(groups))
    if failure is not None:
        raise failure


def _worker(group: list[PlannedRun], report: Connection, parent: int) -> None:
    """Train one group in a worker process; its failure goes to ``report``, its exit
    status says whether it finished (0), was interrupted (130) or failed (1)."""
    os.setpgrp()  # signals come from the comparing process only (see _train_in_workers)
    for sig in (signal.SIGINT, signal.SIGTERM):  # not the comparing process's handler
        signal.signal(sig, signal.default_int_handler)
    threading.Thread(target=_follow, args=(parent,), daemon=True).start()
    try:
        _train_group(group, False, 1)
    except (KeyboardInterrupt, TrainingInterrupted):
        sys.exit(130)
    except BaseException as error:
        report.send(_portable(error))
        sys.exit(1)


def _follow(parent: int) -> None:
    """Stop this worker as Ctrl-C would once the comparing process is gone."""
    while os.getppid() == parent:
        threading.Event().wait(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling; else an expected failure (bad input, a run's
    error) as a RunError of its message, anything else as a RuntimeError with its
    traceback."""
    try:
        portable: BaseException = pickle.loads(pickle.dumps(error))
    except Exception:
        if isinstance(error, (RunError, ValueError, OSError)):
            return RunError(str(error))
        text = "".join(traceback.format_exception(error))[-8000:]  # within a pipe's buffer
        return RuntimeError(f"a worker of compare failed:\n{text}")
    return portable


def _curve(out: Path, key: str) -> list[tuple[int, float, float]]:
    """(iteration, seconds, value) of every metrics row holding ``key``."""
    rows, _ = read_metrics(out / METRICS)
    return [
        (row["iteration"], row.get("seconds", math.nan), row[key]) for row in rows if key in row
    ]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1))


def converged_at(iterations: Sequence[int], means: Sequence[float]) -> int | None:
    """The first iteration after which the mean curve stays within CONVERGED_WITHIN of its
    final value."""
    if not means:
        return None
    final = means[-1]
    first = None
    for iteration, value in zip(iterations, means, strict=True):
        if abs(value - final) <= CONVERGED_WITHIN:
            first = iteration if first is None else first
        else:
            first = None
    return first


def compare(
    configs: dict[str, Settings],
    out_dir: str | Path,
    *,
    seeds: Sequence[int],
    progress: bool = True,
    stack: bool = True,
    jobs: int = 1,
    metric: str | None = None,
    x_axis: str = "iteration",
    panels: Mapping[str, Sequence[str]] | None = None,
    stem: str = "comparison",
) -> list[dict[str, Any]]:
    """Train every configuration with every seed (resuming finished or interrupted runs),
    stacking runs of one shape, then write ``<stem>.png``, ``<stem>.md`` and
    ``<stem>.json`` (``stem``: ``comparison`` unless several comparisons share the runs
    of one folder). Returns the table rows. ``jobs`` > 1 trains stacks in that many
    processes; ``x_axis``: ``iteration`` or ``seconds`` for the plot: the training wall
    time of each run's stack, shared by the runs trained together (the table's seconds
    per run divide it by the stack's runs); ``panels``: title -> configuration names,
    one panel each (the paper's Fig. 3: the DSM family, the KSD family), every
    configuration on one panel when None; ``metric``: the curves and the table's main
    column (default :func:`default_metric`)."""
    metric = metric or default_metric(configs)
    if x_axis not in ("iteration", "seconds"):
        raise ValueError(f"x_axis must be iteration or seconds, got {x_axis!r}")
    panels = check_panels(panels, configs)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    if not stem or "/" in stem or stem in (".", ".."):
        raise ValueError(f"stem must be a file name without a folder, got {stem!r}")
    out = Path(out_dir)
    runs = plan(configs, out, seeds)
    groups = stacks(runs, stack=stack)
    out.mkdir(parents=True, exist_ok=True)
    if jobs == 1:
        for group in groups:
            _train_group(group, progress, None)
    else:
        _train_in_workers(groups, jobs)
    rows = [_row(name, [r for r in runs if r.name == name], metric) for name in configs]
    write_json(out / f"{stem}.json", rows)
    atomic_write_bytes(out / f"{stem}.md", format_table(rows, metric).encode())
    figure = comparison_figure(rows, metric=metric, x_axis=x_axis, seeds=len(seeds), panels=panels)
    write_atomically(
        out / f"{stem}.png",
        lambda file: figure.savefig(file, format="png", dpi=120, bbox_inches="tight"),
    )
    plt.close(figure)
    return rows


def default_metric(configs: Mapping[str, Settings]) -> str:
    """The test log-likelihood when a configuration evaluates one (GRBMs), else the
    training loss (image and custom runs)."""
    grbm = any("evaluation.log_z" in settings.reads() for settings in configs.values())
    return "test_log_likelihood" if grbm else "loss"


def check_panels(
    panels: Mapping[str, Sequence[str]] | None, configs: Mapping[str, object]
) -> dict[str, list[str]]:
    """The panels as title -> names, each name a configuration's; every configuration
    on one untitled panel when ``panels`` is None."""
    if panels is None:
        return {"": list(configs)}
    if not isinstance(panels, Mapping) or not panels:
        raise ValueError(f"panels must map panel titles to configuration names, got {panels!r}")
    checked: dict[str, list[str]] = {}
    for title, names in panels.items():
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise ValueError(f"panels[{title!r}] must be a non-empty list of names, got {names!r}")
        unknown = [name for name in names if name not in configs]
        if unknown:
            raise ValueError(
                f"panels[{title!r}] names {unknown}, which are not among the compared "
                f"configurations {list(configs)}"
            )
        checked[str(title)] = list(names)
    return checked


def line_styles(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Each name its own (colour, line style), in order; a name keeps its pair on every
    panel."""
    most = len(COLOURS) * len(LINE_STYLES)
    if len(names) > most:
        raise ValueError(f"a comparison draws at most {most} distinct series, got {len(names)}")
    return {
        name: (
            COLOURS[i % len(COLOURS)],
            LINE_STYLES[(i + i // len(COLOURS)) % len(LINE_STYLES)],
        )
        for i, name in enumerate(names)
    }


def _summary(path: Path, metric: str) -> dict[str, Any]:
    """A run's summary, refused (RunError naming the file) unless it is a record whose
    ``metric`` and seconds are numbers."""
    summary = read_json(path)
    if not isinstance(summary, dict):
        raise RunError(f"{path} is damaged: it holds no summary record")
    for key in (metric, "seconds", "data_log_likelihood"):
        value = summary.get(key)
        if not (value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))):
            raise RunError(f"{path} is damaged: {key} is {value!r}, not a number")
    return summary


def _row(name: str, runs: list[PlannedRun], metric: str) -> dict[str, Any]:
    summaries = [_summary(r.out / SUMMARY, metric) for r in runs]
    failures = [
        {"preset": name, "seed": r.seed, **s["diverged"]}
        for r, s in zip(runs, summaries, strict=True)
        if "diverged" in s
    ]
    good = [(r, s) for r, s in zip(runs, summaries, strict=True) if "diverged" not in s]
    finals = [s[metric] for _, s in good if s.get(metric) is not None]
    row: dict[str, Any] = {"method": name, "seeds": len(runs), "failures": failures}
    ceilings = [
        s["data_log_likelihood"] for _, s in good if s.get("data_log_likelihood") is not None
    ]
    if ceilings:
        row["data_log_likelihood"] = ceilings[0]
    if finals:
        mean, std = _mean_std(finals)
        row.update({f"{metric}_mean": mean, f"{metric}_std": std})
    fids = [curve[-1][2] for r, _ in good if (curve := _curve(r.out, "fid"))]
    if metric != "fid" and fids and all(fid is not None for fid in fids):
        mean, std = _mean_std(fids)
        row.update({"fid_mean": mean, "fid_std": std})
    curves = [_curve(r.out, metric) for r, _ in good]
    if curves and all(curves):
        length = min(len(c) for c in curves)
        iterations = [curves[0][i][0] for i in range(length)]
        stats = [_mean_std([c[i][2] for c in curves]) for i in range(length)]
        row["curve"] = {
            "iteration": iterations,
            "seconds": [sum(c[i][1] for c in curves) / len(curves) for i in range(length)],
            "mean": [m for m, _ in stats],
            "std": [s for _, s in stats],
        }
        if metric.endswith("log_likelihood"):  # within CONVERGED_WITHIN nats
            row["converged_at"] = converged_at(iterations, [m for m, _ in stats])
    seconds = [s["seconds"] / s.get("stacked_runs", 1) for _, s in good]
    if seconds:
        row["seconds_per_run"] = sum(seconds) / len(seconds)
    return row


def comparison_figure(
    rows: list[dict[str, Any]],
    *,
    metric: str,
    x_axis: str,
    seeds: int,
    panels: Mapping[str, Sequence[str]],
) -> Figure:
    """The mean ± std curves of ``rows``, one panel per entry of ``panels`` (title ->
    method names), stacked top to bottom with a shared x-axis, each with its legend to
    the right of its axes; every method its own (colour, line style)."""
    by_name = {row["method"]: row for row in rows}
    styles = line_styles([row["method"] for row in rows])
    longest = max(len(names) for names in panels.values())
    height = max(3.2, 0.22 * longest + 1.0)
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(10, height * len(panels)), sharex=True, squeeze=False
    )
    ceilings = [r["data_log_likelihood"] for r in rows if r.get("data_log_likelihood") is not None]
    for axis, (title, names) in zip(axes[:, 0], panels.items(), strict=True):
        for name in names:
            curve = by_name[name].get("curve")
            if not curve:
                continue
            colour, style = styles[name]
            x, means, stds = curve[x_axis], curve["mean"], curve["std"]
            axis.plot(x, means, color=colour, linestyle=style, linewidth=1.6, label=name)
            axis.fill_between(
                x,
                [m - s for m, s in zip(means, stds, strict=True)],
                [m + s for m, s in zip(means, stds, strict=True)],
                color=colour,
                alpha=0.12,
                linewidth=0,
            )
        if metric == "test_log_likelihood" and ceilings:
            axis.axhline(
                ceilings[0],
                color="black",
                linestyle=(0, (1, 3)),
                linewidth=1,
                label=f"the data's own log-density ({ceilings[0]:.3f})",
            )
        axis.set_ylabel(metric.replace("_", " "))
        axis.set_title(
            f"{title}: mean ± std over {seeds} seed(s)"
            if title
            else f"mean ± std over {seeds} seed(s)"
        )
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # none when every run of the panel diverged
            axis.legend(
                loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize="small"
            )
    axes[-1, 0].set_xlabel(
        "wall time of the run's stack (s)" if x_axis == "seconds" else "iteration"
    )
    figure.tight_layout()
    return figure


def format_table(rows: list[dict[str, Any]], metric: str = "test_log_likelihood") -> str:
    """A Markdown table of the comparison rows, failures listed under it: the metric's
    mean ± std (and, for a log-likelihood, the iteration it converged at), the final
    FID's when the runs computed one, and the seconds per run."""
    columns = [metric] + (["fid"] if any("fid_mean" in row for row in rows) else [])
    likelihood = metric.endswith("log_likelihood")
    lines = [
        "| method | seeds | "
        + " | ".join(f"{name.replace('_', ' ')} (mean ± std)" for name in columns)
        + (" | converged at" if likelihood else "")
        + " | seconds per run (stack's ÷ its runs) |",
        "| --- | --- | " + "--- | " * (len(columns) + likelihood) + "--- |",
    ]
    for row in rows:
        values = [
            f"{row[f'{name}_mean']:.4f} ± {row[f'{name}_std']:.4f}"
            if f"{name}_mean" in row
            else "–"
            for name in columns
        ]
        converged = row.get("converged_at")
        if likelihood:
            values.append(f"{converged if converged is not None else '–'}")
        seconds = row.get("seconds_per_run")
        lines.append(
            f"| {row['method']} | {row['seeds'] - len(row['failures'])}/{row['seeds']} | "
            + " | ".join(values)
            + f" | {f'{seconds:.1f}' if seconds is not None else '–'} |"
        )
    failures = [f for row in rows for f in row["failures"]]
    if failures:
        lines.append("")
        lines.append("Diverged runs:")
        for f in failures:
            lines.append(
                f"- {f['preset']} seed {f['seed']}: iteration {f['iteration']}, {f['reason']}"
            )
    return "\n".join(lines) + "\n"

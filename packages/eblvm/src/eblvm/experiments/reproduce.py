"""``eblvm reproduce``: every claim of ``claims.CLAIMS`` that this machine can run,
measured at one scale, decided by its rule and written into ``out/REPORT.md``.

A claim keeps its record in ``out/claims/<key>.json``. A finished claim is not
measured again; a claim stopped halfway resumes through the trainer's own run folders
(finished runs train nothing, interrupted ones continue from their checkpoints). A claim
that was not run here (no GPU, no data, no deep runs given) is looked at again on every
call that selects it; until then the report shows why it was not run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eblvm.experiments.claims import CLAIMS, FULL, NOT_RUN, QUICK, Claim, Context, Scale
from eblvm.runs import atomic_write_bytes, write_json

REPORT = "REPORT.md"
STATE = "reproduce.json"
CLAIMS_FOLDER = "claims"


def claim_keys() -> list[str]:
    return [claim.key for claim in CLAIMS]


def _selected(only: Sequence[str] | None) -> list[Claim]:
    if not only:
        return list(CLAIMS)
    unknown = [key for key in only if key not in claim_keys()]
    if unknown:
        raise ValueError(f"--only names unknown claims {unknown}; the claims: {claim_keys()}")
    return [claim for claim in CLAIMS if claim.key in only]


def _check_scale(out: Path, scale: Scale) -> None:
    """Record the scale in ``out``; refuse a folder that holds another scale's runs."""
    state = out / STATE
    if state.exists():
        held = json.loads(state.read_text()).get("scale")
        if held != scale.name:
            raise ValueError(
                f"{out} holds a reproduction at scale {held!r}, not {scale.name!r}; "
                "choose another --out"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    write_json(state, {"scale": scale.name, "settings": dataclasses.asdict(scale)})


def _record_path(out: Path, claim: Claim) -> Path:
    return out / CLAIMS_FOLDER / f"{claim.key}.json"


def _saved(out: Path, claim: Claim) -> dict[str, Any] | None:
    """The claim's last record in ``out``, finished or not run here."""
    path = _record_path(out, claim)
    return json.loads(path.read_text()) if path.exists() else None


def _finished(out: Path, claim: Claim) -> dict[str, Any] | None:
    saved = _saved(out, claim)
    return None if saved is None or saved["verdict"].startswith(NOT_RUN) else saved


def _minutes_left(claims: Sequence[Claim], scale: Scale, pace: float) -> float:
    return pace * sum(scale.minutes.get(claim.key, 0.1) for claim in claims)


def reproduce(
    out: str | os.PathLike[str],
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    frey_root: str | os.PathLike[str] | None = None,
    deep_runs: str | os.PathLike[str] | None = None,
    scale: Scale | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Measure the claims (``only``: those keys) at ``scale`` (default: ``QUICK`` when
    ``quick``, else ``FULL``), skipping claims already finished in ``out``, and write
    ``out/REPORT.md`` after each. ``frey_root``: where ``frey_rawface.mat`` is looked for
    (default: the Frey presets' ``data_root``); ``deep_runs``: a folder holding finished
    deep runs (``<preset>/evaluation-*.json``). One progress line per claim on stdout
    when ``progress``. Returns every claim's record, in the order of ``CLAIMS``."""
    from eblvm.presets import get_preset

    if scale is None:
        scale = QUICK if quick else FULL
    folder = Path(out)
    selected = _selected(only)
    _check_scale(folder, scale)
    context = Context(
        out=folder,
        scale=scale,
        frey_root=Path(frey_root or get_preset("frey-vages-dsm").data.data_root),
        deep_runs=None if deep_runs is None else Path(deep_runs),
    )
    records = {claim.key: _record(folder, claim) for claim in CLAIMS}
    todo = [claim for claim in selected if _finished(folder, claim) is None]
    spent = estimated = 0.0
    for index, claim in enumerate(selected, start=1):
        head = f"[{index}/{len(selected)}] {claim.key}"
        finished = _finished(folder, claim)  # also by another call on this folder meanwhile
        if finished is not None:
            records[claim.key] = finished
            if progress:
                print(f"{head}: finished before ({records[claim.key]['verdict']})")
            continue
        pace = spent / estimated if estimated else 1.0
        if progress:
            left = _minutes_left(todo[todo.index(claim) :], scale, pace)
            print(f"{head} {claim.title}: started, about {left:.1f} min left", flush=True)
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        outcome = claim.measure(context)
        minutes = (time.perf_counter() - start) / 60
        cpu_minutes = (_cpu_seconds() - cpu_start) / 60
        spent += minutes
        estimated += scale.minutes.get(claim.key, 0.1)
        records[claim.key] = {
            "key": claim.key,
            "scale": scale.name,
            "verdict": outcome.verdict,
            "setting": outcome.setting,
            "measured": outcome.measured,
            "figures": list(outcome.figures),
            "minutes": minutes,
            "cpu_minutes": cpu_minutes,
        }
        if records[claim.key] != _saved(folder, claim):  # not run here: kept, but tried again
            write_json(_record_path(folder, claim), records[claim.key])
        if progress:
            print(f"{head}: {outcome.verdict} ({minutes:.1f} min)", flush=True)
        write_report(folder, scale, records)
    for claim in CLAIMS:  # and those another call on this folder finished meanwhile
        finished = _finished(folder, claim)
        if finished is not None:
            records[claim.key] = finished
    write_report(folder, scale, records)
    return [records[claim.key] for claim in CLAIMS]


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished child processes (compare's
    workers), user and system."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _record(out: Path, claim: Claim) -> dict[str, Any]:
    """A claim's last record, else a placeholder naming the command that measures it."""
    saved = _saved(out, claim)
    if saved is not None:
        return saved
    return {
        "key": claim.key,
        "verdict": f"{NOT_RUN}: not measured yet (`eblvm reproduce --out {out} --only "
        f"{claim.key}` measures it)",
        "setting": "",
        "measured": "",
        "figures": [],
        "minutes": 0.0,
        "cpu_minutes": 0.0,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> str:
    """The packages' and torch's versions, Python, the CPU and the threads, as Markdown."""
    import torch

    from eblvm.cli import versions

    lines = [f"- {line}" for line in versions().splitlines()]
    lines += [
        f"- Python {platform.python_version()} on {platform.platform()}",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical cores; torch threads "
        f"{torch.get_num_threads()} per process; CUDA "
        f"{'available' if torch.cuda.is_available() else 'not available'}",
    ]
    if hasattr(os, "getloadavg"):  # the wall-clock minutes depend on what else runs
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        lines.append(f"- load average when the report was written (1, 5, 15 min): {load}")
    return "\n".join(lines)


def _verdict_line(record: dict[str, Any], scale: Scale) -> str:
    mark = f" ({scale.mark})" if scale.mark else ""
    return f"**Verdict:** {record['verdict']}{mark}"


def format_report(out: Path, scale: Scale, records: Mapping[str, dict[str, Any]]) -> str:
    """REPORT.md: the environment, then per claim the paper's statement, the rule, the
    setting as run, the numbers, the verdict line, the figures and the minutes."""
    pairs = [(claim, records[claim.key]) for claim in CLAIMS]
    total = sum(record["minutes"] for _, record in pairs)
    cpu = sum(record.get("cpu_minutes") or 0.0 for _, record in pairs)
    marked = f" (fewer seeds and iterations; every verdict marked ({scale.mark}))"
    parts = [
        "# Reproducing the appendix of Bao et al. (ICML 2021), VaGES",
        "",
        f"Scale: **{scale.name}**"
        + (marked if scale.mark else "")
        + f". Command: `eblvm reproduce --out {out}{' --quick' if scale == QUICK else ''}`. "
        f"Minutes measuring, all claims: {total:.1f} (CPU minutes, all processes: {cpu:.1f}).",
        "",
        "| claim | verdict | minutes | CPU minutes |",
        "| --- | --- | --- | --- |",
    ]
    for claim, record in pairs:
        line = _verdict_line(record, scale).removeprefix("**Verdict:** ")
        parts.append(
            f"| [{claim.key}](#{_anchor(claim)}) | {line} | {record['minutes']:.1f} | "
            f"{_cpu_shown(record)} |"
        )
    parts += ["", "## Environment", "", environment(), ""]
    for claim, record in pairs:
        parts += [
            f'<a id="{_anchor(claim)}"></a>',
            f"## {claim.key}: {claim.title}",
            "",
            f"**Where:** {claim.source}",
            "",
            f"**Paper:** {claim.statement}",
            "",
            f"**Rule:** {claim.rule}",
            "",
        ]
        if record["setting"]:
            parts += [f"**Setting:** {record['setting']}", ""]
        if record["measured"]:
            parts += ["**Measured:**", "", record["measured"].rstrip("\n"), ""]
        parts += [_verdict_line(record, scale), ""]
        for figure in record["figures"]:
            parts += [f"![{claim.key}]({figure})", ""]
        parts += [
            f"**Minutes:** {record['minutes']:.1f} (CPU minutes, all processes: "
            f"{_cpu_shown(record)})",
            "",
        ]
    return "\n".join(parts)


def _cpu_shown(record: dict[str, Any]) -> str:
    """A record's CPU minutes, "–" for a record written before they were kept."""
    cpu = record.get("cpu_minutes")
    return "–" if cpu is None else f"{cpu:.1f}"


def _anchor(claim: Claim) -> str:
    return "claim-" + claim.key.lower().replace(".", "-")


def write_report(out: Path, scale: Scale, records: Mapping[str, dict[str, Any]]) -> Path:
    """Write ``out/REPORT.md`` from the claims' records (by key); returns its path."""
    path = out / REPORT
    atomic_write_bytes(path, format_report(out, scale, records).encode())
    return path

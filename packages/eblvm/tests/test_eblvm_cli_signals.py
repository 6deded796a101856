"""Signals sent to a real ``eblvm`` process: the first stops after the iteration, a
second (or one while compiling or finishing) stops at once; 130 and one line of ours
each time, the last checkpoint kept, nothing left running or locked."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eblvm.runs import load_checkpoint

SMALL = ["--set=n_train=1000", "--set=compile=off"]
SLOW = ["--set=posterior.steps=300", "--set=iterations=100000", "--set=log_every=1"]


def _eblvm(*arguments: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "eblvm", *arguments],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        **popen,  # type: ignore[arg-type]
    )


def _wait_for(ready, process: subprocess.Popen[str], seconds: float = 600) -> None:
    """Until ``ready()``; the process killed when it does not come (its compare
    workers then stop on their own)."""
    deadline = time.monotonic() + seconds
    while not ready():
        if process.poll() is not None:
            raise AssertionError(process.communicate()[1])
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"not ready after {seconds} s")
        time.sleep(0.1)


def _has_rows(path: Path) -> bool:
    return path.exists() and bool(path.read_text())


def _read_line_with(process: subprocess.Popen[str], text: str) -> list[str]:
    lines = []
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"{text!r} never came: {lines}")


def test_a_second_signal_stops_at_once_keeping_the_last_checkpoint(tmp_path):
    """The first Ctrl-C says it stops after the iteration; the second stops in the
    middle of the (slow) iteration and keeps the checkpoint of the one before."""
    out = tmp_path / "run"
    process = _eblvm(
        "train", "checkerboard-vages-dsm", "--out", str(out), *SMALL, *SLOW,
        "--set=checkpoint_every=1", "--no-progress",
    )  # fmt: skip
    _wait_for(lambda: _has_rows(out / "metrics.jsonl"), process)
    process.send_signal(signal.SIGINT)
    before = _read_line_with(process, "stopping after this iteration (Ctrl-C again to stop now)")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    err = "".join(before) + err
    assert process.returncode == 130
    assert "Traceback" not in err
    kept = load_checkpoint(out / "checkpoint.pt")["iteration"]
    # in the next iteration, or (when the first signal came while the last checkpoint was
    # written) just after it, before the next began
    stopped = (f"in iteration {kept + 1}", f"after iteration {kept}")
    assert any(
        f"stopped at once {when}; the checkpoint of iteration {kept}" in err for when in stopped
    )
    assert err.count("eblvm: ") == 2  # the stopping line, then the stop


def test_a_signal_while_compiling_stops_at_once(tmp_path):
    """The step compiles for seconds: a signal then ends the process promptly with one
    line, not after the compiling."""
    out = tmp_path / "run"
    process = _eblvm(
        "train", "checkerboard-quick", "--out", str(out), "--set=n_train=1000",
        "--set=compile=on", "--set=iterations=100",
    )  # fmt: skip
    _read_line_with(process, "checkerboard-quick: compiling the step…")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130
    assert err == "eblvm: stopped at once while compiling the step; nothing was checkpointed yet\n"
    assert not (out / "checkpoint.pt").exists()


def test_a_signal_in_the_final_evaluation_stops_and_a_rerun_finishes_it(tmp_path):
    """A signal once the last iteration's step is done (here during its AIS, slow)
    stops at once with the trained state checkpointed; the same command then makes the
    final row, the evaluation and the summary."""
    out = tmp_path / "run"
    command = [
        "train", "digits-vages-dsm", "--out", str(out), "--set=compile=off",
        "--set=iterations=2", "--set=log_every=1", "--set=model.h_dim=30",
        "--set=evaluation.ais_chains=200", "--set=evaluation.ais_steps=3000", "--no-progress",
    ]  # fmt: skip
    process = _eblvm(*command)
    _wait_for(lambda: _has_rows(out / "metrics.jsonl"), process)  # iteration 1's row
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        f"eblvm: stopped at once during the final evaluation; the checkpoint of iteration 2 "
        f"is kept in {out / 'checkpoint.pt'}: run the same command again to finish the "
        "evaluation"
    )
    assert not (out / "summary.json").exists()
    again = _eblvm(*command)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 2 and "test_log_likelihood" in summary
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [1, 2]  # the final row, written once
    assert "test_log_likelihood" in rows[-1]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("how", ["group", "main-sigterm", "main-sigint"])
def test_compare_jobs_stops_its_workers_on_a_signal(tmp_path, how):
    """Ctrl-C to the terminal's process group, or SIGTERM/SIGINT to the comparing
    process alone: every worker checkpoints and ends, its lock released, and the command
    exits 130 with one line."""
    out = tmp_path / "cmp"
    process = _eblvm(
        "compare", "checkerboard-vages-dsm", "checkerboard-dsm", "--out", str(out),
        "--seeds=1", "--jobs=2", *SMALL, *SLOW, "--set=checkpoint_every=100000",
        "--no-progress", start_new_session=True,
    )  # fmt: skip
    folders = [out / name / "seed0" for name in ("checkerboard-vages-dsm", "checkerboard-dsm")]
    _wait_for(lambda: all(_has_rows(f / "metrics.jsonl") for f in folders), process)
    workers = [int((f / "run.lock").read_text()) for f in folders]
    if how == "group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM if how == "main-sigterm" else signal.SIGINT)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 130
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "eblvm: interrupted: 2 of 2 stack(s) unfinished, each kept at its latest "
        "checkpoint: run the same command again to resume"
    )
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived the command"
        time.sleep(0.1)
    for folder in folders:
        assert load_checkpoint(folder / "checkpoint.pt")["iteration"] >= 1
        lock = os.open(folder / "run.lock", os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
        os.close(lock)


def test_compiling_shows_as_such_and_its_time_stays_out_of_the_rate(capsys, monkeypatch):
    """In a log (no terminal): a line when the compiling begins and ends, and the rate of
    the first iterations measured from the end of the compiling."""
    import eblvm.progress
    from eblvm.progress import Progress

    clock = [0.0]
    monkeypatch.setattr(eblvm.progress.time, "monotonic", lambda: clock[0])
    with Progress(100, 0, "checkerboard-quick", enabled=True, every=1.0) as progress:
        with progress.compiling():
            clock[0] = 50.0
        clock[0] = 52.0
        progress.update(1)
        clock[0] = 54.0
        progress.update(4, "loss=1")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "checkerboard-quick: compiling the step…",
        "checkerboard-quick: iteration 1/100 (0.5 it/s) ",
        "checkerboard-quick: iteration 4/100 (1.0 it/s) loss=1",
    ]

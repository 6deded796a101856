"""The run folder: one writer, safe loading, damage detected and reported in one line,
files readable by colleagues, repeatable runs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from eblvm_testing import small_grbm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eblvm import CheckpointError, RunLocked, train
from eblvm.cli import main
from eblvm.grbm.task import GRBMTask
from eblvm.runs import (
    CHECKPOINT,
    PREVIOUS,
    RunError,
    RunFolder,
    content_hash,
    load_checkpoint,
    read_metrics,
    save_checkpoint,
)

SMALL = small_grbm("iterations=10", "checkpoint_every=5", "eval_every=10")
CLI = ["--set=n_train=2000", "--set=iterations=10", "--set=checkpoint_every=5", "--set=compile=off"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    train(GRBMTask(SMALL), SMALL, out, progress=False)
    return out


def _copy(run: Path, to: Path) -> Path:
    to.mkdir(parents=True)
    for path in run.iterdir():
        if path.is_file():
            (to / path.name).write_bytes(path.read_bytes())
    return to


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    with RunFolder(tmp_path / "run"):
        with pytest.raises(RunLocked, match=rf"in use by process {os.getpid()}"):
            train(GRBMTask(SMALL), SMALL, tmp_path / "run", progress=False)
    train(GRBMTask(SMALL), SMALL, tmp_path / "run", progress=False)  # released


def test_a_lock_left_by_a_killed_process_is_not_held(tmp_path):
    out = tmp_path / "run"
    script = (
        "import os, sys; from eblvm.runs import RunFolder; "
        "RunFolder(sys.argv[1]).__enter__(); os._exit(9)"
    )
    subprocess.run([sys.executable, "-c", script, str(out)], check=False)
    assert (out / "run.lock").read_text().strip()  # the dead process's pid is still written
    train(GRBMTask(SMALL), SMALL, out, progress=False)


def test_two_processes_into_one_folder_one_is_refused(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "eblvm",
        "train",
        "checkerboard-vages-dsm",
        "--out",
        str(out),
        "--no-progress",
    ]
    slow = [*command, *CLI[:1], "--set=iterations=3000", "--set=compile=off"]
    first = subprocess.Popen(slow, stderr=subprocess.PIPE, text=True)
    while not (out / "config.json").exists():
        assert first.poll() is None
    second = subprocess.run([*command, *CLI], capture_output=True, text=True)
    first.kill()
    first.wait()
    assert second.returncode == 2
    assert "is in use by process" in second.stderr and "Traceback" not in second.stderr


def test_run_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        train(GRBMTask(SMALL), SMALL, tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    for name in ("config.json", "metrics.jsonl", "summary.json", CHECKPOINT, "density.png"):
        mode = stat.S_IMODE((tmp_path / "run" / name).stat().st_mode)
        assert mode == 0o644, (name, oct(mode))


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".checkpoint.pt.tmp-abc123").write_bytes(b"half a checkpoint")
    train(GRBMTask(SMALL), SMALL, out, progress=False)
    assert not list(out.glob(".*.tmp-*"))


def test_the_previous_checkpoint_is_kept(finished):
    previous = load_checkpoint(finished / PREVIOUS)
    assert previous["iteration"] == 5 and load_checkpoint(finished / CHECKPOINT)["iteration"] == 10


class Payload:
    """Creates a file when unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "owned"))


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(finished, tmp_path, capsys):
    """A pickle payload in checkpoint.pt (resume) or best.pt / checkpoint.pt (sample):
    refused with one line by every loading path; the file it would create never appears."""
    marker = tmp_path / "owned.txt"
    run = _copy(finished, tmp_path / "run")
    torch.save({"state": Payload(str(marker)), "hash": "x"}, run / CHECKPOINT)
    assert main(["train", "checkerboard-vages-dsm", "--out", str(run), "--no-progress", *CLI]) == 2
    err = capsys.readouterr().err
    assert "cannot be read safely" in err and str(run / CHECKPOINT) in err
    with pytest.raises(CheckpointError):
        load_checkpoint(run / CHECKPOINT)
    images = tmp_path / "images"
    images.mkdir()
    (images / "config.json").write_text(
        json.dumps(json.loads((run / "config.json").read_text()) | {})
    )
    for name in ("best.pt", CHECKPOINT):
        torch.save({"ema": Payload(str(marker))}, images / name)
        with pytest.raises(CheckpointError):
            load_checkpoint(images / name)
    assert not marker.exists()


def _damaged(record_bytes: bytes, at: int, kind: str) -> bytes:
    if kind == "truncate":
        return record_bytes[:at]
    flipped = bytearray(record_bytes)
    flipped[at % len(flipped)] ^= 0xFF
    return bytes(flipped)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(at=st.integers(0, 10**7), kind=st.sampled_from(["truncate", "flip"]))
def test_a_damaged_checkpoint_is_refused_never_trained_on(finished, tmp_path_factory, at, kind):
    """Truncated at any byte or with any byte flipped: resuming stops with a CheckpointError
    naming the file (never a traceback from inside torch, never training on it), or —
    when the flip hit bytes that carry no content — resumes to the same parameters."""
    run = _copy(finished, tmp_path_factory.mktemp("damaged") / "run")
    original = (run / CHECKPOINT).read_bytes()
    damaged = _damaged(original, at % (len(original) + 1), kind)
    (run / CHECKPOINT).write_bytes(damaged)
    longer = small_grbm("iterations=10", "checkpoint_every=5", "eval_every=10")
    try:
        train(GRBMTask(longer), longer, run, progress=False)
    except CheckpointError as error:
        assert str(run / CHECKPOINT) in str(error)
        assert "checkpoint.prev.pt (iteration 5) is intact" in str(error)
        return
    good = load_checkpoint(finished / CHECKPOINT)["state"]["theta"]
    resumed = load_checkpoint(run / CHECKPOINT)["state"]["theta"]
    assert all(torch.equal(resumed[k], v) for k, v in good.items())


def test_a_checkpoint_of_other_shapes_is_refused_naming_the_tensor(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    record = load_checkpoint(run / CHECKPOINT)
    record["state"]["theta"]["W"] = torch.zeros(3, 3)
    save_checkpoint(record, run / CHECKPOINT)
    with pytest.raises(CheckpointError, match=r"W must have shape \(2, 4\), got \(3, 3\)"):
        train(GRBMTask(SMALL), SMALL, run, progress=False)


def test_a_checkpoint_of_another_dtype_is_refused_naming_the_tensor(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    record = load_checkpoint(run / CHECKPOINT)
    record["state"]["theta"]["W"] = record["state"]["theta"]["W"].to(torch.int64)
    save_checkpoint(record, run / CHECKPOINT)
    with pytest.raises(CheckpointError, match=r"W must be torch.float32, got torch.int64"):
        train(GRBMTask(SMALL), SMALL, run, progress=False)


def test_the_content_hash_sees_every_value():
    record = {"a": torch.zeros(3), "b": {"c": 1}}
    changed = {"a": torch.tensor([0.0, 0.0, 1e-30]), "b": {"c": 1}}
    assert content_hash(record) != content_hash(changed)
    assert content_hash(record) == content_hash({"b": {"c": 1}, "a": torch.zeros(3)})


def test_a_partial_last_metrics_line_is_dropped_with_a_note(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path / "run")
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text + '{"iteration": 11, "lo')
    rows, note = read_metrics(run / "metrics.jsonl")
    assert [row["iteration"] for row in rows] == [10] and "partial last line 2" in note
    (run / "metrics.jsonl").write_text('{"iteration": 5, "lo\n' + text)
    with pytest.raises(RunError, match=rf"{run / 'metrics.jsonl'} line 1 is damaged"):
        read_metrics(run / "metrics.jsonl")


def test_same_seed_runs_are_bit_identical(tmp_path):
    for name in ("a", "b"):
        train(GRBMTask(SMALL), SMALL, tmp_path / name, progress=False)
    first, second = (load_checkpoint(tmp_path / n / CHECKPOINT)["state"]["theta"] for n in "ab")
    assert all(torch.equal(first[k], second[k]) for k in first)
    rows = [read_metrics(tmp_path / n / "metrics.jsonl")[0] for n in "ab"]
    assert [r["test_log_likelihood"] for r in rows[0]] == [
        r["test_log_likelihood"] for r in rows[1]
    ]


def test_an_out_with_a_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["train", "checkerboard-vages-dsm", "--out", "~/run", "--no-progress", *CLI]) == 0
    assert (tmp_path / "run" / "summary.json").exists() and not Path("~").exists()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(0, 10**6), flip=st.integers(0, 10**6), kind=st.sampled_from(["cut", "flip"]))
def test_damaged_metrics_never_give_a_traceback(finished, tmp_path_factory, cut, flip, kind):
    """metrics.jsonl cut at any byte or with any byte flipped: resuming either reads the
    rows it can (a partial last line dropped with a note) or stops with one RunError
    naming the file and the line."""
    run = _copy(finished, tmp_path_factory.mktemp("metrics") / "run")
    data = bytearray((run / "metrics.jsonl").read_bytes())
    if kind == "cut":
        data = data[: cut % (len(data) + 1)]
    else:
        data[flip % len(data)] ^= 0xFF
    (run / "metrics.jsonl").write_bytes(bytes(data))
    try:
        rows, _ = read_metrics(run / "metrics.jsonl")
    except RunError as error:
        assert str(run / "metrics.jsonl") in str(error) and "line" in str(error)
        return
    except UnicodeDecodeError:
        pytest.fail("a damaged byte gave a raw UnicodeDecodeError")
    assert all(isinstance(row["iteration"], int) for row in rows)


def test_same_seed_image_runs_are_bit_identical(tmp_path):
    from eblvm_testing import RANDOM_IMAGES, tiny_images

    from eblvm.images.task import ImageTask
    from eblvm.settings import apply_overrides

    settings = apply_overrides(
        tiny_images(),
        [
            *RANDOM_IMAGES,
            "iterations=3",
        ],
    )
    for name in "ab":
        train(ImageTask(settings), settings, tmp_path / name, progress=False)
    first, second = (load_checkpoint(tmp_path / n / CHECKPOINT)["state"] for n in "ab")
    for part in ("theta", "phi"):
        assert all(torch.equal(first[part][k], second[part][k]) for k in first[part])


def test_the_former_name_of_a_run_snapshot_is_gone_and_out_warns(tmp_path):
    import eblvm
    from eblvm import loop
    from eblvm.task import RunSnapshot

    for module in (eblvm, loop):
        with pytest.raises(AttributeError):
            _ = module.RunView
    snapshot = RunSnapshot(small_grbm(), tmp_path, None, None)
    with pytest.warns(DeprecationWarning, match="folder"):
        assert snapshot.out == snapshot.folder == tmp_path
    with pytest.raises(AttributeError):
        _ = eblvm.NoSuchName


def test_a_stack_of_no_runs_is_refused_with_a_clear_error():
    from eblvm import train_stack

    with pytest.raises(ValueError, match="at least one run"):
        train_stack(GRBMTask(small_grbm()), [])

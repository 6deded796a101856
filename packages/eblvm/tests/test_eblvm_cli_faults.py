"""Faults of the machine and of the run folder's files: a full disk, a read-only or
refused path, damaged run files. Each ends with one line naming the path (and the
field), a non-zero status (1: a write the device failed; 2: a path or file the user
must fix) and the run folder's last good state kept."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

from eblvm.cli import main
from eblvm.runs import CHECKPOINT, PREVIOUS, load_checkpoint, save_checkpoint, write_json
from eblvm_eval.files import TEMPORARY_MARK

PRESET = "checkerboard-vages-dsm"
CLI = ["--no-progress", "--set=n_train=2000", "--set=checkpoint_every=5", "--set=compile=off"]
TRAIN = ["train", PRESET, *CLI]
# an evaluation at 5 without a logged row: its seconds are unknown (NaN, written as null)
COMPARE = [
    "compare",
    PRESET,
    "--seeds=2",
    *CLI,
    "--set=iterations=10",
    "--set=eval_every=5",
    "--set=log_every=10",
]
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
AS_ROOT = "runs as root, for whom chmod does not make a folder read-only"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A run of 10 iterations: checkpoint.pt at 10, checkpoint.prev.pt at 5."""
    out = tmp_path_factory.mktemp("faults") / "run"
    assert main([*TRAIN, "--set=iterations=10", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "compared"
    assert main([*COMPARE, "--out", str(out)]) == 0
    return out


def _copy(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to)
    return to


def _files(folder: Path) -> dict[str, bytes]:
    """Every file's bytes (the run folder's state), temporary files included."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "run.lock"
    }


def _one_line(capsys: pytest.CaptureFixture[str], *parts: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("eblvm: "), err
    for part in parts:
        assert part in err, err
    return err


def _resume(run: Path) -> list[str]:
    return [*TRAIN, "--set=iterations=20", "--out", str(run)]


# ----------------------------------------------------------------------------- resources


def test_a_full_disk_while_a_checkpoint_is_written_keeps_the_previous(
    finished, tmp_path, monkeypatch, capsys
):
    """torch reports the failed write as `RuntimeError ... unexpected pos`: one line naming
    checkpoint.pt, status 1, checkpoint.pt and checkpoint.prev.pt as they were."""
    run = _copy(finished, tmp_path / "run")
    before = _files(run)
    real_save = torch.save

    class Full:
        def __init__(self, file):
            self.file, self.written = file, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 2000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.file.write(data)

        def flush(self):
            self.file.flush()

    monkeypatch.setattr(torch, "save", lambda obj, file: real_save(obj, Full(file)))
    assert main(_resume(run)) == 1
    _one_line(capsys, f"{run / CHECKPOINT}: no space", "run the same command again")
    assert load_checkpoint(run / CHECKPOINT)["iteration"] == 10
    assert load_checkpoint(run / PREVIOUS)["iteration"] == 5
    after = _files(run)
    assert after[CHECKPOINT] == before[CHECKPOINT] and after[PREVIOUS] == before[PREVIOUS]
    assert not [name for name in after if TEMPORARY_MARK in name]


def test_a_full_disk_while_metrics_are_appended_leaves_no_half_row(
    finished, tmp_path, monkeypatch, capsys
):
    run = _copy(finished, tmp_path / "run")
    metrics = (run / "metrics.jsonl").read_bytes()
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        if b'"iteration": 20' in data:
            real_write(fd, data[:7])  # half a row reached the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    assert main([*_resume(run), "--set=log_every=10"]) == 1
    _one_line(capsys, f"{run / 'metrics.jsonl'}: no space")
    assert (run / "metrics.jsonl").read_bytes() == metrics
    assert load_checkpoint(run / CHECKPOINT)["iteration"] == 15  # the last good one


def test_a_row_the_full_disk_took_in_part_is_taken_back(finished, tmp_path, monkeypatch, capsys):
    """A disk filling up mid-row: write() takes part of the row without an error and
    refuses the rest; the file is cut back to its last whole row."""
    run = _copy(finished, tmp_path / "run")
    metrics = (run / "metrics.jsonl").read_bytes()
    real_write = os.write
    full = []

    def write(fd: int, data: bytes) -> int:
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        if b'"iteration": 20' in data:
            full.append(True)
            return real_write(fd, data[:7])  # as the kernel does with the last free bytes
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    assert main([*_resume(run), "--set=log_every=10"]) == 1
    _one_line(capsys, f"{run / 'metrics.jsonl'}: no space")
    assert (run / "metrics.jsonl").read_bytes() == metrics
    assert load_checkpoint(run / CHECKPOINT)["iteration"] == 15


def test_a_full_compile_cache_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """Inductor wraps the refusal of its cache folder in its own error: the line is the
    system's reason and the cache, status 1, nothing checkpointed."""
    import eblvm.compiled

    def full(graph, example):
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as error:
            raise RuntimeError(f"InductorError: {error!r}") from error

    monkeypatch.setattr(eblvm.compiled, "_inductor", full)
    out = tmp_path / "run"
    argv = ["train", "checkerboard-quick", "--no-progress", "--set=n_train=1000"]
    assert main([*argv, "--set=compile=on", "--set=iterations=5", "--out", str(out)]) == 1
    _one_line(capsys, "(the compile cache, TORCHINDUCTOR_CACHE_DIR): no space")
    assert not (out / CHECKPOINT).exists()


@pytest.mark.parametrize("where", ["inodes", "space"])
def test_a_full_disk_at_the_start_names_the_file_never_a_temporary(
    tmp_path, monkeypatch, capsys, where
):
    """No free inode (the temporary file cannot be created) or no space (its bytes cannot
    be flushed): the line names the file being written, nothing is left behind."""
    if where == "inodes":

        def refuse(*args, dir=None, prefix="", **kwargs):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{dir}/{prefix}x1y2z3")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    else:

        def refuse_fsync(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", refuse_fsync)
    out = tmp_path / "run"
    assert main([*TRAIN, "--set=iterations=10", "--out", str(out)]) == 1
    err = _one_line(capsys, f"{out}/", "no space (or no free inode)")
    assert TEMPORARY_MARK not in err
    assert not [p for p in out.iterdir() if TEMPORARY_MARK in p.name]


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_read_only_run_folder_is_refused_and_left_as_it_was(
    finished, tmp_path, monkeypatch, capsys, code
):
    """Simulated (the system's refusal to create a file), so that it is tested as root too."""
    run = _copy(finished, tmp_path / "run")
    before = _files(run)

    def refuse(*args, dir=None, prefix="", **kwargs):
        raise OSError(code, os.strerror(code), f"{dir}/{prefix}x1y2z3")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert main(_resume(run)) == 2
    _one_line(capsys, f"{run}/", "read-only")
    assert _files(run) == before


@pytest.mark.skipif(ROOT, reason=AS_ROOT)
def test_a_read_only_run_folder_by_chmod(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path / "run")
    before = _files(run)
    run.chmod(0o555)
    try:
        assert main(_resume(run)) == 2
        _one_line(capsys, str(run), "permission denied")
        assert main(["plot", str(run)]) == 2
        _one_line(capsys, str(run / "curves.png"), "permission denied")
    finally:
        run.chmod(0o755)
    assert _files(run) == before


def _out_command(command: str, out: Path, finished: Path) -> list[str]:
    return {
        "train": [*TRAIN, "--set=iterations=10", "--out", str(out)],
        "compare": [*COMPARE, "--out", str(out)],
        "plot": ["plot", str(finished), "--out", str(out / "curves.png")],
        "validate-theorems": ["validate-theorems", "--quick", "--out", str(out)],
    }[command]


@pytest.mark.skipif(ROOT, reason=AS_ROOT)
@pytest.mark.parametrize("command", ["train", "compare", "plot"])
def test_a_read_only_parent_by_chmod(finished, tmp_path, capsys, command):
    parent = tmp_path / "parent"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert main(_out_command(command, parent / "out", finished)) == 2
    finally:
        parent.chmod(0o755)
    _one_line(capsys, str(parent / "out"), "permission denied")
    assert list(parent.iterdir()) == []


@pytest.mark.parametrize("command", ["train", "compare", "plot"])
def test_a_read_only_parent_simulated(finished, tmp_path, monkeypatch, capsys, command):
    parent = tmp_path / "parent"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if parent in self.parents:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(_out_command(command, parent / "out", finished)) == 2
    _one_line(capsys, str(parent / "out"), "permission denied")


@pytest.mark.parametrize("command", ["train", "compare", "plot", "validate-theorems"])
def test_an_out_under_a_file_is_refused(finished, tmp_path, capsys, command):
    run = _copy(finished, tmp_path / "run")
    before = _files(run)
    assert main(_out_command(command, run / "config.json" / "sub", run)) == 2
    _one_line(capsys, str(run / "config.json"), "a part of this path is a file")
    assert _files(run) == before


@pytest.mark.parametrize("command", ["train", "compare", "plot"])
def test_a_name_over_the_limit_is_refused(finished, tmp_path, capsys, command):
    out = tmp_path / ("n" * 300)
    assert main(_out_command(command, out, finished)) == 2
    _one_line(capsys, "a name in this path is too long")
    assert list(tmp_path.iterdir()) == []


def test_a_long_name_whose_temporary_name_would_not_fit_is_written(finished, tmp_path, capsys):
    out = tmp_path / ("p" * 246 + ".png")  # 250 bytes: fits; `.<name>.tmp-XXXXXXXX` would not
    assert main(["plot", str(finished), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


# ----------------------------------------------------------------------------- damaged files


def _generator_state(record):
    record["ranks"][0]["data_generator"] = torch.zeros(3, dtype=torch.uint8)


def _order_out_of_range(record):
    record["ranks"][0]["batches"]["order"] = record["ranks"][0]["batches"]["order"] + 10**6


def _order_repeated(record):
    record["ranks"][0]["batches"]["order"][:] = 0  # every batch the first example


FIELDS = {
    "iteration": lambda r: r.update(iteration="5"),
    "ranks": lambda r: r.update(ranks=[]),
    "best": lambda r: r.update(best=3),
    "running.count": lambda r: r["running"].pop("count"),
    "running.loss": lambda r: r["running"].update(loss="x"),
    "seconds.train": lambda r: r["seconds"].update(train="x"),
    "ranks[0].data_generator": _generator_state,
    "ranks[0].batches.order": _order_out_of_range,
    "ranks[0].batches.order repeated": _order_repeated,
    "ranks[0].batches.cursor": lambda r: r["ranks"][0]["batches"].update(cursor=10**12),
    "iteration is -5": lambda r: r.update(iteration=-5),
}


def _steps(value):
    def edit(record):
        record["state"]["theta_opt"]["steps"] = torch.tensor(value, dtype=torch.float64)

    return edit


def _negative_variance(record):
    variance = record["state"]["theta_opt"]["variance"]
    variance["W"] = -1 - variance["W"]


def _nan_weight(record):
    record["state"]["theta"]["W"][0, 0] = float("nan")


# The training state, checked against the model's own before any file is rewritten (a
# resume rewrites the metrics and settings): a wrong count or moment would only show as
# a run that "diverged" at once.
STATE = {
    "the optimiser's step count is -3.0, not a whole number >= 0": _steps(-3.0),
    "the optimiser's step count is 2.5, not a whole number >= 0": _steps(2.5),
    "the optimiser's step count is nan, not a whole number >= 0": _steps(float("nan")),
    "the optimiser's variance estimate is negative": _negative_variance,
    "W holds NaN or ±inf": _nan_weight,
    "W must have shape (2, 4), got (2, 5)": lambda r: r["state"]["theta"].update(
        W=torch.zeros(2, 5)
    ),
}


@pytest.mark.parametrize("reason", list(STATE))
def test_a_checkpoint_with_a_valid_hash_and_a_wrong_state_is_refused(
    finished, tmp_path, capsys, reason
):
    run = _copy(finished, tmp_path / "run")
    record = load_checkpoint(run / CHECKPOINT)
    STATE[reason](record)
    save_checkpoint(record, run / CHECKPOINT, keep_previous=False)
    before = _files(run)
    assert main(_resume(run)) == 2
    _one_line(capsys, f"{run / CHECKPOINT}: {reason}; the previous checkpoint")
    assert _files(run) == before


@pytest.mark.parametrize("field", list(FIELDS))
def test_a_checkpoint_with_a_valid_hash_and_a_wrong_field_is_refused(
    finished, tmp_path, capsys, field
):
    """Fields checked right after the hash: one line naming the file and the field; no
    file of the run is touched (the metrics are not cut, the settings not rewritten)."""
    run = _copy(finished, tmp_path / "run")
    record = load_checkpoint(run / CHECKPOINT)
    FIELDS[field](record)
    save_checkpoint(record, run / CHECKPOINT, keep_previous=False)
    before = _files(run)
    assert main(_resume(run)) == 2
    _one_line(capsys, f"{run / CHECKPOINT}: {field.split()[0]} is", "checkpoint.prev.pt")
    assert _files(run) == before


def test_a_deleted_checkpoint_beside_a_kept_previous_is_refused_with_what_to_do(
    finished, tmp_path, capsys
):
    """Neither restarted from iteration 0 over the run's files nor continued from an
    older state unasked: the line says how to continue from the previous checkpoint."""
    run = _copy(finished, tmp_path / "run")
    (run / CHECKPOINT).unlink()
    before = _files(run)
    assert main(_resume(run)) == 2
    _one_line(capsys, f"{run / CHECKPOINT} is missing", f"{run / PREVIOUS} (iteration 5)", "mv ")
    assert _files(run) == before


@pytest.mark.parametrize("summary", [True, False])
def test_a_run_whose_checkpoints_were_deleted_is_not_trained_over(
    finished, tmp_path, capsys, summary
):
    """Its summary, or metrics past the first checkpoint's iteration, say that it had
    checkpoints: refused, its metrics kept, never started again from iteration 0."""
    run = _copy(finished, tmp_path / "run")
    (run / CHECKPOINT).unlink()
    (run / PREVIOUS).unlink()
    if not summary:
        (run / "summary.json").unlink()
    before = _files(run)
    assert main(_resume(run)) == 2
    named = run / "summary.json" if summary else f"{run / 'metrics.jsonl'} reaches iteration 10"
    _one_line(capsys, f"{run / CHECKPOINT} and {PREVIOUS} are missing, but {named}")
    assert _files(run) == before


def test_a_run_stopped_before_its_first_checkpoint_starts_again(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path / "run")
    for name in (CHECKPOINT, PREVIOUS, "summary.json"):
        (run / name).unlink()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    kept = [row for row in rows if row["iteration"] <= 5]  # up to the first checkpoint
    (run / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in kept))
    assert main(_resume(run)) == 0
    assert load_checkpoint(run / CHECKPOINT)["iteration"] == 20


def test_a_lock_that_is_a_symbolic_link_is_never_followed(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path / "run")
    outside = tmp_path / "precious.txt"
    outside.write_text("precious\n")
    (run / "run.lock").unlink()
    (run / "run.lock").symlink_to(outside)
    before = _files(run)
    assert main(_resume(run)) == 2
    _one_line(capsys, f"{run / 'run.lock'} is a symbolic link")
    assert outside.read_text() == "precious\n" and _files(run) == before


def test_metrics_appended_through_a_symbolic_link_are_refused(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path / "run")
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes((run / "metrics.jsonl").read_bytes())
    (run / "metrics.jsonl").unlink()
    (run / "metrics.jsonl").symlink_to(outside)
    text = outside.read_bytes()
    main([*_resume(run), "--set=log_every=1"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert outside.read_bytes() == text  # written in the folder (replaced), never through


@pytest.mark.parametrize("name", ["metrics.jsonl", "run.lock"])
def test_a_folder_where_a_run_file_belongs_is_one_line(finished, tmp_path, capsys, name):
    run = _copy(finished, tmp_path / "run")
    (run / name).unlink()
    (run / name).mkdir()
    before = _files(run)
    assert main(_resume(run)) == 2
    _one_line(capsys, f"{run / name}: a folder where a file belongs")
    assert _files(run) == before


DEEP = "[" * 200_000


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("metrics.jsonl", "train"),
        ("metrics.jsonl", "plot"),
        ("metrics.jsonl", "compare"),
        ("config.json", "sample"),
    ],
)
def test_deeply_nested_json_is_refused_not_a_recursion_error(
    finished, compared, tmp_path, capsys, name, command
):
    if command == "compare":
        folder = _copy(compared, tmp_path / "compared")
        run = folder / PRESET / "seed0"
    else:
        folder = run = _copy(finished, tmp_path / "run")
    damaged = run / name
    damaged.write_text(DEEP + "\n" + damaged.read_text())  # not the last line: no partial line
    before = _files(folder)
    argv = {
        "train": _resume(run),
        "plot": ["plot", str(run)],
        "compare": [*COMPARE, "--out", str(folder)],
        "sample": ["sample", str(run), "--n", "4", "--gibbs-steps", "2"],
    }[command]
    assert main(argv) == 2
    _one_line(capsys, str(damaged), "nested more than")
    assert _files(folder) == before


def test_a_string_where_a_number_belongs_in_metrics_names_the_file_and_line(
    compared, tmp_path, capsys
):
    folder = _copy(compared, tmp_path / "compared")
    metrics = folder / PRESET / "seed1" / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    rows[-1]["test_log_likelihood"] = "x"
    metrics.write_text("".join(json.dumps(row) + "\n" for row in rows))
    made = folder / PRESET / "seed0" / "run.json"  # would be rewritten by a resume of seed0
    made.write_text(json.dumps({**json.loads(made.read_text()), "command": "before"}))
    before = _files(folder)
    assert main([*COMPARE, "--out", str(folder)]) == 2
    _one_line(capsys, f"{metrics} line {len(rows)}", "test_log_likelihood is 'x'")
    assert _files(folder) == before  # seed0's files too: read before any is written


def test_a_mismatch_names_the_runs_own_value_or_says_config_json_was_edited(
    finished, tmp_path, capsys
):
    run = _copy(finished, tmp_path / "run")
    assert main([*_resume(run), "--set=lr=0.5"]) == 2
    _one_line(capsys, "optimiser.lr: 0.001 there, 0.5 here")
    settings = json.loads((run / "config.json").read_text())
    settings["optimiser"]["lr"] = 0.5  # edited to agree with the command: not the run's
    (run / "config.json").write_text(json.dumps(settings))
    assert main([*_resume(run), "--set=lr=0.5"]) == 2
    err = _one_line(capsys, "config.json (missing, damaged or edited) no longer records them")
    assert "see config.json" not in err and "0.5 there" not in err


def test_a_partial_metrics_line_is_reported_without_progress(finished, tmp_path, capsys):
    run = _copy(finished, tmp_path / "run")
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + '{"iteration": 1')
    assert main(_resume(run)) == 0
    assert "dropped the partial last line 2" in capsys.readouterr().err


# ----------------------------------------------------------------------------- JSON written


def test_non_finite_numbers_are_written_as_null(tmp_path):
    write_json(tmp_path / "x.json", {"a": [float("nan"), 1.0], "b": float("inf")})

    def bare(constant: str) -> None:
        raise AssertionError(f"bare {constant} in JSON")

    assert json.loads((tmp_path / "x.json").read_text(), parse_constant=bare) == {
        "a": [None, 1.0],
        "b": None,
    }


def test_comparison_json_is_strict_json(compared):
    def bare(constant: str) -> None:
        raise AssertionError(f"bare {constant} in comparison.json")

    rows = json.loads((compared / "comparison.json").read_text(), parse_constant=bare)
    assert rows[0]["curve"]["iteration"] == [5, 10]
    assert rows[0]["curve"]["seconds"][0] is None


# ----------------------------------------------------------------------------- a stack


class _Killed(BaseException):
    """The process killed (nothing after it runs, no handler sees it)."""


def test_a_stack_stopped_while_writing_its_checkpoints_continues_as_one_stack(
    compared, tmp_path, monkeypatch, capsys
):
    """Killed after seed0's checkpoint at iteration 10 was written and before seed1's: the
    run again continues both from iteration 5 as one stack (seed0 from its previous
    checkpoint), and ends as the uninterrupted comparison, bit for bit."""
    from eblvm.runs import RunFolder

    real_save = RunFolder.save_checkpoint

    def save(self, settings, record):
        if record["iteration"] == 10 and self.out.name == "seed1":
            raise _Killed
        return real_save(self, settings, record)

    monkeypatch.setattr(RunFolder, "save_checkpoint", save)
    out = tmp_path / "compared"
    with pytest.raises(_Killed):
        main([*COMPARE, "--out", str(out)])
    runs = [out / PRESET / f"seed{seed}" for seed in (0, 1)]
    assert [load_checkpoint(run / CHECKPOINT)["iteration"] for run in runs] == [10, 5]
    monkeypatch.setattr(RunFolder, "save_checkpoint", real_save)
    capsys.readouterr()
    assert main([*COMPARE, "--out", str(out)]) == 0
    assert "the stack was stopped while writing its checkpoints" in capsys.readouterr().err
    for seed, run in enumerate(runs):
        reference = compared / PRESET / f"seed{seed}"
        assert json.loads((run / "summary.json").read_text())["stacked_runs"] == 2
        ours, theirs = (load_checkpoint(r / CHECKPOINT)["state"]["theta"] for r in (run, reference))
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)

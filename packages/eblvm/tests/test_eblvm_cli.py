"""The command line: listing, showing, training, comparing, plotting, and one clear line
with a non-zero status for every expected failure."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from eblvm.cli import main

SMALL = ["--set=n_train=1000", "--set=compile=off", "--no-progress"]


def test_list_names_the_presets_in_aligned_columns(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    for name in (
        "checkerboard-quick",
        "checkerboard-vages-dsm",
        "frey-bism-dsm-n5",
        "cifar10-ebm-mdsm",
    ):
        assert any(line.startswith(name + " ") for line in listed)
    cd = next(line for line in listed if line.startswith("checkerboard-cd "))
    assert "cd-1" in cd and "dsm" not in cd and "L=" not in cd
    columns = {line.index("iterations=") for line in listed if "iterations=" in line}
    assert len(columns) == 1


def test_show_prints_every_setting_with_its_value(capsys):
    assert main(["show", "checkerboard-cd", "--set", "lr=0.01", "--threads", "1"]) == 0
    shown = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert shown["method.name"] == "'cd'" and shown["optimiser.lr"] == "0.01"
    assert shown["cadence.iterations"] == "100000"


def test_train_help_is_short_and_points_to_the_settings(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "--set" in text and "--config" in text and "`eblvm settings [PRESET]`" in text
    assert "posterior.fit_at" not in text and len(text.splitlines()) < 45
    assert main(["settings"]) == 0
    assert "fit_at" in capsys.readouterr().out


def test_train_writes_the_summary_and_the_plot(tmp_path, capsys):
    out = tmp_path / "run"
    command = ["train", "checkerboard-quick", "--out", str(out), "--set", "iterations=2e1"]
    assert main([*command, "--set", "eval_every=10", *SMALL, "--threads", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"test_log_likelihood", "iterations", "seconds", "evaluation_seconds"} <= set(summary)
    assert summary["iterations"] == 20
    assert (out / "density.png").exists()
    provenance = json.loads((out / "run.json").read_text())
    assert provenance["torch"] and provenance["command"] and "eblvm" in provenance["packages"]
    assert "test log-likelihood" in capsys.readouterr().out
    assert main(["plot", str(out)]) == 0
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["train", "nope", "--out", "x"], "unknown preset 'nope'"),
        (["train", "checkerboard-quik", "--out", "x"], "did you mean checkerboard-quick"),
        (["train", "checkerboard-quick", "--out", "x", "--set", "lrr=1"], "did you mean lr"),
        (
            ["train", "checkerboard-quick", "--out", "x", "--set", "optimiser.beta1=1.5"],
            "optimiser.beta1 must be in",
        ),
        (
            ["train", "checkerboard-quick", "--out", "x", "--set", "seed=1e23"],
            "setting seed expects int",
        ),
        (["train", "checkerboard-quick", "--out", "x", "--set", "iterations=2.5"], "expects int"),
        (
            ["train", "checkerboard-vages-ssm", "--out", "x", "--set", "n_samples=2"],
            "method.n_samples must be at least 3 for VaGES with ssm",
        ),
    ],
)
def test_bad_settings_give_one_line(tmp_path, capsys, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    assert main(arguments) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_an_out_that_is_a_file_or_empty_gives_one_line(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("")
    assert main(["train", "checkerboard-quick", "--out", str(path), *SMALL]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["train", "checkerboard-quick", "--out", ""])
    assert caught.value.code == 2


def test_missing_data_file_names_the_path(tmp_path, capsys):
    code = main(
        [
            "train",
            "frey-vages-dsm",
            "--out",
            str(tmp_path / "run"),
            "--set",
            f"data_root={tmp_path}",
        ]
    )
    assert code == 2
    assert str(tmp_path / "frey_rawface.mat") in capsys.readouterr().err


def test_compare_writes_plot_and_table(tmp_path, capsys):
    command = ["compare", "checkerboard-dsm", "checkerboard-vages-dsm", "--out", str(tmp_path)]
    code = main(
        [*command, "--seeds", "2", "--set", "iterations=20", "--set", "eval_every=10", *SMALL]
    )
    assert code == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert [row["method"] for row in rows] == ["checkerboard-dsm", "checkerboard-vages-dsm"]
    assert all(row["seeds"] == 2 and not row["failures"] for row in rows)
    assert all(row["curve"]["iteration"] == [10, 20] for row in rows)
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "| checkerboard-dsm | 2/2 |" in (tmp_path / "comparison.md").read_text()
    for seed in (0, 1):
        summary = json.loads(
            (tmp_path / "checkerboard-vages-dsm" / f"seed{seed}" / "summary.json").read_text()
        )
        assert summary["stacked_runs"] == 2


def test_compare_jobs_trains_in_workers_and_reports_a_failed_one(tmp_path, capsys):
    """Two stacks in two worker processes: both finish as in one process; a worker's
    failure (here a data set that is not there) is the command's one line."""
    command = ["compare", "checkerboard-dsm", "checkerboard-vages-dsm", "--out", str(tmp_path)]
    tiny = ["--seeds", "1", "--jobs", "2", "--no-stack", "--set", "iterations=10", *SMALL]
    assert main([*command, *tiny]) == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert all(row["seeds"] == 1 and not row["failures"] for row in rows)
    capsys.readouterr()
    failing = ["compare", "checkerboard-dsm", "frey-vages-dsm", "--out", str(tmp_path / "x")]
    missing = ["--set", "data.data_root=/nowhere", "--set", "compile=off", "--no-progress"]
    assert main([*failing, *tiny[: -len(SMALL)], *missing]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("eblvm: error: Frey face file not found: /nowhere/frey_rawface.mat")


def test_a_diverging_run_is_recorded_and_the_others_finish(tmp_path, capsys):
    command = [
        "compare",
        "checkerboard-dsm",
        "checkerboard-vages-dsm",
        "--out",
        str(tmp_path),
        "--seeds",
        "1",
    ]
    assignments = ["--set=iterations=20", "--set=eval_every=10", "--set=log_every=10"]
    # DSM at a huge step size blows up; VaGES with its own posterior stays finite at 1e-3.
    code = main([*command, *assignments, *SMALL, "--set=lr=1e4", "--set=dsm_sigma=1e-3"])
    assert code == 1
    rows = json.loads((tmp_path / "comparison.json").read_text())
    failed = [f for row in rows for f in row["failures"]]
    assert failed and failed[0]["preset"] in ("checkerboard-dsm", "checkerboard-vages-dsm")
    assert {"seed", "iteration", "reason"} <= set(failed[0])
    assert "Diverged runs:" in (tmp_path / "comparison.md").read_text()
    assert "diverged" in capsys.readouterr().err


def test_compare_refuses_no_seeds_and_leaves_nothing(tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["compare", "checkerboard-dsm", "--out", str(tmp_path / "cmp"), "--seeds", "0"])
    assert caught.value.code == 2
    assert not (tmp_path / "cmp").exists()


def test_sweep_runs_each_value_inside_out(tmp_path, capsys):
    command = ["compare", "checkerboard-vages-dsm", "--out", str(tmp_path), "--seeds", "1"]
    code = main(
        [*command, "--set=iterations=10", "--set=eval_every=10", *SMALL, "--sweep", "n_samples=2,3"]
    )
    assert code == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert [row["method"] for row in rows] == [
        "checkerboard-vages-dsm-n_samples=2",
        "checkerboard-vages-dsm-n_samples=3",
    ]
    assert main([*command, "--sweep", "data_root=../../elsewhere"]) == 2
    assert "--sweep" in capsys.readouterr().err


def test_validate_theorems_writes_rows_and_slopes(tmp_path, capsys):
    assert main(["validate-theorems", "--out", str(tmp_path), "--quick"]) == 0
    report = json.loads((tmp_path / "bias.json").read_text())
    keys = {"model", "divergence_name", "divergence", "bias_vaes", "bias_vages"}
    assert report["rows"] and all(keys <= set(row) for row in report["rows"])
    assert (tmp_path / "bias.png").read_bytes()[:4] == b"\x89PNG"
    assert "log-log slope" in capsys.readouterr().out


def test_fisher_experiment_writes_its_table(tmp_path, capsys):
    assert main(["fisher-experiment", "--out", str(tmp_path), "--quick", "--dims", "5"]) == 0
    assert (tmp_path / "fisher.md").exists() and (tmp_path / "fisher.png").exists()
    assert "|" in capsys.readouterr().out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_checkpoints_where_it_is_and_exits_130(tmp_path, signum):
    """Ctrl-C (or a scheduler's SIGTERM) mid-run: a checkpoint at the current iteration,
    one line saying where it is and how to resume, status 130, no traceback."""
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "eblvm",
        "train",
        "checkerboard-vages-dsm",
        "--out",
        str(out),
        "--set=iterations=100000",
        "--set=checkpoint_every=100000",
        "--set=eval_every=100000",
        "--set=log_every=10",
        *SMALL,
    ]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err and "interrupted at iteration" in err
    assert "run the same command again to resume" in err
    from eblvm.runs import load_checkpoint

    iteration = load_checkpoint(out / "checkpoint.pt")["iteration"]
    assert 10 <= iteration < 100000
    assert f"interrupted at iteration {iteration}" in err


def test_tensorboard_scalars_beside_the_metrics(tmp_path, capsys):
    """With the tensorboard package, the rows also go to out/tensorboard; without it,
    asking for them is one line naming the package."""
    out = tmp_path / "run"
    command = ["train", "checkerboard-quick", "--out", str(out), "--set=iterations=10"]
    code = main([*command, "--set=eval_every=5", "--set=tensorboard=true", *SMALL])
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert code == 2
        assert "pip install tensorboard" in capsys.readouterr().err
        return
    assert code == 0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))

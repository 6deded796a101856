"""The command line: listing, training, comparing, and its messages for bad input."""

from __future__ import annotations

import json

from eblvm.cli import main


def test_list_names_the_presets(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in ("checkerboard-quick", "checkerboard-vages-dsm", "frey-bism-dsm-n5"):
        assert name in listed


def test_train_writes_the_summary_and_the_plot(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "checkerboard-quick",
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "iterations=20",
            "--set",
            "eval_every=10",
            "--set",
            "n_train=1000",
        ]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"test_log_likelihood", "iterations", "seconds"} <= set(summary)
    assert summary["iterations"] == 20
    assert (out / "density.png").exists()
    assert "test log-likelihood" in capsys.readouterr().out


def test_unknown_preset_and_setting_give_a_message(tmp_path, capsys):
    assert main(["train", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["train", "checkerboard-quick", "--out", str(tmp_path), "--set", "lrr=1"]) == 2
    assert "unknown setting 'lrr'" in capsys.readouterr().err


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
    code = main(
        [
            "compare",
            "checkerboard-dsm",
            "checkerboard-vages-dsm",
            "--out",
            str(tmp_path),
            "--seeds",
            "2",
            "--no-progress",
            "--set",
            "iterations=20",
            "--set",
            "eval_every=10",
            "--set",
            "n_train=1000",
        ]
    )
    assert code == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert [row["method"] for row in rows] == ["checkerboard-dsm", "checkerboard-vages-dsm"]
    assert all(row["seeds"] == 2 for row in rows)
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "| checkerboard-dsm | 2 |" in (tmp_path / "comparison.md").read_text()


def test_sweep_runs_each_value(tmp_path):
    code = main(
        [
            "compare",
            "checkerboard-vages-dsm",
            "--out",
            str(tmp_path),
            "--seeds",
            "1",
            "--no-progress",
            "--set",
            "iterations=10",
            "--set",
            "eval_every=10",
            "--set",
            "n_train=500",
            "--sweep",
            "n_samples=2,3",
        ]
    )
    assert code == 0
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert [row["method"] for row in rows] == [
        "checkerboard-vages-dsm-n_samples=2",
        "checkerboard-vages-dsm-n_samples=3",
    ]


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

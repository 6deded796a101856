"""A first use of the ``eblvm`` command: versions, a fast help that loads no torch, and
one line with a non-zero status for every mistake a newcomer makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import eblvm
from eblvm.cli import main


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120
    )


def test_version_names_every_package_and_torch(capsys):
    import torch

    import eblvm_data
    import eblvm_eval
    import ebm_models
    import score_estimators
    import score_objectives

    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"score-estimators {score_estimators.__version__}",
        f"score-objectives {score_objectives.__version__}",
        f"ebm-models {ebm_models.__version__}",
        f"eblvm-data {eblvm_data.__version__}",
        f"eblvm-eval {eblvm_eval.__version__}",
        f"eblvm {eblvm.__version__}",
        f"torch {torch.__version__}",
    ]


def test_help_loads_no_torch_and_openmp_waits_passively():
    """``eblvm --help`` answers without loading torch; the command sets the OpenMP wait
    policy before anything can load it."""
    result = _python(
        "import os, sys\n"
        "os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "from eblvm.cli import main\n"
        "assert os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'\n"
        "for argv in (['--help'], ['train', '--help'], ['evaluate', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as end:\n"
        "        assert end.code == 0\n"
        "    if argv == ['--help']:\n"
        "        print('torch loaded:', 'torch' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "usage: eblvm" in result.stdout and "--version" in result.stdout
    assert "torch loaded: False" in result.stdout
    assert "settings (--set section.key=value" in result.stdout  # train's epilog
    assert "classifier-fid" in result.stdout  # evaluate's metrics


def test_the_package_names_load_on_first_use():
    result = _python(
        "import sys, eblvm\n"
        "print('torch' in sys.modules)\n"
        "from eblvm import train, RunError, Settings\n"
        "print('torch' in sys.modules, train.__module__, RunError.__module__)\n"
        "print(sorted(eblvm.__all__) == sorted(n for n in eblvm.__all__ if hasattr(eblvm, n)))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "eblvm.loop", "eblvm.runs", "True"]


def test_ctrl_c_while_torch_loads_is_one_line_and_130():
    """An interrupt in the first second (torch loading) exits 130 without a traceback."""
    result = _python(
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from eblvm.cli import main\n"
        "sys.exit(main(['list']))\n"
    )
    assert result.returncode == 130
    assert result.stderr == "eblvm: interrupted\n"


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_threads_must_be_a_positive_integer(value, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["list", "--threads", value])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(
        f"argument --threads: must be a positive integer, got {value!r}"
    )
    assert "_positive" not in err


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("command", ["train", "compare"])
def test_an_out_under_a_file_gives_one_line(tmp_path, capsys, command):
    (tmp_path / "config.json").write_text("{}")
    out = tmp_path / "config.json" / "sub"
    code = main([command, "checkerboard-quick", "--out", str(out), "--no-progress"])
    assert code == 2
    err = _one_line(capsys.readouterr().err)
    assert f"{out}: a part of this path is a file, not a folder" in err


def test_a_name_too_long_gives_one_line(tmp_path, capsys):
    out = tmp_path / ("a" * 300)
    assert main(["train", "checkerboard-quick", "--out", str(out), "--no-progress"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "a name in this path is too long" in err and "a" * 300 in err


def test_a_read_only_folder_gives_one_line_naming_it(tmp_path, capsys, monkeypatch):
    """A refusal to write (as a read-only parent gives to anyone but root) is one line."""
    import errno

    out = tmp_path / "read-only" / "run"

    def refuse(argv):
        raise PermissionError(errno.EACCES, "Permission denied", str(out))

    monkeypatch.setattr("eblvm.cli.run", refuse)
    assert main(["plot", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err == f"eblvm: error: {out}: permission denied (is the folder read-only?)\n"


def test_plot_names_a_missing_folder(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"{tmp_path / 'nothing'} is not a folder" in err


def test_plot_points_a_comparison_folder_to_its_plot(tmp_path, capsys):
    (tmp_path / "comparison.json").write_text("[]")
    assert main(["plot", str(tmp_path)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "is a comparison folder" in err and str(tmp_path / "comparison.png") in err


TINY = ["--set=n_train=1000", "--set=compile=off", "--set=iterations=20", "--no-progress"]


def test_rerunning_a_finished_run_says_so_and_keeps_its_compile_figures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "checkerboard-quick", "--out", str(out), *TINY]) == 0
    first = capsys.readouterr().out
    assert "already finished" not in first
    summary = json.loads((out / "summary.json").read_text())
    summary.update(compiled=True, compile_seconds=12.5)  # as a compiled training wrote it
    (out / "summary.json").write_text(json.dumps(summary))

    assert main(["train", "checkerboard-quick", "--out", str(out), *TINY]) == 0
    again = capsys.readouterr().out
    assert again.startswith("already finished at iteration 20; nothing trained: ")
    assert "(compiled in 12.5 s)" in again
    kept = json.loads((out / "summary.json").read_text())
    assert kept["compiled"] is True and kept["compile_seconds"] == 12.5
    assert "already_finished" not in kept
    assert kept["test_log_likelihood"] == summary["test_log_likelihood"]


def test_no_progress_is_documented_and_keeps_the_notes(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--no-progress no progress bar (notes and errors still print" in (
        " ".join(capsys.readouterr().out.split())
    )
    out = tmp_path / "run"
    assert main(["train", "checkerboard-quick", "--out", str(out), *TINY]) == 0
    with (out / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"iteration": 21, "lo')  # a crash while writing
    capsys.readouterr()
    assert main(["train", "checkerboard-quick", "--out", str(out), *TINY]) == 0
    assert "eblvm: dropped the partial last line" in capsys.readouterr().err


@pytest.mark.parametrize(("preset", "size"), [("digits-vages-dsm", 1437), ("frey-vages-dsm", 1400)])
def test_n_train_on_a_data_set_of_fixed_size_is_refused_with_its_size(
    tmp_path, capsys, preset, size
):
    out = tmp_path / "run"
    assert main(["train", preset, "--out", str(out), "--set", "data.n_train=100000"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"has {size} training examples" in err and "data.n_train=100000" in err
    assert not out.exists()


def test_the_fixed_sizes_are_those_of_the_data():
    from eblvm.grbm.task import load_splits
    from eblvm.images.data import load_images
    from eblvm.presets import get_preset
    from eblvm.settings import FIXED_TRAIN_SIZES

    digits = load_splits(get_preset("digits-vages-dsm"))
    assert len(digits.train) == FIXED_TRAIN_SIZES["digits"]
    assert len(load_images(get_preset("digits32-vages-mdsm"))) == FIXED_TRAIN_SIZES["digits32"]


def test_a_missing_fid_stats_file_is_refused_naming_it(tmp_path, capsys, monkeypatch):
    from eblvm_testing import RANDOM_IMAGES

    monkeypatch.delenv("EBLVM_FID_WEIGHTS", raising=False)  # refused even without weights
    stats = tmp_path / "missing.npz"
    out = tmp_path / "run"
    settings = [f"--set={a}" for a in (*RANDOM_IMAGES, f"fid.stats={stats}")]
    assert main(["train", "digits32-vages-mdsm", "--out", str(out), *settings]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err == (
        f"eblvm: error: fid.stats: no statistics file at {str(stats)!r} "
        "(`eblvm fid-stats` writes one)\n"
    )


def test_a_truncated_checkpoint_is_one_sentence_of_ours(tmp_path, capsys):
    out = tmp_path / "run"
    every = "--set=checkpoint_every=10"
    assert main(["train", "checkerboard-quick", "--out", str(out), every, *TINY]) == 0
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    capsys.readouterr()
    longer = [every, *TINY, "--set=iterations=30"]
    assert main(["train", "checkerboard-quick", "--out", str(out), *longer]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"eblvm: error: {checkpoint} is damaged or truncated: ")
    assert f"{out / 'checkpoint.prev.pt'} (iteration 10) is intact" in err
    assert "Pytorch" not in err and "zip" not in err


def test_compare_says_which_seconds_it_shows(capsys):
    from eblvm.experiments.compare import format_table

    table = format_table([{"method": "m", "seeds": 2, "failures": [], "seconds_per_run": 3.0}])
    assert "| seconds per run (stack's ÷ its runs) |" in table and "| 3.0 |" in table
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "wall time of each run's stack" in " ".join(capsys.readouterr().out.split())

"""A first use of the ``eblvm`` command: versions, a fast help that loads no torch, and
one line with a non-zero status for every mistake a newcomer makes."""

from __future__ import annotations

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

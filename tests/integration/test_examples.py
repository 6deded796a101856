"""The scripts in examples/: each takes --tiny (the settings ``nox -s examples`` runs them
with), and the Fashion-MNIST example without its data refuses in one line naming the
Debian package, with exit status 2. Running them is ``nox -s examples``' work."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "examples").glob("*.py"))


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_at_least_four_examples() -> None:
    assert len(SCRIPTS) >= 4, [path.name for path in SCRIPTS]


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: path.name)
def test_every_example_takes_tiny_and_out(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = _load(path)
    with pytest.raises(SystemExit) as exit_:
        example.main(["--help"])
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    assert "--tiny" in usage and "--out" in usage


def test_fashion_example_without_data_exits_2_naming_the_package(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _load(ROOT / "examples" / "fashion_deep_eblvm.py")
    status = example.main(["--tiny", "--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "dataset-fashion-mnist" in lines[0] and str(tmp_path) in lines[0]
    assert not (tmp_path / "o").exists()

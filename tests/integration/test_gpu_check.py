"""The GPU check refuses to run without a GPU, and runs end to end on the CPU when dry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_a_gpu_it_stops_with_a_message(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no CUDA device" in done.stderr and "--dry" in done.stderr
    assert not (tmp_path / "gpu_check.json").exists()


@pytest.mark.slow
def test_a_dry_run_goes_through_every_stage(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["tests"]["ok"]
    assert {row["method"] for row in report["table2"]} == {
        "vages",
        "bism0",
        "bism2",
        "bism5",
        "ebm",
    }
    assert [row["runs"] for row in report["stacks"]] == [1, 2, 1, 2]
    assert "Table 2" in done.stdout

"""Behaviour kept across refactorings: seeded short runs reproduce, to the bit, the
final losses, evaluations and parameters recorded at 8bb680f (the release before the
application layer was refined).

A change that is meant to change a number (a new default, a fixed bias) records the
runs again with ``EBLVM_RECORD_BEHAVIOUR=1 pytest tests/test_eblvm_behaviour.py`` and
says why in its commit; a refactoring never does.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from eblvm_testing import RANDOM_IMAGES, small_grbm, tiny_images

from eblvm import compare, get_preset, task_for, train
from eblvm.runs import load_checkpoint, read_metrics
from eblvm.settings import apply_overrides

RECORD = Path(__file__).parent / "behaviour.json"

# One short eager run of each method, the main job shortened, and a tiny deep run.
RUNS = {
    "main-job": lambda: apply_overrides(
        get_preset("checkerboard-quick"),
        ["iterations=200", "eval_every=100", "log_every=100", "compile=off"],
    ),
    "vages-dsm": lambda: small_grbm("method=vages"),
    "vaes-dsm": lambda: small_grbm("method=vaes"),
    "is-ksd": lambda: small_grbm("method=is", "objective=ksd"),
    "exact-ksd": lambda: small_grbm("method=exact", "objective=ksd"),
    "exact-dsm": lambda: small_grbm("method=exact"),
    "bism-dsm": lambda: small_grbm("method=bism", "n_unroll=2", "n_samples=1"),
    "vages-ssm": lambda: small_grbm("method=vages", "objective=ssm", "n_samples=3"),
    "cd": lambda: small_grbm("method=cd"),
    "pcd": lambda: small_grbm("method=pcd"),
    "nce": lambda: small_grbm("method=nce", "method.nce_start=zero"),
    "vnce": lambda: small_grbm("method=vnce", "method.nce_start=zero"),
    "tiny-deep": lambda: tiny_images(*RANDOM_IMAGES, "iterations=6"),
}


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """One hash of every parameter's name, dtype, shape and bytes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _observed(folder: Path) -> dict[str, object]:
    """The run's metrics rows (every number as its float.hex) and its parameters' hash."""
    rows, _ = read_metrics(folder / "metrics.jsonl")
    numbers = [
        {k: float(v).hex() for k, v in sorted(row.items()) if isinstance(v, (int, float))}
        for row in rows
    ]
    for row in numbers:  # wall time is no behaviour
        row.pop("seconds", None)
        row.pop("iterations_per_second", None)
    theta = load_checkpoint(folder / "checkpoint.pt")["state"]["theta"]
    return {"rows": numbers, "theta": _digest(theta)}


def _run(name: str, out: Path) -> dict[str, object]:
    settings = RUNS[name]()
    train(task_for(settings), settings, out, progress=False)
    return _observed(out)


def _stacked_compare(out: Path) -> dict[str, object]:
    configs = {"vages-dsm": small_grbm("method=vages"), "cd": small_grbm("method=cd")}
    compare(configs, out, seeds=[0, 1], progress=False)
    return {
        f"{name}-seed{seed}": _observed(out / name / f"seed{seed}")
        for name in configs
        for seed in (0, 1)
    }


def _recorded() -> dict[str, object]:
    return json.loads(RECORD.read_text())


@pytest.mark.parametrize("name", list(RUNS))
def test_a_seeded_run_reproduces_its_recorded_numbers(tmp_path, name):
    observed = _run(name, tmp_path)
    if os.environ.get("EBLVM_RECORD_BEHAVIOUR") == "1":
        record = _recorded() if RECORD.exists() else {}
        RECORD.write_text(json.dumps({**record, name: observed}, indent=1, sort_keys=True))
    assert observed == _recorded()[name]


def test_a_stacked_compare_reproduces_its_recorded_numbers(tmp_path):
    observed = _stacked_compare(tmp_path)
    if os.environ.get("EBLVM_RECORD_BEHAVIOUR") == "1":
        record = _recorded() if RECORD.exists() else {}
        RECORD.write_text(json.dumps({**record, "compare": observed}, indent=1, sort_keys=True))
    assert observed == _recorded()["compare"]

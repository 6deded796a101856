"""A tiny deep EBLVM and a tiny deep EBM train a few steps on the real Fashion-MNIST
images (Debian's dataset-fashion-mnist files) through the trainer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from eblvm import apply_overrides, get_preset, task_for, train
from eblvm.runs import CHECKPOINT, CONFIG, METRICS, SUMMARY, read_metrics
from eblvm_data import FASHION_MNIST_ROOT

FILES = [Path(FASHION_MNIST_ROOT) / f"{name}-images-idx3-ubyte.gz" for name in ("train", "t10k")]

# The presets shrunk to a step in milliseconds; the data are the preset's own.
SHRUNK = (
    "h_dim=4",
    "base_width=4",
    "posterior_width=4",
    "batch_size=8",
    "posterior_steps=1",
    "iterations=6",
    "log_every=1",
    "eval_every=3",
    "checkpoint_every=3",
    "device=cpu",
    "compile=off",
    "evaluation.select_by=none",
)


@pytest.mark.skipif(
    not all(path.is_file() for path in FILES),
    reason=f"the Fashion-MNIST files of Debian's dataset-fashion-mnist are not in "
    f"{FASHION_MNIST_ROOT} (apt-get install dataset-fashion-mnist)",
)
@pytest.mark.parametrize("preset", ["fashion-vages-mdsm", "fashion-ebm-mdsm"])
def test_a_tiny_deep_model_trains_on_fashion_mnist(tmp_path: Path, preset: str) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = apply_overrides(get_preset(preset), list(SHRUNK))
        task = task_for(settings)
        summary = train(task, settings, tmp_path, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert summary["iterations"] == 6
    for name in (CONFIG, METRICS, CHECKPOINT, SUMMARY):
        assert (tmp_path / name).is_file(), name
    config = json.loads((tmp_path / CONFIG).read_text())
    assert config["data"]["dataset"] == "fashion_mnist"
    rows, note = read_metrics(tmp_path / METRICS)
    assert note is None
    losses = [row["loss"] for row in rows if "loss" in row]
    assert len(losses) == 6
    assert all(math.isfinite(loss) for loss in losses)

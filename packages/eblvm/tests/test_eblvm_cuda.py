"""Training on CUDA: a GRBM run, a stack compiled into one step, an image run with bf16
autocast. Skipped where there is no CUDA device (benchmarks/gpu_check.py runs them)."""

from __future__ import annotations

import math

import pytest
import torch
from eblvm_testing import small_grbm, tiny_images

from eblvm import train, train_stack
from eblvm.grbm.task import GRBMTask
from eblvm.images.task import ImageTask
from eblvm.runs import load_checkpoint
from eblvm.settings import apply_overrides

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def test_a_grbm_trains_on_cuda(tmp_path):
    settings = apply_overrides(small_grbm("iterations=60", "eval_every=30"), ["device=cuda"])
    summary = train(GRBMTask(settings), settings, tmp_path, progress=False)
    assert summary["device"] == "cuda" and math.isfinite(summary["test_log_likelihood"])
    assert load_checkpoint(tmp_path / "checkpoint.pt")["state"]["theta"]["W"].device.type == "cpu"


def test_a_compiled_stack_on_cuda_trains_each_run_like_the_eager_one(tmp_path):
    settings = apply_overrides(small_grbm("iterations=20"), ["device=cuda"])
    task = GRBMTask(settings)
    compiled = apply_overrides(settings, ["compile=on"])
    runs = [(apply_overrides(compiled, [f"seed={s}"]), tmp_path / f"c{s}") for s in range(8)]
    summaries = train_stack(task, runs, progress=False)
    assert all(s["compiled"] for s in summaries)
    eager = apply_overrides(settings, ["seed=3"])
    train(task, eager, tmp_path / "eager", progress=False)
    got = load_checkpoint(tmp_path / "c3" / "checkpoint.pt")["state"]["theta"]
    expected = load_checkpoint(tmp_path / "eager" / "checkpoint.pt")["state"]["theta"]
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("amp", [False, True])
def test_an_image_run_trains_on_cuda(tmp_path, amp):
    settings = tiny_images("iterations=10", "device=cuda", f"amp={str(amp).lower()}")
    summary = train(ImageTask(settings), settings, tmp_path, progress=False)
    assert summary["device"] == "cuda" and math.isfinite(summary["loss"])

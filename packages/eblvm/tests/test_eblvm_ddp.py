"""Data-parallel training on the CPU with 2 gloo processes: one step of the two processes,
each on its half of a batch, equals one single-process step on the whole batch; and a
distributed run writes its files from rank 0 only."""

from __future__ import annotations

import dataclasses
import datetime
import socket
import time
from pathlib import Path

import pytest
import torch
from torch import distributed as dist
from torch import multiprocessing

from eblvm import image_methods, image_training, runs
from eblvm.distributed import Ranks
from eblvm.image_config import ImageTrainConfig
from eblvm.image_training import build_image_method, train_images

WORLD = 2
TINY = ImageTrainConfig(
    dataset="random",
    channels=1,
    image_size=8,
    n_train=16,
    h_dim=3,
    base_width=2,
    blocks_per_stage=1,
    posterior_width=2,
    batch_size=4,
    posterior_steps=2,
    refine_steps=2,
    # The refinement's Langevin noise comes from each process's own generator; without
    # it every draw of the step is in StepNoise and the two computations see the same.
    refine_noise_std=0.0,
    iterations=10,
    lr=1e-2,
    posterior_lr=1e-2,
    lr_min=0.0,
    ema_decay=0.5,
    device="cpu",
)
# BiSM with N > 0 unrolls φ on each process's own piece of the batch, so it is left out.
METHODS = {
    "vages": {"method": "vages"},
    "bism-n0": {"method": "bism", "n_unroll": 0, "n_samples": 1},
    "ebm": {"method": "ebm"},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tensors(method) -> dict[str, torch.Tensor]:
    """Parameters, gradients and EMA of θ and φ after a step, by name."""
    found = {}
    modules = {"theta": method.model, "ema": method.ema.average}
    if method.posterior is not None:
        modules["phi"] = method.posterior
    for prefix, module in modules.items():
        for name, p in module.named_parameters():
            found[f"{prefix}.{name}"] = p.detach().clone()
            if p.grad is not None:
                found[f"{prefix}.{name}.grad"] = p.grad.detach().clone()
    return found


def _compare_one_step(rank: int, name: str, changes: dict) -> None:
    config = dataclasses.replace(TINY, **changes)
    ddp = build_image_method(
        config, Ranks(rank=rank, world=WORLD), torch.Generator().manual_seed(rank)
    )
    alone = build_image_method(config, Ranks(), torch.Generator().manual_seed(0))
    data = torch.Generator().manual_seed(1)
    for _ in range(2):  # the second step also compares Adam's moments and the EMA
        v = torch.rand(config.batch_size, 1, 8, 8, generator=data)
        noise = alone.draw_noise(v)
        whole_loss = alone.step(v, noise)
        half = config.batch_size // WORLD
        ddp_loss = ddp.step(v[rank * half : (rank + 1) * half], noise.shard(rank, WORLD))
        assert abs(ddp_loss - whole_loss) <= 1e-10 * abs(whole_loss), (name, ddp_loss, whole_loss)
    expected, got = _tensors(alone), _tensors(ddp)
    assert set(got) == set(expected), name
    assert any(key.endswith(".grad") for key in got), name
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-9, atol=1e-12, msg=key)


def _refuse_writes(*_: object, **__: object) -> None:
    raise AssertionError("a process other than rank 0 wrote a file")


def _interrupt_at_step(call: int) -> None:
    """Make both processes stop (as if killed) at the same step, before its collectives."""
    original = image_methods.ImageScoreMatching.step
    calls = {"n": 0}

    def step(self, v, noise=None):
        calls["n"] += 1
        if calls["n"] == call:
            image_methods.ImageScoreMatching.step = original
            raise KeyboardInterrupt
        return original(self, v, noise)

    image_methods.ImageScoreMatching.step = step


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        torch.set_default_dtype(torch.float64)
        for name, changes in METHODS.items():
            _compare_one_step(rank, name, changes)
        torch.set_default_dtype(torch.float32)
        if rank != 0:
            for module in (runs, image_training):
                for writer in ("atomic_save", "write_json", "append_metrics", "atomic_write_bytes"):
                    if hasattr(module, writer):
                        setattr(module, writer, _refuse_writes)
        config = dataclasses.replace(TINY, iterations=4, checkpoint_every=2, log_every=1)
        summary = train_images(config, f"{out}/whole", progress=False)
        assert summary["processes"] == WORLD
        _interrupt_at_step(3)
        try:
            train_images(config, f"{out}/resumed", progress=False)
        except KeyboardInterrupt:
            pass
        train_images(config, f"{out}/resumed", progress=False)
    finally:
        dist.destroy_process_group()


def test_two_processes_step_like_one_on_the_whole_batch(tmp_path: Path) -> None:
    """Also: only rank 0 writes, every process keeps its own seeds, and an interrupted
    distributed run resumes to the same end as an uninterrupted one."""
    context = multiprocessing.spawn(
        _worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=False
    )
    deadline = time.monotonic() + 240
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the distributed workers did not finish in 240 s")
    whole, resumed = (
        torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)
        for name in ("whole", "resumed")
    )
    assert whole["world"] == WORLD and whole["iteration"] == resumed["iteration"] == 4
    assert len(whole["ranks"]) == WORLD
    first, second = (state["data_generator"] for state in whole["ranks"])
    assert not torch.equal(first, second), "each process draws its data with its own seed"
    for key, value in whole["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    for key, value in whole["method"]["ema"].items():
        assert torch.equal(resumed["method"]["ema"][key], value), key
    metrics = runs.read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [row["iteration"] for row in metrics] == [1, 2, 3, 4]

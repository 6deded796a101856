"""The image trainer on the CPU: a deep EBLVM learns (its MDSM loss falls), resumes
exactly, selects checkpoints by FID, and its samples make a grid."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from eblvm import image_methods, image_training, reference_stats, sampling
from eblvm.cli import main
from eblvm.image_config import ImageTrainConfig
from eblvm.image_data import load_images
from eblvm.image_training import train_images
from eblvm.runs import read_metrics
from eblvm.sampling import load_run, sample_images, schedule_of
from eblvm_data import digits
from eblvm_eval.fid import (
    FeatureStats,
    feature_statistics,
    frechet_distance,
    load_stats,
    save_stats,
)

TINY = ImageTrainConfig(
    dataset="digits32",
    channels=1,
    h_dim=8,
    base_width=4,
    blocks_per_stage=1,
    posterior_width=4,
    batch_size=8,
    posterior_steps=2,
    iterations=200,
    lr=1e-3,
    posterior_lr=1e-3,
    lr_min=0.0,
    log_every=1,
    device="cpu",
    sample_hold_steps=2,
    sample_anneal_steps=3,
    sample_final_steps=2,
)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A deep EBLVM trained for 200 VaGES-MDSM steps on digits padded to 32×32."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("digits32") / "run"
    train_images(TINY, run_dir, progress=False)
    torch.set_num_threads(threads)
    return run_dir


def test_a_deep_eblvm_learns_digits_its_mdsm_loss_falls(trained):
    rows = read_metrics(trained / "metrics.jsonl")
    losses = [row["loss"] for row in rows]
    assert [row["iteration"] for row in rows] == list(range(1, 201))
    assert all(math.isfinite(loss) for loss in losses)
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    # Untrained, s ≈ 0 and the loss is ½‖ε/σ0²‖² ≈ ½ · 1024 · 10⁴ per image.
    assert first == pytest.approx(0.5 * 1024 / 0.1**4, rel=0.05)
    assert last < 0.7 * first
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["iterations"] == 200
    assert summary["loss"] == pytest.approx(losses[-1])
    assert summary["checkpoint_selection"]["by"] == "none"
    assert "no fid_stats" in summary["checkpoint_selection"]["reason"]


def test_the_learning_rate_follows_the_cosine_schedule(trained):
    rows = read_metrics(trained / "metrics.jsonl")
    for row in rows[::37]:
        t = row["iteration"]
        expected = 0.5 * TINY.lr * (1 + math.cos(math.pi * t / TINY.iterations))
        assert row["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_sample_writes_a_grid_of_finite_images(trained, capsys):
    out = trained / "grid.png"
    code = main(["sample", str(trained), "--n", "6", "--steps", "2", "3", "2", "--out", str(out)])
    assert code == 0
    assert out.read_bytes()[:8] == PNG
    assert str(out) in capsys.readouterr().out
    assert main(["sample", str(trained), "--n", "4", "--steps", "1", "1", "1"]) == 0
    assert (trained / "samples.png").read_bytes()[:8] == PNG


def test_samples_lie_in_the_unit_cube_and_h_is_the_posterior_mean(trained, monkeypatch):
    run = load_run(trained, device=torch.device("cpu"))
    images = digits(image=True, pad_to=32).train[:5]
    seen = []
    energy_from_features = run.model.energy_from_features

    def recording(features, h):
        seen.append(h)
        return energy_from_features(features, h)

    monkeypatch.setattr(run.model, "energy_from_features", recording)
    samples = sample_images(
        run.model,
        run.posterior,
        images,
        3,
        schedule=schedule_of(run.config, (1, 1, 1)),
        step_size=0.02,
        sigma0=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    assert samples.shape == (3, 1, 32, 32)
    assert bool(((samples >= 0) & (samples <= 1)).all())
    means = run.posterior.mean_and_log_std(images)[0]
    assert all(any(torch.allclose(row, mean) for mean in means) for row in seen[0])


def test_nan_energy_while_sampling_is_an_error_naming_the_step(trained, monkeypatch):
    run = load_run(trained, device=torch.device("cpu"))
    energy_from_features = run.model.energy_from_features
    calls = {"n": 0}

    def nan_from_the_fourth_call(features, h):
        calls["n"] += 1
        energy = energy_from_features(features, h)
        return energy * math.nan if calls["n"] >= 4 else energy

    monkeypatch.setattr(run.model, "energy_from_features", nan_from_the_fourth_call)
    with pytest.raises(FloatingPointError, match=r"diverged at step 2 .*energy is not finite"):
        sample_images(
            run.model,
            run.posterior,
            digits(image=True, pad_to=32).train,
            4,
            schedule=schedule_of(run.config, (3, 3, 3)),
            step_size=0.02,
            sigma0=0.1,
            generator=torch.Generator().manual_seed(0),
        )


def test_nan_weights_give_a_message_and_no_grid(trained, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((trained / "config.json").read_text())
    state = torch.load(trained / "checkpoint.pt", weights_only=False)
    for value in state["method"]["ema"].values():
        value.fill_(math.nan)
    torch.save(state, broken / "checkpoint.pt")
    assert main(["sample", str(broken), "--n", "4", "--steps", "1", "1", "1"]) == 1
    assert "sampling failed: the energy is not finite" in capsys.readouterr().err
    assert not (broken / "samples.png").exists()


def _killing_step_at(call: int, monkeypatch) -> None:
    original = image_methods.ImageScoreMatching.step
    calls = {"n": 0}

    def step(self, v, noise=None):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, v, noise)

    monkeypatch.setattr(image_methods.ImageScoreMatching, "step", step)


def test_a_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    config = dataclasses.replace(TINY, iterations=6, checkpoint_every=2, hflip=True)
    train_images(config, tmp_path / "whole", progress=False)
    with monkeypatch.context() as patch:
        _killing_step_at(5, patch)
        with pytest.raises(KeyboardInterrupt):
            train_images(config, tmp_path / "resumed", progress=False)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["iteration"] == 4
    train_images(config, tmp_path / "resumed", progress=False)
    whole, resumed = (
        torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)
        for name in ("whole", "resumed")
    )
    for key, value in whole["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    for part in ("ema", "posterior"):
        for key, value in whole["method"][part].items():
            assert torch.equal(resumed["method"][part][key], value), (part, key)
    rows = {
        name: [
            (row["iteration"], row["loss"], row["lr"])
            for row in read_metrics(tmp_path / name / "metrics.jsonl")
        ]
        for name in ("whole", "resumed")
    }
    assert rows["resumed"] == rows["whole"]
    assert [row[0] for row in rows["resumed"]] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "changes",
    [{"method": "bism", "n_unroll": 2, "n_samples": 1}, {"method": "ebm"}],
    ids=["bism-n2", "ebm"],
)
def test_bism_and_the_ebm_train_too(tmp_path, changes):
    config = dataclasses.replace(
        TINY, dataset="random", n_train=32, iterations=4, log_every=2, **changes
    )
    summary = train_images(config, tmp_path, progress=False)
    assert summary["iterations"] == 4 and math.isfinite(summary["loss"])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ("posterior" in checkpoint["method"]) == (config.method != "ebm")


class _PooledPixels(nn.Module):
    """A stand-in feature extractor for the FID: 2×2 average-pooled pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(images).flatten(1) * self.scale


def test_checkpoints_are_selected_by_fid_when_configured(tmp_path, monkeypatch):
    stats = _pooled_stats(tmp_path / "digits.npz")
    monkeypatch.setattr(image_training, "load_inception", lambda path: _PooledPixels().eval())
    config = dataclasses.replace(
        TINY,
        iterations=4,
        fid_every=2,
        fid_samples=8,
        fid_stats=str(stats),
        fid_weights="inception.pth",
    )
    summary = train_images(config, tmp_path / "run", progress=False)
    rows = [row for row in read_metrics(tmp_path / "run" / "metrics.jsonl") if "fid" in row]
    assert [row["iteration"] for row in rows] == [2, 4]
    best = min(rows, key=lambda row: row["fid"])
    selection = summary["checkpoint_selection"]
    assert selection == {"by": "fid", "best_iteration": best["iteration"], "best_fid": best["fid"]}
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert (saved["iteration"], saved["fid"]) == (best["iteration"], best["fid"])
    assert load_run(tmp_path / "run", device=torch.device("cpu")).iteration == best["iteration"]


def _pooled_stats(path: Path) -> Path:
    reference = _PooledPixels().eval()(digits(image=True, pad_to=32).train).detach().double()
    count = len(reference)
    save_stats(
        FeatureStats(reference.mean(0).numpy(), np.cov(reference.numpy(), rowvar=False), count),
        path,
    )
    return path


def _fid_samples(trained: Path) -> torch.Tensor:
    """The 6 samples `eblvm fid RUN --n 6 --steps 1 2 1` draws (seed 0) from the run."""
    run = load_run(trained, device=torch.device("cpu"))
    return sample_images(
        run.model,
        run.posterior,
        load_images(run.config),
        6,
        schedule=schedule_of(run.config, (1, 2, 1)),
        step_size=run.config.sample_step_size,
        sigma0=run.config.mdsm_sigma0,
        generator=torch.Generator().manual_seed(0),
    )


def test_fid_command_scores_the_runs_samples(trained, tmp_path, monkeypatch, capsys):
    stats = _pooled_stats(tmp_path / "digits.npz")
    monkeypatch.setattr(sampling, "load_inception", lambda path: _PooledPixels().eval())
    args = ["fid", str(trained), "--stats", str(stats), "--weights", "w.pth", "--n", "6"]
    assert main([*args, "--steps", "1", "2", "1"]) == 0
    record = json.loads((trained / "fid.json").read_text())
    ours = feature_statistics(_PooledPixels().eval()(_fid_samples(trained)).detach().double())
    reference = load_stats(stats)
    expected = frechet_distance(ours.mu, ours.sigma, reference.mu, reference.sigma)
    assert record["fid"] == pytest.approx(expected, rel=1e-9)
    assert (record["n"], record["iteration"]) == (6, 200)
    assert f"FID {record['fid']:.3f}" in capsys.readouterr().out


def test_fid_selection_without_weights_is_recorded_as_off(tmp_path, monkeypatch):
    monkeypatch.delenv("EBLVM_FID_WEIGHTS", raising=False)
    config = dataclasses.replace(TINY, iterations=1, fid_stats=str(tmp_path / "any.npz"))
    summary = train_images(config, tmp_path / "run", progress=False)
    assert summary["checkpoint_selection"]["by"] == "none"
    assert "EBLVM_FID_WEIGHTS" in summary["checkpoint_selection"]["reason"]
    assert not (tmp_path / "run" / "best.pt").exists()


@functools.cache
def _digits32_split(split: str) -> torch.Tensor:
    """The digits32 images of a split, from eblvm_data: train and validation, or test."""
    splits = digits(image=True, pad_to=32)
    return splits.test if split == "test" else torch.cat([splits.train, splits.validation])


@settings(max_examples=20, deadline=None)
@given(
    split=st.sampled_from(["train", "test"]),
    n=st.integers(2, 40),
    batch_size=st.integers(1, 16),
)
def test_reference_stats_are_those_of_the_first_n_images_of_the_split(split, n, batch_size):
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(sampling, "load_inception", lambda path: _PooledPixels().eval())
        out = Path(folder) / "stats" / "digits.npz"
        returned = reference_stats(
            "digits32",
            out,
            split=split,
            n=n,
            weights="w.pth",
            device=torch.device("cpu"),
            batch_size=batch_size,
        )
        written = load_stats(out)
    features = _PooledPixels().eval()(_digits32_split(split)[:n]).detach().double()
    expected = feature_statistics(features)
    for stats in (returned, written):
        assert stats.count == n
        assert stats.mu.shape == (4,) and stats.sigma.shape == (4, 4)
        np.testing.assert_allclose(stats.mu, expected.mu, rtol=0, atol=1e-6)
        np.testing.assert_allclose(stats.sigma, expected.sigma, rtol=0, atol=1e-6)


def test_fid_of_a_run_against_the_statistics_of_fid_stats(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sampling, "load_inception", lambda path: _PooledPixels().eval())
    stats = tmp_path / "digits32.npz"
    command = ["fid-stats", "digits32", "--out", str(stats), "--weights", "w.pth"]
    assert main([*command, "--device", "cpu"]) == 0
    assert (
        capsys.readouterr().out
        == f"statistics of 1617 digits32 train images (4 features): {stats}\n"
    )
    args = ["fid", str(trained), "--stats", str(stats), "--weights", "w.pth", "--n", "6"]
    assert main([*args, "--steps", "1", "2", "1"]) == 0
    record = json.loads((trained / "fid.json").read_text())
    pooled = _PooledPixels().eval()
    ours = feature_statistics(pooled(_fid_samples(trained)).detach().double())
    reference = feature_statistics(pooled(_digits32_split("train")).detach().double())
    expected = frechet_distance(ours.mu, ours.sigma, reference.mu, reference.sigma)
    assert record["fid"] == pytest.approx(expected, rel=1e-6)

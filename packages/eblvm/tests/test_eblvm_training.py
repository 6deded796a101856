"""The training loop: it learns, resumes exactly, stops clearly on divergence."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from eblvm import RunMismatch, TrainConfig, TrainingDiverged, train
from eblvm import methods as methods_module
from eblvm.build import build_model, load_data
from eblvm.evaluation import estimate_log_partition, mean_log_likelihood

SMALL = TrainConfig(
    dataset="checkerboard",
    n_train=2000,
    iterations=30,
    eval_every=10,
    checkpoint_every=5,
    lr=1e-2,
    posterior_lr=1e-2,
)


def initial_test_log_likelihood(config: TrainConfig) -> float:
    splits = load_data(config)
    model = build_model(config, splits.train, torch.Generator().manual_seed(config.seed))
    log_z = estimate_log_partition(model, config, seed=0)
    return mean_log_likelihood(model, splits.test, log_z.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "vages"},
        {"method": "vaes"},
        {"method": "is", "objective": "ksd"},
        {"method": "exact", "objective": "ksd"},
        {"method": "bism", "n_unroll": 2, "n_samples": 1},
        {"method": "cd"},
        {"method": "pcd"},
        {"method": "vages", "objective": "ssm"},
    ],
    ids=lambda changes: "-".join(str(v) for v in changes.values()),
)
def test_every_method_improves_the_test_log_likelihood(tmp_path, changes):
    config = dataclasses.replace(SMALL, iterations=60, eval_every=30, **changes)
    summary = train(config, tmp_path, progress=False)
    assert summary["iterations"] == 60
    assert summary["test_log_likelihood"] > initial_test_log_likelihood(config) + 0.05
    assert (tmp_path / "density.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["iteration"] for row in rows] == [30, 60]


def _final_parameters(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]


def test_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    train(SMALL, tmp_path / "whole", progress=False)

    original_step = methods_module.ScoreMatching.step
    calls = {"n": 0}

    def killed_at_17(self, v):
        calls["n"] += 1
        if calls["n"] == 17:
            raise KeyboardInterrupt
        return original_step(self, v)

    monkeypatch.setattr(methods_module.ScoreMatching, "step", killed_at_17)
    with pytest.raises(KeyboardInterrupt):
        train(SMALL, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(methods_module.ScoreMatching, "step", original_step)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["iteration"] == 15

    summary = train(SMALL, tmp_path / "resumed", progress=False)
    whole, resumed = _final_parameters(tmp_path / "whole"), _final_parameters(tmp_path / "resumed")
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], rtol=0, atol=0)
    assert summary["iterations"] == 30
    rows = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(row)["iteration"] for row in rows] == [10, 20, 30]


def test_a_longer_run_continues_a_finished_one(tmp_path):
    train(SMALL, tmp_path / "whole", progress=False)
    short = dataclasses.replace(SMALL, iterations=20)
    train(short, tmp_path / "extended", progress=False)
    train(SMALL, tmp_path / "extended", progress=False)
    whole, extended = (
        _final_parameters(tmp_path / "whole"),
        _final_parameters(tmp_path / "extended"),
    )
    for name in whole:
        torch.testing.assert_close(extended[name], whole[name], rtol=0, atol=0)


def test_divergence_stops_with_the_iteration_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    original_step = methods_module.ScoreMatching.step
    calls = {"n": 0}

    def nan_at_12(self, v):
        calls["n"] += 1
        if calls["n"] == 12:
            raise FloatingPointError(float("nan"))
        return original_step(self, v)

    monkeypatch.setattr(methods_module.ScoreMatching, "step", nan_at_12)
    with pytest.raises(TrainingDiverged, match="iteration 12: loss = nan") as caught:
        train(SMALL, tmp_path, progress=False)
    assert caught.value.iteration == 12
    kept = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert kept["iteration"] == 10
    assert all(torch.isfinite(p).all() for p in kept["model"].values())


def test_a_real_non_finite_loss_is_caught(tmp_path):
    config = dataclasses.replace(SMALL, lr=1e6, posterior_lr=1e6, dsm_sigma=1e-4, iterations=200)
    with pytest.raises(TrainingDiverged, match="training diverged at iteration"):
        train(config, tmp_path, progress=False)


def test_a_folder_with_another_run_is_refused(tmp_path):
    train(dataclasses.replace(SMALL, iterations=5), tmp_path, progress=False)
    with pytest.raises(RunMismatch, match="other settings"):
        train(dataclasses.replace(SMALL, seed=1), tmp_path, progress=False)


def test_ais_agrees_with_exact_log_z_on_a_checkerboard_trained_grbm(tmp_path):
    """AIS (the evaluation used when h is too large to enumerate) against enumeration,
    on a GRBM with h = 12 trained on checkerboard rather than drawn at random."""
    config = dataclasses.replace(SMALL, h_dim=12, iterations=100, eval_every=100)
    train(config, tmp_path, progress=False)
    splits = load_data(config)
    model = build_model(config, splits.train, torch.Generator())
    model.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"])
    exact = estimate_log_partition(model, config, seed=0)
    ais = estimate_log_partition(
        model, dataclasses.replace(config, log_z="ais", ais_chains=1000, ais_steps=500), seed=0
    )
    assert exact.method == "exact" and ais.method == "ais"
    assert abs(ais.value - exact.value) < 0.05

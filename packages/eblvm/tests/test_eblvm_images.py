"""Image runs on the CPU: a deep EBLVM learns (its MDSM loss falls), resumes exactly,
is evaluated and selected by FID when configured, and samples a grid; every objective
and estimator trains a few steps; image settings and commands refuse bad input."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from eblvm_testing import RANDOM_IMAGES, tiny_images
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from eblvm import Settings, SettingsError, apply_overrides, train
from eblvm.cli import main
from eblvm.images import sampling
from eblvm.images import task as image_task
from eblvm.images.data import check_image_shape, load_images
from eblvm.images.models import LatentEnergy, VisibleEnergy
from eblvm.images.presets import IMAGE_PRESETS
from eblvm.images.sampling import load_run, reference_stats, sample_images, schedule_of
from eblvm.images.task import ImageTask
from eblvm.presets import get_preset
from eblvm.runs import load_checkpoint, read_metrics, save_checkpoint
from eblvm.step import ScoreMatchingStep
from eblvm_data import digits
from eblvm_eval.fid import (
    FeatureStats,
    feature_statistics,
    frechet_distance,
    load_stats,
    save_stats,
)
from ebm_models import DeepEBLVM, DeepEBM

TINY = tiny_images()
PNG = b"\x89PNG\r\n\x1a\n"


def _train(settings, out, **kwargs):
    return train(ImageTask(settings), settings, out, progress=False, **kwargs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A deep EBLVM trained for 200 VaGES-MDSM steps on digits padded to 32×32."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("digits32") / "run"
    _train(TINY, run_dir)
    torch.set_num_threads(threads)
    return run_dir


def test_a_deep_eblvm_learns_digits_its_mdsm_loss_falls(trained):
    rows, _ = read_metrics(trained / "metrics.jsonl")
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
    assert "no fid.stats" in summary["checkpoint_selection"]["reason"]


def test_the_learning_rate_follows_the_cosine_schedule(trained):
    rows, _ = read_metrics(trained / "metrics.jsonl")
    for row in rows[::37]:
        t = row["iteration"]
        expected = 0.5 * TINY.optimiser.lr * (1 + math.cos(math.pi * (t - 1) / 200))
        assert row["lr"] == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_the_ema_warms_up_and_is_kept_in_the_checkpoint(trained):
    """decay_t = min(0.999, (1 + t)/(10 + t)): after 200 steps the average has moved
    from the random start to within a few steps' change of θ."""
    state = load_checkpoint(trained / "checkpoint.pt")["state"]
    ema, theta = state["extra"]["ema"], state["theta"]
    start = ImageTask(TINY).build(TINY, torch.Generator()).energy.state_dict()
    name = "model.projection.weight"
    moved = (ema[name] - start[name]).norm() / (theta[name] - start[name]).norm()
    assert 0.7 < float(moved) < 1.0


def test_sample_writes_a_grid_of_finite_images(trained, capsys):
    out = trained / "grid.png"
    code = main(["sample", str(trained), "--n", "6", "--steps", "2", "3", "2", "--out", str(out)])
    assert code == 0
    assert out.read_bytes()[:8] == PNG
    assert str(out) in capsys.readouterr().out
    assert main(["sample", str(trained), "--n", "4", "--steps", "1", "1", "1", "--raw"]) == 0
    assert (trained / "samples.png").read_bytes()[:8] == PNG
    jpeg = ["sample", str(trained), "--n", "2", "--steps", "1", "1", "1"]
    assert main([*jpeg, "--out", str(trained / "grid.jpg")]) == 0
    assert (trained / "grid.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert main(["sample", str(trained), "--out", str(trained / "grid.gif")]) == 2
    assert ".png, .jpg" in capsys.readouterr().err and not (trained / "grid.gif").exists()


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
        schedule=schedule_of(run.settings, (1, 1, 1)),
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
            schedule=schedule_of(run.settings, (3, 3, 3)),
            step_size=0.02,
            sigma0=0.1,
            generator=torch.Generator().manual_seed(0),
        )


def test_nan_weights_give_a_message_and_no_grid(trained, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((trained / "config.json").read_text())
    record = load_checkpoint(trained / "checkpoint.pt")
    for value in record["state"]["extra"]["ema"].values():
        value.fill_(math.nan)
    save_checkpoint(record, broken / "checkpoint.pt")
    assert main(["sample", str(broken), "--n", "4", "--steps", "1", "1", "1"]) == 1
    assert "sampling failed: the energy is not finite" in capsys.readouterr().err
    assert not (broken / "samples.png").exists()


def test_an_edited_config_is_not_trusted(trained, tmp_path, capsys):
    edited = tmp_path / "edited"
    edited.mkdir()
    config = json.loads((trained / "config.json").read_text())
    config["model"]["h_dim"] = 9
    (edited / "config.json").write_text(json.dumps(config))
    (edited / "checkpoint.pt").write_bytes((trained / "checkpoint.pt").read_bytes())
    assert main(["sample", str(edited), "--n", "2"]) == 2
    assert "belongs to other settings" in capsys.readouterr().err


def _kill_step_at(call: int, monkeypatch) -> None:
    original = ScoreMatchingStep.__call__
    calls = {"n": 0}

    def killed(self, *args):
        calls["n"] += 1
        if calls["n"] == call:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(ScoreMatchingStep, "__call__", killed)


def test_a_killed_and_resumed_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    settings = apply_overrides(TINY, ["iterations=6", "checkpoint_every=2", "data.hflip=true"])
    _train(settings, tmp_path / "whole")
    with monkeypatch.context() as patch:
        _kill_step_at(5, patch)
        with pytest.raises(KeyboardInterrupt):
            _train(settings, tmp_path / "resumed")
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["iteration"] == 4
    _train(settings, tmp_path / "resumed")
    whole, resumed = (
        load_checkpoint(tmp_path / name / "checkpoint.pt")["state"] for name in ("whole", "resumed")
    )
    for part in ("theta", "phi"):
        for key, value in whole[part].items():
            assert torch.equal(resumed[part][key], value), (part, key)
    for key, value in whole["extra"]["ema"].items():
        assert torch.equal(resumed["extra"]["ema"][key], value), key
    rows = {
        name: [
            (row["iteration"], row["loss"], row["lr"])
            for row in read_metrics(tmp_path / name / "metrics.jsonl")[0]
        ]
        for name in ("whole", "resumed")
    }
    assert rows["resumed"] == rows["whole"]
    assert [row[0] for row in rows["resumed"]] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    "assignments",
    [
        ["method=bism", "n_unroll=2", "n_samples=1", "refine_steps=0"],
        ["method=exact", "refine_steps=0"],
        ["objective=dsm", "dsm_sigma=0.1"],
        ["method=vaes", "objective=dsm", "dsm_sigma=0.1"],
        ["method=is", "refine_steps=0", "objective=dsm", "dsm_sigma=0.1"],
        ["objective=ssm", "n_samples=3"],
        ["objective=ksd"],
    ],
    ids=lambda a: "-".join(x.split("=")[1] for x in a[:2]),
)
def test_every_method_and_objective_trains_images(tmp_path, assignments):
    settings = apply_overrides(TINY, [*RANDOM_IMAGES, "iterations=4", "log_every=2", *assignments])
    summary = _train(settings, tmp_path)
    assert summary["iterations"] == 4 and math.isfinite(summary["loss"])
    state = load_checkpoint(tmp_path / "checkpoint.pt")["state"]
    assert bool(state["phi"]) == (settings.method.name != "exact")


class _PooledPixels(nn.Module):
    """A stand-in feature extractor for the FID: 2×2 average-pooled pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(images).flatten(1) * self.scale


def _pooled_stats(path: Path) -> Path:
    reference = _PooledPixels().eval()(digits(image=True, pad_to=32).train).detach().double()
    count = len(reference)
    save_stats(
        FeatureStats(reference.mean(0).numpy(), np.cov(reference.numpy(), rowvar=False), count),
        path,
    )
    return path


def test_checkpoints_are_selected_by_fid_when_configured(tmp_path, monkeypatch):
    stats = _pooled_stats(tmp_path / "digits.npz")
    monkeypatch.setattr(image_task, "load_inception", lambda path: _PooledPixels().eval())
    settings = apply_overrides(
        TINY,
        [
            "iterations=4",
            "eval_every=2",
            "fid.samples=8",
            f"fid.stats={stats}",
            "fid.weights=i.pth",
        ],
    )
    summary = _train(settings, tmp_path / "run")
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl")[0] if "fid" in r]
    assert [row["iteration"] for row in rows] == [2, 4]
    best = min(rows, key=lambda row: row["fid"])
    selection = summary["checkpoint_selection"]
    assert selection == {"by": "fid", "best_iteration": best["iteration"], "best_fid": best["fid"]}
    saved = load_checkpoint(tmp_path / "run" / "best.pt")
    assert saved["iteration"] == best["iteration"]
    assert load_run(tmp_path / "run", device=torch.device("cpu")).iteration == best["iteration"]


def _fid_samples(trained: Path) -> torch.Tensor:
    """The 6 samples `eblvm fid RUN --n 6 --steps 1 2 1` draws (seed 0) from the run."""
    run = load_run(trained, device=torch.device("cpu"))
    return sample_images(
        run.model,
        run.posterior,
        load_images(run.settings),
        6,
        schedule=schedule_of(run.settings, (1, 2, 1)),
        step_size=run.settings.sampling.step_size,
        sigma0=run.settings.objective.sigma0,
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


def test_fid_evaluation_without_weights_is_recorded_as_off(tmp_path, monkeypatch):
    monkeypatch.delenv("EBLVM_FID_WEIGHTS", raising=False)
    stats = save_stats(FeatureStats(np.zeros(2), np.eye(2), 2), tmp_path / "any.npz")
    settings = apply_overrides(TINY, ["iterations=1", f"fid.stats={stats}"])
    summary = _train(settings, tmp_path / "run")
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
    split=st.sampled_from(["train", "test"]), n=st.integers(2, 40), batch_size=st.integers(1, 16)
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


# ----------------------------------------------------------------- settings and commands


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("channels=3", r"dataset digits32 has 1-channel images \(32×32\), got data.channels=3"),
        ("image_size=64", "dataset digits32 has 1-channel images"),
        ("n_samples=1", r"method.n_samples must be an integer >= 2"),
        ("dataset=imagenet", "data.dataset must be one of"),
        ("amp=true", "amp .* CUDA only"),
        ("ema_decay=1", r"optimiser.ema_decay must be in \[0, 1\)"),
        ("optimiser.beta1=1.5", r"optimiser.beta1 must be in \[0, 1\)"),
        ("lr_min=1", r"optimiser.lr_min must be in \[0, optimiser.lr"),
        ("sampling.t_max=0.5", "sampling.t_max must be >= 1"),
        ("objective.sigma_min=2", "objective.sigma_min must be at most objective.sigma_max"),
        ("objective.sigma_max=inf", "objective.sigma_max must be positive and finite"),
        ("objective.schedule=log", "objective.schedule must be one of linear, geometric"),
        ("method.refine_noise_std=-1", "method.refine_noise_std must be non-negative"),
        ("method=is", "method.refine_steps refines fixed draws"),
        ("lrr=1", "unknown setting 'lrr'; did you mean lr"),
        ("iterations=many", "setting cadence.iterations expects int"),
        ("seed=1e23", "setting seed expects int"),
    ],
)
def test_bad_image_settings_are_refused_with_the_reason(assignment, message):
    base = apply_overrides(get_preset("digits32-vages-mdsm"), ["device=cpu"])
    with pytest.raises(SettingsError, match=message):
        apply_overrides(base, [assignment])


def test_random_images_need_a_size_the_network_can_halve_three_times():
    with pytest.raises(SettingsError, match=r"data\.image_size must be a multiple of 8, got 12"):
        apply_overrides(TINY, [*RANDOM_IMAGES[:3], "image_size=12"])


def test_data_of_another_shape_is_refused_naming_both_shapes():
    with pytest.raises(ValueError, match=r"shape \(3, 32, 32\), but the settings ask for"):
        check_image_shape(torch.zeros(2, 3, 32, 32), TINY)


def test_amp_needs_cuda(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"amp .*needs a CUDA device; this run is on cpu"):
        _train(apply_overrides(TINY, ["device=auto", "amp=true"]), tmp_path)


def test_fingerprint_ignores_paths_cadence_and_the_device_only():
    base = TINY
    same = apply_overrides(
        base,
        [
            "data_root=/elsewhere",
            "fid.stats=x.npz",
            "device=auto",
            "log_every=7",
            "checkpoint_every=3",
        ],
    )
    assert same.fingerprint() == base.fingerprint()
    for changed in (["iterations=2"], ["seed=1"], ["lr=1e-4"], ["objective.schedule=geometric"]):
        assert apply_overrides(base, changed).fingerprint() != base.fingerprint()


def test_runs_recorded_before_the_noise_schedule_setting_load_and_resume():
    """config.json of a run before 0.8.0 lacks objective.schedule: it reads as linear, and
    linear levels leave the fingerprint what it was, so its checkpoints still match."""
    record = TINY.to_dict()
    assert record["objective"].pop("schedule") == "linear"
    old = Settings.from_dict(record)
    assert old.objective.schedule == "linear"
    assert old.fingerprint() == TINY.fingerprint()
    assert "objective.schedule" not in TINY.trajectory()
    geometric = apply_overrides(TINY, ["objective.schedule=geometric"])
    assert geometric.trajectory()["objective.schedule"] == "geometric"


def test_presets_carry_the_papers_settings():
    cifar = IMAGE_PRESETS["cifar10-vages-mdsm"]
    data, model, method, objective = cifar.data, cifar.model, cifar.method, cifar.objective
    assert (data.channels, data.image_size, model.h_dim, model.blocks_per_stage) == (3, 32, 50, 3)
    assert (method.n_samples, cifar.posterior.steps, data.batch_size) == (2, 5, 100)
    assert (method.refine_steps, method.refine_step_size, method.refine_noise_std) == (
        5,
        1e-2,
        1e-4,
    )
    assert (objective.sigma_min, objective.sigma_max, objective.sigma0) == (0.05, 1.2, 0.1)
    optimiser = cifar.optimiser
    assert (optimiser.lr, optimiser.beta1, optimiser.beta2, cifar.cadence.iterations) == (
        5e-5,
        0.9,
        0.95,
        300_000,
    )
    assert (optimiser.ema_decay, cifar.cadence.eval_every, cifar.fid.samples) == (0.999, 5000, 1000)
    assert (cifar.posterior.loss, cifar.posterior.fit_at) == ("fisher", "objective")
    mnist = IMAGE_PRESETS["mnist-vages-mdsm"]
    assert (mnist.data.channels, mnist.model.blocks_per_stage, mnist.optimiser.lr) == (1, 2, 1e-4)
    celeba = IMAGE_PRESETS["celeba-vages-mdsm"]
    assert (celeba.data.image_size, celeba.data.hflip) == (64, True)
    for data_set in ("mnist", "cifar10", "celeba"):
        unrolls = {IMAGE_PRESETS[f"{data_set}-bism-mdsm-n{n}"].method.n_unroll for n in (0, 2, 5)}
        assert unrolls == {0, 2, 5}
        assert IMAGE_PRESETS[f"{data_set}-ebm-mdsm"].method.name == "exact"
    with torch.device("meta"):
        network = DeepEBLVM(3, model.h_dim, base_width=model.base_width, blocks_per_stage=3)
    megabytes = sum(p.numel() for p in network.parameters()) * 4 / 2**20
    assert megabytes == pytest.approx(244, rel=0.05), "the paper's CIFAR10 EBLVM: 244 MB"


def test_train_runs_an_image_preset(tmp_path, capsys):
    out = tmp_path / "run"
    command = ["train", "random-vages-mdsm", "--out", str(out), "--no-progress"]
    assigned = [*RANDOM_IMAGES, "iterations=2", "log_every=1", "device=cpu"]
    assert main([*command, *[f"--set={a}" for a in assigned]]) == 0
    printed = capsys.readouterr().out
    assert "after 2 iterations" in printed and "FID evaluation is off" in printed
    assert (out / "summary.json").exists()
    assert torch.get_num_threads() == ImageTask.cpu_threads == 2  # not told --threads
    once = ["train", "random-vages-mdsm", "--out", str(tmp_path / "one"), "--no-progress"]
    assert main([*once, "--threads", "1", *[f"--set={a}" for a in assigned]]) == 0
    assert torch.get_num_threads() == 1


def test_the_command_makes_openmp_workers_sleep_while_they_wait():
    script = "import sys, eblvm, os; sys.stdout.write(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    run = functools.partial(subprocess.run, [sys.executable, "-c", script], capture_output=True)
    assert run(env=env, check=True).stdout == b"PASSIVE"
    assert run(env={**env, "OMP_WAIT_POLICY": "ACTIVE"}, check=True).stdout == b"ACTIVE"


def test_sample_and_fid_need_a_trained_image_run(tmp_path, capsys):
    assert main(["sample", str(tmp_path)]) == 2
    assert "config.json not found" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_dict()))
    assert main(["sample", str(tmp_path)]) == 2
    assert "no weights in" in capsys.readouterr().err
    # A GRBM run is sampled by Gibbs sampling: its weights are looked for too.
    (tmp_path / "config.json").write_text(json.dumps(get_preset("checkerboard-dsm").to_dict()))
    assert main(["sample", str(tmp_path)]) == 2
    assert "no weights in" in capsys.readouterr().err


def test_fid_without_weights_or_statistics_says_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EBLVM_FID_WEIGHTS", raising=False)
    _train(apply_overrides(TINY, [*RANDOM_IMAGES, "iterations=1"]), tmp_path)
    stats = tmp_path / "stats.npz"
    assert main(["fid", str(tmp_path), "--stats", str(stats)]) == 2
    assert f"no statistics file at '{stats}'" in capsys.readouterr().err
    save_stats(FeatureStats(np.zeros(2), np.eye(2), 10), stats)
    assert main(["fid", str(tmp_path), "--stats", str(stats)]) == 2
    message = capsys.readouterr().err
    assert "EBLVM_FID_WEIGHTS is not set" in message and "pt_inception" in message
    missing = tmp_path / "inception.pth"
    assert main(["fid", str(tmp_path), "--stats", str(stats), "--weights", str(missing)]) == 2
    assert f"no file at weights_path='{missing}'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["svhn"],
            "dataset must be one of mnist, fashion_mnist, cifar10, celeba, digits32, random, "
            "got 'svhn'",
        ),
        (["digits32", "--n", "1"], "n must be an integer >= 2, got 1"),
        (
            ["digits32", "--split", "test", "--n", "181"],
            "at most the 180 images of the digits32 test",
        ),
        (["digits32", "--split", "validation"], "split must be one of train, test"),
        (["random", "--split", "test"], "the random data set has no test split"),
        (["digits32", "--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    ],
)
def test_fid_stats_refuses_bad_arguments_naming_them(
    arguments, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(sampling, "load_inception", lambda path: nn.Flatten().eval())
    out = tmp_path / "stats.npz"
    assert main(["fid-stats", *arguments, "--out", str(out), "--device", "cpu"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_fid_stats_writes_only_npz_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sampling, "load_inception", lambda path: nn.Flatten().eval())
    out = tmp_path / "stats.npy"
    assert main(["fid-stats", "digits32", "--out", str(out)]) == 2
    assert f"out must name a .npz file, got '{out}'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_fid_stats_names_the_missing_data_files_and_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EBLVM_FID_WEIGHTS", raising=False)
    out = tmp_path / "stats.npz"
    assert main(["fid-stats", "digits32", "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert "EBLVM_FID_WEIGHTS is not set" in message and "pt_inception" in message
    missing = tmp_path / "inception.pth"
    assert main(["fid-stats", "digits32", "--out", str(out), "--weights", str(missing)]) == 2
    assert f"no file at weights_path='{missing}'" in capsys.readouterr().err
    monkeypatch.setattr(sampling, "load_inception", lambda path: nn.Flatten().eval())
    command = ["fid-stats", "cifar10", "--out", str(out), "--data-root", str(tmp_path)]
    assert main(command) == 2
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in capsys.readouterr().err
    assert not out.exists()


def _write_idx(path: Path, images: np.ndarray) -> None:
    n, rows, cols = images.shape
    header = np.array([2051, n, rows, cols], dtype=">u4").tobytes()
    path.write_bytes(header + images.astype(np.uint8).tobytes())


def test_fashion_mnist_presets_train_on_its_train_and_validation_images_padded(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(5003, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", train)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", test)
    for name in ("fashion-vages-mdsm", "fashion-ebm-mdsm"):
        preset = get_preset(name)
        assert (preset.data.dataset, preset.data.channels, preset.data.image_size) == (
            "fashion_mnist",
            1,
            32,
        )
        assert preset.data.data_root == "/usr/share/datasets/fashion-mnist"
        local = apply_overrides(preset, [f"data_root={tmp_path}"])
        images = load_images(local)
        assert images.shape == (5003, 1, 32, 32)
        expected = torch.from_numpy(train.astype(np.float32) / 255).unsqueeze(1)
        torch.testing.assert_close(images[:, :, 2:30, 2:30], expected, rtol=0, atol=1e-7)
        assert images[:, :, :2].abs().sum() == 0 and images[:, :, :, 30:].abs().sum() == 0
        assert load_images(local, split="test").shape == (3, 1, 32, 32)
    assert get_preset("fashion-ebm-mdsm").method.name == "exact"
    vages = get_preset("fashion-vages-mdsm")
    assert vages.method.name == "vages" and vages.data.batch_size == 32
    model = vages.model
    assert (model.base_width, model.blocks_per_stage, model.posterior_width) == (32, 1, 16)


def test_training_without_the_fashion_mnist_files_names_the_debian_package(tmp_path, capsys):
    command = ["train", "fashion-vages-mdsm", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*command, f"--set=data_root={tmp_path}", "--set=device=cpu"]) == 2
    message = capsys.readouterr().err
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in message
    assert "apt-get install dataset-fashion-mnist" in message and "Traceback" not in message


def test_the_test_split_is_the_data_sets_test_split_and_train_adds_validation():
    preset = get_preset("digits32-vages-mdsm")
    splits = digits(image=True, pad_to=32)
    assert torch.equal(load_images(preset, split="test"), splits.test)
    assert torch.equal(load_images(preset), torch.cat([splits.train, splits.validation]))


@settings(max_examples=10, deadline=None)
@given(batch=st.integers(1, 4), samples=st.integers(1, 3), seed=st.integers(0, 100))
def test_bf16_autocast_keeps_energies_close_and_scores_float32(batch, samples, seed):
    torch.manual_seed(seed)
    model = DeepEBLVM(1, 3, base_width=2, blocks_per_stage=1, image_size=8)
    v = torch.rand(batch, 1, 8, 8)
    h = torch.randn(samples, batch, 3)
    exact = LatentEnergy(model)(v, h)
    mixed = LatentEnergy(model, autocast=True)(v, h)
    assert mixed.dtype == torch.float32 and mixed.shape == (samples, batch)
    scale = float(exact.detach().abs().max())
    torch.testing.assert_close(mixed, exact, rtol=0.05, atol=0.05 * scale)
    ebm = DeepEBM(1, base_width=2, blocks_per_stage=1, image_size=8)
    score = VisibleEnergy(ebm, autocast=True).score(v)
    assert score.dtype == torch.float32 and score.shape == v.shape
    assert bool(score.isfinite().all())
    (grad,) = torch.autograd.grad(score.square().sum(), ebm.head.quadratic.weight)
    assert math.isfinite(float(grad.abs().sum()))


def test_a_step_size_that_overflows_the_chains_is_a_failed_sampling(trained, capsys):
    """The chains leave the finite numbers: status 1, "sampling failed", as the README
    says, not bad input."""
    command = ["sample", str(trained), "--n", "2", "--steps", "1", "1", "1"]
    assert main([*command, "--step-size", "1e30", "--out", str(trained / "no.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("eblvm: sampling failed: ")
    assert "a smaller --step-size" in err and not (trained / "no.png").exists()

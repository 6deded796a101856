"""Image settings, presets and the command line around them; bad input is refused with a
message that names it."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from eblvm import IMAGE_PRESETS, ImageTrainConfig, apply_overrides, get_image_preset, sampling
from eblvm.cli import main
from eblvm.image_data import check_image_shape, load_images
from eblvm.image_methods import ExponentialAverage, LatentEnergy, VisibleScore
from eblvm.image_training import train_images
from eblvm_data import digits
from eblvm_eval.fid import FeatureStats, save_stats
from ebm_models import DeepEBLVM, DeepEBM


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = ImageTrainConfig(
    dataset="random",
    channels=1,
    image_size=8,
    n_train=8,
    h_dim=3,
    base_width=2,
    blocks_per_stage=1,
    posterior_width=2,
    batch_size=4,
    iterations=1,
    device="cpu",
)


def test_overrides_parse_image_settings_by_their_types():
    config = apply_overrides(
        get_image_preset("cifar10-vages-mdsm"),
        ["iterations=7", "lr=0.5", "method=ebm", "hflip=true", "fid_stats=s.npz"],
    )
    assert (config.iterations, config.lr, config.method, config.hflip) == (7, 0.5, "ebm", True)
    assert config.fid_stats == "s.npz"


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("channels=3", r"dataset digits32 has 1-channel images \(32×32\), got channels=3"),
        ("image_size=64", "dataset digits32 has 1-channel images"),
        ("n_samples=1", "n_samples must be >= 2"),
        ("dataset=imagenet", "dataset must be one of"),
        ("amp=true", "amp .* CUDA only"),
        ("ema_decay=1", r"ema_decay, beta1 and beta2 must lie in \[0, 1\)"),
        ("lr_min=1", "lr_min must be in"),
        ("sample_t_max=0.5", "sample_t_max must be >= 1"),
        ("mdsm_sigma_min=2", "mdsm_sigma_min must be positive and at most"),
        ("refine_noise_std=-1", "refine_noise_std must be >= 0"),
        ("lrr=1", "unknown setting 'lrr'"),
        ("iterations=many", "iterations expects a int"),
    ],
)
def test_bad_image_settings_are_refused_with_the_reason(assignment, message):
    base = dataclasses.replace(get_image_preset("digits32-vages-mdsm"), device="cpu")
    with pytest.raises(ValueError, match=message):
        apply_overrides(base, [assignment])


def test_random_images_need_a_size_the_network_can_halve_three_times():
    with pytest.raises(ValueError, match="image_size must be a multiple of 8, got 12"):
        dataclasses.replace(SMALL, image_size=12)


def test_data_of_another_shape_is_refused_naming_both_shapes():
    with pytest.raises(ValueError, match=r"shape \(3, 32, 32\), but the settings ask for"):
        check_image_shape(torch.zeros(2, 3, 32, 32), SMALL)


def test_amp_needs_cuda(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"amp .*needs a CUDA device; this run is on cpu"):
        train_images(dataclasses.replace(SMALL, device="auto", amp=True), tmp_path)


def test_fingerprint_ignores_paths_and_the_device_only():
    base = SMALL
    same = dataclasses.replace(base, data_root="/elsewhere", fid_stats="x.npz", device="auto")
    assert same.fingerprint() == base.fingerprint()
    for changed in ({"iterations": 2}, {"seed": 1}, {"amp": False, "lr": 1e-3}):
        assert dataclasses.replace(base, **changed).fingerprint() != base.fingerprint()


def test_presets_carry_the_papers_settings():
    cifar = IMAGE_PRESETS["cifar10-vages-mdsm"]
    assert (cifar.channels, cifar.image_size, cifar.h_dim, cifar.blocks_per_stage) == (3, 32, 50, 3)
    assert (cifar.n_samples, cifar.posterior_steps, cifar.batch_size) == (2, 5, 100)
    assert (cifar.refine_steps, cifar.refine_step_size, cifar.refine_noise_std) == (5, 1e-2, 1e-4)
    assert (cifar.mdsm_sigma_min, cifar.mdsm_sigma_max, cifar.mdsm_sigma0) == (0.05, 1.2, 0.1)
    assert (cifar.lr, cifar.beta1, cifar.beta2, cifar.iterations) == (5e-5, 0.9, 0.95, 300_000)
    assert (cifar.ema_decay, cifar.fid_every, cifar.fid_samples) == (0.999, 5000, 1000)
    mnist = IMAGE_PRESETS["mnist-vages-mdsm"]
    assert (mnist.channels, mnist.blocks_per_stage, mnist.lr, mnist.iterations) == (
        1,
        2,
        1e-4,
        100_000,
    )
    celeba = IMAGE_PRESETS["celeba-vages-mdsm"]
    assert (celeba.image_size, celeba.hflip, celeba.lr) == (64, True, 5e-5)
    for data in ("mnist", "cifar10", "celeba"):
        assert {IMAGE_PRESETS[f"{data}-bism-mdsm-n{n}"].n_unroll for n in (0, 2, 5)} == {0, 2, 5}
        assert IMAGE_PRESETS[f"{data}-ebm-mdsm"].method == "ebm"
    with torch.device("meta"):
        network = DeepEBLVM(3, cifar.h_dim, base_width=cifar.base_width, blocks_per_stage=3)
    megabytes = sum(p.numel() for p in network.parameters()) * 4 / 2**20
    assert megabytes == pytest.approx(244, rel=0.05), "the paper's CIFAR10 EBLVM: 244 MB"


def test_list_shows_both_kinds_of_presets(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in ("checkerboard-vages-dsm", "cifar10-vages-mdsm", "celeba-bism-mdsm-n5"):
        assert name in listed
    assert "digits32-ebm-mdsm" in listed


def test_train_runs_an_image_preset(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "random-ebm-mdsm", "--out", str(out), "--no-progress"]
    for key, value in {**dataclasses.asdict(SMALL), "method": "ebm", "iterations": 2}.items():
        args += ["--set", f"{key}={value}"]
    assert main(args) == 0
    assert json.loads((out / "summary.json").read_text())["iterations"] == 2
    assert "MDSM loss" in capsys.readouterr().out


def test_grbm_presets_are_not_trained_data_parallel(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "checkerboard-quick", "--out", str(tmp_path)]) == 2
    assert "trains on one process" in capsys.readouterr().err


def test_compare_refuses_image_presets(tmp_path, capsys):
    assert main(["compare", "cifar10-vages-mdsm", "--out", str(tmp_path)]) == 2
    assert "GRBM presets only" in capsys.readouterr().err


def test_missing_image_data_names_the_files(tmp_path, capsys):
    code = main(
        [
            "train",
            "mnist-vages-mdsm",
            "--out",
            str(tmp_path / "run"),
            "--set",
            f"data_root={tmp_path}",
        ]
    )
    assert code == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_sample_and_fid_need_a_trained_image_run(tmp_path, capsys, monkeypatch):
    assert main(["sample", str(tmp_path)]) == 2
    assert "config.json not found" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps(SMALL.to_dict()))
    assert main(["sample", str(tmp_path)]) == 2
    assert "no weights in" in capsys.readouterr().err
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "checkerboard"}))
    assert main(["sample", str(tmp_path)]) == 2
    assert "does not hold an image run" in capsys.readouterr().err


def test_fid_without_weights_or_statistics_says_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EBLVM_FID_WEIGHTS", raising=False)
    train_images(SMALL, tmp_path, progress=False)
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
        (["svhn"], "dataset must be one of mnist, cifar10, celeba, digits32, random, got 'svhn'"),
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


def test_the_test_split_is_the_data_sets_test_split_and_train_adds_validation():
    config = get_image_preset("digits32-vages-mdsm")
    splits = digits(image=True, pad_to=32)
    assert torch.equal(load_images(config, split="test"), splits.test)
    assert torch.equal(load_images(config), torch.cat([splits.train, splits.validation]))


def test_the_ema_is_the_exponential_average_of_the_parameters():
    model = nn.Linear(3, 2)
    ema = ExponentialAverage(model, 0.9)
    history = [model.weight.detach().clone()]
    for _ in range(3):
        with torch.no_grad():
            model.weight.add_(1.0)
        history.append(model.weight.detach().clone())
        ema.update()
    expected = history[0]
    for weights in history[1:]:
        expected = 0.9 * expected + 0.1 * weights
    torch.testing.assert_close(ema.average.weight, expected)
    assert not ema.average.weight.requires_grad


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
    score = VisibleScore(ebm, autocast=True)(v)
    assert score.dtype == torch.float32 and score.shape == v.shape
    assert bool(score.isfinite().all())
    (grad,) = torch.autograd.grad(score.square().sum(), ebm.head.quadratic.weight)
    assert math.isfinite(float(grad.abs().sum()))

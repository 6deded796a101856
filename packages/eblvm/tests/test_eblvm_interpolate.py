"""``eblvm interpolate``: images of a deep EBLVM along paths in h from the posterior
means of test images (to another's, or to the negated mean), one row per path and one
column per step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from eblvm_testing import tiny_images

from eblvm import interpolate as interpolation
from eblvm import train
from eblvm.cli import main
from eblvm.images.data import load_images
from eblvm.images.sampling import load_run
from eblvm.images.task import ImageTask

PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--langevin-steps", "1", "1", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def eblvm_run(tmp_path_factory) -> Path:
    settings = tiny_images("iterations=3")
    out = tmp_path_factory.mktemp("digits32") / "run"
    train(ImageTask(settings), settings, out, progress=False)
    return out


def test_the_grid_has_a_row_per_pair_and_a_column_per_step_from_posterior_means(
    eblvm_run, monkeypatch, capsys
):
    grids, columns = [], []
    save, sample = interpolation.save_image_grid, interpolation.sample_at

    def grid(images, path, *, nrow):
        grids.append((images, nrow))
        return save(images, path, nrow=nrow)

    def sample_at(model, h, count, **kwargs):
        columns.append(h.clone())
        return sample(model, h, count, **kwargs)

    monkeypatch.setattr(interpolation, "save_image_grid", grid)
    monkeypatch.setattr(interpolation, "sample_at", sample_at)
    assert main(["interpolate", str(eblvm_run), "--pairs", "2", "--steps", "3", *FAST]) == 0
    assert "2 interpolations of 3 steps" in capsys.readouterr().out
    assert (eblvm_run / "interpolation.png").read_bytes()[:8] == PNG
    ((images, nrow),) = grids
    assert images.shape == (6, 1, 32, 32) and nrow == 3
    assert len(columns) == 3 and all(h.shape == (2, 8) for h in columns)

    run = load_run(eblvm_run, device=torch.device("cpu"))
    test = load_images(run.settings, split="test")
    means = run.posterior.mean_and_log_std(test)[0]  # (180, 8): every test image's
    for end in (columns[0], columns[-1]):
        nearest = torch.cdist(end, means).min(dim=1).values
        torch.testing.assert_close(nearest, torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(columns[1], (columns[0] + columns[2]) / 2)
    assert not torch.allclose(columns[0], columns[2])


def test_pair_latents_run_from_one_posterior_mean_to_the_other(eblvm_run):
    run = load_run(eblvm_run, device=torch.device("cpu"))
    test = load_images(run.settings, split="test")
    first, second = test[:3], test[3:6]
    latents = interpolation.pair_latents(run.posterior, first, second, 5)
    assert latents.shape == (3, 5, 8)
    torch.testing.assert_close(latents[:, 0], run.posterior.mean_and_log_std(first)[0])
    torch.testing.assert_close(latents[:, -1], run.posterior.mean_and_log_std(second)[0])


def test_to_negation_runs_from_a_posterior_mean_to_its_negation(eblvm_run, tmp_path, monkeypatch):
    columns = []
    original = interpolation.sample_at

    def sample_at(model, h, count, **kwargs):
        columns.append(h.clone())
        return original(model, h, count, **kwargs)

    monkeypatch.setattr(interpolation, "sample_at", sample_at)
    command = ["interpolate", str(eblvm_run), "--pairs", "2", "--steps", "3", "--to", "negation"]
    assert main([*command, *FAST, "--out", str(tmp_path / "i.png")]) == 0
    run = load_run(eblvm_run, device=torch.device("cpu"))
    means = run.posterior.mean_and_log_std(load_images(run.settings, split="test"))[0]
    nearest = torch.cdist(columns[0], means).min(dim=1).values
    torch.testing.assert_close(nearest, torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(columns[-1], -columns[0])
    torch.testing.assert_close(columns[1], torch.zeros_like(columns[1]), atol=1e-6, rtol=0)


def test_pair_latents_refuse_an_unknown_endpoint(eblvm_run):
    run = load_run(eblvm_run, device=torch.device("cpu"))
    test = load_images(run.settings, split="test")
    with pytest.raises(ValueError, match="to must be one of image, negation, got 'origin'"):
        interpolation.pair_latents(run.posterior, test[:1], test[1:2], 3, to="origin")


def test_every_column_starts_from_the_same_draws(eblvm_run, tmp_path, monkeypatch):
    states = []
    original = interpolation.sample_at

    def sample_at(model, h, count, *, generator, **kwargs):
        states.append(generator.get_state())
        return original(model, h, count, generator=generator, **kwargs)

    monkeypatch.setattr(interpolation, "sample_at", sample_at)
    command = ["interpolate", str(eblvm_run), "--pairs", "1", "--steps", "2"]
    assert main([*command, *FAST, "--out", str(tmp_path / "i.png")]) == 0
    assert len(states) == 2 and torch.equal(states[0], states[1])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--pairs", "91"], "pairs must be at most half the 180 test images"),
        (["--steps", "1"], "steps must be an integer >= 2"),
        (["--out", "x.gif"], "--out must end in one of"),
    ],
)
def test_bad_requests_are_one_line(eblvm_run, arguments, message, capsys):
    assert main(["interpolate", str(eblvm_run), *arguments, *FAST]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_a_deep_ebm_has_no_latent_to_interpolate(tmp_path, capsys):
    settings = tiny_images("method.name=exact", "method.refine_steps=0", "iterations=1")
    train(ImageTask(settings), settings, tmp_path / "ebm", progress=False)
    assert main(["interpolate", str(tmp_path / "ebm"), *FAST]) == 2
    error = capsys.readouterr().err
    assert "deep EBM: interpolation needs a deep EBLVM" in error and "Traceback" not in error

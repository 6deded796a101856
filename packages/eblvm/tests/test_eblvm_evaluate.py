"""``eblvm classifier``, ``eblvm evaluate`` and ``eblvm sample`` of GRBM runs: the cached
Fashion-MNIST classifier, each metric on tiny finished runs beside the real test data's
value, several metrics on one set of samples, Gibbs samples, and one clear line for
every expected failure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from eblvm_testing import RANDOM_IMAGES, small_grbm

from eblvm import apply_overrides, evaluate, train
from eblvm.classifier import cached_classifier, default_classifier_path
from eblvm.cli import main
from eblvm.evaluate import evaluate_run
from eblvm.grbm.task import GRBMTask
from eblvm.images.task import ImageTask
from eblvm.presets import get_preset
from eblvm_data import FASHION_MNIST_CLASSES, fashion_mnist
from eblvm_eval import classifier_class_shares, classifier_score, load_classifier

N_TRAIN, N_TEST = 5010, 40  # Fashion-MNIST's loader keeps 5000 for validation


def _idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _pictures(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28×28 images whose class k lights a 6×6 square at its own place, over noise."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28))
    for i, k in enumerate(labels):
        row, column = 3 + 12 * (k // 5), 1 + 5 * (k % 5)
        images[i, row : row + 6, column : column + 6] = 255
    return images


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory) -> Path:
    """Fashion-MNIST-shaped idx files (images and labels) of ten easy classes."""
    root = tmp_path_factory.mktemp("fashion")
    rng = np.random.default_rng(0)
    for prefix, count in (("train", N_TRAIN), ("t10k", N_TEST)):
        labels = np.arange(count) % 10
        _idx(root / f"{prefix}-images-idx3-ubyte", _pictures(labels, rng), 2051)
        _idx(root / f"{prefix}-labels-idx1-ubyte", labels, 2049)
    return root


@pytest.fixture(scope="module")
def classifier_path(fashion_root, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache") / "classifier.pt"
    command = ["classifier", "--out", str(path), "--data-root", str(fashion_root)]
    assert main([*command, "--epochs", "1"]) == 0
    return path


@pytest.fixture(scope="module")
def fashion_run(fashion_root, tmp_path_factory) -> Path:
    """A tiny deep EBLVM trained 3 steps on the fake Fashion-MNIST."""
    settings = apply_overrides(
        get_preset("fashion-vages-mdsm"),
        [
            f"data_root={fashion_root}",
            "h_dim=4",
            "base_width=4",
            "posterior_width=4",
            "batch_size=8",
            "posterior_steps=1",
            "iterations=3",
            "device=cpu",
            "sampling.hold_steps=1",
            "sampling.anneal_steps=2",
            "sampling.final_steps=1",
        ],
    )
    out = tmp_path_factory.mktemp("fashion-run") / "run"
    train(ImageTask(settings), settings, out, progress=False)
    return out


def test_the_classifier_command_trains_caches_and_reports_accuracy(
    classifier_path, fashion_root, capsys
):
    digest = classifier_path.with_name("classifier.pt.sha256").read_text().split()[0]
    model = load_classifier(classifier_path)
    splits = fashion_mnist(fashion_root)
    test_labels = torch.arange(N_TEST) % 10
    accuracy = float((model(splits.test).argmax(1) == test_labels).double().mean())
    assert accuracy > 0.9  # ten easy classes
    assert torch.equal(cached_classifier(classifier_path)(splits.test), model(splits.test))
    assert len(digest) == 64


def test_the_default_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_classifier_path() == tmp_path / "eblvm" / "fashion-classifier.pt"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_classifier_path() == tmp_path / "home/.cache/eblvm/fashion-classifier.pt"


@pytest.mark.parametrize("metric", ["classifier-score", "classifier-fid"])
def test_classifier_metrics_score_samples_beside_the_real_test_images(
    metric, fashion_run, classifier_path, fashion_root, capsys
):
    command = ["evaluate", str(fashion_run), "--metric", metric, "--n", "20"]
    assert main([*command, "--classifier", str(classifier_path), "--device", "cpu"]) == 0
    line = capsys.readouterr().out
    assert f"{metric} " in line and "on 20 samples of iteration 3" in line
    assert "20 real test images" in line
    record = json.loads((fashion_run / f"evaluation-{metric}.json").read_text())
    assert record["metric"] == metric and record["n"] == 20 and record["real_test_n"] == 20
    assert math.isfinite(record["value"])
    real = fashion_mnist(fashion_root).test[:20]
    model = load_classifier(classifier_path)
    if metric == "classifier-score":
        expected = classifier_score(real, model, splits=10)
        assert record["real_test_value"] == pytest.approx(expected.mean, rel=1e-9)
        assert record["real_test_std"] == pytest.approx(expected.std, rel=1e-9, abs=1e-12)
        assert 1.0 <= record["value"] <= 10.0
        real_shares = record["real_test_class_shares"]
        assert list(real_shares) == list(FASHION_MNIST_CLASSES)
        assert list(real_shares.values()) == classifier_class_shares(real, model).tolist()
        assert sum(record["class_shares"].values()) == pytest.approx(1.0)
        assert "; most drawn: " in line
    else:
        assert record["real_test_value"] >= 0 and record["value"] >= 0
        assert record["std"] is None
        assert "class_shares" not in record and "most drawn" not in line


def _record(run: Path, metric: str) -> dict:
    return json.loads((run / f"evaluation-{metric}.json").read_text())


def _counting_draws(monkeypatch) -> list[int]:
    """The n of every set of samples evaluate draws from now on."""
    draws: list[int] = []
    draw = evaluate.samples_of

    def counted(model, posterior, settings, images, n, **kwargs):
        draws.append(n)
        return draw(model, posterior, settings, images, n, **kwargs)

    monkeypatch.setattr(evaluate, "samples_of", counted)
    return draws


def test_several_metrics_score_one_draw_as_each_would_alone(
    fashion_run, classifier_path, monkeypatch, capsys
):
    metrics = ["classifier-fid", "classifier-score"]
    options = ["--n", "20", "--seed", "3", "--classifier", str(classifier_path)]
    alone = {}
    for metric in metrics:
        assert main(["evaluate", str(fashion_run), "--metric", metric, *options]) == 0
        alone[metric] = _record(fashion_run, metric)
    capsys.readouterr()
    draws = _counting_draws(monkeypatch)
    both = ["--metric", metrics[0], "--metric", metrics[1]]
    assert main(["evaluate", str(fashion_run), *both, *options]) == 0
    assert draws == [20]  # one set of samples for both metrics
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == metrics
    for metric in metrics:
        together = _record(fashion_run, metric)
        assert alone[metric].pop("samples_shared_by") == [metric]
        assert together.pop("samples_shared_by") == metrics
        assert together == alone[metric]  # values, ceilings, seed, n, iteration
    assert together["seed"] == 3 and together["real_test_n"] == 20


def test_evaluate_run_takes_a_name_or_names_and_returns_a_record_each(
    fashion_run, classifier_path, monkeypatch
):
    draws = _counting_draws(monkeypatch)
    options = {"n": 4, "classifier": classifier_path, "device": torch.device("cpu")}
    asked = ("classifier-score", "classifier-fid", "classifier-score")
    records = evaluate_run(fashion_run, asked, **options)
    assert [record["metric"] for record in records] == ["classifier-score", "classifier-fid"]
    assert records == [
        _record(fashion_run, "classifier-score"),
        _record(fashion_run, "classifier-fid"),
    ]
    [record] = evaluate_run(fashion_run, "classifier-fid", **options)
    assert record["samples_shared_by"] == ["classifier-fid"] and draws == [4, 4]
    with pytest.raises(ValueError, match=r"metric must be one of .*, got none"):
        evaluate_run(fashion_run, [], **options)
    with pytest.raises(TypeError, match="metrics must be a metric's name or a sequence"):
        evaluate_run(fashion_run, None, **options)  # type: ignore[arg-type]


def test_every_metrics_files_are_checked_before_sampling(
    fashion_run, classifier_path, monkeypatch, capsys
):
    draws = _counting_draws(monkeypatch)
    command = ["evaluate", str(fashion_run), "--metric", "classifier-score", "--metric", "fid"]
    assert main([*command, "--classifier", str(classifier_path), "--n", "4"]) == 2
    error = capsys.readouterr().err
    assert "needs reference statistics: --stats" in error and "Traceback" not in error
    assert draws == [] and len(error.strip().splitlines()) == 1


def test_a_missing_classifier_names_the_command_that_trains_it(
    fashion_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["evaluate", str(fashion_run), "--metric", "classifier-score", "--n", "4"]) == 2
    error = capsys.readouterr().err
    assert "`eblvm classifier`" in error and str(tmp_path / "eblvm") in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1


def test_a_changed_classifier_is_refused(fashion_run, classifier_path, tmp_path, capsys):
    changed = tmp_path / "classifier.pt"
    data = bytearray(classifier_path.read_bytes())
    data[len(data) // 2] ^= 1
    changed.write_bytes(bytes(data))
    changed.with_name("classifier.pt.sha256").write_text(
        classifier_path.with_name("classifier.pt.sha256").read_text()
    )
    command = ["evaluate", str(fashion_run), "--metric", "classifier-fid", "--n", "4"]
    assert main([*command, "--classifier", str(changed)]) == 2
    error = capsys.readouterr().err
    assert "SHA-256" in error and "Traceback" not in error


@pytest.fixture(scope="module")
def random_run(tmp_path_factory) -> Path:
    settings = apply_overrides(
        get_preset("digits32-vages-mdsm"), [*RANDOM_IMAGES, "iterations=2", "device=cpu"]
    )
    out = tmp_path_factory.mktemp("random") / "run"
    train(ImageTask(settings), settings, out, progress=False)
    return out


@pytest.fixture(scope="module")
def grbm_run(tmp_path_factory) -> tuple[Path, dict]:
    settings = small_grbm()
    out = tmp_path_factory.mktemp("grbm") / "run"
    return out, train(GRBMTask(settings), settings, out, progress=False)


@pytest.mark.parametrize(
    ("run", "arguments", "message"),
    [
        ("random", ["--metric", "classifier-score"], "score Fashion-MNIST runs"),
        ("random", ["--metric", "log-likelihood"], "log-likelihood evaluates GRBM runs"),
        ("random", ["--metric", "fid"], "needs reference statistics: --stats"),
        ("grbm", ["--metric", "classifier-fid"], "classifier-fid evaluates image runs"),
        ("none", ["--metric", "fid"], "is not a run folder"),
        ("grbm", ["--metric", "fid", "--metric", "classifier-fid"], "fid, classifier-fid evaluate"),
        ("random", ["--metric", "classifier-score", "--metric", "fid"], "score Fashion-MNIST"),
        (
            "grbm",
            ["--metric", "log-likelihood", "--metric", "classifier-fid"],
            "log-likelihood evaluates GRBM runs and classifier-fid image runs: no run has both",
        ),
        ("random", ["--metric", "fid", "--metric", "log-likelihood"], "no run has both"),
    ],
)
def test_metrics_refuse_runs_they_cannot_score_in_one_line(
    run, arguments, message, random_run, grbm_run, tmp_path, capsys
):
    folder = {"random": random_run, "grbm": grbm_run[0], "none": tmp_path}[run]
    assert main(["evaluate", str(folder), *arguments, "--n", "4"]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error and len(error.strip().splitlines()) == 1


def test_an_unknown_metric_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", str(tmp_path), "--metric", "nope"])
    assert info.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err


def test_log_likelihood_of_a_grbm_run_is_its_evaluations_and_beside_the_datas(grbm_run, capsys):
    out, summary = grbm_run
    assert main(["evaluate", str(out), "--metric", "log-likelihood"]) == 0
    line = capsys.readouterr().out
    assert "test log-likelihood" in line and "log Z by exact" in line
    record = json.loads((out / "evaluation-log-likelihood.json").read_text())
    assert record["log_z_method"] == "exact"
    assert record["value"] == pytest.approx(summary["test_log_likelihood"], rel=1e-6)
    # The checkerboard's own density: uniform on half of the unit square.
    assert record["real_test_value"] == pytest.approx(math.log(2), rel=1e-6)
    assert record["iteration"] == 30


# --------------------------------------------------------------------------- GRBM samples

PNG = b"\x89PNG\r\n\x1a\n"


def test_sample_draws_a_2d_grbm_run_as_a_density_plot(grbm_run, tmp_path, capsys):
    out, _ = grbm_run
    target = tmp_path / "points.png"
    command = ["sample", str(out), "--n", "200", "--gibbs-steps", "5", "--out", str(target)]
    assert main(command) == 0
    assert "200 samples after 5 Gibbs sweeps" in capsys.readouterr().out
    assert target.read_bytes()[:8] == PNG


def test_sample_draws_a_digits_grbm_run_as_a_grid_of_gibbs_samples(tmp_path, capsys, monkeypatch):
    from eblvm.grbm import sampling

    settings = small_grbm("dataset=digits", "h_dim=6", "iterations=5", "eval_every=5", toy=False)
    out = tmp_path / "digits"
    train(GRBMTask(settings), settings, out, progress=False)
    drawn = {}
    save = sampling.save_image_grid

    def grid(images, path):
        drawn["images"] = images
        return save(images, path)

    monkeypatch.setattr(sampling, "save_image_grid", grid)
    assert main(["sample", str(out), "--n", "6", "--gibbs-steps", "3", "--seed", "2"]) == 0
    assert (out / "samples.png").read_bytes()[:8] == PNG
    assert drawn["images"].shape == (6, 1, 8, 8)
    assert float(drawn["images"].min()) >= 0 and float(drawn["images"].max()) <= 1
    run = sampling.load_grbm_run(out, settings)
    expected = sampling.gibbs_sample(
        run.grbm, 6, steps=3, generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(drawn["images"], expected.clamp(0, 1).reshape(6, 1, 8, 8))


def test_sample_of_a_grbm_run_without_weights_is_one_line(tmp_path, capsys):
    settings = small_grbm()
    (tmp_path / "config.json").write_text(json.dumps(settings.to_dict()))
    assert main(["sample", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "no weights in" in error and "Traceback" not in error

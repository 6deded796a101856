"""Evaluate a finished run by one or more metrics, each beside the value of real test data
(the ceiling).

- ``log-likelihood`` (GRBM runs): the mean test log-likelihood, log Z exact or by AIS as
  in training's evaluation; the ceiling is the data distribution's own mean test
  log-density where it is known (checkerboard, blobs, rings).
- image runs: n samples by annealed Langevin dynamics (``images.sampling``), scored by

  ``fid``               FID against reference statistics (``--stats``, Inception weights);
  ``inception-score``   the Inception Score on the FID network's logits;
  ``classifier-fid``    FID in the Fashion-MNIST classifier's features, against those of
                        the training images;
  ``classifier-score``  the Inception Score formula on the classifier's logits, with
                        the share of the samples in each class;

  the ceiling is the same metric of the first n real test images (all of them when n is
  larger). The classifier metrics are for Fashion-MNIST runs and need the classifier
  cached by ``eblvm classifier``.

Several image metrics asked together score one set of samples, drawn once (the costly
part: minutes on a CPU), and give the values each would give alone with the same seed.
Log-likelihood and the image metrics evaluate different runs, so they are never asked
together. Each metric's record is written to ``RUN_DIR/evaluation-<metric>.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from eblvm.classifier import cached_classifier
from eblvm.families import GRBM, IMAGE_DATASETS
from eblvm.images.data import Images, fetch, image_count, load_images
from eblvm.images.sampling import default_device, inception_features, load_run, samples_of
from eblvm.runs import read_run_settings, write_json
from eblvm.settings import Settings
from eblvm_data import FASHION_MNIST_CLASSES
from eblvm_eval.classifier import (
    Classifier,
    classifier_class_shares,
    classifier_fid,
    classifier_score,
    classifier_statistics,
)
from eblvm_eval.fid import (
    InceptionV3Features,
    feature_statistics,
    frechet_distance,
    load_inception,
    load_stats,
)
from eblvm_eval.inception_score import inception_score

LOG_LIKELIHOOD = "log-likelihood"


class Value(NamedTuple):
    """A metric's value; for the scores, its standard deviation over the chunks; for the
    classifier's score, the share of the images in each Fashion-MNIST class."""

    value: float
    std: float | None = None
    class_shares: dict[str, float] | None = None


Scorer = Callable[[Tensor], Value]


@dataclass
class Options:
    """What the image metrics read besides the run: reference statistics and Inception
    weights (fid, inception-score), the classifier's path (classifier-*), the device.
    Each network is loaded when a metric first asks for it, once for all the metrics."""

    stats: Path | None
    weights: Path | None
    classifier: Path | None
    device: torch.device

    @cached_property
    def inception(self) -> InceptionV3Features:
        return load_inception(self.weights).to(self.device)

    @cached_property
    def classifier_model(self) -> Classifier:
        return cached_classifier(self.classifier).to(self.device)


def _splits(n: int) -> int:
    return min(10, n)


def _fid(settings: Settings, images: Images, options: Options) -> Scorer:
    if options.stats is None:
        raise ValueError("the fid metric needs reference statistics: --stats (from fid-stats)")
    reference = load_stats(options.stats)
    inception = options.inception

    def score(samples: Tensor) -> Value:
        ours = feature_statistics(inception_features(samples, inception))
        return Value(frechet_distance(ours.mu, ours.sigma, reference.mu, reference.sigma))

    return score


def _inception_score(settings: Settings, images: Images, options: Options) -> Scorer:
    inception = options.inception

    def score(samples: Tensor) -> Value:
        result = inception_score(samples, inception, splits=_splits(len(samples)))
        return Value(result.mean, result.std)

    return score


def _classifier(settings: Settings, options: Options) -> Classifier:
    if settings.data.dataset != "fashion_mnist":
        raise ValueError(
            "the classifier metrics score Fashion-MNIST runs (the classifier knows its ten "
            f"classes); this run is on {settings.data.dataset}"
        )
    return options.classifier_model


def _classifier_fid(settings: Settings, images: Images, options: Options) -> Scorer:
    model = _classifier(settings, options)
    if not isinstance(images, Tensor):
        raise TypeError(f"the training images must be a tensor, got {type(images).__name__}")
    reference = classifier_statistics(images, model)

    def score(samples: Tensor) -> Value:
        return Value(classifier_fid(samples, model, reference=reference))

    return score


def _classifier_score(settings: Settings, images: Images, options: Options) -> Scorer:
    model = _classifier(settings, options)

    def score(samples: Tensor) -> Value:
        result = classifier_score(samples, model, splits=_splits(len(samples)))
        shares = classifier_class_shares(samples, model).tolist()
        return Value(result.mean, result.std, dict(zip(FASHION_MNIST_CLASSES, shares, strict=True)))

    return score


# Each image metric: (settings, the training images, options) -> a scorer of images.
IMAGE_METRICS: dict[str, Callable[[Settings, Images, Options], Scorer]] = {
    "fid": _fid,
    "inception-score": _inception_score,
    "classifier-fid": _classifier_fid,
    "classifier-score": _classifier_score,
}
METRICS = (*IMAGE_METRICS, LOG_LIKELIHOOD)


def _first(images: Images, n: int) -> Tensor:
    return fetch(images, torch.arange(min(n, image_count(images))))


def _asked(metrics: str | Sequence[str]) -> tuple[str, ...]:
    """The metrics asked (a name or names), each once, in the order asked. Refuses none,
    an unknown one, and log-likelihood with image metrics (no run has both)."""
    if not isinstance(metrics, (str, Sequence)):
        raise TypeError(
            f"metrics must be a metric's name or a sequence of names, got {type(metrics).__name__}"
        )
    asked = tuple(dict.fromkeys((metrics,) if isinstance(metrics, str) else metrics))
    unknown = [metric for metric in asked if metric not in METRICS]
    if not asked or unknown:
        got = repr(unknown[0]) if unknown else "none"
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {got}")
    if LOG_LIKELIHOOD in asked and len(asked) > 1:
        images = ", ".join(metric for metric in asked if metric != LOG_LIKELIHOOD)
        raise ValueError(
            f"{LOG_LIKELIHOOD} evaluates GRBM runs and {images} image runs: no run has "
            "both, ask for them in separate evaluations"
        )
    return asked


def evaluate_run(
    run_dir: str | os.PathLike[str],
    metrics: str | Sequence[str],
    *,
    n: int = 1000,
    steps: tuple[int, int, int] | None = None,
    step_size: float | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    data_root: str | None = None,
    raw: bool = False,
    stats: str | os.PathLike[str] | None = None,
    weights: str | os.PathLike[str] | None = None,
    classifier: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """The run's ``metrics`` (a name or names of ``METRICS``), each beside the ceiling of
    real test data: one record a metric, in the order asked, each written to
    ``run_dir/evaluation-<metric>.json``.

    Image runs: ``n`` samples of the EMA model (``raw``: the model itself) drawn once
    with ``seed`` and the run's annealing (or ``steps``, ``step_size``), on ``device``,
    and scored by every metric; ``stats`` and ``weights`` as for ``fid_of_run``;
    ``classifier``: the classifier's path (default: the cache of ``eblvm classifier``).
    GRBM runs: the log-likelihood of the weights in best.pt (else checkpoint.pt's moving
    average, or θ with ``raw``), AIS seeded by ``seed``. Every file and setting of every
    metric is checked before sampling starts.
    """
    asked = _asked(metrics)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    folder = Path(os.path.expanduser(str(run_dir)))
    settings = read_run_settings(folder)
    if data_root is not None:
        settings = settings.changed(data={"data_root": data_root})
    if asked == (LOG_LIKELIHOOD,):
        if settings.family is not GRBM:
            raise ValueError(
                f"{folder} holds a {settings.data.dataset} run; log-likelihood evaluates "
                f"GRBM runs (image runs: {', '.join(IMAGE_METRICS)})"
            )
        records = [_grbm_log_likelihood(folder, settings, seed=seed, raw=raw)]
    else:
        if settings.data.dataset not in IMAGE_DATASETS:
            verb = "evaluates" if len(asked) == 1 else "evaluate"
            raise ValueError(
                f"{folder} holds a {settings.data.dataset} run; {', '.join(asked)} {verb} "
                f"image runs (GRBM runs: {LOG_LIKELIHOOD})"
            )
        device = default_device(device)
        options = Options(
            None if stats is None else Path(stats),
            None if weights is None else Path(weights),
            None if classifier is None else Path(classifier),
            device,
        )
        records = _sample_records(
            folder,
            settings,
            asked,
            options,
            n=n,
            steps=steps,
            step_size=step_size,
            seed=seed,
            raw=raw,
        )
    written = []
    for metric, record in zip(asked, records, strict=True):
        record = {"metric": metric, **record}
        write_json(folder / f"evaluation-{metric}.json", record)
        written.append(record)
    return written


def _sample_records(
    folder: Path,
    settings: Settings,
    metrics: tuple[str, ...],
    options: Options,
    *,
    n: int,
    steps: tuple[int, int, int] | None,
    step_size: float | None,
    seed: int,
    raw: bool,
) -> list[dict[str, Any]]:
    """Each image metric of one set of ``n`` samples of the run, and of the first ``n``
    test images; every scorer is made (its files read) before the samples are drawn."""
    train = load_images(settings)
    scorers = [IMAGE_METRICS[metric](settings, train, options) for metric in metrics]
    test = _first(load_images(settings, split="test"), n).to(options.device)
    run = load_run(folder, device=options.device, raw=raw)
    samples = samples_of(
        run.model,
        run.posterior,
        run.settings,
        train,
        n,
        generator=torch.Generator(options.device).manual_seed(seed),
        steps=steps,
        step_size=step_size,
    )
    records = []
    for scorer in scorers:
        ours, real = scorer(samples), scorer(test)
        record: dict[str, Any] = {
            "value": ours.value,
            "std": ours.std,
            "n": n,
            "real_test_value": real.value,
            "real_test_std": real.std,
            "real_test_n": len(test),
            "weights_from": str(run.source),
            "model": "raw" if raw else "ema",
            "iteration": run.iteration,
            "seed": seed,
            "samples_shared_by": list(metrics),
        }
        if ours.class_shares is not None:
            record["class_shares"] = ours.class_shares
            record["real_test_class_shares"] = real.class_shares
        records.append(record)
    return records


def _grbm_log_likelihood(
    folder: Path, settings: Settings, *, seed: int, raw: bool
) -> dict[str, Any]:
    from eblvm.grbm.sampling import load_grbm_run
    from eblvm.grbm.task import data_log_likelihood, estimate_log_partition, mean_log_likelihood

    run = load_grbm_run(folder, settings, raw=raw)
    test = run.task.splits.test
    log_z = estimate_log_partition(run.grbm, settings, seed=seed)
    return {
        "value": mean_log_likelihood(run.grbm, test, log_z.value),
        "log_z": log_z.value,
        "log_z_std_err": log_z.std_err,
        "log_z_method": log_z.method,
        "real_test_value": data_log_likelihood(settings, test),
        "n": len(test),
        "weights_from": str(run.source),
        "iteration": run.iteration,
        "seed": seed,
    }


def describe_evaluation(record: dict[str, Any], run_dir: Path) -> str:
    """One line: the run's value, the real test data's, where the record is."""

    def shown(value: float | None, std: float | None) -> str:
        if value is None:
            return "unknown"
        return f"{value:.4f}" if std is None else f"{value:.4f} ± {std:.4f}"

    metric = record["metric"]
    ours = shown(record["value"], record.get("std"))
    real = shown(record["real_test_value"], record.get("real_test_std"))
    if metric == LOG_LIKELIHOOD:
        what = f"test {metric} {ours} (log Z by {record['log_z_method']})"
        ceiling = f"the data distribution's: {real}"
    else:
        what = f"{metric} {ours} on {record['n']} samples of iteration {record['iteration']}"
        ceiling = f"{record['real_test_n']} real test images: {real}"
        if "class_shares" in record:
            ceiling += f"; {describe_class_shares(record['class_shares'])}"
    return f"{what}; {ceiling}; written to {run_dir / f'evaluation-{metric}.json'}"


def describe_class_shares(shares: dict[str, float], *, most: int = 3) -> str:
    """The classes the samples fall in most, and those they miss: "most drawn: Bag 31 %,
    Pullover 20 %, Coat 12 %; none drawn: Trouser, Sandal"."""
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    drawn = ", ".join(f"{name} {100 * share:.0f} %" for name, share in ranked[:most])
    missed = [name for name, share in shares.items() if share == 0]
    return f"most drawn: {drawn}" + (f"; none drawn: {', '.join(missed)}" if missed else "")

"""The Fashion-MNIST classifier of the classifier metrics: trained once, cached.

``train_cached_classifier`` trains eblvm-eval's ``Classifier`` on Fashion-MNIST's
60,000 training images (train and validation splits, padded to 32×32 as the presets
train on them) and writes it with its SHA-256 beside it; ``cached_classifier`` reads it
back, hash-checked. The default place is ``$XDG_CACHE_HOME/eblvm/fashion-classifier.pt``
(``~/.cache`` when the variable is unset or empty).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

import torch

from eblvm_data import FASHION_MNIST_ROOT, fashion_mnist, fashion_mnist_labels
from eblvm_eval.classifier import (
    Classifier,
    classifier_accuracy,
    load_classifier,
    save_classifier,
    train_classifier,
)

CLASSIFIER_FILE = "fashion-classifier.pt"
TRAIN_COMMAND = "eblvm classifier"


def default_classifier_path() -> Path:
    """``$XDG_CACHE_HOME/eblvm/fashion-classifier.pt``, ``~/.cache/...`` by default."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "eblvm" / CLASSIFIER_FILE


class TrainedClassifier(NamedTuple):
    """Where the classifier was written, its SHA-256, its accuracy on the 10,000 test
    images and the seconds its training took."""

    path: Path
    sha256: str
    test_accuracy: float
    seconds: float


def train_cached_classifier(
    path: str | os.PathLike[str] | None = None,
    *,
    data_root: str | os.PathLike[str] = FASHION_MNIST_ROOT,
    seed: int = 0,
    epochs: int = 3,
) -> TrainedClassifier:
    """Train the classifier on Fashion-MNIST (``data_root``, by default Debian's folder)
    with ``train_classifier``'s defaults and ``seed``, ``epochs``; write it to ``path``
    (default ``default_classifier_path()``) and ``path.sha256``; measure its test
    accuracy. The data are read before training starts: missing files stop it at once."""
    target = default_classifier_path() if path is None else Path(path)
    images, labels = fashion_mnist(data_root, pad_to=32), fashion_mnist_labels(data_root)
    start = time.perf_counter()
    state = train_classifier(
        torch.cat([images.train, images.validation]),
        torch.cat([labels.train, labels.validation]),
        seed=seed,
        epochs=epochs,
    )
    seconds = time.perf_counter() - start
    model = Classifier()
    model.load_state_dict(state)
    model.eval()
    accuracy = classifier_accuracy(model, images.test, labels.test)
    return TrainedClassifier(target, save_classifier(state, target), accuracy, seconds)


def cached_classifier(path: str | os.PathLike[str] | None = None) -> Classifier:
    """The classifier at ``path`` (default ``default_classifier_path()``), hash-checked.
    When there is none, FileNotFoundError names the command that trains it."""
    source = default_classifier_path() if path is None else Path(path)
    if not source.is_file():
        option = "" if path is None else f" --out {source}"
        raise FileNotFoundError(
            f"no Fashion-MNIST classifier at {source}: train it first with "
            f"`{TRAIN_COMMAND}{option}` (a few minutes on one CPU core)"
        )
    return load_classifier(source)

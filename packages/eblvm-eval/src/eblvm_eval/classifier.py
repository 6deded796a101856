"""Sample quality in the features of a small image classifier: FID and a class score.

For MNIST-like data the Inception network is a poor judge (grey 32×32 images resized
to 299×299); the usual practice is a classifier trained on the data set itself. Here
that is ``Classifier``, a small CNN on ``(B, 1, 32, 32)`` images in [0, 1] (Fashion-MNIST
padded to 32×32): three 3×3 convolutions with ReLU and 2×2 max pooling (16, 32, 64
channels), a 128-unit ReLU feature layer and 10 logits.

- ``classifier_fid``: the Fréchet distance (``frechet_distance``) between Gaussians
  fitted to the 128-dim features of two image sets (``feature_statistics``);
- ``classifier_score``: the Inception Score formula (``inception_score_from_logits``) on
  the classifier's 10 logits: 10 at best (confident and balanced), 1 at worst;
- ``classifier_class_shares``: the share of the images put in each class, which shows
  the classes a model's samples miss.

``train_classifier`` is a pure, seeded function of the images and labels; its weights
are saved with ``save_classifier`` beside a ``.sha256`` file, and ``load_classifier``
refuses a file whose hash, keys, shapes or dtypes are not the expected ones before
building the network (``torch.load(weights_only=True)`` only).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from eblvm_eval._common_checks import check_count
from eblvm_eval.fid import FeatureStats, compute_features, feature_statistics, frechet_distance
from eblvm_eval.files import write_atomically
from eblvm_eval.inception_score import InceptionScore, inception_score_from_logits

__all__ = [
    "CLASSIFIER_CLASSES",
    "CLASSIFIER_FEATURE_DIM",
    "CLASSIFIER_IMAGE_SHAPE",
    "Classifier",
    "classifier_accuracy",
    "classifier_class_shares",
    "classifier_fid",
    "classifier_score",
    "classifier_statistics",
    "load_classifier",
    "save_classifier",
    "train_classifier",
]

CLASSIFIER_IMAGE_SHAPE = (1, 32, 32)
CLASSIFIER_FEATURE_DIM = 128
CLASSIFIER_CLASSES = 10
HASH_SUFFIX = ".sha256"


class Classifier(nn.Module):
    """Images ``(B, 1, 32, 32)`` in [0, 1] -> logits ``(B, 10)``; ``features``: ``(B, 128)``.

    No batch norm or dropout: the output does not depend on the mode or on the batch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.hidden = nn.Linear(64 * 4 * 4, CLASSIFIER_FEATURE_DIM)
        self.head = nn.Linear(CLASSIFIER_FEATURE_DIM, CLASSIFIER_CLASSES)

    def features(self, images: Tensor) -> Tensor:
        """``images: (B, 1, 32, 32)`` in [0, 1] -> penultimate features ``(B, 128)``."""
        x = _check_images(images, "images").to(self.head.weight.dtype)
        for conv in (self.conv1, self.conv2, self.conv3):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return F.relu(self.hidden(x.flatten(1)))

    def forward(self, images: Tensor) -> Tensor:
        """``images: (B, 1, 32, 32)`` in [0, 1] -> class logits ``(B, 10)``."""
        return self.head(self.features(images))


def _check_images(images: object, name: str) -> Tensor:
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {images.dtype}")
    if images.dim() != 4 or tuple(images.shape[1:]) != CLASSIFIER_IMAGE_SHAPE:
        raise ValueError(
            f"{name} must have shape (B, 1, 32, 32) (grey images padded to 32×32), "
            f"got {tuple(images.shape)}"
        )
    if images.numel() and not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contains non-finite values")
    return images


def _check_labels(labels: object, count: int) -> Tensor:
    if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"labels must be an int64 tensor, got {got}")
    if tuple(labels.shape) != (count,):
        raise ValueError(
            f"labels must have shape ({count},) like images, got {tuple(labels.shape)}"
        )
    if count and not (0 <= int(labels.min()) and int(labels.max()) < CLASSIFIER_CLASSES):
        raise ValueError(f"labels must lie in 0..{CLASSIFIER_CLASSES - 1}")
    return labels


def _check_rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"lr must be a number in (0, 1), got {value!r}")
    return float(value)


def train_classifier(
    images: Tensor,
    labels: Tensor,
    *,
    seed: int = 0,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 2e-3,
) -> dict[str, Tensor]:
    """Train a ``Classifier`` on ``images: (N, 1, 32, 32)`` in [0, 1] and ``labels: (N,)``
    int64 in 0..9; returns its state dict (CPU tensors).

    Cross-entropy, Adam at ``lr``, ``epochs`` passes in minibatches of ``batch_size``
    (the last one smaller), a fresh permutation per epoch. The initial weights and the
    permutations come from ``seed`` alone (the global random state is left as it was),
    so that the same arguments give the same weights on one machine and thread count.
    """
    images = _check_images(images, "images")
    labels = _check_labels(labels, images.shape[0])
    if images.shape[0] < 1:
        raise ValueError("images holds no images")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    epochs = check_count(epochs, "epochs")
    batch_size = check_count(batch_size, "batch_size")
    lr = _check_rate(lr)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Classifier()
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    data = images.to("cpu", torch.float32)
    targets = labels.cpu()
    for _ in range(epochs):
        for batch in torch.randperm(len(data), generator=generator).split(batch_size):
            loss = F.cross_entropy(model(data[batch]), targets[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


@torch.no_grad()
def classifier_accuracy(
    classifier: Classifier, images: Tensor, labels: Tensor, *, batch_size: int = 500
) -> float:
    """The fraction of ``images: (N, 1, 32, 32)`` whose most likely class is ``labels: (N,)``."""
    images = _check_images(images, "images")
    labels = _check_labels(labels, images.shape[0])
    logits = compute_features(images, _checked(classifier), batch_size=batch_size)
    return float((logits.argmax(dim=1) == labels).double().mean())


def _checked(classifier: object) -> Classifier:
    if not isinstance(classifier, Classifier):
        raise TypeError(f"classifier must be a Classifier, got {type(classifier).__name__}")
    if classifier.training:
        raise ValueError("classifier is in training mode; call classifier.eval() first")
    return classifier


def classifier_statistics(
    images: Tensor | Iterable[Tensor], classifier: Classifier, *, batch_size: int = 500
) -> FeatureStats:
    """Mean and covariance of the classifier's features ``(128,)`` over ``images`` (one
    tensor ``(N, 1, 32, 32)`` or an iterable of batches, N >= 2), in float64."""
    model = _checked(classifier)
    return feature_statistics(compute_features(images, model.features, batch_size=batch_size))


def classifier_fid(
    images: Tensor | Iterable[Tensor],
    classifier: Classifier,
    *,
    reference: FeatureStats,
    batch_size: int = 500,
) -> float:
    """The Fréchet distance between the classifier's feature statistics of ``images`` and
    ``reference`` (e.g. ``classifier_statistics`` of the real training images)."""
    if not isinstance(reference, FeatureStats):
        raise TypeError(f"reference must be a FeatureStats, got {type(reference).__name__}")
    ours = classifier_statistics(images, classifier, batch_size=batch_size)
    return frechet_distance(ours.mu, ours.sigma, reference.mu, reference.sigma)


def classifier_score(
    images: Tensor | Iterable[Tensor],
    classifier: Classifier,
    *,
    splits: int = 10,
    batch_size: int = 500,
) -> InceptionScore:
    """The Inception Score formula on the classifier's 10 logits of ``images``, in
    ``splits`` contiguous chunks: from 1 (no class told apart) to 10."""
    model = _checked(classifier)
    logits = compute_features(images, model, batch_size=batch_size)
    return inception_score_from_logits(logits, splits=splits)


def classifier_class_shares(
    images: Tensor | Iterable[Tensor], classifier: Classifier, *, batch_size: int = 500
) -> Tensor:
    """The share of ``images`` in each class, by the classifier's most likely class:
    ``(10,)`` float64 summing to 1 (a balanced set of the ten classes: about 0.1 each)."""
    model = _checked(classifier)
    logits = compute_features(images, model, batch_size=batch_size)
    counts = torch.bincount(logits.argmax(dim=1).cpu(), minlength=CLASSIFIER_CLASSES)
    return counts.double() / counts.sum()


# --------------------------------------------------------------------------- weights


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hash_path(path: Path) -> Path:
    return path.with_name(path.name + HASH_SUFFIX)


def _check_path(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _check_state(state: object, where: str) -> dict[str, Tensor]:
    """``state`` if it has exactly the Classifier's keys, shapes and dtypes."""
    expected = Classifier().state_dict()
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{where} is not a state dict of tensors")
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        raise ValueError(
            f"{where} does not hold the Classifier's weights "
            f"(missing {missing}, unexpected {extra})"
        )
    for name, value in expected.items():
        got = state[name]
        if got.shape != value.shape or got.dtype != value.dtype:
            raise ValueError(
                f"{where}: {name} has shape {tuple(got.shape)} and dtype {got.dtype}, "
                f"expected {tuple(value.shape)} and {value.dtype}"
            )
    return dict(state)


def save_classifier(state: Mapping[str, Tensor], path: str | os.PathLike[str]) -> str:
    """Write a ``Classifier`` state dict to ``path`` and its SHA-256 to ``path.sha256``
    (``sha256sum`` format), each atomically; missing folders are created. Returns the
    hash (64 hex digits)."""
    target = _check_path(path)
    checked = {name: value.detach().cpu() for name, value in _check_state(state, "state").items()}
    write_atomically(target, lambda file: torch.save(checked, file))
    digest = _sha256(target)

    def write_hash(file: BinaryIO) -> None:
        file.write(f"{digest}  {target.name}\n".encode())

    write_atomically(_hash_path(target), write_hash)
    return digest


def load_classifier(
    path: str | os.PathLike[str], *, expected_sha256: str | None = None
) -> Classifier:
    """The ``Classifier`` saved at ``path``, in eval mode, without gradients, on the CPU.

    The file's SHA-256 must be ``expected_sha256``, by default the one in ``path.sha256``
    written by ``save_classifier``; a missing file raises ``FileNotFoundError``, a hash
    mismatch ``ValueError`` before anything is read. The file is then read with
    ``torch.load(weights_only=True)`` and must hold exactly the network's tensors with
    their shapes and dtypes (else ``ValueError``).
    """
    source = _check_path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no classifier weights at {str(source)!r}")
    if expected_sha256 is None:
        hash_file = _hash_path(source)
        if not hash_file.is_file():
            raise FileNotFoundError(
                f"no hash file {str(hash_file)!r} beside the classifier weights {str(source)!r}"
            )
        words = hash_file.read_text().split()
        expected_sha256 = words[0] if words else ""
    if not isinstance(expected_sha256, str) or not re.fullmatch(
        r"[0-9a-fA-F]{64}", expected_sha256
    ):
        raise ValueError(f"expected_sha256 must be 64 hexadecimal digits, got {expected_sha256!r}")
    actual = _sha256(source)
    if actual != expected_sha256.lower():
        raise ValueError(
            f"classifier weights {str(source)!r} have SHA-256 {actual}, expected "
            f"{expected_sha256.lower()}: the file was changed or damaged (train it again)"
        )
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception:  # torch's reasons are its internals (and advise unsafe loading)
        raise ValueError(
            f"classifier weights {str(source)!r} are damaged or not a state dict of tensors: "
            "they cannot be read safely (weights only)"
        ) from None
    model = Classifier()
    model.load_state_dict(_check_state(state, f"classifier weights {str(source)!r}"))
    model.eval()
    model.requires_grad_(False)
    return model

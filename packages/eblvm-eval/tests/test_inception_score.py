"""Inception Score: hand-computed values on small logits, and the FID network's logits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from eblvm_eval import (
    InceptionScore,
    InceptionV3Features,
    inception_score,
    inception_score_from_logits,
)


def confident(classes: list[int], width: int, margin: float = 80.0) -> Tensor:
    """Logits (N, width) certain of one class per row to within exp(-margin)."""
    logits = torch.zeros(len(classes), width, dtype=torch.float64)
    logits[torch.arange(len(classes)), torch.tensor(classes)] = margin
    return logits


@pytest.mark.parametrize("splits", [1, 2, 3, 6])
def test_uniform_predictions_score_one(splits: int) -> None:
    score = inception_score_from_logits(torch.full((6, 1008), 3.5), splits=splits)
    assert isinstance(score, InceptionScore)
    assert score.mean == pytest.approx(1.0, abs=1e-12) and score.std == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize(("k", "per_class", "splits"), [(2, 3, 1), (4, 2, 2), (10, 5, 5)])
def test_confident_predictions_over_k_equally_used_classes_score_k(
    k: int, per_class: int, splits: int
) -> None:
    # Each chunk of rows holds every class equally often: classes cycle 0, 1, .., k-1.
    classes = [i % k for i in range(k * per_class * splits)]
    score = inception_score_from_logits(confident(classes, 1008), splits=splits)
    assert score.mean == pytest.approx(k, rel=1e-12) and score.std == pytest.approx(0, abs=1e-9)


def test_two_classes_by_hand() -> None:
    # p(y|x) = (1/4, 3/4) and (3/4, 1/4); p(y) = (1/2, 1/2);
    # KL = 1/4 log(1/2) + 3/4 log(3/2) = (3/4) log 3 - log 2 for both, so IS = 3^(3/4) / 2.
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]], dtype=torch.float64)
    score = inception_score_from_logits(logits, splits=1)
    assert score.mean == pytest.approx(3**0.75 / 2, rel=1e-12) and score.std == 0.0


def test_finite_confidence_by_hand() -> None:
    # K = 5 classes, each row's own class at logit c, the others at 0; the rows use
    # k = 2 classes equally. a = e^c / (e^c + 4), b = 1 / (e^c + 4); p(y) is
    # (a + b) / 2 on the two used classes and b on the other three.
    c = 1.5
    a, b = math.exp(c) / (math.exp(c) + 4), 1 / (math.exp(c) + 4)
    used = (a + b) / 2
    kl = a * math.log(a / used) + b * math.log(b / used)
    logits = confident([0, 1, 0, 1], 5, margin=c)
    score = inception_score_from_logits(logits, splits=1)
    assert score.mean == pytest.approx(math.exp(kl), rel=1e-12)


def test_chunks_are_contiguous_and_the_std_divides_by_the_chunk_count() -> None:
    # N = 5, S = 2: rows 0..1 and 2..4. Rows 0, 1 are two different classes (IS 2), rows
    # 2..4 one class (IS 1): mean 1.5, std 0.5. Chunks of every other row would give
    # different values.
    logits = confident([0, 1, 0, 0, 0], 10)
    score = inception_score_from_logits(logits, splits=2)
    assert score.mean == pytest.approx(1.5, rel=1e-12)
    assert score.std == pytest.approx(0.5, rel=1e-12)


def test_row_shifts_and_numpy_input_change_nothing() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 7, generator=generator, dtype=torch.float64) * 3
    shifted = logits + torch.randn(40, 1, generator=generator, dtype=torch.float64) * 100
    reference = inception_score_from_logits(logits, splits=4)
    for other, rel in ((shifted, 1e-10), (logits.numpy(), 0), (logits.float(), 1e-5)):
        score = inception_score_from_logits(other, splits=4)
        assert tuple(score) == pytest.approx(tuple(reference), rel=rel)
    assert 1.0 <= reference.mean <= 7.0


def test_a_class_no_row_expects_does_not_give_nan() -> None:
    # Probabilities of 1e-400 underflow to zero; p(y) is formed in log space.
    score = inception_score_from_logits(confident([0, 1], 3, margin=1000.0), splits=1)
    assert score.mean == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize(
    ("logits", "splits", "error", "message"),
    [
        (torch.zeros(4, 3), 5, ValueError, "splits must be an integer from 1 to the 4 rows"),
        (torch.zeros(4, 3), 0, ValueError, "splits must be an integer from 1"),
        (torch.zeros(4, 3), True, ValueError, "splits must be an integer"),
        (torch.zeros(4, 3), 2.0, ValueError, "splits must be an integer"),
        (torch.tensor([[0.0, float("nan")]]), 1, ValueError, "logits contains non-finite"),
        (torch.tensor([[0.0, float("inf")]]), 1, ValueError, "logits contains non-finite"),
        (torch.zeros(3), 1, ValueError, r"logits must have shape \(N, K\)"),
        (torch.zeros(2, 3, 4), 1, ValueError, r"logits must have shape \(N, K\)"),
        (torch.zeros(0, 3), 1, ValueError, r"logits must have shape \(N, K\)"),
        ([[0.0, 1.0]], 1, TypeError, "logits must be a numpy array or torch.Tensor"),
        (torch.zeros(2, 2, dtype=torch.bool), 1, TypeError, "logits must hold real numbers"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(
    logits: object, splits: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        inception_score_from_logits(logits, splits=splits)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def random_inception() -> InceptionV3Features:
    """The FID network at PyTorch's default initialisation, its batch norms set to the
    statistics of a few random images (so that features differ between images, instead of
    vanishing with depth), and a large classifier bias."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = InceptionV3Features()
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 1.0
        with torch.no_grad():
            network(torch.rand(4, 3, 16, 16))
        torch.nn.init.normal_(network.fc.weight, std=0.5)
        torch.nn.init.normal_(network.fc.bias, std=5.0)
    return network.double().eval().requires_grad_(False)


def test_the_network_scores_its_logits_without_the_classifiers_bias(
    random_inception: InceptionV3Features,
) -> None:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(3, 1, 16, 16, generator=generator, dtype=torch.float64)
    features = random_inception(images)
    logits = features @ random_inception.fc.weight.T
    expected = inception_score_from_logits(logits, splits=1)
    assert expected.mean > 1.1, "the test needs logits that differ between images"
    batches = [images[:2], images[2:]]
    score = inception_score(batches, random_inception, splits=1, batch_size=1)
    assert score.mean == pytest.approx(expected.mean, rel=1e-10), (score, expected)
    assert score.std == 0.0
    biased = inception_score_from_logits(random_inception.fc(features), splits=1)
    assert biased.mean != pytest.approx(expected.mean, rel=1e-3)


def test_the_network_must_be_the_fid_inception_in_eval_mode(
    random_inception: InceptionV3Features,
) -> None:
    images = torch.rand(2, 3, 16, 16)
    with pytest.raises(TypeError, match="inception must be an InceptionV3Features"):
        inception_score(images, torch.nn.Identity(), splits=1)  # type: ignore[arg-type]
    random_inception.train()
    try:
        with pytest.raises(ValueError, match=r"call inception\.eval"):
            inception_score(images, random_inception, splits=1)
    finally:
        random_inception.eval()
    with pytest.raises(ValueError, match="splits must be an integer from 1 to the 2 rows"):
        inception_score(images, random_inception, splits=3)
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
        inception_score(images + 2, random_inception, splits=1)

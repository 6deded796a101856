"""The Fashion-MNIST classifier: shapes, seeded training, hash-checked weights, and
its FID and score as the existing FID and Inception Score maths on its outputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch import Tensor

from eblvm_eval import (
    Classifier,
    classifier_accuracy,
    classifier_class_shares,
    classifier_fid,
    classifier_score,
    classifier_statistics,
    feature_statistics,
    frechet_distance,
    inception_score_from_logits,
    load_classifier,
    save_classifier,
    train_classifier,
)


def patterns(per_class: int, *, seed: int) -> tuple[Tensor, Tensor]:
    """Ten easily told apart classes: class k lights an 8×8 square at its own place
    (k // 5, k % 5 on a grid of 6-pixel steps), over faint noise. Classes cycle 0..9."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(10 * per_class) % 10
    images = 0.1 * torch.rand(len(labels), 1, 32, 32, generator=generator)
    for i, k in enumerate(labels.tolist()):
        row, column = 4 + 12 * (k // 5), 1 + 6 * (k % 5)
        images[i, 0, row : row + 8, column : column + 8] = 1.0
    return images, labels


@pytest.fixture(scope="module")
def trained() -> Classifier:
    images, labels = patterns(20, seed=0)
    model = Classifier()
    model.load_state_dict(train_classifier(images, labels, seed=0, epochs=15, batch_size=20))
    return model.eval()


def test_logits_and_features_have_the_documented_shapes() -> None:
    model = Classifier()
    images = torch.rand(5, 1, 32, 32)
    assert model(images).shape == (5, 10)
    assert model.features(images).shape == (5, 128)
    assert bool((model.features(images) >= 0).all())  # after a ReLU
    with pytest.raises(ValueError, match=r"\(B, 1, 32, 32\)"):
        model(torch.rand(5, 1, 28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(5, 1, 32, 32, dtype=torch.uint8))


def test_the_same_seed_gives_the_same_weights_and_leaves_the_global_state() -> None:
    images, labels = patterns(2, seed=1)
    before = torch.random.get_rng_state()
    first = train_classifier(images, labels, seed=3, epochs=2, batch_size=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    second = train_classifier(images, labels, seed=3, epochs=2, batch_size=7)
    other = train_classifier(images, labels, seed=4, epochs=2, batch_size=7)
    assert first.keys() == Classifier().state_dict().keys()
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)
    untrained = Classifier().state_dict()
    assert not torch.equal(first["head.weight"], untrained["head.weight"])


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (torch.zeros(20, dtype=torch.int32), TypeError, "int64"),
        (torch.zeros(19, dtype=torch.int64), ValueError, r"shape \(20,\)"),
        (torch.full((20,), 10), ValueError, "0..9"),
    ],
)
def test_bad_labels_are_refused(labels: Tensor, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        train_classifier(torch.rand(20, 1, 32, 32), labels)


def test_it_learns_separable_classes_and_confident_balanced_predictions_score_ten(
    trained: Classifier,
) -> None:
    images, labels = patterns(10, seed=5)  # new noise
    assert classifier_accuracy(trained, images, labels) == 1.0
    score = classifier_score(images, trained, splits=2)
    assert score.mean == pytest.approx(10.0, rel=0.02)
    one_class = images[labels == 3]
    assert classifier_score(one_class, trained, splits=1).mean == pytest.approx(1.0, abs=0.02)


def test_class_shares_count_each_class_the_classifier_sees(trained: Classifier) -> None:
    images, labels = patterns(10, seed=9)
    balanced = classifier_class_shares(images, trained, batch_size=7)
    assert balanced.dtype == torch.float64
    assert torch.equal(balanced, torch.full((10,), 0.1, dtype=torch.float64))
    # 3 of class 2, 1 of class 7: the shares a model that misses eight classes gets
    picked = torch.cat([images[labels == 2][:3], images[labels == 7][:1]])
    shares = classifier_class_shares(picked, trained)
    expected = torch.zeros(10, dtype=torch.float64)
    expected[2], expected[7] = 0.75, 0.25
    assert torch.equal(shares, expected)


def test_the_score_is_the_inception_score_formula_on_the_logits(trained: Classifier) -> None:
    images, _ = patterns(3, seed=6)
    expected = inception_score_from_logits(trained(images).double(), splits=3)
    got = classifier_score(images, trained, splits=3, batch_size=7)
    assert got.mean == pytest.approx(expected.mean, rel=1e-6)
    assert got.std == pytest.approx(expected.std, rel=1e-6, abs=1e-9)


def test_the_fid_is_the_frechet_distance_of_the_features(trained: Classifier) -> None:
    images, _ = patterns(20, seed=7)
    other = images + 0.3 * torch.rand(images.shape, generator=torch.Generator().manual_seed(8))
    other = other.clamp(0, 1)
    reference = classifier_statistics(images, trained)
    # Zero up to the rounding of the matrix square root of a singular covariance.
    assert classifier_fid(images, trained, reference=reference) == pytest.approx(0.0, abs=1e-3)
    ours = feature_statistics(trained.features(other).double())
    expected = frechet_distance(ours.mu, ours.sigma, reference.mu, reference.sigma)
    got = classifier_fid(other, trained, reference=reference, batch_size=13)
    assert got == pytest.approx(expected, rel=1e-6) and got > 1e-3


def test_a_module_in_training_mode_is_refused(trained: Classifier) -> None:
    with pytest.raises(ValueError, match="training mode"):
        classifier_score(torch.rand(4, 1, 32, 32), Classifier(), splits=1)
    with pytest.raises(TypeError, match="Classifier"):
        classifier_statistics(torch.rand(4, 1, 32, 32), torch.nn.Identity())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- files


def test_saved_weights_load_back_with_their_hash_beside_them(
    trained: Classifier, tmp_path: Path
) -> None:
    path = tmp_path / "cache" / "classifier.pt"
    digest = save_classifier(trained.state_dict(), path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / "cache" / "classifier.pt.sha256").read_text() == f"{digest}  classifier.pt\n"
    loaded = load_classifier(path)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    images = torch.rand(3, 1, 32, 32)
    assert torch.equal(loaded(images), trained(images))
    assert torch.equal(
        load_classifier(path, expected_sha256=digest.upper())(images), trained(images)
    )


def test_a_changed_file_is_refused_before_it_is_read(trained: Classifier, tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt"
    save_classifier(trained.state_dict(), path)
    other = {name: value + 1 for name, value in trained.state_dict().items()}
    torch.save(other, path)  # new weights, old hash
    with pytest.raises(ValueError, match=r"SHA-256 \w+, expected"):
        load_classifier(path)
    data = bytearray(path.read_bytes())
    data[-20] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="changed or damaged"):
        load_classifier(path)


def _save_with_hash(value: object, path: Path) -> None:
    torch.save(value, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: {**s, "head.weight": s["head.weight"][:, :64]},
            r"head.weight has shape \(10, 64\)",
        ),
        (lambda s: {**s, "head.bias": s["head.bias"].double()}, "dtype torch.float64"),
        (lambda s: {k: v for k, v in s.items() if k != "conv1.bias"}, r"missing \['conv1.bias'\]"),
        (lambda s: {**s, "extra": torch.zeros(1)}, r"unexpected \['extra'\]"),
        (lambda s: [1, 2], "not a state dict of tensors"),
    ],
    ids=["shape", "dtype", "missing", "extra", "not-a-dict"],
)
def test_a_file_with_the_right_hash_but_other_tensors_is_refused(
    trained: Classifier, tmp_path: Path, edit, message: str
) -> None:
    path = tmp_path / "classifier.pt"
    _save_with_hash(edit(trained.state_dict()), path)
    with pytest.raises(ValueError, match=message):
        load_classifier(path)


class Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_a_pickle_of_other_objects_is_not_unpickled(tmp_path: Path, capsys) -> None:
    path = tmp_path / "classifier.pt"
    _save_with_hash({"conv1.weight": Payload()}, path)
    with pytest.raises(ValueError, match="cannot be read safely") as refused:
        load_classifier(path)
    assert "unpickled!" not in capsys.readouterr().out
    assert "weights_only" not in str(refused.value)  # never relays torch's unsafe advice


def test_missing_files_and_bad_hashes_are_named(trained: Classifier, tmp_path: Path) -> None:
    path = tmp_path / "classifier.pt"
    with pytest.raises(FileNotFoundError, match="no classifier weights"):
        load_classifier(path)
    torch.save(trained.state_dict(), path)
    with pytest.raises(FileNotFoundError, match=r"classifier\.pt\.sha256"):
        load_classifier(path)
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        load_classifier(path, expected_sha256="abc")
    with pytest.raises(ValueError, match="missing"):
        save_classifier({"head.weight": torch.zeros(10, 128)}, path)

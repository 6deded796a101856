"""The Fashion-MNIST classifier of eblvm-eval learns the real data set (read by
eblvm-data from Debian's files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eblvm_data import FASHION_MNIST_ROOT, fashion_mnist, fashion_mnist_labels
from eblvm_eval import Classifier, classifier_accuracy, classifier_score, train_classifier

DEBIAN = Path(FASHION_MNIST_ROOT)


@pytest.mark.skipif(
    not (DEBIAN / "train-labels-idx1-ubyte.gz").is_file(),
    reason=f"Debian's dataset-fashion-mnist is not installed in {FASHION_MNIST_ROOT}",
)
def test_a_short_training_on_fashion_mnist_tells_most_test_images_apart() -> None:
    images, labels = fashion_mnist(), fashion_mnist_labels()
    state = train_classifier(
        images.train[:5000], labels.train[:5000], epochs=1, batch_size=32, lr=3e-3
    )
    model = Classifier()
    model.load_state_dict(state)
    model.eval()
    test, test_labels = images.test[:2000], labels.test[:2000]
    assert classifier_accuracy(model, test, test_labels) > 0.7
    # Real test images use the classes evenly and, already, fairly confidently.
    assert classifier_score(test, model, splits=2).mean > 3.0

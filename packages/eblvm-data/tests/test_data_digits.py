"""scikit-learn's 8×8 digits with a fixed split."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

from eblvm_data import DIGITS_SEED, digits


@pytest.fixture(scope="module")
def reference() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's flat data and images, both /16, in the documented order."""
    bunch = load_digits()
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(DIGITS_SEED))
    flat = torch.from_numpy(bunch.data).double()[order] / 16
    images = torch.from_numpy(bunch.images).double()[order] / 16
    return flat, images


def test_sizes_dtype_and_range() -> None:
    splits = digits()
    assert [tuple(split.shape) for split in splits] == [(1437, 64), (180, 64), (180, 64)]
    for split in splits:
        assert split.dtype == torch.float32
        assert split.min().item() >= 0 and split.max().item() <= 1
        assert torch.equal(split * 16, (split * 16).round())


def test_splits_partition_the_documented_permutation(reference) -> None:
    flat, _ = reference
    splits = digits()
    torch.testing.assert_close(torch.cat(list(splits)).double(), flat, rtol=0, atol=1e-7)


def test_splits_repeat() -> None:
    for a, b in zip(digits(), digits(), strict=True):
        assert torch.equal(a, b)


def test_image_layout_matches_sklearn_images(reference) -> None:
    _, images = reference
    splits = digits(image=True)
    assert [tuple(split.shape) for split in splits] == [
        (1437, 1, 8, 8),
        (180, 1, 8, 8),
        (180, 1, 8, 8),
    ]
    joined = torch.cat(list(splits)).double()
    torch.testing.assert_close(joined[:, 0], images, rtol=0, atol=1e-7)


def test_padding_is_centred() -> None:
    small, padded = digits(image=True).test, digits(image=True, pad_to=32).test
    assert padded.shape == (180, 1, 32, 32)
    assert torch.equal(padded[:, :, 12:20, 12:20], small)
    border = padded.clone()
    border[:, :, 12:20, 12:20] = 0
    assert border.abs().sum().item() == 0


def test_odd_padding_puts_the_extra_row_and_column_last() -> None:
    small, padded = digits(image=True).validation, digits(image=True, pad_to=9).validation
    assert torch.equal(padded[:, :, :8, :8], small)
    assert padded[:, :, 8, :].abs().sum().item() == 0
    assert padded[:, :, :, 8].abs().sum().item() == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"pad_to": 32}, ValueError, "pad_to"),
        ({"image": True, "pad_to": 7}, ValueError, "pad_to"),
        ({"image": True, "pad_to": 32.0}, TypeError, "pad_to"),
        ({"image": 1}, TypeError, "image"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        digits(**kwargs)

"""CelebA from a few small JPEGs and a partition file in the published layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from eblvm_data import CelebAImages, celeba

# 48 wide, 64 high; crop 32 starts at (8, 16). Inside the crop the left half
# is colour A, the right half colour B; outside it is green. Every edge lies on
# the 8×8 JPEG block grid, so the lossless-quality JPEG keeps the colours.
WIDTH, HEIGHT, CROP = 48, 64, 32
GREEN = (0, 255, 0)
PARTITIONS = [0, 1, 0, 2, 1, 0]
TOLERANCE = 4 / 255


def colours(index: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    a = (40 + 20 * index, 30 + 10 * index, 200 - 15 * index)
    b = (220 - 25 * index, 120 + 5 * index, 60 + 20 * index)
    return a, b


def write_image(path: Path, index: int) -> None:
    a, b = colours(index)
    pixels = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[:] = GREEN
    pixels[16:48, 8:24] = a
    pixels[16:48, 24:40] = b
    Image.fromarray(pixels).save(path, quality=100, subsampling=0)


def make_celeba(root: Path) -> None:
    folder = root / "img_align_celeba"
    folder.mkdir()
    lines = []
    for index, partition in enumerate(PARTITIONS):
        name = f"{index + 1:06d}.jpg"
        write_image(folder / name, index)
        lines.append(f"{name} {partition}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def as_tensor(colour: tuple[int, int, int]) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255


def test_partition_file_decides_the_splits_in_file_order(tmp_path: Path) -> None:
    make_celeba(tmp_path)
    splits = celeba(tmp_path, size=8, crop=CROP)
    assert [len(split) for split in splits] == [3, 2, 1]
    expected = {0: [0, 2, 5], 1: [1, 4], 2: [3]}
    for partition, split in enumerate(splits):
        assert isinstance(split, CelebAImages)
        for position, index in enumerate(expected[partition]):
            a, _ = colours(index)
            torch.testing.assert_close(
                split[position][:, :, 0:1],
                as_tensor(a).expand(3, 8, 1),
                rtol=0,
                atol=TOLERANCE,
            )


def test_centre_crop_then_resize(tmp_path: Path) -> None:
    make_celeba(tmp_path)
    item = celeba(tmp_path, size=8, crop=CROP).train[1]  # image index 2
    a, b = colours(2)
    assert item.shape == (3, 8, 8) and item.dtype == torch.float32
    # Columns 0..2 and 5..7 draw only on one half of the crop (bilinear support 4).
    torch.testing.assert_close(item[:, :, :3], as_tensor(a).expand(3, 8, 3), rtol=0, atol=TOLERANCE)
    torch.testing.assert_close(item[:, :, 5:], as_tensor(b).expand(3, 8, 3), rtol=0, atol=TOLERANCE)
    # Nothing from outside the crop: every value lies between A and B.
    low = torch.minimum(as_tensor(a), as_tensor(b)) - TOLERANCE
    high = torch.maximum(as_tensor(a), as_tensor(b)) + TOLERANCE
    assert bool(((item >= low) & (item <= high)).all())


def test_crop_without_resize_keeps_the_pixels(tmp_path: Path) -> None:
    make_celeba(tmp_path)
    item = celeba(tmp_path, size=CROP, crop=CROP).test[0]  # image index 3
    a, b = colours(3)
    assert item.shape == (3, CROP, CROP)
    half = CROP // 2
    torch.testing.assert_close(
        item[:, :, :half], as_tensor(a).expand(3, CROP, half), rtol=0, atol=TOLERANCE
    )
    torch.testing.assert_close(
        item[:, :, half:], as_tensor(b).expand(3, CROP, half), rtol=0, atol=TOLERANCE
    )


def test_greyscale_images_become_rgb(tmp_path: Path) -> None:
    path = tmp_path / "grey.jpg"
    Image.new("L", (WIDTH, HEIGHT), color=100).save(path, quality=100)
    item = CelebAImages([path], size=4, crop=CROP)[0]
    assert item.shape == (3, 4, 4)
    torch.testing.assert_close(item, torch.full((3, 4, 4), 100 / 255), rtol=0, atol=TOLERANCE)


def test_batches_through_a_data_loader(tmp_path: Path) -> None:
    make_celeba(tmp_path)
    batch = next(iter(DataLoader(celeba(tmp_path, size=8, crop=CROP).train, batch_size=2)))
    assert batch.shape == (2, 3, 8, 8)


def test_missing_folder_and_partition_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        celeba(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "img_align_celeba") in message
    assert str(tmp_path / "list_eval_partition.txt") in message
    assert "CelebA" in message and "Align&Cropped Images" in message


def test_missing_partition_file_alone_is_named(tmp_path: Path) -> None:
    make_celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError) as info:
        celeba(tmp_path)
    assert str(tmp_path / "list_eval_partition.txt") in str(info.value)
    assert str(tmp_path / "img_align_celeba") not in str(info.value)


def test_missing_image_is_named_on_access(tmp_path: Path) -> None:
    make_celeba(tmp_path)
    missing = tmp_path / "img_align_celeba" / "000004.jpg"
    missing.unlink()
    splits = celeba(tmp_path, size=8, crop=CROP)
    with pytest.raises(FileNotFoundError) as info:
        splits.test[0]
    assert str(missing) in str(info.value)


def test_malformed_partition_line_is_named(tmp_path: Path) -> None:
    make_celeba(tmp_path)
    path = tmp_path / "list_eval_partition.txt"
    path.write_text("000001.jpg 0\n000002.jpg 3\n")
    with pytest.raises(ValueError, match="line 2") as info:
        celeba(tmp_path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["../secret.jpg", "sub/../../secret.jpg", "/etc/passwd"])
def test_partition_names_leading_out_of_the_image_folder_are_refused(
    tmp_path: Path, name: str
) -> None:
    make_celeba(tmp_path)
    write_image(tmp_path / "secret.jpg", 0)
    path = tmp_path / "list_eval_partition.txt"
    path.write_text(f"000001.jpg 0\n{name} 1\n")
    with pytest.raises(ValueError, match="line 2") as info:
        celeba(tmp_path)
    assert str(path) in str(info.value)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "not an image", "empty"])
def test_a_damaged_image_is_a_value_error_naming_it(tmp_path: Path, damage: str) -> None:
    make_celeba(tmp_path)
    image = tmp_path / "img_align_celeba" / "000004.jpg"
    whole = image.read_bytes()
    image.write_bytes(
        {"truncated": whole[: len(whole) // 2], "not an image": b"plain text", "empty": b""}[damage]
    )
    splits = celeba(tmp_path, size=8, crop=CROP)
    with pytest.raises(ValueError, match="not a readable image") as info:
        splits.test[0]
    assert str(image) in str(info.value)


def test_crop_larger_than_the_image_is_refused(tmp_path: Path) -> None:
    make_celeba(tmp_path)
    splits = celeba(tmp_path, size=8, crop=WIDTH + 1)
    with pytest.raises(ValueError, match="crop"):
        splits.train[0]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"size": 0}, ValueError, "size"),
        ({"crop": 0}, ValueError, "crop"),
        ({"size": 8.0}, TypeError, "size"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict, error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        celeba(tmp_path, **kwargs)

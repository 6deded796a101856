"""CelebA (aligned and cropped faces), loaded lazily image by image."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePath

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from eblvm_data._checks import check_root
from eblvm_data._common_checks import check_int
from eblvm_data.splits import Splits

CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CELEBA_IMAGE_FOLDER = "img_align_celeba"
CELEBA_PARTITION_FILE = "list_eval_partition.txt"


class CelebAImages(Dataset[Tensor]):
    """Images read on access: RGB, centre crop ``crop × crop``, resize to ``size × size``.

    Item ``i`` is float32 ``(3, size, size)`` in ``[0, 1]``. The crop's top-left
    corner is ``((W - crop) // 2, (H - crop) // 2)``; the resize is bilinear
    with antialiasing (PIL).
    """

    def __init__(self, paths: Sequence[Path], *, size: int = 64, crop: int = 140) -> None:
        self.paths = list(paths)
        self.size = check_int(size, "size", minimum=1)
        self.crop = check_int(crop, "crop", minimum=1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        path = self.paths[index]
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except FileNotFoundError:
            raise
        # PIL reports a damaged or non-image file as OSError, SyntaxError or ValueError.
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise ValueError(f"{path} is not a readable image: {error}") from error
        width, height = image.size
        if width < self.crop or height < self.crop:
            raise ValueError(f"{path} is {width}×{height}, smaller than crop={self.crop}")
        left, top = (width - self.crop) // 2, (height - self.crop) // 2
        image = image.crop((left, top, left + self.crop, top + self.crop))
        image = image.resize((self.size, self.size), resample=Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.array(image, dtype=np.float32))
        return pixels.div_(255).permute(2, 0, 1).contiguous()


def celeba(root: str | os.PathLike[str], *, size: int = 64, crop: int = 140) -> Splits:
    """CelebA's official split from ``<root>/list_eval_partition.txt``.

    Images are ``<root>/img_align_celeba/<name>.jpg``; each line of the
    partition file reads ``000001.jpg 0`` with 0, 1, 2 = train, validation,
    test. Returns `Splits` of `CelebAImages`, in file order.
    """
    directory = check_root(root)
    size = check_int(size, "size", minimum=1)
    crop = check_int(crop, "crop", minimum=1)
    images = directory / CELEBA_IMAGE_FOLDER
    partition = directory / CELEBA_PARTITION_FILE
    missing = [f"folder {images}"] if not images.is_dir() else []
    missing += [f"file {partition}"] if not partition.is_file() else []
    if missing:
        raise FileNotFoundError(
            "CelebA not found: no " + " and no ".join(missing) + ". From the official CelebA "
            f"page ({CELEBA_URL}), 'Align&Cropped Images', extract img_align_celeba.zip "
            f"into {directory} and put Eval/{CELEBA_PARTITION_FILE} beside it."
        )
    paths: tuple[list[Path], list[Path], list[Path]] = ([], [], [])
    lines = partition.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(
                f"{partition}, line {number}: expected '<image name> <0|1|2>', got {line!r}"
            )
        name = PurePath(fields[0])
        if name.is_absolute() or ".." in name.parts:
            raise ValueError(
                f"{partition}, line {number}: image name {fields[0]!r} leads out of {images}"
            )
        paths[int(fields[1])].append(images / name)
    return Splits(*(CelebAImages(split, size=size, crop=crop) for split in paths))

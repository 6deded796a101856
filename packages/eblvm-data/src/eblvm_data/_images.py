"""Image helpers shared by the loaders."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def pad_centre(images: Tensor, size: int) -> Tensor:
    """Zero-pad ``images: (N, C, H, W)`` to ``(N, C, size, size)``, centred.

    When ``size - H`` (or ``size - W``) is odd, the extra row (column) goes at
    the bottom (right). Requires ``size >= max(H, W)``.
    """
    height, width = images.shape[-2:]
    top = (size - height) // 2
    left = (size - width) // 2
    return F.pad(images, (left, size - width - left, top, size - height - top))

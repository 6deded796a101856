"""The InceptionV3 network of the standard FID, in plain torch.

This is the TensorFlow "inception-2015-12-05" graph as ported to PyTorch for FID
("pt_inception-2015-12-05-6726825d.pth"): torchvision's Inception3 layout with a
1008-way classifier, no auxiliary head, and three differences in the pooling branches:

- the 3×3 average pools inside the A, C and first E blocks leave the zero padding out
  of the average (``count_include_pad=False``), as TensorFlow does;
- the last E block (``Mixed_7c``) pools its fourth branch with a 3×3 max pool.

Module and parameter names follow that file, so its state dict loads with
``strict=True``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008

Size2 = int | tuple[int, int]


class ConvBN(nn.Module):
    """Bias-free convolution, batch norm (eps 1e-3), ReLU: the network's only learned layer."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size2,
        *,
        stride: int = 1,
        padding: Size2 = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _same(in_channels: int, out_channels: int, kernel: tuple[int, int]) -> ConvBN:
    """A stride-1 convolution that keeps the spatial size (odd ``kernel``)."""
    return ConvBN(in_channels, out_channels, kernel, padding=(kernel[0] // 2, kernel[1] // 2))


def _avg_pool_3x3(x: Tensor) -> Tensor:
    """3×3 stride-1 average pool whose border averages count only the real inputs."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35×35 block: 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | pool→1×1 (Mixed_5b, 5c, 5d)."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = _same(48, 64, (5, 5))
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = _same(64, 96, (3, 3))
        self.branch3x3dbl_3 = _same(96, 96, (3, 3))
        self.branch_pool = ConvBN(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        wide = self.branch5x5_2(self.branch5x5_1(x))
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), wide, deep, pooled], dim=1)


class BlockB(nn.Module):
    """35×35 → 17×17 reduction: 3×3/2 | 1×1→3×3→3×3/2 | max pool/2 (Mixed_6a)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = _same(64, 96, (3, 3))
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.branch3x3(x), deep, pooled], dim=1)


class BlockC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (Mixed_6b to 6e)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c = channels_7x7
        self.branch1x1 = ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN(in_channels, c, 1)
        self.branch7x7_2 = _same(c, c, (1, 7))
        self.branch7x7_3 = _same(c, 192, (7, 1))
        self.branch7x7dbl_1 = ConvBN(in_channels, c, 1)
        self.branch7x7dbl_2 = _same(c, c, (7, 1))
        self.branch7x7dbl_3 = _same(c, c, (1, 7))
        self.branch7x7dbl_4 = _same(c, c, (7, 1))
        self.branch7x7dbl_5 = _same(c, 192, (1, 7))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            double = layer(double)
        pooled = self.branch_pool(_avg_pool_3x3(x))
        return torch.cat([self.branch1x1(x), single, double, pooled], dim=1)


class BlockD(nn.Module):
    """17×17 → 8×8 reduction: 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | max pool/2 (Mixed_7a)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = _same(192, 192, (1, 7))
        self.branch7x7x3_3 = _same(192, 192, (7, 1))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        short = self.branch3x3_2(self.branch3x3_1(x))
        long = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            long = layer(long)
        pooled = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([short, long, pooled], dim=1)


class BlockE(nn.Module):
    """8×8 block with split 1×3 / 3×1 outputs (Mixed_7b, 7c).

    ``max_pool``: pool the fourth branch with a 3×3 max pool (Mixed_7c of the FID
    network) instead of the padding-excluding average pool (Mixed_7b).
    """

    def __init__(self, in_channels: int, *, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = _same(384, 384, (1, 3))
        self.branch3x3_2b = _same(384, 384, (3, 1))
        self.branch3x3dbl_1 = ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = _same(448, 384, (3, 3))
        self.branch3x3dbl_3a = _same(384, 384, (1, 3))
        self.branch3x3dbl_3b = _same(384, 384, (3, 1))
        self.branch_pool = ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        narrow = self.branch3x3_1(x)
        deep = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_3x3(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(narrow),
                self.branch3x3_2b(narrow),
                self.branch3x3dbl_3a(deep),
                self.branch3x3dbl_3b(deep),
                self.branch_pool(pooled),
            ],
            dim=1,
        )


class InceptionV3Features(nn.Module):
    """The FID InceptionV3: images ``(B, C, H, W)`` in [0, 1] -> pool features ``(B, 2048)``.

    ``C`` is 3 (RGB) or 1 (grey, repeated to RGB). The images are resized to 299×299
    (bilinear, ``align_corners=False``) and mapped from [0, 1] to [−1, 1], as the standard
    FID computation does, then run to the final average pool. ``fc`` is the weights
    file's 1008-way ImageNet classifier: the features are taken before it; its weight
    gives the Inception Score's logits (``logits``), and its bias is kept so that the
    file loads with ``strict=True``.

    The parameters start at PyTorch's default initialisation; ``load_inception`` builds
    the network and loads the real weights.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, pool_features=32)
        self.Mixed_5c = BlockA(256, pool_features=64)
        self.Mixed_5d = BlockA(288, pool_features=64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, channels_7x7=128)
        self.Mixed_6c = BlockC(768, channels_7x7=160)
        self.Mixed_6d = BlockC(768, channels_7x7=160)
        self.Mixed_6e = BlockC(768, channels_7x7=192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, max_pool=False)
        self.Mixed_7c = BlockE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def preprocess(self, images: Tensor) -> Tensor:
        """``images: (B, C, H, W)`` in [0, 1], C ∈ {1, 3} -> ``(B, 3, 299, 299)`` in [−1, 1].

        The result has the dtype and device of the network's parameters.
        """
        if not isinstance(images, Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if not images.is_floating_point():
            raise TypeError(f"images must be a floating-point tensor, got dtype {images.dtype}")
        if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[0] < 1:
            raise ValueError(
                f"images must have shape (B, C, H, W) with B >= 1 and C in (1, 3), "
                f"got {tuple(images.shape)}"
            )
        if not bool(torch.isfinite(images).all()):
            raise ValueError("images contains non-finite values")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"images must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]; "
                "map or clamp them to [0, 1] first"
            )
        weight = self.fc.weight
        x = images.to(dtype=weight.dtype, device=weight.device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2.0 * x - 1.0

    def forward(self, images: Tensor) -> Tensor:
        """``images: (B, C, H, W)`` in [0, 1] -> ``(B, 2048)`` final-pool features."""
        x = self.preprocess(images)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return x.mean(dim=(2, 3))

    def logits(self, images: Tensor) -> Tensor:
        """``images: (B, C, H, W)`` in [0, 1] -> ``(B, 1008)`` class logits without the
        classifier's bias, ``features @ fc.weight.T``: the logits of the Inception Score
        (as in the original TensorFlow code and torch-fidelity's ``logits_unbiased``)."""
        return self(images) @ self.fc.weight.T

"""Deep energy-based models on images: a deep EBLVM and the EBM it is compared with.

Both share one backbone, a residual network without normalisation (ELU, 3×3
convolutions, pre-activation blocks): a 3×3 stem to ``base_width`` channels, then
three stages of ``blocks_per_stage`` residual blocks at 1, 2 and 4 times
``base_width`` channels, the first block of every stage halving the resolution
(mean pooling). That is 6k convolutions on the residual paths for k blocks per
stage: k = 2, 3, 3 for MNIST, CIFAR10 and CelebA.

The deep EBLVM (Bao et al., 2020; 2021) has E(v, h) = g3(g2(g1(v), h)):

- g1: the residual network, flattened and projected linearly to u ∈ R^H;
- g2: an additive coupling layer (Dinh et al., 2015) on the pair (u, h):
  (u, h) ↦ (u + m(h), h), m an MLP; invertible with unit Jacobian determinant;
- g3: one fully connected layer, ELU, squared and summed: Σ_j ELU(Wz + b)_j².
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.nn import functional as F

from ebm_models._checks import check_data, check_dtype, check_latents
from ebm_models._common_checks import check_count

_STAGES = 3


def _check_image_size(image_size: object) -> int:
    size = check_count(image_size, "image_size")
    if size % 2**_STAGES:
        raise ValueError(f"image_size must be a multiple of {2**_STAGES}, got {size}")
    return size


def _check_images(v: object, module: nn.Module, channels: int, size: int) -> Tensor:
    """Refuse anything but a finite (B, channels, size, size) tensor of the module's dtype."""
    return check_data(v, (channels, size, size), "v", dtype=_dtype(module))


def _dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _pooled_kernel(weight: Tensor) -> Tensor:
    """The 4×4 kernel of a 3×3 convolution followed by a 2×2 mean pool: applied with
    stride 2, it computes both at once with 16/36 of the convolution's products.
    weight: (O, I, 3, 3) -> (O, I, 4, 4)."""
    shifted = [F.pad(weight, (left, 1 - left, top, 1 - top)) for top in (0, 1) for left in (0, 1)]
    return sum(shifted[1:], shifted[0]) / 4


def _pooled_pointwise(weight: Tensor) -> Tensor:
    """The 2×2 stride-2 kernel of a 2×2 mean pool followed by a 1×1 convolution.
    weight: (O, I, 1, 1) -> (O, I, 2, 2)."""
    return weight.expand(-1, -1, 2, 2) / 4


class _ResidualBlock(nn.Module):
    """Pre-activation block: shortcut(x) + pool(conv₂(ELU(conv₁(ELU(x))))).

    With ``down`` the pool halves the resolution (2×2 mean) and the shortcut is a
    1×1 convolution of the pooled x; otherwise the pool is the identity, and so is
    the shortcut unless the width changes. A pool after a convolution is computed as
    one stride-2 convolution of the pooled kernel (the same function, summed in
    another order, with fewer products)."""

    def __init__(self, in_width: int, out_width: int, *, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(in_width, in_width, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(in_width, out_width, 3, padding=1)
        self.shortcut: nn.Module = (
            nn.Conv2d(in_width, out_width, 1) if down or in_width != out_width else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        inner = F.elu(self.conv1(F.elu(x)))
        if not self.down:
            return self.shortcut(x) + self.conv2(inner)
        assert isinstance(self.shortcut, nn.Conv2d)
        conv2, shortcut = self.conv2, self.shortcut
        residual = F.conv2d(inner, _pooled_kernel(conv2.weight), conv2.bias, stride=2, padding=1)
        return F.conv2d(x, _pooled_pointwise(shortcut.weight), shortcut.bias, stride=2) + residual


def _residual_net(in_channels: int, *, base_width: int, blocks_per_stage: int) -> nn.Sequential:
    """The shared backbone: (B, C, S, S) -> (B, 4·base_width, S/8, S/8)."""
    check_count(in_channels, "in_channels")
    check_count(base_width, "base_width")
    check_count(blocks_per_stage, "blocks_per_stage")
    layers: list[nn.Module] = [nn.Conv2d(in_channels, base_width, 3, padding=1)]
    width = base_width
    for stage in range(_STAGES):
        out_width = base_width * 2**stage
        for block in range(blocks_per_stage):
            layers.append(_ResidualBlock(width, out_width, down=block == 0))
            width = out_width
    return nn.Sequential(*layers)


def _backbone_features(base_width: int, image_size: int) -> int:
    """Flattened size of the backbone's output."""
    return base_width * 2 ** (_STAGES - 1) * (image_size // 2**_STAGES) ** 2


class AdditiveCoupling(nn.Module):
    """g2: (u, h) ↦ (u + m(h), h), with m: R^H -> R^F an MLP (Linear, ELU, Linear).

    Invertible for every m, (u, h) = (y − m(h), h), with unit Jacobian determinant.
    u: (*S, B, F) or broadcastable to it; h: (*S, B, H).
    """

    def __init__(self, features: int, h_dim: int) -> None:
        super().__init__()
        check_count(features, "features")
        check_count(h_dim, "h_dim")
        self.shift = nn.Sequential(nn.Linear(h_dim, h_dim), nn.ELU(), nn.Linear(h_dim, features))

    def forward(self, u: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """(u, h) -> (u + m(h), h)."""
        return u + self.shift(h), h

    def inverse(self, y: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """(y, h) -> (y − m(h), h), the exact inverse of ``forward``."""
        return y - self.shift(h), h


class _SquaredELUHead(nn.Module):
    """g3: z ↦ Σ_j ELU(Wz + b)_j². z: (*S, in_features) -> (*S,)."""

    def __init__(self, in_features: int, units: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, units)

    def forward(self, z: Tensor) -> Tensor:
        return F.elu(self.linear(z)).square().sum(-1)


class _QuadraticHead(nn.Module):
    """f ↦ (w₁ᵀf + b₁)(w₂ᵀf + b₂) + w₃ᵀ(f ⊙ f) + b₃ (Li et al., 2019). f: (B, F) -> (B,)."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_features, 1)
        self.linear2 = nn.Linear(in_features, 1)
        self.quadratic = nn.Linear(in_features, 1)

    def forward(self, f: Tensor) -> Tensor:
        return (self.linear1(f) * self.linear2(f) + self.quadratic(f.square())).squeeze(-1)


class DeepEBLVM(nn.Module):
    """Deep EBLVM E(v, h) = g3(g2(g1(v), h)) on images v: (B, C, S, S), h ∈ R^H.

    g1: residual net -> flatten -> linear to u: (B, H) (``features``); g2: the
    additive coupling ``coupling``; g3: ``Σ_j ELU(W[u + m(h); h] + b)_j²`` with
    ``S²/32 · base_width`` units. The defaults are the CIFAR10 model (h_dim 50,
    3 blocks per stage, widths 256, 512, 1024).

    ``energy(v, h)`` computes g1(v) once and broadcasts it over leading sample
    dimensions of h: h (B, H) -> (B,), h (L, B, H) -> (L, B), h (*S, B, H) -> (*S, B).
    """

    def __init__(
        self,
        in_channels: int = 3,
        h_dim: int = 50,
        *,
        base_width: int = 256,
        blocks_per_stage: int = 3,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        self.in_channels = check_count(in_channels, "in_channels")
        self.h_dim = check_count(h_dim, "h_dim")
        self.image_size = _check_image_size(image_size)
        self.feature_dim = h_dim
        flat = _backbone_features(base_width, image_size)
        self.residual_net = _residual_net(
            in_channels, base_width=base_width, blocks_per_stage=blocks_per_stage
        )
        self.projection = nn.Linear(flat, self.feature_dim)
        self.coupling = AdditiveCoupling(self.feature_dim, h_dim)
        self.head = _SquaredELUHead(self.feature_dim + h_dim, flat // 2)

    def features(self, v: Tensor) -> Tensor:
        """g1(v) = u. v: (B, C, S, S) -> (B, F) with F = h_dim."""
        _check_images(v, self, self.in_channels, self.image_size)
        return self.projection(rearrange(self.residual_net(v), "b c h w -> b (c h w)"))

    def energy_from_features(self, features: Tensor, h: Tensor) -> Tensor:
        """g3(g2(u, h)) for u = ``features(v)``. features: (B, F); h: (*S, B, H) -> (*S, B)."""
        check_data(features, (self.feature_dim,), "features", finite=False)
        # Under autocast, features from g1 come in the autocast dtype and h follows them.
        if not torch.is_autocast_enabled(features.device.type):
            check_dtype(features, _dtype(self), "features")
        check_latents(h, self.h_dim, dtype=features.dtype, batch=features.shape[0])
        coupled, h = self.coupling(features, h)
        return self.head(torch.cat([coupled, h], dim=-1))

    def energy(self, v: Tensor, h: Tensor) -> Tensor:
        """E(v, h). v: (B, C, S, S); h: (*S, B, H) -> (*S, B), e.g. (L, B, H) -> (L, B)."""
        return self.energy_from_features(self.features(v), h)

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        """The energy: the model is itself an energy callable."""
        return self.energy(v, h)

    def __energy_at_v__(self, v: Tensor) -> Callable[[Tensor], Tensor]:
        """h ↦ E(v, h) for a fixed v, with g1(v) computed once, now: the conditioned-energy
        capability of the score estimators' contract.

        v: (B, C, S, S); the returned function maps h: (*S, B, H) -> (*S, B).
        """
        features = self.features(v)
        return lambda h: self.energy_from_features(features, h)


class DeepEBM(nn.Module):
    """Deep EBM E(v) on images v: (B, C, S, S), the EBLVM's residual network without h.

    E(v) = (w₁ᵀf + b₁)(w₂ᵀf + b₂) + w₃ᵀ(f ⊙ f) + b₃ on the flattened features f of
    the residual network: the EBM of Li et al. (2019) that the deep EBLVM is
    compared with, of about the same size.
    """

    def __init__(
        self,
        in_channels: int = 3,
        *,
        base_width: int = 256,
        blocks_per_stage: int = 3,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        self.in_channels = check_count(in_channels, "in_channels")
        self.image_size = _check_image_size(image_size)
        self.residual_net = _residual_net(
            in_channels, base_width=base_width, blocks_per_stage=blocks_per_stage
        )
        self.head = _QuadraticHead(_backbone_features(base_width, image_size))

    def energy(self, v: Tensor) -> Tensor:
        """E(v). v: (B, C, S, S) -> (B,)."""
        _check_images(v, self, self.in_channels, self.image_size)
        return self.head(rearrange(self.residual_net(v), "b c h w -> b (c h w)"))

    def forward(self, v: Tensor) -> Tensor:
        """The energy."""
        return self.energy(v)

    def score(self, v: Tensor) -> Tensor:
        """s(v) = −∇_v E(v) by autograd, with a graph to the parameters (and to v if it
        has one). v: (B, C, S, S) -> (B, C, S, S)."""
        _check_images(v, self, self.in_channels, self.image_size)
        with torch.enable_grad():
            node = v.view_as(v) if v.requires_grad else v.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.energy(node).sum(), node, create_graph=True)
        return -grad


class ConvGaussianPosteriorNet(nn.Module):
    """Parameter network of a Gaussian q(h | v) on images: v -> (mean, log_std).

    Three 3×3 stride-2 convolutions (``width``, 2·``width``, 4·``width`` channels,
    leaky ReLU 0.2), flattened, then two linear maps to the mean and the log
    standard deviation. For ``score_estimators.GaussianPosterior``.
    v: (B, C, S, S) -> ((B, H), (B, H)).
    """

    def __init__(
        self, in_channels: int, h_dim: int, *, width: int = 64, image_size: int = 32
    ) -> None:
        super().__init__()
        self.in_channels = check_count(in_channels, "in_channels")
        self.h_dim = check_count(h_dim, "h_dim")
        check_count(width, "width")
        self.image_size = _check_image_size(image_size)
        layers: list[nn.Module] = []
        channels = in_channels
        for stage in range(_STAGES):
            layers += [nn.Conv2d(channels, width * 2**stage, 3, stride=2, padding=1)]
            layers += [nn.LeakyReLU(0.2)]
            channels = width * 2**stage
        self.convs = nn.Sequential(*layers)
        flat = channels * (image_size // 2**_STAGES) ** 2
        self.mean = nn.Linear(flat, h_dim)
        self.log_std = nn.Linear(flat, h_dim)

    def forward(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """v: (B, C, S, S) -> (mean, log_std), each (B, H)."""
        _check_images(v, self, self.in_channels, self.image_size)
        features = rearrange(self.convs(v), "b c h w -> b (c h w)")
        return self.mean(features), self.log_std(features)

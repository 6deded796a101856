"""The image family's modules: a deep EBLVM with a convolutional Gaussian posterior, or
a deep EBM, each behind a thin energy that may run its expensive part under bf16
autocast on CUDA (``amp``) while every derivative and loss stays float32."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from eblvm.parts import Model
from eblvm.settings import Settings
from ebm_models import ConvGaussianPosteriorNet, DeepEBLVM, DeepEBM
from score_estimators import GaussianPosterior


class LatentEnergy(nn.Module):
    """E(v, h) of a DeepEBLVM, with g1(v) (the residual network) optionally under bf16
    autocast; g2, g3, every derivative taken from E, and the losses stay float32.

    Offers ``__energy_at_v__(v)`` like the model, so that posterior fitting and Langevin
    refinement compute g1 once. v: (B, C, S, S); h: (*S, B, H) -> (*S, B).
    """

    def __init__(self, model: DeepEBLVM, *, autocast: bool = False) -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def features(self, v: Tensor) -> Tensor:
        """g1(v): (B, H), in v's dtype."""
        if not self.autocast:
            return self.model.features(v)
        with torch.autocast(v.device.type, dtype=torch.bfloat16):
            features = self.model.features(v)
        return features.to(v.dtype)

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        return self.model.energy_from_features(self.features(v), h)

    def __energy_at_v__(self, v: Tensor) -> Callable[[Tensor], Tensor]:
        features = self.features(v)
        return lambda h: self.model.energy_from_features(features, h)


class VisibleEnergy(nn.Module):
    """E(v) of a DeepEBM and its exact score s(v) = −∇_v E(v), the energy optionally
    under bf16 autocast and the gradient (with a graph to θ) taken outside it in v's
    dtype. v: (B, C, S, S)."""

    def __init__(self, model: DeepEBM, *, autocast: bool = False) -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def forward(self, v: Tensor) -> Tensor:
        return self.model.energy(v)

    def score(self, v: Tensor) -> Tensor:
        if not self.autocast:
            return self.model.score(v)
        node = v.view_as(v) if v.requires_grad else v.detach().requires_grad_(True)
        with torch.autocast(v.device.type, dtype=torch.bfloat16):
            energy = self.model.energy(node)
        (grad,) = torch.autograd.grad(energy.to(v.dtype).sum(), node, create_graph=True)
        return -grad


def build_model(settings: Settings) -> Model:
    """The run's modules, initialised from torch's default initialisation seeded by
    ``settings.seed``: a DeepEBM for a method of the exact score, else a DeepEBLVM and its
    posterior."""
    data, model = settings.data, settings.model
    shape = {"image_size": data.image_size}
    net = {"base_width": model.base_width, "blocks_per_stage": model.blocks_per_stage}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        if not settings.method.declared.posterior:
            ebm = DeepEBM(data.channels, **net, **shape)
            return Model(VisibleEnergy(ebm, autocast=settings.amp), None, ())
        eblvm = DeepEBLVM(data.channels, model.h_dim, **net, **shape)
        posterior_net = ConvGaussianPosteriorNet(
            data.channels, model.h_dim, width=model.posterior_width, **shape
        )
    return Model(
        LatentEnergy(eblvm, autocast=settings.amp), GaussianPosterior(posterior_net), (model.h_dim,)
    )

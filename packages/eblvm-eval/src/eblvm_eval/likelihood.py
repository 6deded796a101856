"""Log-likelihood of a model whose free energy is known: log p(v) = −F(v) − log Z."""

from __future__ import annotations

import torch
from torch import Tensor

from eblvm_eval._checks import check_finite_scalar, check_tensor
from eblvm_eval._grbm import FreeEnergyModel


def log_likelihood(model: FreeEnergyModel, v: Tensor, *, log_z: Tensor | float) -> Tensor:
    """log p(v) = −F(v) − log Z. v: (B, D) -> (B,), float64.

    ``log_z`` is exact (``exact_log_partition``) or estimated (``ais_log_partition``).
    Gradients flow through ``model.free_energy`` as usual.
    """
    check_tensor(v, "v", shape=(None, None))
    log_z = check_finite_scalar(log_z, "log_z")
    free_energy = model.free_energy(v)
    if not isinstance(free_energy, Tensor) or free_energy.shape != (v.shape[0],):
        shape = tuple(free_energy.shape) if isinstance(free_energy, Tensor) else type(free_energy)
        raise ValueError(f"model.free_energy(v) must return shape ({v.shape[0]},), got {shape}")
    return -free_energy.to(torch.float64) - log_z

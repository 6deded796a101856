"""What the GRBM evaluations need of a model, and its checked parameters."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from torch import Tensor

from eblvm_eval._checks import check_tensor


class FreeEnergyModel(Protocol):
    """Any model whose visible marginal is known up to Z: ``free_energy(v: (B, D)) -> (B,)``."""

    def free_energy(self, v: Tensor) -> Tensor: ...


class GRBMParameters(Protocol):
    """A Gaussian-Bernoulli RBM, E(v, h) = ½‖(v − b)/σ‖² − cᵀh − vᵀWh, σ = exp(log_std).

    ``W: (D, H)``, ``b: (D,)``, ``c: (H,)``, ``log_std: (D,)``; ``free_energy(v: (B, D)) -> (B,)``.
    ``ebm_models.GRBM`` has this form, and so does any object with these attributes.
    """

    @property
    def W(self) -> Tensor: ...

    @property
    def b(self) -> Tensor: ...

    @property
    def c(self) -> Tensor: ...

    @property
    def log_std(self) -> Tensor: ...

    def free_energy(self, v: Tensor) -> Tensor: ...


class GRBMTensors(NamedTuple):
    """Detached, checked GRBM parameters: W (D, H), b (D,), c (H,), log_std (D,)."""

    W: Tensor
    b: Tensor
    c: Tensor
    log_std: Tensor


def grbm_tensors(grbm: GRBMParameters) -> GRBMTensors:
    """Check the shapes, dtype, device and finiteness of ``grbm``'s parameters; detach them."""
    tensors = {}
    for name in ("W", "b", "c", "log_std"):
        if not hasattr(grbm, name):
            raise TypeError(f"grbm must have a tensor attribute {name!r} (see GRBMParameters)")
        tensors[name] = getattr(grbm, name)
    W = check_tensor(tensors["W"], "grbm.W", shape=(None, None)).detach()
    v_dim, h_dim = W.shape
    if v_dim < 1 or h_dim < 1:
        raise ValueError(f"grbm.W must have shape (D, H) with D, H >= 1, got {tuple(W.shape)}")
    b = check_tensor(tensors["b"], "grbm.b", shape=(v_dim,)).detach()
    c = check_tensor(tensors["c"], "grbm.c", shape=(h_dim,)).detach()
    log_std = check_tensor(tensors["log_std"], "grbm.log_std", shape=(v_dim,)).detach()
    for name, t in (("grbm.b", b), ("grbm.c", c), ("grbm.log_std", log_std)):
        if t.dtype != W.dtype or t.device != W.device:
            raise TypeError(
                f"{name} must have grbm.W's dtype and device ({W.dtype}, {W.device}), "
                f"got ({t.dtype}, {t.device})"
            )
    return GRBMTensors(W=W, b=b, c=c, log_std=log_std)

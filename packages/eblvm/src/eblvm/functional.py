"""Parameters as tensors: the training step is a pure function of them.

A module's trainable parameters are a :data:`Params` dict (name -> tensor); the step
evaluates the module at given tensors with :func:`swapped`, takes gradients with
``torch.autograd.grad`` and returns new tensors, so that one step can be traced into
a graph and compiled, folded over runs, and checkpointed as plain tensors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from einops import reduce
from torch import Tensor, nn
from torch.nn.utils.stateless import _reparametrize_module

Params = dict[str, Tensor]


def parameters_of(module: nn.Module) -> Params:
    """Detached copies of the module's trainable parameters, by name."""
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


@contextlib.contextmanager
def swapped(module: nn.Module | None, params: Params) -> Iterator[None]:
    """Within the block, ``module`` computes with ``params`` in place of its own
    parameters (the mechanism of ``torch.func.functional_call``, held for a block so
    that every method of the module, not only ``forward``, uses them)."""
    if module is None:
        yield
        return
    with _reparametrize_module(module, params):
        yield


def requiring_grad(params: Params) -> Params:
    """Fresh leaves of ``params`` that require grad: the inputs of one gradient."""
    return {name: value.detach().requires_grad_(True) for name, value in params.items()}


def detached(params: Params) -> Params:
    return {name: value.detach() for name, value in params.items()}


def gradients(loss: Tensor, params: Params) -> dict[str, Tensor | None]:
    """d loss / d params by name (None for a parameter the loss does not reach)."""
    grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return dict(zip(params, grads, strict=True))


def tree_map(fn: Callable[..., Any], tree: Any, *others: Any) -> Any:
    """``fn`` applied leaf by leaf to tensors in nested NamedTuples, tuples, lists and
    dicts (None stays None); ``others`` have the same structure."""
    if tree is None:
        return None
    if isinstance(tree, Tensor):
        return fn(tree, *others)
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(o[k] for o in others)) for k, v in tree.items()}
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(tree_map(fn, *items) for items in zip(tree, *others, strict=True)))
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, *items) for items in zip(tree, *others, strict=True))
    raise TypeError(f"tree_map does not know {type(tree).__name__}")


def tree_leaves(tree: Any) -> list[Tensor]:
    """The tensors of a nested structure, in order."""
    found: list[Tensor] = []
    tree_map(lambda t: found.append(t), tree)
    return found


@dataclass(frozen=True)
class Runs:
    """How the runs of one step are laid out: ``count`` runs, each with ``batch``
    examples, folded into one batch of count · batch rows (run r's are rows
    r·batch … (r + 1)·batch − 1); with ``stacked``, every parameter has a leading run
    axis of size ``count``, else the single run's parameters are as they are."""

    count: int = 1
    stacked: bool = False

    def means(self, per_example: Tensor) -> Tensor:
        """Per-run means of per-example values (count · batch,) -> (count,)."""
        return reduce(per_example, "(runs batch) -> runs", "mean", runs=self.count)

    def squares(self, tensor: Tensor) -> Tensor:
        """Per-run sums of squares of one parameter-shaped tensor -> (count,)."""
        if self.stacked:
            return tensor.square().reshape(self.count, -1).sum(1)
        return tensor.square().sum().reshape(1)

    def norms(self, tensors: dict[str, Tensor | None]) -> Tensor:
        """Per-run Euclidean norms over all the given tensors -> (count,)."""
        total = sum(self.squares(t) for t in tensors.values() if t is not None)
        if isinstance(total, int):
            return torch.zeros(self.count)
        return total.sqrt()

    def finite(self, tensors: dict[str, Tensor]) -> Tensor:
        """Per-run: every value of every tensor finite -> (count,) bool."""
        flags = [
            t.isfinite().reshape(self.count, -1).all(1)
            if self.stacked
            else t.isfinite().all().reshape(1)
            for t in tensors.values()
        ]
        return torch.stack(flags).all(0)

    def broadcast(self, per_run: Tensor, like: Tensor) -> Tensor:
        """A per-run value (count,) shaped to multiply a parameter ``like`` (a 0-dim
        value is returned as it is)."""
        if per_run.dim() == 0 or not self.stacked:
            return per_run.reshape(()) if per_run.numel() == 1 else per_run
        return per_run.reshape(-1, *([1] * (like.dim() - 1)))

"""S runs of one model shape as one model on a folded batch.

:class:`StackedEnergy` holds S copies of an energy with every parameter stacked on a
leading run axis and evaluates them on a batch whose rows are the runs' batches one
after the other (run r's B examples are rows r·B … (r + 1)·B − 1), by mapping the
model over the runs (``torch.func.vmap``). :class:`StackedNetwork` does the same for
a posterior's parameter network, so that the posterior itself is unchanged. No run
sees another's data or gradients: every operation acts within a run, and the step
sums the runs' losses, so that each run's parameters get their own run's gradient.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import stack_module_state, vmap

from eblvm.functional import Params, swapped

PREFIX = "runs."


def fold(tensor: Tensor, runs: int, axis: int = 0) -> Tensor:
    """Split ``axis`` (runs · B) into (runs, B): the run axis first, at ``axis``."""
    shape = tensor.shape
    return tensor.reshape(*shape[:axis], runs, shape[axis] // runs, *shape[axis + 1 :])


def unfold(tensor: Tensor, axis: int = 0) -> Tensor:
    """Merge axes ``axis`` (runs) and ``axis`` + 1 (B) into one of runs · B rows."""
    shape = tensor.shape
    return tensor.reshape(*shape[:axis], shape[axis] * shape[axis + 1], *shape[axis + 2 :])


class _Stack(nn.Module):
    """S modules of one structure: their parameters stacked under ``runs.<name>``."""

    template: nn.Module

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        if not modules:
            raise ValueError("a stack needs at least one module")
        self.count = len(modules)
        stacked, _ = stack_module_state(list(modules))
        holder = copy.deepcopy(modules[0])
        for name, value in stacked.items():
            owner, _, leaf = name.rpartition(".")
            setattr(holder.get_submodule(owner), leaf, nn.Parameter(value.detach().clone()))
        self.runs = holder
        # The template computes one run at a time with that run's slice of the stack.
        object.__setattr__(self, "template", copy.deepcopy(modules[0]).requires_grad_(False))

    def map(
        self,
        fn: Callable[..., Any],
        *args: Any,
        in_dims: tuple[int | None, ...],
        out_dims: Any = 0,
    ) -> Any:
        """``fn(module, *args)`` for every run at once: each arg split along its
        ``in_dims`` axis into (runs, B) (None: shared), each output merged back along
        ``out_dims``."""
        params: Params = {name[len(PREFIX) :]: p for name, p in self.named_parameters()}

        def one_run(run_params: Params, *run_args: Any) -> Any:
            with swapped(self.template, run_params):
                return fn(self.template, *run_args)

        folded = [
            arg if axis is None else _fold_tree(arg, self.count, axis)
            for arg, axis in zip(args, in_dims, strict=True)
        ]
        result = vmap(one_run, in_dims=(0, *in_dims), out_dims=out_dims)(params, *folded)
        return _unfold_tree(result, out_dims)


def _fold_tree(arg: Any, runs: int, axis: int) -> Any:
    if isinstance(arg, Tensor):
        return fold(arg, runs, axis)
    return type(arg)(*(None if a is None else fold(a, runs, axis) for a in arg))


def _unfold_tree(result: Any, out_dims: Any) -> Any:
    if isinstance(result, Tensor):
        return unfold(result, out_dims)
    dims = out_dims if isinstance(out_dims, tuple) else (out_dims,) * len(result)
    return type(result)(*(unfold(r, d) for r, d in zip(result, dims, strict=True)))


class StackedEnergy(_Stack):
    """S energies E_r(v, h) as one, on a folded batch: v (S·B, ...), h (L, S·B, ...).

    Offers the energy call and the parts of a GRBM-like model a step or an evaluation
    uses (``score``, ``free_energy``), each mapped over the runs."""

    def forward(self, v: Tensor, h: Tensor) -> Tensor:
        """(S·B, ...), (L, S·B, ...) -> (L, S·B)."""
        return self.map(lambda m, v, h: m(v, h), v, h, in_dims=(0, 1), out_dims=1)

    def score(self, v: Tensor) -> Tensor:
        return self.map(lambda m, v: m.score(v), v, in_dims=(0,))

    def free_energy(self, v: Tensor) -> Tensor:
        return self.map(lambda m, v: m.free_energy(v), v, in_dims=(0,))


class StackedNetwork(_Stack):
    """S networks x ↦ f_r(x) as one, on a folded batch: (S·B, ...) -> (S·B, ...) (or a
    tuple of such outputs), for a posterior whose parameters are its network's."""

    def forward(self, x: Tensor) -> Any:
        return self.map(lambda m, x: m(x), x, in_dims=(0,))


def stack_params(runs: Sequence[Params]) -> Params:
    """Per-run parameter dicts (plain names) -> one stacked dict (``runs.<name>``)."""
    return {PREFIX + name: torch.stack([run[name] for run in runs]) for name in runs[0]}


def run_params(params: Params, run: int) -> Params:
    """Run ``run``'s parameters (plain names) of a stacked dict."""
    return {name[len(PREFIX) :]: value[run] for name, value in params.items()}

"""The per-step transformations of a training step, as pure ``init`` / ``update`` pairs.

A :class:`Transform` is two functions of tensors, as optax's gradient transformations:
``init(theta)`` gives the state it keeps (a dict of named entries of the training
state's ``extra``, ``{}`` for none) and ``update(value, state, iteration)`` gives the
transformed value and the new state at 1-based ``iteration``. :func:`chain` composes
transforms into one, applied in the order listed, so that a new transformation is
one small function and one entry in the list.

A step has two chains (:class:`StepTransforms`): ``gradients`` acts on
:class:`Updates` (the gradients, learning rate and reported loss of θ's and of φ's
optimiser steps) before each optimiser step: all-reduce, clipping, schedules;
``parameters`` acts on θ after its optimiser step: the EMA. Every transform works on a
single run and on a stack (per-run values have a leading run axis, see
:class:`~eblvm.functional.Runs`), and reads no tensor value, so that it traces into a
compiled step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from eblvm.distributed import Ranks
from eblvm.functional import Params, Runs

Grads = dict[str, Tensor | None]
State = dict[str, Any]


class Updates(NamedTuple):
    """What the gradient chain passes along at one optimiser step: ``grads`` the
    gradients the optimiser takes, ``lr`` its learning rate (0-dim, or (S,) for a stack
    whose runs differ in it), ``loss`` the per-run value (S,) the step reports (None
    when the step reports none)."""

    grads: Grads
    lr: Tensor
    loss: Tensor | None = None


class Transform(NamedTuple):
    """``init(theta) -> state`` and ``update(value, state, iteration) -> (value, state)``."""

    init: Callable[[Params], State]
    update: Callable[[Any, State, Tensor], tuple[Any, State]]


def _no_state(params: Params) -> State:
    return {}


def chain(*transforms: Transform) -> Transform:
    """One transform applying ``transforms`` in order; its state holds all of theirs."""

    def init(params: Params) -> State:
        state: State = {}
        for transform in transforms:
            state.update(transform.init(params))
        return state

    def update(value: Any, state: State, iteration: Tensor) -> tuple[Any, State]:
        for transform in transforms:
            value, state = transform.update(value, state, iteration)
        return value, state

    return Transform(init, update)


class StepTransforms(NamedTuple):
    """A step's two chains: ``gradients`` before every optimiser step (θ's and φ's),
    ``parameters`` on θ after its optimiser step."""

    gradients: Transform = chain()
    parameters: Transform = chain()

    def init(self, theta: Params) -> State:
        """The state both chains keep, started from the initial θ."""
        return {**self.gradients.init(theta), **self.parameters.init(theta)}


def learning_rate(transforms: Transform, lr: Tensor, iteration: Tensor) -> Tensor:
    """The learning rate that the gradient chain ``transforms`` gives the optimiser at
    ``iteration`` from the base ``lr`` (no gradients: for reporting it)."""
    updates, _ = transforms.update(Updates({}, lr), {}, iteration)
    return updates.lr


def all_reduce(ranks: Ranks) -> Transform:
    """Data-parallel training: the gradients and the reported loss averaged over the
    processes, so that every process takes the same step."""

    def update(updates: Updates, state: State, iteration: Tensor) -> tuple[Updates, State]:
        present = {name: g for name, g in updates.grads.items() if g is not None}
        averaged = dict(zip(present, ranks.average(list(present.values())), strict=True))
        loss = None if updates.loss is None else ranks.mean(updates.loss)
        return updates._replace(grads={**updates.grads, **averaged}, loss=loss), state

    return Transform(_no_state, update)


def clip_by_global_norm(max_norm: float, runs: Runs) -> Transform:
    """Each run's gradients scaled by min(1, max_norm / (‖g‖ + 10⁻⁶)), ‖g‖ the norm over
    all of that run's gradients (torch.nn.utils.clip_grad_norm_ per run), so that the
    optimiser takes a gradient of norm at most ``max_norm``."""

    def update(updates: Updates, state: State, iteration: Tensor) -> tuple[Updates, State]:
        norms = runs.norms(updates.grads)
        factor = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
        grads = {
            name: None if g is None else g * runs.broadcast(factor, g).to(g.device, g.dtype)
            for name, g in updates.grads.items()
        }
        return updates._replace(grads=grads), state

    return Transform(_no_state, update)


def cosine_schedule(iterations: int, lr_min: float) -> Transform:
    """Cosine decay of the learning rate from its base to ``lr_min`` over ``iterations``:
    the update of iteration t uses lr_min + (lr − lr_min)(1 + cos(π (t − 1)/iterations))/2."""

    def update(updates: Updates, state: State, iteration: Tensor) -> tuple[Updates, State]:
        phase = math.pi * (iteration - 1) / iterations
        lr = lr_min + (updates.lr - lr_min) * (1 + torch.cos(phase)) / 2
        return updates._replace(lr=lr), state

    return Transform(_no_state, update)


def ema(decay: float) -> Transform:
    """An exponential moving average of θ, kept as ``state["ema"]``: after the update of
    iteration t, ema ← d_t · ema + (1 − d_t) · θ with d_t = min(decay, (1 + t)/(10 + t)),
    so that a short run's average is not dominated by its random start. For the
    ``parameters`` chain: θ passes unchanged."""

    def init(theta: Params) -> State:
        return {"ema": {name: p.clone() for name, p in theta.items()}}

    def update(theta: Params, state: State, iteration: Tensor) -> tuple[Params, State]:
        d = torch.clamp((1 + iteration) / (10 + iteration), max=decay)
        average = {
            name: state["ema"][name].lerp(p, (1 - d).to(p.dtype)) for name, p in theta.items()
        }
        return theta, {**state, "ema": average}

    return Transform(init, update)

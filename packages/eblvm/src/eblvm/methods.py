"""Training methods: one θ update (and the posterior's K updates) per minibatch.

A method has ``step(v) -> loss`` and ``state_dict`` / ``load_state_dict`` so that
checkpoints capture every optimiser and chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from eblvm_eval import gibbs_sample
from ebm_models import GRBM
from score_estimators import fit_posterior

Objective = Callable[[Callable[[Tensor], Tensor], Tensor, torch.Generator], Tensor]


class Method(Protocol):
    def step(self, v: Tensor) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _finite_loss(loss: Tensor) -> float:
    value = loss.item()
    if not torch.isfinite(loss):
        raise FloatingPointError(value)
    return value


def _step_finite(optimizer: torch.optim.Optimizer, model: nn.Module, value: float) -> None:
    """Take the optimiser step; a non-finite parameter afterwards counts as divergence."""
    optimizer.step()
    if not all(bool(p.isfinite().all()) for p in model.parameters()):
        raise FloatingPointError(value)


class ScoreMatching:
    """K posterior steps (when there is a posterior), then one θ step on
    ``objective(estimator(model, posterior, ·), v)``."""

    def __init__(
        self,
        model: GRBM,
        posterior: nn.Module | None,
        posterior_optimizer: torch.optim.Optimizer | None,
        estimator: Callable[..., Tensor],
        objective: Objective,
        optimizer: torch.optim.Optimizer,
        posterior_steps: int,
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.posterior = posterior
        self.posterior_optimizer = posterior_optimizer
        self.estimator = estimator
        self.objective = objective
        self.optimizer = optimizer
        self.posterior_steps = posterior_steps
        self.generator = generator

    def score(self, v: Tensor) -> Tensor:
        return self.estimator(self.model, self.posterior, v, generator=self.generator)

    def step(self, v: Tensor) -> float:
        if self.posterior is not None and self.posterior_optimizer is not None:
            fit_posterior(
                self.model,
                self.posterior,
                v,
                self.posterior_optimizer,
                steps=self.posterior_steps,
                generator=self.generator,
            )
        loss = self.objective(self.score, v, self.generator)
        value = _finite_loss(loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.model.parameters()))
        _step_finite(self.optimizer, self.model, value)
        return value

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
        if self.posterior is not None and self.posterior_optimizer is not None:
            state["posterior"] = self.posterior.state_dict()
            state["posterior_optimizer"] = self.posterior_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.posterior is not None and self.posterior_optimizer is not None:
            self.posterior.load_state_dict(state["posterior"])
            self.posterior_optimizer.load_state_dict(state["posterior_optimizer"])


class ContrastiveDivergence:
    """CD-k (chains restart at the data) or PCD-k (persistent chains) on the free energy."""

    def __init__(
        self,
        model: GRBM,
        optimizer: torch.optim.Optimizer,
        *,
        steps: int,
        persistent: bool,
        generator: torch.Generator,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.steps = steps
        self.persistent = persistent
        self.generator = generator
        self.chains: Tensor | None = None

    def step(self, v: Tensor) -> float:
        start = self.chains if self.persistent and self.chains is not None else v
        negatives = gibbs_sample(
            self.model, len(start), steps=self.steps, init=start, generator=self.generator
        )
        if self.persistent:
            self.chains = negatives
        loss = self.model.free_energy(v).mean() - self.model.free_energy(negatives).mean()
        value = _finite_loss(loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _step_finite(self.optimizer, self.model, value)
        return value

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "chains": self.chains}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.chains = state["chains"]

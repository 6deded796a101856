"""Your own model on your own data, trained by the same loop as the presets.

    task = ModelTask(data, build=lambda generator: Model(energy, posterior, (h_dim,)))
    train(task, settings, "runs/mine")

``data`` is a tensor of training examples (N, ...), every value finite (checked once,
here); ``build`` makes a run's modules: an energy (any nn.Module
``energy(v, h) -> (L, B)``), a posterior of score-estimators
(or any noise-driven posterior, see ``score_estimators.protocols``) and the shape of
one draw of h. Every setting of the step applies (estimator, objective, posterior fit,
optimiser, cadence); ``evaluate`` (optional) returns a row of numbers at each
evaluation, and ``selection`` names the one that picks best.pt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from eblvm.parts import Model
from eblvm.settings import Settings
from eblvm.task import RunSnapshot


class ModelTask:
    """A task of the training loop for a user's model and data (see the module docstring)."""

    stackable = False
    compile_by_default = False
    cpu_threads = 1

    def __init__(
        self,
        data: Tensor,
        build: Callable[[torch.Generator], Model],
        *,
        evaluate: Callable[[Model, int], dict[str, Any]] | None = None,
        selection: tuple[str, str] | None = None,
    ) -> None:
        if not isinstance(data, Tensor) or data.dim() < 2 or not data.is_floating_point():
            raise TypeError("data must be a floating tensor of examples (N, ...)")
        finite = data.flatten(1).isfinite().all(dim=1)
        if not bool(finite.all()):
            bad = (~finite).nonzero().flatten()
            raise ValueError(
                f"data must be finite: {len(bad)} of its {len(data)} examples hold NaN or ±inf "
                f"(the first: row {int(bad[0])})"
            )
        if selection is not None and selection[1] not in ("max", "min"):
            raise ValueError(f"selection must be (key, 'max' or 'min'), got {selection!r}")
        self.data = data
        self._build = build
        self._evaluate = evaluate
        self._selection = selection

    @property
    def train_size(self) -> int:
        return len(self.data)

    def selection(self, settings: Settings) -> tuple[str, str] | None:
        return self._selection

    def batch(self, indices: Tensor, generator: torch.Generator) -> Tensor:
        return self.data[indices]

    def build(self, settings: Settings, generator: torch.Generator) -> Model:
        model = self._build(generator)
        if not isinstance(model, Model):
            raise TypeError(f"build must return an eblvm.Model, got {type(model).__name__}")
        return model

    def stack(self, models: Sequence[Model]) -> Model:
        raise ValueError("a ModelTask trains one run at a time")

    def evaluate(self, runs: Sequence[RunSnapshot], iteration: int) -> list[dict[str, Any]]:
        if self._evaluate is None:
            return [{} for _ in runs]
        return [self._evaluate(run.model, iteration) for run in runs]

    def best_record(self, run: RunSnapshot) -> dict[str, Any]:
        posterior = run.model.posterior
        return {
            "model": {k: v.detach().cpu() for k, v in run.model.energy.state_dict().items()},
            "posterior": {} if posterior is None else posterior.state_dict(),
        }

    def finish(self, run: RunSnapshot, row: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in row.items() if key != "iteration"}

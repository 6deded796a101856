"""A training step traced once into one graph of tensor operations and compiled.

The step is a pure function of tensors that reads no tensor value (see
:mod:`eblvm.step`), so ``make_fx`` records the whole iteration — the K posterior
steps, the estimator with its derivatives, the objective, the gradients and both
Adam updates — as one forward graph, which inductor (``torch.compile``) turns into a
few fused kernels. The first call traces and compiles (its time is reported in
``compile_seconds``); later calls run the compiled graph. Compiled kernels are cached
on disk by inductor, so the next process with the same step compiles faster.

``mode``: ``on`` compiles or fails; ``auto`` compiles when it can and otherwise runs
the step eagerly, saying why in ``fallback_reason``; ``off`` runs it eagerly.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.fx.experimental.proxy_tensor import make_fx

from eblvm.step import Step, StepInfo, TrainState
from eblvm.transforms import StepTransforms

MODES = ("auto", "on", "off")


class CompiledStep:
    """``step`` compiled on its first call (see the module docstring); a step itself."""

    def __init__(self, step: Step, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.step = step
        self.runs = step.runs
        self.mode = mode
        self.compiled: Callable[..., Any] | None = None
        self.compile_seconds = 0.0
        self.fallback_reason: str | None = None if mode != "off" else "compile=off"

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    @property
    def transforms(self) -> StepTransforms:
        return self.step.transforms

    def init(self, theta: Any, phi: Any, batch: torch.Tensor) -> TrainState:
        return self.step.init(theta, phi, batch)

    def draw_noise(self, v: torch.Tensor, generator: torch.Generator) -> Any:
        return self.step.draw_noise(v, generator)

    def noise_axes(self) -> Any:
        return self.step.noise_axes()

    def __call__(
        self, state: TrainState, v: torch.Tensor, noise: Any, iteration: torch.Tensor
    ) -> tuple[TrainState, StepInfo]:
        if self.compiled is None and self.fallback_reason is None:
            self._compile(state, v, noise, iteration)
        if self.compiled is None:
            return self.step(state, v, noise, iteration)
        with torch.no_grad():
            result: tuple[TrainState, StepInfo] = self.compiled(state, v, noise, iteration)
        return result

    def _compile(
        self, state: TrainState, v: torch.Tensor, noise: Any, iteration: torch.Tensor
    ) -> None:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # inductor's own lowerings call its deprecated helpers: not the user's concern
                warnings.filterwarnings(
                    "ignore", category=FutureWarning, module=r"torch\._inductor"
                )
                graph = make_fx(self.step)(state, v, noise, iteration)
                compiled = torch.compile(graph, dynamic=False)
                compiled(state, v, noise, iteration)  # compile now, so its time is counted here
        except Exception as error:
            if self.mode == "on":
                raise RuntimeError(f"compiling the training step failed: {error}") from error
            self.fallback_reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            return
        finally:
            self.compile_seconds = time.perf_counter() - start
        self.compiled = compiled

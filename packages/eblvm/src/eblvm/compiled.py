"""A training step traced once into one graph of tensor operations and compiled.

The step is a pure function of tensors that reads no tensor value (see
:mod:`eblvm.step`), so ``make_fx`` records the whole iteration — the K posterior
steps, the estimator with its derivatives, the objective, the gradients and both
Adam updates — as one forward graph, which inductor (``torch.compile``) turns into a
few fused kernels. The first call traces and compiles (its time is reported in
``compile_seconds``); later calls run the compiled graph.

The traced graph goes to inductor directly, not through ``torch.compile``: dynamo
would trace the graph's thousand operations a second time, which took most of a
compile whose kernels were already cached. Inductor is given fake inputs under a shape
environment, which its and AOTAutograd's caches need for their keys; so the next
process with the same step loads the compiled graph from inductor's cache on disk
(``TORCHINDUCTOR_CACHE_DIR``, default ``/tmp/torchinductor_$USER``) and spends its
compile seconds on the trace and the load.

``mode``: ``on`` compiles or fails; ``auto`` compiles when it can and otherwise runs
the step eagerly, saying why in ``fallback_reason``; ``off`` runs it eagerly.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch._guards import TracingContext, tracing
from torch._inductor.compile_fx import compile_fx
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.experimental.symbolic_shapes import ShapeEnv

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
    def compiles_next(self) -> bool:
        """The next call compiles the step."""
        return self.compiled is None and self.fallback_reason is None

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
        if self.compiles_next:
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
                compiled = _inductor(graph, (state, v, noise, iteration))
                compiled(state, v, noise, iteration)  # the first run, counted here too
        except Exception as error:
            if self.mode == "on":
                refusal = _os_refusal(error)
                if refusal is not None:  # a full or read-only cache folder, not a bug
                    raise refusal from error
                raise RuntimeError(f"compiling the training step failed: {error}") from error
            self.fallback_reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            return
        finally:
            self.compile_seconds = time.perf_counter() - start
        self.compiled = compiled


def _os_refusal(error: BaseException) -> OSError | None:
    """The operating system's refusal behind a failed compile (inductor wraps it), naming
    the compile cache when the refusal names no file; None when there is none."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__ or cause.__context__
    if cause is None or cause.errno is None:
        return None
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    filename = cause.filename or f"{cache_dir()} (the compile cache, TORCHINDUCTOR_CACHE_DIR)"
    return OSError(cause.errno, cause.strerror, filename)


def _inductor(graph: torch.fx.GraphModule, example: tuple[Any, ...]) -> Callable[..., Any]:
    """``graph`` compiled by inductor for inputs shaped as ``example`` (see the module
    docstring): fake copies of them under a static shape environment."""
    fake_mode = FakeTensorMode(shape_env=ShapeEnv(), static_shapes=True)
    fakes = pytree.tree_map_only(torch.Tensor, fake_mode.from_tensor, list(example))
    with tracing(TracingContext(fake_mode)):
        compiled: Callable[..., Any] = compile_fx(graph, fakes)  # type: ignore[assignment]
        return compiled

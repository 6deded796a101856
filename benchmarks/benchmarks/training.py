"""One training iteration (K = 5 posterior steps and the θ step) of each method.

GRBM: the Frey-face shape (560 visible, 400 hidden, batch 100, DSM) and the
checkerboard shape (2 × 4). Deep: CIFAR10-shaped images (MDSM), the paper's
network at batch 64 (``cifar10``, GPU; CPU only with ``EBLVM_BENCH_FULL_CPU=1``) and
a narrow one at batch 16 (``small``). ``ebm`` is the deep EBM with its exact score,
the baseline of the EBLVM.

Per workload: ``time_`` (CPU and CUDA), ``peakmem_`` (process RSS) and two CPU
tensor-memory tracks, and on CUDA the peak allocated memory and the throughput.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import workloads as w

Build = Callable[[str, str, torch.device], w.Iteration]


class _Timing:
    """Wall time of one training iteration built by ``build(size, method, device)``."""

    build: Build
    param_names = ("size", "method", "device")

    def setup(self, size: str, method: str, device: str) -> None:
        self.iteration = type(self).build(size, method, w.device(device))
        self.iteration.step()  # warm-up: optimiser state, allocator, kernels
        w.synchronize(self.iteration.device)

    def time_iteration(self, size: str, method: str, device: str) -> None:
        self.iteration.step()
        w.synchronize(self.iteration.device)


class _Memory:
    """CPU memory of one training iteration."""

    build: Build
    param_names = ("size", "method")

    def setup(self, size: str, method: str) -> None:
        self.iteration = type(self).build(size, method, w.device("cpu"))
        self.iteration.step()

    def peakmem_iteration(self, size: str, method: str) -> None:
        """Peak resident memory of the process (set-up included)."""
        self.iteration.step()

    def track_working_mib(self, size: str, method: str) -> float:
        """Peak tensor memory of the iteration beyond parameters and optimiser state."""
        return w.working_memory_mib(self.iteration)

    track_working_mib.unit = "MiB"  # type: ignore[attr-defined]

    def track_saved_mib(self, size: str, method: str) -> float:
        """Tensors autograd saves for the θ step's backward."""
        return w.saved_tensor_mib(self.iteration)

    track_saved_mib.unit = "MiB"  # type: ignore[attr-defined]


class _GPU:
    """CUDA peak memory of one training iteration (throughput in the subclasses)."""

    build: Build
    param_names = ("size", "method")

    def setup(self, size: str, method: str) -> None:
        self.iteration = type(self).build(size, method, w.device("cuda"))
        self.iteration.step()

    def track_gpu_peak_mib(self, size: str, method: str) -> float:
        """``torch.cuda.max_memory_allocated`` over one iteration."""
        return w.gpu_peak_mib(self.iteration.step, self.iteration.device)

    track_gpu_peak_mib.unit = "MiB"  # type: ignore[attr-defined]

    def _examples_per_second(self, repeats: int) -> float:
        """Training examples per second over ``repeats`` iterations."""
        batch = len(self.iteration.v)
        return w.per_second(
            self.iteration.step, self.iteration.device, repeats=repeats, items=batch
        )


GRBM_PARAMS = (list(w.GRBM_SIZES), list(w.GRBM_METHODS))
DEEP_PARAMS = (list(w.DEEP_SIZES), list(w.DEEP_METHODS))


class GRBMIteration(_Timing):
    """Wall time of one GRBM training iteration."""

    build = staticmethod(w.grbm_iteration)
    params = (*GRBM_PARAMS, list(w.DEVICES))
    timeout = 300.0


class GRBMIterationMemory(_Memory):
    """CPU memory of one GRBM training iteration."""

    build = staticmethod(w.grbm_iteration)
    params = GRBM_PARAMS
    timeout = 300.0


class GRBMIterationGPU(_GPU):
    """CUDA memory and throughput of GRBM training iterations."""

    build = staticmethod(w.grbm_iteration)
    params = GRBM_PARAMS
    timeout = 300.0

    def track_samples_per_second(self, size: str, method: str) -> float:
        """Training examples per second over 10 iterations."""
        return self._examples_per_second(10)

    track_samples_per_second.unit = "samples/s"  # type: ignore[attr-defined]


class DeepIteration(_Timing):
    """Wall time of one deep EBLVM (or EBM) training iteration."""

    build = staticmethod(w.deep_iteration)
    params = (*DEEP_PARAMS, list(w.DEVICES))
    timeout = 600.0


class ImageStep:
    """Wall time of the deep EBLVM's training step on the CPU as a user gets it
    (``mnist-vages-mdsm`` at width 32, batch 64, one thread unless
    ``EBLVM_BENCH_THREADS``), against the eager step of the written-out network (its
    pools after the convolutions): compare the two in one run."""

    params = (list(w.IMAGE_STEP_VARIANTS),)
    param_names = ("variant",)
    timeout = 600.0

    def setup(self, variant: str) -> None:
        self.iteration = w.image_step_iteration(variant)
        self.iteration.step()  # warm-up: optimiser state, allocator, kernels

    def time_iteration(self, variant: str) -> None:
        self.iteration.step()


class DeepIterationMemory(_Memory):
    """CPU memory of one deep training iteration."""

    build = staticmethod(w.deep_iteration)
    params = DEEP_PARAMS
    timeout = 600.0


class DeepIterationGPU(_GPU):
    """CUDA memory and throughput of deep training iterations."""

    build = staticmethod(w.deep_iteration)
    params = DEEP_PARAMS
    timeout = 600.0

    def track_images_per_second(self, size: str, method: str) -> float:
        """Training images per second over 5 iterations."""
        return self._examples_per_second(5)

    track_images_per_second.unit = "images/s"  # type: ignore[attr-defined]


class StackedGRBM:
    """The checkerboard presets' training step: S runs as one stack compiled into one
    step, against the eager step of one run alone (``mode="eager"``, S = 1), as a run
    trains when it cannot be compiled. The per-run iteration cost is the time over S;
    ``track_compile_seconds`` is the trace and compile time of the setup (shorter when
    inductor's on-disk cache already holds the graph's kernels)."""

    params = (list(w.STACKED_METHODS), list(w.STACKED_RUNS), ["eager", "compiled"], list(w.DEVICES))
    param_names = ("method", "runs", "mode", "device")
    timeout = 900.0

    def setup(self, method: str, runs: int, mode: str, device: str) -> None:
        if mode == "eager" and runs != 1:
            raise NotImplementedError("the eager baseline is a single run")
        self.iteration = w.checkerboard_iteration(
            method, runs, w.device(device), compiled=mode == "compiled"
        )
        self.iteration.step()  # compiles (and warms up)
        w.synchronize(self.iteration.device)

    def time_iteration(self, method: str, runs: int, mode: str, device: str) -> None:
        self.iteration.step()
        w.synchronize(self.iteration.device)

    def track_compile_seconds(self, method: str, runs: int, mode: str, device: str) -> float:
        return float(getattr(self.iteration.train_step, "compile_seconds", 0.0))

    track_compile_seconds.unit = "s"  # type: ignore[attr-defined]

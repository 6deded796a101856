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

from . import workloads as w


class GRBMIteration:
    """Wall time of one GRBM training iteration."""

    params = (list(w.GRBM_SIZES), list(w.GRBM_METHODS), list(w.DEVICES))
    param_names = ("size", "method", "device")
    timeout = 300.0

    def setup(self, size: str, method: str, device: str) -> None:
        self.iteration = w.grbm_iteration(size, method, w.device(device))
        self.iteration.step()  # warm-up: optimiser state, allocator, kernels
        w.synchronize(self.iteration.device)

    def time_iteration(self, size: str, method: str, device: str) -> None:
        self.iteration.step()
        w.synchronize(self.iteration.device)


class GRBMIterationMemory:
    """CPU memory of one GRBM training iteration."""

    params = (list(w.GRBM_SIZES), list(w.GRBM_METHODS))
    param_names = ("size", "method")
    timeout = 300.0

    def setup(self, size: str, method: str) -> None:
        self.iteration = w.grbm_iteration(size, method, w.device("cpu"))
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


class GRBMIterationGPU:
    """CUDA memory and throughput of GRBM training iterations."""

    params = (list(w.GRBM_SIZES), list(w.GRBM_METHODS))
    param_names = ("size", "method")
    timeout = 300.0

    def setup(self, size: str, method: str) -> None:
        self.iteration = w.grbm_iteration(size, method, w.device("cuda"))
        self.iteration.step()

    def track_gpu_peak_mib(self, size: str, method: str) -> float:
        """``torch.cuda.max_memory_allocated`` over one iteration."""
        return w.gpu_peak_mib(self.iteration.step, self.iteration.device)

    track_gpu_peak_mib.unit = "MiB"  # type: ignore[attr-defined]

    def track_samples_per_second(self, size: str, method: str) -> float:
        """Training examples per second over 10 iterations."""
        batch = len(self.iteration.v)
        return w.per_second(self.iteration.step, self.iteration.device, repeats=10, items=batch)

    track_samples_per_second.unit = "samples/s"  # type: ignore[attr-defined]


class DeepIteration:
    """Wall time of one deep EBLVM (or EBM) training iteration."""

    params = (list(w.DEEP_SIZES), list(w.DEEP_METHODS), list(w.DEVICES))
    param_names = ("size", "method", "device")
    timeout = 600.0

    def setup(self, size: str, method: str, device: str) -> None:
        self.iteration = w.deep_iteration(size, method, w.device(device))
        self.iteration.step()
        w.synchronize(self.iteration.device)

    def time_iteration(self, size: str, method: str, device: str) -> None:
        self.iteration.step()
        w.synchronize(self.iteration.device)


class DeepIterationMemory:
    """CPU memory of one deep training iteration."""

    params = (list(w.DEEP_SIZES), list(w.DEEP_METHODS))
    param_names = ("size", "method")
    timeout = 600.0

    def setup(self, size: str, method: str) -> None:
        self.iteration = w.deep_iteration(size, method, w.device("cpu"))
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


class DeepIterationGPU:
    """CUDA memory and throughput of deep training iterations."""

    params = (list(w.DEEP_SIZES), list(w.DEEP_METHODS))
    param_names = ("size", "method")
    timeout = 600.0

    def setup(self, size: str, method: str) -> None:
        self.iteration = w.deep_iteration(size, method, w.device("cuda"))
        self.iteration.step()

    def track_gpu_peak_mib(self, size: str, method: str) -> float:
        """``torch.cuda.max_memory_allocated`` over one iteration."""
        return w.gpu_peak_mib(self.iteration.step, self.iteration.device)

    track_gpu_peak_mib.unit = "MiB"  # type: ignore[attr-defined]

    def track_images_per_second(self, size: str, method: str) -> float:
        """Training images per second over 5 iterations."""
        batch = len(self.iteration.v)
        return w.per_second(self.iteration.step, self.iteration.device, repeats=5, items=batch)

    track_images_per_second.unit = "images/s"  # type: ignore[attr-defined]

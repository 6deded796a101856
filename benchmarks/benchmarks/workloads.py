"""Workloads shared by the suites, built from the packages' public APIs only.

One training iteration is what the trainer does per minibatch: K posterior steps
(``score_estimators.fit_posterior``), then one θ step: the objective of
``score_objectives`` on the estimator's score, back-propagated to θ, and an Adam
step. Sizes are named; a size marked ``large`` runs on CPU only when the
environment variable ``EBLVM_BENCH_FULL_CPU=1`` is set (otherwise its benchmarks
are skipped there, as every CUDA benchmark is on a machine without a GPU).
``EBLVM_BENCH_THREADS=n`` sets torch's intra-op threads (on a small shared
machine one thread gives steadier numbers).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from ebm_models import GRBM, ConvGaussianPosteriorNet, DeepEBLVM, DeepEBM
from score_estimators import (
    BernoulliPosterior,
    BiSM,
    ExactScore,
    GaussianPosterior,
    ImportanceSampling,
    Langevin,
    VaES,
    VaGES,
    fisher_loss,
    fit_posterior,
    kl_loss,
)
from score_objectives import dsm, ksd, mdsm, noise_levels

FULL_ON_CPU = "EBLVM_BENCH_FULL_CPU"
THREADS = "EBLVM_BENCH_THREADS"
DEVICES = ("cpu", "cuda")
N_SAMPLES = 2  # L
POSTERIOR_STEPS = 5  # K
BETAS = (0.9, 0.95)
MIB = 2.0**20

ScoreFn = Callable[[Tensor], Tensor]
Objective = Callable[[ScoreFn, Tensor], Tensor]

if os.environ.get(THREADS):
    torch.set_num_threads(int(os.environ[THREADS]))


# --- devices and sizes --------------------------------------------------------------


def device(name: str) -> torch.device:
    """The device called ``name``; skips (NotImplementedError) a CUDA device that is absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("no CUDA device")
    return torch.device(name)


def require_size(dev: torch.device, *, large: bool) -> None:
    """Skip a large size on CPU unless ``EBLVM_BENCH_FULL_CPU=1``."""
    if large and dev.type == "cpu" and os.environ.get(FULL_ON_CPU) != "1":
        raise NotImplementedError(f"large size on CPU (set {FULL_ON_CPU}=1 to run it)")


def synchronize(dev: torch.device) -> None:
    """Wait for the device's queued work (timings on CUDA must include it)."""
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def on_device(dev: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Default device for the iteration's own draws: the posteriors draw their noise on
    torch's default device, so a CUDA iteration runs inside ``torch.device(dev)``."""
    return contextlib.nullcontext() if dev.type == "cpu" else dev


@dataclass(frozen=True)
class GRBMSize:
    v_dim: int
    h_dim: int
    batch: int


@dataclass(frozen=True)
class DeepSize:
    """CIFAR10-shaped images; network widths, depth and batch set the cost."""

    base_width: int
    blocks_per_stage: int
    posterior_width: int
    batch: int
    large: bool = False
    channels: int = 3
    image_size: int = 32
    h_dim: int = 50


GRBM_SIZES = {
    "checkerboard": GRBMSize(v_dim=2, h_dim=4, batch=100),
    "frey": GRBMSize(v_dim=560, h_dim=400, batch=100),
}
DEEP_SIZES = {
    "small": DeepSize(base_width=32, blocks_per_stage=1, posterior_width=8, batch=16),
    "cifar10": DeepSize(
        base_width=256, blocks_per_stage=3, posterior_width=64, batch=64, large=True
    ),
}
GRBM_METHODS = ("exact", "vaes", "vages", "is", "bism0", "bism2", "bism5")
DEEP_METHODS = ("ebm", "vaes", "vages", "is", "bism0", "bism2", "bism5")


# --- one training iteration ---------------------------------------------------------


def _adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr, betas=BETAS)


@dataclass
class Iteration:
    """One training iteration of ``energy`` on the minibatch ``v``.

    ``fit()``: K = ``posterior_steps`` steps of ``posterior_loss`` on the fitted
    ``posterior`` (none without one) at the minibatch v, or at ``fit_points(v)``
    (drawn once per iteration) when given; ``theta_loss()``: the objective of the score
    ``estimator(energy, sampler, ·)``; ``step()``: fit, then one θ step on that loss.
    """

    energy: nn.Module
    estimator: Callable[..., Tensor]
    objective: Objective
    v: Tensor
    lr: float
    posterior: nn.Module | None = None
    sampler: Any = None
    posterior_loss: Callable[..., Tensor] = kl_loss
    posterior_steps: int = POSTERIOR_STEPS
    fit_points: Callable[[Tensor], Tensor] | None = None
    theta: list[nn.Parameter] = field(init=False)
    theta_optimizer: torch.optim.Optimizer = field(init=False)
    posterior_optimizer: torch.optim.Optimizer | None = field(init=False)

    def __post_init__(self) -> None:
        self.theta = [p for p in self.energy.parameters() if p.requires_grad]
        self.theta_optimizer = _adam(self.energy, self.lr)
        self.posterior_optimizer = (
            None if self.posterior is None else _adam(self.posterior, self.lr)
        )

    @property
    def device(self) -> torch.device:
        return self.v.device

    def clear_grads(self) -> None:
        """Drop θ's and φ's gradients (as every step does before its backward pass)."""
        self.theta_optimizer.zero_grad(set_to_none=True)
        if self.posterior_optimizer is not None:
            self.posterior_optimizer.zero_grad(set_to_none=True)

    def fit(self) -> None:
        if self.posterior is None or self.posterior_optimizer is None:
            return
        fit_posterior(
            self.energy,
            self.posterior,
            self.v if self.fit_points is None else self.fit_points(self.v),
            self.posterior_optimizer,
            steps=self.posterior_steps,
            loss=self.posterior_loss,
        )

    def theta_loss(self) -> Tensor:
        return self.objective(lambda x: self.estimator(self.energy, self.sampler, x), self.v)

    def step(self) -> None:
        with on_device(self.device):
            self.fit()
            loss = self.theta_loss()
            self.theta_optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=self.theta)
            self.theta_optimizer.step()


def _score_estimator(
    method: str, posterior_loss: Callable[..., Tensor], inner_lr: float
) -> Callable[..., Tensor]:
    if method == "exact" or method == "ebm":
        return ExactScore()
    if method == "vaes":
        return VaES(N_SAMPLES)
    if method == "vages":
        return VaGES(N_SAMPLES)
    if method == "is":
        return ImportanceSampling(N_SAMPLES)
    if method.startswith("bism"):
        return BiSM(int(method[4:]), n_samples=N_SAMPLES, loss=posterior_loss, inner_lr=inner_lr)
    raise ValueError(f"unknown method {method!r}")


def grbm_model(size: GRBMSize, dev: torch.device, *, seed: int = 0) -> GRBM:
    """A GRBM with small random W and b at ½ (the data mean of uniform data)."""
    model = GRBM(size.v_dim, size.h_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model.b.fill_(0.5)
    return model.to(dev)


def grbm_data(
    size: GRBMSize, dev: torch.device, *, batch: int | None = None, seed: int = 1
) -> Tensor:
    """Uniform data in [0, 1]: (batch, D)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch or size.batch, size.v_dim, generator=g).to(dev)


def grbm_iteration(
    size_name: str,
    method: str,
    dev: torch.device,
    *,
    objective: Objective | None = None,
    batch: int | None = None,
    posterior_steps: int = POSTERIOR_STEPS,
    seed: int = 0,
) -> Iteration:
    """A GRBM training iteration with the Frey-face settings (DSM σ 0.3, Adam 2e-4):
    Bernoulli q with a linear network (temperature 0.1) fitted by KL, L = 2, K = 5.
    ``method``: one of ``GRBM_METHODS``."""
    size = GRBM_SIZES[size_name]
    torch.manual_seed(seed)
    energy = grbm_model(size, dev, seed=seed)
    v = grbm_data(size, dev, batch=batch, seed=seed + 1)
    objective = objective or partial(dsm, sigma=0.3)
    estimator = _score_estimator(method, kl_loss, inner_lr=1e-3)
    if method == "exact":
        return Iteration(energy, estimator, objective, v, lr=2e-4, posterior_steps=0)
    posterior = BernoulliPosterior(nn.Linear(size.v_dim, size.h_dim), temperature=0.1).to(dev)
    return Iteration(
        energy,
        estimator,
        objective,
        v,
        lr=2e-4,
        posterior=posterior if posterior_steps else None,
        sampler=posterior,
        posterior_steps=posterior_steps,
    )


SIGMA_MIN, SIGMA_MAX, SIGMA0 = 0.05, 1.2, 0.1


def mdsm_objective(score_fn: ScoreFn, v: Tensor) -> Tensor:
    """MDSM of the deep models: σ in [0.05, 1.2] spread linearly over the batch, σ0 0.1."""
    return mdsm(score_fn, v, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, sigma0=SIGMA0)


def mdsm_noisy(v: Tensor) -> Tensor:
    """Noisy images v + σ ε with MDSM's noise levels σ over the batch: (B, C, S, S)."""
    levels = noise_levels(
        len(v), sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, schedule="linear", dtype=v.dtype
    )
    return v + levels.to(v.device).view(-1, 1, 1, 1) * torch.randn_like(v)


def deep_images(size: DeepSize, dev: torch.device, *, seed: int = 1) -> Tensor:
    """Uniform images in [0, 1]: (B, C, S, S)."""
    g = torch.Generator().manual_seed(seed)
    shape = (size.batch, size.channels, size.image_size, size.image_size)
    return torch.rand(shape, generator=g).to(dev)


def deep_iteration(size_name: str, method: str, dev: torch.device, *, seed: int = 0) -> Iteration:
    """A deep training iteration with the CIFAR10 settings (MDSM, Adam 5e-5).

    ``ebm``: the deep EBM with its exact score. Otherwise the deep EBLVM, Gaussian q
    with the convolutional network fitted by the posterior Fisher divergence, K = 5
    steps at one batch of noisy images (MDSM's noise levels), L = 2. VaES and VaGES draw
    from q refined by 5 Langevin steps in h (step 1e-2, noise 1e-4); IS and BiSM need
    q's density and use q itself. BiSM unrolls with step size 1e-4: at this
    initialisation 1e-3 diverges within 5 unrolled steps (the cost is the same).
    """
    size = DEEP_SIZES[size_name]
    require_size(dev, large=size.large)
    torch.manual_seed(seed)
    v = deep_images(size, dev, seed=seed + 1)
    net = {"base_width": size.base_width, "blocks_per_stage": size.blocks_per_stage}
    estimator = _score_estimator(method, fisher_loss, inner_lr=1e-4)
    if method == "ebm":
        ebm = DeepEBM(size.channels, image_size=size.image_size, **net).to(dev)
        return Iteration(ebm, estimator, mdsm_objective, v, lr=5e-5, posterior_steps=0)
    energy = DeepEBLVM(size.channels, size.h_dim, image_size=size.image_size, **net).to(dev)
    posterior_net = ConvGaussianPosteriorNet(
        size.channels, size.h_dim, width=size.posterior_width, image_size=size.image_size
    )
    posterior = GaussianPosterior(posterior_net).to(dev)
    if method in ("vaes", "vages"):
        refine = Langevin(5, step_size=1e-2, noise_std=1e-4)
        estimator = (VaES if method == "vaes" else VaGES)(N_SAMPLES, refine=refine)
    return Iteration(
        energy,
        estimator,
        mdsm_objective,
        v,
        lr=5e-5,
        posterior=posterior,
        sampler=posterior,
        posterior_loss=fisher_loss,
        fit_points=mdsm_noisy,
    )


# --- memory and throughput ----------------------------------------------------------


def peak_tensor_mib(fn: Callable[[], object]) -> float:
    """Peak of the CPU tensor memory allocated while ``fn()`` runs, above what was
    allocated before it (MiB): the running sum of the profiler's allocation and free
    events, the CPU counterpart of ``torch.cuda.max_memory_allocated``."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if event.device_type() == DeviceType.CPU:
            live += event.nbytes()
            peak = max(peak, live)
    return peak / MIB


def working_memory_mib(iteration: Iteration) -> float:
    """Peak tensor memory (MiB) of one training iteration beyond what persists between
    iterations (parameters, optimiser state, data): gradients are dropped first, so
    everything the iteration allocates, gradients included, counts."""
    iteration.clear_grads()
    return peak_tensor_mib(iteration.step)


@contextlib.contextmanager
def saved_tensor_bytes() -> Iterator[list[int]]:
    """Sum, into the yielded one-element list, the bytes of the distinct storages that
    autograd saves for backward inside the block (each counted once)."""
    total = [0]
    storages: dict[int, torch.UntypedStorage] = {}  # held, so no address is reused

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in storages:
            storages[storage.data_ptr()] = storage
            total[0] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield total


def saved_tensor_mib(iteration: Iteration) -> float:
    """Bytes (MiB) that autograd saves while ``iteration.theta_loss()`` builds the θ
    step's loss: the graph of the objective of the estimated score that the backward
    pass holds (after the posterior fit, which is not counted)."""
    with on_device(iteration.device):
        iteration.fit()
        with saved_tensor_bytes() as total:
            iteration.theta_loss()
    return total[0] / MIB


def gpu_peak_mib(fn: Callable[[], object], dev: torch.device) -> float:
    """``torch.cuda.max_memory_allocated`` over ``fn()``, in MiB (model and optimiser
    state included, as a training run holds them)."""
    synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    fn()
    synchronize(dev)
    return torch.cuda.max_memory_allocated(dev) / MIB


def per_second(fn: Callable[[], object], dev: torch.device, *, repeats: int, items: int) -> float:
    """Throughput: ``items`` per call of ``fn``, over ``repeats`` calls, per second."""
    synchronize(dev)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(dev)
    return repeats * items / (time.perf_counter() - start)


# --- evaluation workloads -----------------------------------------------------------

AIS_CHAINS = 2000


def ais_matrix_products(grbm: GRBM, *, n_chains: int, n_steps: int) -> None:
    """The matrix products of ``n_steps`` AIS steps alone, dense: m = F h, (N, H)·(H, r),
    and a + Fᵀ(β m + z), (N, r)·(r, H), into fresh outputs, with F the path's factor of
    (σ ⊙ W)ᵀ(σ ⊙ W) (σ ⊙ W itself when H ≥ D, else its QR's R). The bar is these dense
    products of AIS's widths; on CPU AIS multiplies a triangular R in blocks that skip
    most of its zero triangle, so it can come in under it."""
    from eblvm_eval import ais_params

    params = ais_params(grbm)
    factor, bias = params.gram_factor, params.hidden_bias
    dev, dtype = factor.device, factor.dtype
    hidden = torch.rand(n_chains, bias.numel(), device=dev, dtype=dtype).round_()
    noisy = torch.randn(n_chains, params.noise_dim, device=dev, dtype=dtype)
    for _ in range(n_steps):
        torch.mm(hidden, factor.T)
        torch.addmm(bias, noisy, factor)


def ksd_objective(score_fn: ScoreFn, v: Tensor) -> Tensor:
    """KSD with the RBF kernel at the median bandwidth."""
    return ksd(score_fn, v)


def conditional_score(energy: Callable[[Tensor, Tensor], Tensor], h: Tensor) -> ScoreFn:
    """v ↦ −∇_v E(v, h) with h fixed: the score the annealed sampler follows."""

    def score_fn(v: Tensor) -> Tensor:
        with torch.enable_grad():
            node = v.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(node, h).sum(), node)
        return -grad

    return score_fn


def langevin_workload(
    size_name: str, dev: torch.device, *, seed: int = 0
) -> tuple[ScoreFn, Tensor]:
    """The deep EBLVM's sampling set-up: h the posterior mean of an image, held fixed;
    chains from uniform noise, one per image of the batch. -> (score_fn, v0)."""
    size = DEEP_SIZES[size_name]
    require_size(dev, large=size.large)
    torch.manual_seed(seed)
    net = {"base_width": size.base_width, "blocks_per_stage": size.blocks_per_stage}
    energy = DeepEBLVM(size.channels, size.h_dim, image_size=size.image_size, **net)
    energy = energy.to(dev).requires_grad_(False)
    posterior_net = ConvGaussianPosteriorNet(
        size.channels, size.h_dim, width=size.posterior_width, image_size=size.image_size
    )
    posterior = GaussianPosterior(posterior_net).to(dev).requires_grad_(False)
    images = deep_images(size, dev, seed=seed + 1)
    with torch.no_grad():
        mean, _ = posterior.mean_and_log_std(images)
    return conditional_score(energy, mean), deep_images(size, dev, seed=seed + 2)

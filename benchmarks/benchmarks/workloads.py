"""Workloads shared by the suites, built from the packages' public APIs.

One training iteration is the toolkit's own training step (``eblvm.step``, built by
``eblvm.parts.build_step`` from settings, as the trainer builds it): K posterior
steps, then one θ step on the objective of the estimator's score, and both Adam
updates, with the iteration's draws made beforehand from the run's generator. Sizes
are named; a size marked ``large`` runs on CPU only when the environment variable
``EBLVM_BENCH_FULL_CPU=1`` is set (otherwise its benchmarks are skipped there, as
every CUDA benchmark is on a machine without a GPU). ``EBLVM_BENCH_THREADS=n`` sets
torch's intra-op threads (on a small shared machine one thread gives steadier numbers).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from ebm_models import GRBM, ConvGaussianPosteriorNet, DeepEBLVM
from ebm_models.deep import _ResidualBlock
from score_estimators import BernoulliPosterior, GaussianPosterior

FULL_ON_CPU = "EBLVM_BENCH_FULL_CPU"
THREADS = "EBLVM_BENCH_THREADS"
DEVICES = ("cpu", "cuda")
N_SAMPLES = 2  # L
POSTERIOR_STEPS = 5  # K
MIB = 2.0**20

ScoreFn = Callable[[Tensor], Tensor]

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


# --- one training iteration -------------------------------------------------------


def eblvm(module: str) -> Any:
    """``eblvm.<module>``; skips the benchmark where the commit's eblvm lacks it."""
    try:
        return importlib.import_module(f"eblvm.{module}")
    except ImportError as error:
        raise NotImplementedError(f"eblvm.{module} is not installed: {error}") from error


def _method(method: str) -> dict[str, Any]:
    """The method section of a benchmark method's name: exact, vaes, vages, is, bismN, cd."""
    if method in ("exact", "ebm"):
        return {"name": "exact"}
    if method.startswith("bism"):
        return {"name": "bism", "n_unroll": int(method[4:]), "n_samples": N_SAMPLES}
    return {"name": method, "n_samples": N_SAMPLES}


@dataclass
class Iteration:
    """The training step of a run (or a stack of runs) on a fixed batch ``v``: each call
    of :meth:`step` draws the iteration's noise from the runs' generators and steps.
    ``theta_only`` is the same step without the posterior fit (for the θ step's memory).
    """

    train_step: Any
    state: Any
    v: Tensor
    runs: int
    theta_only: Any = None
    generators: list[torch.Generator] = dataclasses.field(default_factory=list)
    iteration: int = 0

    def __post_init__(self) -> None:
        if not self.generators:
            self.generators = [
                torch.Generator(self.v.device).manual_seed(100 + run) for run in range(self.runs)
            ]

    @property
    def device(self) -> torch.device:
        return self.v.device

    def noise(self, step: Any) -> Any:
        pieces = self.v.chunk(self.runs)
        draws = [
            step.draw_noise(piece, g) for piece, g in zip(pieces, self.generators, strict=True)
        ]
        return eblvm("step").fold_noise(draws, step.noise_axes())

    def step(self) -> None:
        """One training iteration (its draws included)."""
        self.iteration += 1
        t = torch.tensor(float(self.iteration), dtype=torch.float64, device=self.device)
        self.state, _ = self.train_step(self.state, self.v, self.noise(self.train_step), t)

    def theta_step(self) -> None:
        """The θ step alone, from the same state (nothing is kept)."""
        step = self.theta_only
        t = torch.tensor(1.0, dtype=torch.float64, device=self.device)
        step(self.state, self.v, self.noise(step), t)


def _iteration(
    settings: Any,
    model: Any,
    v: Tensor,
    *,
    runs: int = 1,
    compiled: bool = False,
    data: Tensor | None = None,
) -> Iteration:
    functional, build_step = eblvm("functional"), eblvm("parts").build_step
    stacked = runs > 1 or compiled or settings.method.declared.sampler
    layout, ranks = functional.Runs(runs, stacked), eblvm("distributed").Ranks(device=v.device)
    step = build_step(settings, model, layout, ranks, data=data)
    theta = functional.parameters_of(model.energy)
    phi = {} if model.posterior is None else functional.parameters_of(model.posterior)
    state = step.init(theta, phi, v)
    theta_only = None
    if not settings.method.declared.sampler:
        theta_only = build_step(
            settings.changed(posterior={"steps": 0}), model, layout, ranks, data=data
        )
    train_step = eblvm("compiled").CompiledStep(step, "on") if compiled else step
    return Iteration(train_step, state, v, runs, theta_only)


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
    objective: str = "dsm",
    batch: int | None = None,
    posterior_steps: int = POSTERIOR_STEPS,
    seed: int = 0,
) -> Iteration:
    """A GRBM training iteration with the Frey-face settings (DSM σ 0.3, Adam 2e-4):
    Bernoulli q with a linear network (temperature 0.1) fitted by KL, L = 2, K = 5.
    ``method``: one of ``GRBM_METHODS``."""
    Model, Settings = eblvm("parts").Model, eblvm("settings").Settings
    size = GRBM_SIZES[size_name]
    torch.manual_seed(seed)
    v = grbm_data(size, dev, batch=batch, seed=seed + 1)
    settings = Settings().changed(
        data={"batch_size": len(v)},
        method=_method(method),
        objective={"name": objective, "sigma": 0.3},
        posterior={"steps": posterior_steps, "lr": 2e-4},
        optimiser={"lr": 2e-4},
    )
    posterior = None
    if settings.method.declared.posterior:
        posterior = BernoulliPosterior(nn.Linear(size.v_dim, size.h_dim), temperature=0.1).to(dev)
    model = Model(grbm_model(size, dev, seed=seed), posterior, (size.h_dim,))
    return _iteration(settings, model, v)


def deep_images(size: DeepSize, dev: torch.device, *, seed: int = 1) -> Tensor:
    """Uniform images in [0, 1]: (B, C, S, S)."""
    g = torch.Generator().manual_seed(seed)
    shape = (size.batch, size.channels, size.image_size, size.image_size)
    return torch.rand(shape, generator=g).to(dev)


def deep_iteration(size_name: str, method: str, dev: torch.device, *, seed: int = 0) -> Iteration:
    """A deep training iteration with the CIFAR10 settings (MDSM, Adam 5e-5).

    ``ebm``: the deep EBM with its exact score. Otherwise the deep EBLVM, Gaussian q
    with the convolutional network fitted by the posterior Fisher divergence, K = 5
    steps at the objective's noisy images, L = 2. VaES and VaGES refine their draws by
    5 Langevin steps in h (step 1e-2, noise 1e-4); IS and BiSM need q's density and use
    q itself. BiSM unrolls with step size 1e-4: at this initialisation 1e-3 diverges
    within 5 unrolled steps (the cost is the same).
    """
    build_model, Model = eblvm("images.models").build_model, eblvm("parts").Model
    size = DEEP_SIZES[size_name]
    require_size(dev, large=size.large)
    declared = eblvm("methods").method_named(_method(method)["name"])
    refine = 5 if "refine_steps" in declared.reads else 0
    settings = eblvm("images.presets").CIFAR10.changed(
        data={"batch_size": size.batch, "channels": size.channels, "image_size": size.image_size},
        model={
            "h_dim": size.h_dim,
            "base_width": size.base_width,
            "blocks_per_stage": size.blocks_per_stage,
            "posterior_width": size.posterior_width,
        },
        method={**_method(method), "refine_steps": refine, "inner_lr": 1e-4},
        optimiser={"ema_decay": 0.0, "schedule": "constant"},
    )
    settings = dataclasses.replace(settings, seed=seed, device=dev.type)
    model = build_model(settings)
    posterior = None if model.posterior is None else model.posterior.to(dev)
    model = Model(model.energy.to(dev), posterior, model.latent_shape)
    return _iteration(settings, model, deep_images(size, dev, seed=seed + 1))


STACKED_METHODS = (
    "vages-dsm",
    "nce",
    "vnce",
    "dsm",
    "cd",
    "pcd",
    "bism-dsm-n0",
    "bism-dsm-n2",
    "bism-dsm-n5",
    "vages-ssm",
    "ssm",
    "ksd",
    "vages-ksd-l2",
    "vages-ksd-l5",
    "vages-ksd-l10",
    "is-ksd-l2",
    "is-ksd-l5",
    "is-ksd-l10",
)
STACKED_RUNS = (1, 3, 10, 30)


def checkerboard_iteration(
    method: str, runs: int, dev: torch.device, *, compiled: bool
) -> Iteration:
    """The ``checkerboard-<method>`` preset's step for ``runs`` seeds on their batches:
    a stack compiled into one step, or (``compiled=False``, one run) the eager step of
    a single run, as a run is trained when it cannot be compiled."""
    presets = eblvm("presets")
    settings = dataclasses.replace(presets.get_preset(f"checkerboard-{method}"), device=dev.type)
    task = presets.task_for(settings)
    models = [
        task.build(dataclasses.replace(settings, seed=s), torch.Generator().manual_seed(s))
        for s in range(runs)
    ]
    stacked = runs > 1 or compiled or settings.method.declared.sampler
    model = task.stack(models) if stacked else models[0]
    posterior = None if model.posterior is None else model.posterior.to(dev)
    model = eblvm("parts").Model(model.energy.to(dev), posterior, model.latent_shape)
    generator = torch.Generator().manual_seed(1)
    batch = settings.data.batch_size
    v = torch.cat(
        [
            task.batch(torch.randint(task.train_size, (batch,), generator=generator), generator)
            for _ in range(runs)
        ]
    )
    data = task.batch(torch.arange(min(10_000, task.train_size)), generator)
    return _iteration(settings, model, v.to(dev), runs=runs, compiled=compiled, data=data.to(dev))


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
    iterations (parameters, optimiser state, data): everything the iteration allocates,
    its draws and gradients included, counts."""
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
    """Bytes (MiB) that autograd saves while the θ step runs (without the posterior
    fit): the graph of the objective of the estimated score that the backward pass
    holds."""
    with saved_tensor_bytes() as total:
        iteration.theta_step()
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


# --- the deep step on a CPU, as a user gets it --------------------------------------

IMAGE_STEP_VARIANTS = ("default", "written-out")


def _pool_after_conv(block: nn.Module, x: Tensor) -> Tensor:
    """A residual block as the paper writes it: pool(conv₂(ELU(conv₁(ELU(x))))) plus the
    shortcut of the pooled x (the deep models compute the pool inside the convolution)."""
    residual = block.conv2(torch.nn.functional.elu(block.conv1(torch.nn.functional.elu(x))))
    if block.down:
        residual = torch.nn.functional.avg_pool2d(residual, 2)
        x = torch.nn.functional.avg_pool2d(x, 2)
    return block.shortcut(x) + residual


def image_step_iteration(variant: str, *, seed: int = 0) -> Iteration:
    """The eager training step of ``mnist-vages-mdsm`` on the CPU at width 32, one block
    per stage, posterior width 16, batch 64 (L = 2 refined by 5 Langevin steps, K = 5
    posterior steps), on random 1×32×32 images: ``default`` as the trainer builds it,
    ``written-out`` with the residual blocks' pool after the convolution (the step
    before the deep models computed it inside the convolution)."""
    if variant not in IMAGE_STEP_VARIANTS:
        raise ValueError(f"variant must be one of {IMAGE_STEP_VARIANTS}, got {variant!r}")
    settings = eblvm("presets").get_preset("mnist-vages-mdsm")
    settings = eblvm("settings").apply_overrides(
        settings,
        [
            "dataset=random",
            "channels=1",
            "image_size=32",
            "base_width=32",
            "blocks_per_stage=1",
            "posterior_width=16",
            "batch_size=64",
            f"seed={seed}",
            "device=cpu",
        ],
    )
    model = eblvm("images.models").build_model(settings)
    if variant == "written-out":
        for module in model.energy.modules():
            if isinstance(module, _ResidualBlock):
                module.forward = _pool_after_conv.__get__(module)
    v = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(seed + 1))
    return _iteration(settings, model, v)

"""Settings of a deep EBLVM (or deep EBM) run on images: one typed, frozen record."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from eblvm.config import check_fields, settings_fingerprint

IMAGE_DATASETS = ("mnist", "cifar10", "celeba", "digits32", "random")
IMAGE_METHODS = ("vages", "bism", "ebm")
DEVICES = ("auto", "cpu", "cuda")

# (channels, image size) of the data sets whose images have a fixed shape; CelebA is
# resized to image_size, random images take the configured shape.
NATIVE_SHAPES = {"mnist": (1, 32), "cifar10": (3, 32), "digits32": (1, 32), "celeba": (3, None)}

_STAGES = 3  # the residual network halves the resolution three times


@dataclass(frozen=True)
class ImageTrainConfig:
    """Everything that defines an image run; the defaults are the paper's CIFAR10 VaGES-MDSM.

    Data: ``dataset`` is ``mnist`` (padded to 32×32), ``cifar10``, ``celeba`` (resized
    to ``image_size``), read from ``data_root``; ``digits32`` (scikit-learn's digits,
    bundled, padded to 32×32) or ``random`` (``n_train`` random 8-bit images of shape
    ``channels × image_size × image_size``). Each batch is uniformly dequantised and,
    with ``hflip``, flipped left-right at random.

    Method: ``vages`` (VaGES with L = ``n_samples`` draws of the Gaussian posterior,
    refined by ``refine_steps`` Langevin steps in h), ``bism`` (BiSM with N =
    ``n_unroll``), ``ebm`` (the deep EBM's exact score). The posterior is fitted by the
    posterior Fisher divergence, each image weighted by 1/σ, for K = ``posterior_steps``
    steps per minibatch. The
    objective is MDSM with σ linear in [``mdsm_sigma_min``, ``mdsm_sigma_max``] over the
    batch and σ0 = ``mdsm_sigma0``. Adam (``beta1``, ``beta2``) with cosine decay to
    ``lr_min`` over ``iterations``; an exponential moving average (``ema_decay``) of θ
    is kept for sampling and FID. ``batch_size`` is the global batch, split over the
    processes of a distributed run.

    Checkpoint selection by FID on ``fid_samples`` samples every ``fid_every``
    iterations runs when ``fid_stats`` names reference statistics (.npz) and Inception
    weights are configured (``fid_weights`` or the EBLVM_FID_WEIGHTS variable).
    Samples come from annealed Langevin dynamics: ``sample_hold_steps`` at
    T = ``sample_t_max``, ``sample_anneal_steps`` geometric steps to T = 1,
    ``sample_final_steps`` to T = 0, step ``sample_step_size``, then one denoising step.
    """

    dataset: str = "cifar10"
    data_root: str = "data"
    channels: int = 3
    image_size: int = 32
    n_train: int = 10_000
    hflip: bool = False
    method: str = "vages"
    h_dim: int = 50
    base_width: int = 256
    blocks_per_stage: int = 3
    posterior_width: int = 64
    n_samples: int = 2
    posterior_steps: int = 5
    n_unroll: int = 0
    inner_lr: float = 1e-3
    refine_steps: int = 5
    refine_step_size: float = 1e-2
    refine_noise_std: float = 1e-4
    mdsm_sigma_min: float = 0.05
    mdsm_sigma_max: float = 1.2
    mdsm_sigma0: float = 0.1
    batch_size: int = 100
    iterations: int = 300_000
    lr: float = 5e-5
    posterior_lr: float = 5e-5
    lr_min: float = 1e-6
    beta1: float = 0.9
    beta2: float = 0.95
    ema_decay: float = 0.999
    amp: bool = False
    device: str = "auto"
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 5000
    fid_every: int = 5000
    fid_samples: int = 1000
    fid_stats: str = ""
    fid_weights: str = ""
    sample_hold_steps: int = 500
    sample_anneal_steps: int = 2000
    sample_final_steps: int = 200
    sample_t_max: float = 100.0
    sample_step_size: float = 0.02

    def __post_init__(self) -> None:
        check_fields(
            self,
            choices={"dataset": IMAGE_DATASETS, "method": IMAGE_METHODS, "device": DEVICES},
            minimums={
                "channels": 1,
                "image_size": 2**_STAGES,
                "n_train": 2,
                "h_dim": 1,
                "base_width": 1,
                "blocks_per_stage": 1,
                "posterior_width": 1,
                "n_samples": 2 if self.method == "vages" else 1,
                "posterior_steps": 0,
                "n_unroll": 0,
                "refine_steps": 0,
                "batch_size": 2,
                "iterations": 1,
                "log_every": 1,
                "checkpoint_every": 1,
                "fid_every": 1,
                "fid_samples": 2,
                "sample_hold_steps": 0,
                "sample_anneal_steps": 0,
                "sample_final_steps": 0,
            },
            positives=(
                "inner_lr",
                "refine_step_size",
                "mdsm_sigma0",
                "lr",
                "posterior_lr",
                "sample_step_size",
            ),
        )
        if self.image_size % 2**_STAGES:
            raise ValueError(f"image_size must be a multiple of 8, got {self.image_size}")
        if not 0 <= self.refine_noise_std < math.inf:
            raise ValueError(f"refine_noise_std must be >= 0, got {self.refine_noise_std}")
        if not 0 < self.mdsm_sigma_min <= self.mdsm_sigma_max < math.inf:
            raise ValueError("mdsm_sigma_min must be positive and at most mdsm_sigma_max")
        if not 0 <= self.lr_min <= min(self.lr, self.posterior_lr):
            raise ValueError(
                f"lr_min must be in [0, min(lr, posterior_lr)], got {self.lr_min} "
                f"(lr {self.lr}, posterior_lr {self.posterior_lr})"
            )
        if not (0 <= self.ema_decay < 1 and 0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("ema_decay, beta1 and beta2 must lie in [0, 1)")
        if not 1 <= self.sample_t_max < math.inf:
            raise ValueError(f"sample_t_max must be >= 1 (T anneals to 1), got {self.sample_t_max}")
        if self.sample_hold_steps + self.sample_anneal_steps + self.sample_final_steps == 0:
            raise ValueError("the sampling schedule needs at least one step")
        if self.amp and self.device == "cpu":
            raise ValueError("amp (bf16 autocast) runs on CUDA only; it cannot be used with cpu")
        channels, size = NATIVE_SHAPES.get(self.dataset, (self.channels, self.image_size))
        if (channels, size or self.image_size) != (self.channels, self.image_size):
            size_text = f"{size}×{size}" if size else "any size"
            raise ValueError(
                f"dataset {self.dataset} has {channels}-channel images ({size_text}), "
                f"got channels={self.channels}, image_size={self.image_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A hash of the settings that change the run's trajectory (paths and the device
        excluded; ``iterations`` included, as it sets the learning-rate schedule)."""
        return settings_fingerprint(self.to_dict(), exclude=_NOT_IN_FINGERPRINT)


_NOT_IN_FINGERPRINT = frozenset({"data_root", "fid_stats", "fid_weights", "device"})

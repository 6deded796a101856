"""The paper's deep EBLVM experiments (and the EBM they are compared with) as named
image configurations (METHOD.md, "Deep EBLVM"; appendix F.2.2).

MNIST, CIFAR10, CelebA: h = 50, g1 a residual net of 6k convolutions (k = 2, 3, 3),
Gaussian q with a conv parameter net fitted by the posterior Fisher divergence for
K = 5 steps per minibatch, MDSM with σ linear in [0.05, 1.2] and σ0 = 0.1, Adam
(0.9, 0.95) at 1e-4 (MNIST) or 5e-5 (CIFAR10, CelebA) with cosine decay, batch 100,
100k (MNIST) or 300k iterations, EMA 0.999, a checkpoint and (when configured) an FID
on 1000 samples every 5000 iterations. VaGES: L = 2 draws refined by 5 Langevin steps
in h (step 1e-2, noise 1e-4); BiSM: N = 0, 2, 5 unrolled steps, one draw; EBM: the
deep EBM's exact score.

``digits32-*``: the bundled digits padded to 32×32 with a small network, minutes on a
CPU. ``random-*``: the CIFAR10 model on random images, for benchmarks and GPU checks.
"""

from __future__ import annotations

import dataclasses

from eblvm.image_config import ImageTrainConfig

MNIST = ImageTrainConfig(
    dataset="mnist",
    channels=1,
    blocks_per_stage=2,
    lr=1e-4,
    posterior_lr=1e-4,
    iterations=100_000,
)
CIFAR10 = ImageTrainConfig(dataset="cifar10", channels=3, blocks_per_stage=3)
CELEBA = ImageTrainConfig(
    dataset="celeba", channels=3, image_size=64, blocks_per_stage=3, hflip=True
)
DIGITS32 = ImageTrainConfig(
    dataset="digits32",
    channels=1,
    h_dim=16,
    base_width=8,
    blocks_per_stage=1,
    posterior_width=8,
    batch_size=32,
    iterations=3000,
    lr=1e-3,
    posterior_lr=1e-3,
    lr_min=1e-5,
    log_every=50,
    checkpoint_every=500,
    fid_every=1000,
    fid_samples=500,
    sample_hold_steps=100,
    sample_anneal_steps=300,
    sample_final_steps=50,
)
RANDOM = dataclasses.replace(
    CIFAR10, dataset="random", n_train=2000, iterations=200, log_every=10, checkpoint_every=100
)

# The settings each data set's presets share: its images' shape (CelebA 64×64) and, for
# random images, their count and seed.
DATASET_PRESETS: dict[str, ImageTrainConfig] = {
    "mnist": MNIST,
    "cifar10": CIFAR10,
    "celeba": CELEBA,
    "digits32": DIGITS32,
    "random": RANDOM,
}


def _variants(prefix: str, base: ImageTrainConfig) -> dict[str, ImageTrainConfig]:
    replace = dataclasses.replace
    presets = {f"{prefix}-vages-mdsm": replace(base, method="vages")}
    for n in (0, 2, 5):
        presets[f"{prefix}-bism-mdsm-n{n}"] = replace(base, method="bism", n_unroll=n, n_samples=1)
    presets[f"{prefix}-ebm-mdsm"] = replace(base, method="ebm")
    return presets


IMAGE_PRESETS: dict[str, ImageTrainConfig] = {
    **_variants("mnist", MNIST),
    **_variants("cifar10", CIFAR10),
    **_variants("celeba", CELEBA),
    **_variants("digits32", DIGITS32),
    **_variants("random", RANDOM),
}


def get_image_preset(name: str) -> ImageTrainConfig:
    """The named image preset; an unknown name lists the known ones."""
    try:
        return IMAGE_PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown image preset {name!r}; run `eblvm list` to see them: "
            f"{', '.join(IMAGE_PRESETS)}"
        ) from None

"""Small runs of each family for the eblvm tests."""

from __future__ import annotations

from eblvm.presets import get_preset
from eblvm.settings import Settings, apply_overrides

# Random 8×8 one-channel images and the smallest deep EBLVM: a step in milliseconds.
RANDOM_IMAGES = (
    "dataset=random",
    "channels=1",
    "image_size=8",
    "n_train=16",
    "h_dim=3",
    "base_width=2",
    "posterior_width=2",
    "batch_size=4",
)


def small_grbm(*assignments: str, toy: bool = True) -> Settings:
    """Checkerboard VaGES-DSM on 2000 points (``toy=False``: for a data set of its own
    size, given by an assignment), 30 eager iterations, evaluated every 10."""
    base = [
        *(["n_train=2000"] if toy else []),
        "iterations=30",
        "eval_every=10",
        "log_every=10",
        "checkpoint_every=5",
        "lr=1e-2",
        "posterior_lr=1e-2",
        "compile=off",
    ]
    return apply_overrides(get_preset("checkerboard-vages-dsm"), [*base, *assignments])


def tiny_images(*assignments: str) -> Settings:
    """A tiny deep EBLVM on digits padded to 32×32, 200 VaGES-MDSM steps on the CPU."""
    base = [
        "h_dim=8",
        "base_width=4",
        "posterior_width=4",
        "batch_size=8",
        "posterior_steps=2",
        "iterations=200",
        "lr=1e-3",
        "posterior_lr=1e-3",
        "lr_min=0",
        "log_every=1",
        "device=cpu",
        "sampling.hold_steps=2",
        "sampling.anneal_steps=3",
        "sampling.final_steps=2",
    ]
    return apply_overrides(get_preset("digits32-vages-mdsm"), [*base, *assignments])

"""Deep EBLVMs and deep EBMs on images as a task of the training loop.

The data are a data set's training images, uniformly dequantised (and flipped
left-right with ``data.hflip``) batch by batch; under torchrun every process takes
its own shard. An evaluation is the FID of samples of the EMA model against reference
statistics when ``fid.stats`` and Inception weights are configured; otherwise image
runs are followed by their loss alone and no checkpoint is selected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from eblvm.distributed import Ranks, init_ranks
from eblvm.images.data import augment, fetch, image_count, load_images
from eblvm.images.models import build_model
from eblvm.images.sampling import deep_model, inception_features, samples_of
from eblvm.parts import Model
from eblvm.settings import Settings
from eblvm.task import RunSnapshot
from eblvm.training_run import rank_seed
from eblvm_eval.fid import (
    WEIGHTS_ENV_VAR,
    FeatureStats,
    feature_statistics,
    frechet_distance,
    load_inception,
    load_stats,
)
from score_estimators import GaussianPosterior


class FidEvaluation(NamedTuple):
    """FID evaluation: the Inception network and the reference statistics when it is
    on, else the reason it is off."""

    inception: nn.Module | None
    reference: FeatureStats | None
    off_reason: str | None


def fid_evaluation(settings: Settings) -> FidEvaluation:
    """On when ``fid.stats`` names statistics and Inception weights are configured
    (``fid.weights`` or EBLVM_FID_WEIGHTS); the files are then loaded now, so that a
    missing or wrong one stops the run before training (the statistics even when the
    weights are not configured). Off otherwise, with the reason."""
    fid = settings.fid
    if not fid.stats:
        return FidEvaluation(None, None, "no fid.stats (reference statistics) given")
    try:
        reference = load_stats(os.path.expanduser(fid.stats))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"fid.stats: {error} (`eblvm fid-stats` writes one)") from None
    if not fid.weights and not os.environ.get(WEIGHTS_ENV_VAR):
        return FidEvaluation(
            None, None, f"no Inception weights configured (fid.weights or {WEIGHTS_ENV_VAR})"
        )
    return FidEvaluation(load_inception(fid.weights or None), reference, None)


class ImageTask:
    """The image family (see the module docstring)."""

    stackable = False
    compile_by_default = False
    cpu_threads = 2

    def __init__(self, settings: Settings) -> None:
        self.ranks: Ranks = init_ranks(settings.device)
        if settings.amp and self.ranks.device.type != "cuda":
            raise ValueError(
                f"amp (bf16 autocast) needs a CUDA device; this run is on {self.ranks.device.type}"
            )
        self.images = load_images(settings)
        self.fid = fid_evaluation(settings)
        if settings.fid.samples < self.ranks.world:
            raise ValueError(
                f"fid.samples {settings.fid.samples} must be at least the "
                f"{self.ranks.world} processes"
            )
        local = settings.data.batch_size // self.ranks.world
        shard = len(range(self.ranks.rank, image_count(self.images), self.ranks.world))
        if local > shard:
            raise ValueError(
                f"data.batch_size {settings.data.batch_size} needs {local} images per process, "
                f"but each process's shard of the {image_count(self.images)} training images "
                f"holds {shard}"
            )
        self.hflip = settings.data.hflip

    @property
    def train_size(self) -> int:
        return image_count(self.images)

    def selection(self, settings: Settings) -> tuple[str, str] | None:
        return ("fid", "min") if self.fid.off_reason is None else None

    def batch(self, indices: Tensor, generator: torch.Generator) -> Tensor:
        return augment(fetch(self.images, indices), hflip=self.hflip, generator=generator)

    def build(self, settings: Settings, generator: torch.Generator) -> Model:
        return build_model(settings)

    def stack(self, models: Sequence[Model]) -> Model:
        raise ValueError("image runs train one at a time")

    def evaluate(self, runs: Sequence[RunSnapshot], iteration: int) -> list[dict[str, Any]]:
        if self.fid.off_reason is not None:
            return [{} for _ in runs]
        return [{"fid": self._fid(run, iteration)} for run in runs]

    def _fid(self, run: RunSnapshot, iteration: int) -> float | None:
        assert self.fid.inception is not None and self.fid.reference is not None
        settings, ranks = run.settings, self.ranks
        share = len(range(ranks.rank, settings.fid.samples, ranks.world))
        posterior = run.model.posterior
        assert posterior is None or isinstance(posterior, GaussianPosterior)
        samples = samples_of(
            deep_model(run.average if run.average is not None else run.model.energy),
            posterior,
            settings,
            self.images,
            share,
            generator=torch.Generator(ranks.device).manual_seed(
                rank_seed(settings.seed + iteration, ranks.rank, "fid")
            ),
        )
        features = torch.cat(ranks.gather(inception_features(samples, self.fid.inception)))
        ours = feature_statistics(features)
        reference = self.fid.reference
        return frechet_distance(ours.mu, ours.sigma, reference.mu, reference.sigma)

    def best_record(self, run: RunSnapshot) -> dict[str, Any]:
        energy = run.model.energy
        average = run.average if run.average is not None else energy
        posterior = run.model.posterior
        return {
            "model": _cpu(energy.state_dict()),
            "ema": _cpu(average.state_dict()),
            "posterior": {} if posterior is None else _cpu(posterior.state_dict()),
        }

    def finish(self, run: RunSnapshot, row: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
        selection: dict[str, Any]
        if self.fid.off_reason is None:
            selection = {
                "by": "fid",
                "best_iteration": best.get("iteration"),
                "best_fid": best.get("fid"),
            }
        else:
            selection = {"by": "none", "reason": f"FID evaluation is off: {self.fid.off_reason}"}
        return {"loss": row.get("loss"), "checkpoint_selection": selection}


def _cpu(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}

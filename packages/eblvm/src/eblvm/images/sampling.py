"""Samples and FID of image runs, and the reference statistics the FID compares with.

Samples come from annealed Langevin dynamics in v with h held fixed: for a deep EBLVM
h is the posterior mean of a random training image and the chains follow
s(v) = −∇_v E(v, h); for a deep EBM, s(v) = −∇_v E(v). The chains start from uniform
noise, anneal from T = ``t_max`` to 0 and end with one denoising step v + σ0² s(v);
the images are then clamped to [0, 1]. A run's weights are read back with
``weights_only=True`` and checked against its config.json's fingerprint.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from eblvm.functional import Params
from eblvm.images.data import Images, fetch, image_count, load_images
from eblvm.images.models import LatentEnergy, VisibleEnergy, build_model
from eblvm.images.presets import DATASET_PRESETS
from eblvm.runs import BEST, CheckpointError, read_run_settings, read_weights, write_json
from eblvm.settings import IMAGE_DATASETS, Settings
from eblvm_eval.fid import (
    FeatureStats,
    compute_features,
    feature_statistics,
    frechet_distance,
    load_inception,
    load_stats,
    save_stats,
)
from eblvm_eval.images import FORMATS, save_image_grid
from eblvm_eval.samplers import annealed_langevin, annealing_schedule
from ebm_models import DeepEBLVM, DeepEBM
from score_estimators import GaussianPosterior

SAMPLES = "samples.png"
FID = "fid.json"


def schedule_of(settings: Settings, steps: tuple[int, int, int] | None = None) -> Tensor:
    """The annealing temperatures of the run's settings, or of ``steps`` = (hold, anneal,
    final) step counts at the run's t_max."""
    sampling = settings.sampling
    hold, anneal, final = steps or (
        sampling.hold_steps,
        sampling.anneal_steps,
        sampling.final_steps,
    )
    return annealing_schedule(
        t_max=sampling.t_max, hold_steps=hold, anneal_steps=anneal, final_steps=final
    )


def _energy_score(model: DeepEBLVM | DeepEBM, h: Tensor | None) -> Callable[[Tensor], Tensor]:
    """v ↦ −∇_v E(v, h) (h fixed) or −∇_v E(v); a non-finite v or energy is a
    FloatingPointError (sampling failed, not bad input)."""

    def score(v: Tensor) -> Tensor:
        if not bool(v.isfinite().all()):  # the chains overflowed: the sampler's failure
            raise FloatingPointError(
                "the chains left the finite numbers (NaN or ±inf; a smaller --step-size "
                "may keep them)"
            )
        with torch.enable_grad():
            node = v.detach().requires_grad_(True)
            if isinstance(model, DeepEBLVM):
                assert h is not None
                energy = model.energy(node, h)
            else:
                energy = model.energy(node)
            bad = int((~energy.isfinite()).sum())
            if bad:
                raise FloatingPointError(
                    f"the energy is not finite (NaN or ±inf) for {bad} of {len(energy)} chains"
                )
            (grad,) = torch.autograd.grad(energy.sum(), node)
        return -grad

    return score


@torch.no_grad()
def sample_images(
    model: DeepEBLVM | DeepEBM,
    posterior: GaussianPosterior | None,
    images: Images,
    n: int,
    *,
    schedule: Tensor,
    step_size: float,
    sigma0: float,
    generator: torch.Generator,
    batch_size: int = 500,
) -> Tensor:
    """n samples (n, C, S, S) in [0, 1] by annealed Langevin dynamics, in chunks of
    ``batch_size`` chains; ``images`` are the training images whose posterior means
    give h (a DeepEBLVM needs ``posterior``). Draws come from ``generator`` (on the
    model's device). Raises FloatingPointError naming the step when the chains or the
    energy stop being finite: no silent NaN images.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if isinstance(model, DeepEBLVM) and posterior is None:
        raise ValueError("a DeepEBLVM needs its posterior to set h")
    parameter = next(model.parameters())
    chunks = []
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        h = None
        if isinstance(model, DeepEBLVM):
            assert posterior is not None
            picks = torch.randint(
                image_count(images), (count,), generator=generator, device=generator.device
            )
            data = fetch(images, picks.cpu()).to(parameter.device, parameter.dtype)
            h = posterior.mean_and_log_std(data)[0]
        chunks.append(
            sample_at(
                model,
                h,
                count,
                schedule=schedule,
                step_size=step_size,
                sigma0=sigma0,
                generator=generator,
            )
        )
    return torch.cat(chunks)


def sample_at(
    model: DeepEBLVM | DeepEBM,
    h: Tensor | None,
    count: int,
    *,
    schedule: Tensor,
    step_size: float,
    sigma0: float,
    generator: torch.Generator,
) -> Tensor:
    """``count`` images (count, C, S, S) in [0, 1] by annealed Langevin dynamics from
    uniform noise, in v with ``h: (count, H)`` fixed (a DeepEBLVM's conditional energy
    E(v, h); None for a DeepEBM); draws from ``generator``."""
    parameter = next(model.parameters())
    shape = (model.in_channels, model.image_size, model.image_size)
    v0 = torch.rand(
        (count, *shape), generator=generator, device=parameter.device, dtype=parameter.dtype
    )
    samples, _ = annealed_langevin(
        _energy_score(model, h),
        v0,
        schedule=schedule,
        step_size=step_size,
        denoise_sigma=sigma0,
        generator=generator,
    )
    return samples.clamp(0, 1)


def samples_of(
    model: DeepEBLVM | DeepEBM,
    posterior: GaussianPosterior | None,
    settings: Settings,
    images: Images,
    n: int,
    *,
    generator: torch.Generator,
    steps: tuple[int, int, int] | None = None,
    step_size: float | None = None,
) -> Tensor:
    """n samples with the run's annealing settings (or ``steps`` and ``step_size``)."""
    return sample_images(
        model,
        posterior,
        images,
        n,
        schedule=schedule_of(settings, steps),
        step_size=step_size or settings.sampling.step_size,
        sigma0=settings.objective.sigma0,
        generator=generator,
    )


def deep_model(energy: nn.Module) -> DeepEBLVM | DeepEBM:
    """The deep model behind an image run's energy."""
    if not isinstance(energy, (LatentEnergy, VisibleEnergy)):
        raise TypeError(f"not an image run's energy: {type(energy).__name__}")
    return energy.model


class LoadedRun(NamedTuple):
    """An image run read back: its settings, the model (EMA weights unless ``raw``) and
    posterior from ``source`` (best.pt when selection wrote one, else checkpoint.pt),
    and the iteration they are from."""

    settings: Settings
    model: DeepEBLVM | DeepEBM
    posterior: GaussianPosterior | None
    source: Path
    iteration: int


def read_settings(run_dir: Path) -> Settings:
    """The settings of the image run in ``run_dir``."""
    settings = read_run_settings(run_dir)
    if settings.data.dataset not in IMAGE_DATASETS:
        raise ValueError(
            f"{run_dir} holds a {settings.data.dataset} run; sample and fid work on image runs"
        )
    return settings


def _weights(
    record: dict[str, Any], source: Path, *, best: bool, raw: bool
) -> tuple[Params, Params]:
    """θ (the EMA unless ``raw``) and φ of a checkpoint or best.pt record."""
    if best:
        theta, phi = record.get("model" if raw else "ema"), record.get("posterior")
    else:
        state = record["state"]
        extra = state.get("extra", {}) if isinstance(state, dict) else {}
        theta = state.get("theta") if raw or "ema" not in extra else extra["ema"]
        phi = state.get("phi")
    if not isinstance(theta, dict) or not isinstance(phi, dict):
        raise CheckpointError(f"{source} does not hold the model's weights")
    return theta, phi


def load_run(
    run_dir: str | os.PathLike[str], *, device: torch.device, raw: bool = False
) -> LoadedRun:
    """Read the image run in ``run_dir`` onto ``device``: the EMA model (``raw``: the
    model itself) and posterior. Raises FileNotFoundError naming the files looked for
    when the folder holds no weights, CheckpointError when they are damaged or belong
    to other settings than config.json's."""
    folder = Path(os.path.expanduser(str(run_dir)))
    settings = read_settings(folder)
    record, source = read_weights(folder, settings)
    theta, phi = _weights(record, source, best=source.name == BEST, raw=raw)
    model = build_model(settings)
    try:
        model.energy.load_state_dict(theta)
        if model.posterior is not None:
            model.posterior.load_state_dict(phi)
    except RuntimeError as error:
        raise CheckpointError(f"{source} holds weights of another model: {error}") from None
    model.energy.to(device).requires_grad_(False)
    posterior = model.posterior
    if posterior is not None:
        posterior.to(device).requires_grad_(False)
    assert posterior is None or isinstance(posterior, GaussianPosterior)
    return LoadedRun(
        settings, deep_model(model.energy), posterior, source, int(record["iteration"])
    )


def default_device(device: torch.device | None) -> torch.device:
    return device or torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _with_root(settings: Settings, data_root: str | None) -> Settings:
    if data_root is None:
        return settings
    import dataclasses

    return dataclasses.replace(
        settings, data=dataclasses.replace(settings.data, data_root=data_root)
    )


def _run_samples(
    run: LoadedRun,
    n: int,
    *,
    steps: tuple[int, int, int] | None,
    step_size: float | None,
    seed: int,
    device: torch.device,
    data_root: str | None,
) -> Tensor:
    return samples_of(
        run.model,
        run.posterior,
        run.settings,
        load_images(_with_root(run.settings, data_root)),
        n,
        generator=torch.Generator(device).manual_seed(seed),
        steps=steps,
        step_size=step_size,
    )


def sample_run(
    run_dir: str | os.PathLike[str],
    *,
    n: int = 64,
    steps: tuple[int, int, int] | None = None,
    step_size: float | None = None,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    data_root: str | None = None,
    raw: bool = False,
) -> Path:
    """Sample n images from the run's EMA model (``raw``: the model itself) and save them
    as a grid, PNG or JPEG by the suffix (by default ``run_dir/samples.png``; another
    suffix is refused before sampling). ``steps`` = (hold, anneal, final) and
    ``step_size`` replace the run's annealing settings (shorter schedules for CPU use).
    Returns the path."""
    path = Path(out) if out else Path(run_dir) / SAMPLES
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--out must end in one of {', '.join(FORMATS)}, got {str(path)!r}")
    device = default_device(device)
    run = load_run(run_dir, device=device, raw=raw)
    samples = _run_samples(
        run, n, steps=steps, step_size=step_size, seed=seed, device=device, data_root=data_root
    )
    return save_image_grid(samples, path)


def inception_features(
    samples: Tensor, extractor: Callable[[Tensor], Tensor], *, batch_size: int = 100
) -> Tensor:
    """Inception features (N, F) float64 of images (N, C, S, S) in [0, 1]."""
    if isinstance(extractor, nn.Module):
        extractor = extractor.to(samples.device)
    return compute_features(samples, extractor, batch_size=batch_size)


def fid_of_run(
    run_dir: str | os.PathLike[str],
    stats: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    n: int = 5000,
    steps: tuple[int, int, int] | None = None,
    step_size: float | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    data_root: str | None = None,
    raw: bool = False,
) -> dict[str, Any]:
    """FID of n samples of the run (EMA model unless ``raw``) against the reference
    statistics ``stats`` (.npz, e.g. from ``reference_stats``). ``weights``: the Inception
    weights file (default: the EBLVM_FID_WEIGHTS variable). The statistics and the
    weights are checked before sampling starts. Writes and returns ``run_dir/fid.json``'s
    record."""
    device = default_device(device)
    reference = load_stats(stats)
    inception = load_inception(weights)
    run = load_run(run_dir, device=device, raw=raw)
    samples = _run_samples(
        run, n, steps=steps, step_size=step_size, seed=seed, device=device, data_root=data_root
    )
    ours = feature_statistics(inception_features(samples, inception))
    record = {
        "fid": frechet_distance(ours.mu, ours.sigma, reference.mu, reference.sigma),
        "n": n,
        "stats": str(stats),
        "weights_from": str(run.source),
        "model": "raw" if raw else "ema",
        "iteration": run.iteration,
    }
    write_json(Path(run_dir) / FID, record)
    return record


def _int_at_least(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def reference_stats(
    dataset: str,
    out: str | os.PathLike[str],
    *,
    split: str = "train",
    n: int | None = None,
    weights: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    data_root: str | None = None,
    batch_size: int = 100,
) -> FeatureStats:
    """Inception statistics of a data set's images, the reference of ``fid_of_run`` and
    of FID evaluation in training; written to ``out`` (.npz: ``mu`` (F,), ``sigma``
    (F, F), ``count``) atomically, and returned.

    ``dataset``: one of the image data sets, its images as its presets train on them
    (CelebA 64×64; random images those of the ``random-*`` presets), read from
    ``data_root`` (default: its presets' ``data.data_root``, ``data`` or, for
    Fashion-MNIST, ``/usr/share/datasets/fashion-mnist``). ``split``: ``train`` (train and
    validation splits together, the images the presets train on) or ``test``. ``n``: the
    first n images of the split in its fixed order (default all; at least 2). ``weights``:
    the Inception weights file (default: the EBLVM_FID_WEIGHTS variable). Features are computed
    ``batch_size`` images at a time on ``device`` (default: cuda when available). The
    arguments, the weights and the data are checked before any feature is computed.
    """
    if dataset not in DATASET_PRESETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASET_PRESETS)}, got {dataset!r}")
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a str or os.PathLike, got {type(out).__name__}")
    if Path(out).suffix != ".npz":
        raise ValueError(f"out must name a .npz file, got {str(out)!r}")
    if n is not None:
        n = _int_at_least(n, "n", minimum=2)
    batch_size = _int_at_least(batch_size, "batch_size", minimum=1)
    device = default_device(device)
    inception = load_inception(weights).to(device)
    images = load_images(_with_root(DATASET_PRESETS[dataset], data_root), split=split)
    available = image_count(images)
    if n is not None and n > available:
        raise ValueError(
            f"n must be at most the {available} images of the {dataset} {split} split, got {n}"
        )
    count = available if n is None else n
    batches = (
        fetch(images, torch.arange(start, min(start + batch_size, count)))
        for start in range(0, count, batch_size)
    )
    stats = feature_statistics(compute_features(batches, inception, batch_size=batch_size))
    save_stats(stats, out)
    return stats

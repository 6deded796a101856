"""Interpolation in the latent space of a deep EBLVM run (the paper's Fig. 6).

For pairs of test images (a, b), h runs from the posterior mean of q(h | a) to that of
q(h | b) (``interpolate_latents``, endpoints included); with ``to="negation"`` it runs
from the posterior mean m of q(h | a) to −m instead, the path of the paper's code. At
each h an image is drawn by annealed Langevin dynamics in v of the conditional energy
E(v, h), h fixed. Every column starts from the same noise and uses the same draws (the
generator is reseeded per column), so that along a row only h changes. The PNG grid has
one row per path and one column per interpolation step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from eblvm.images.data import fetch, image_count, load_images
from eblvm.images.sampling import default_device, load_run, sample_at, schedule_of
from eblvm_eval.images import FORMATS, interpolate_latents, save_image_grid
from ebm_models import DeepEBLVM
from score_estimators import GaussianPosterior

INTERPOLATION = "interpolation.png"
# Where a path ends: the second image's posterior mean, or the negated first one's.
ENDPOINTS = ("image", "negation")


def pair_latents(
    posterior: GaussianPosterior,
    first: Tensor,
    second: Tensor,
    steps: int,
    *,
    method: Literal["linear", "spherical"] = "linear",
    to: Literal["image", "negation"] = "image",
) -> Tensor:
    """``(P, steps, H)``: for each pair of images ``first[p]``, ``second[p]`` (P, C, S, S),
    the path from the posterior mean m of the first to that of the second (``to="image"``)
    or to −m (``to="negation"``: ``second`` is not used)."""
    if to not in ENDPOINTS:
        raise ValueError(f"to must be one of {', '.join(ENDPOINTS)}, got {to!r}")
    start = posterior.mean_and_log_std(first)[0]
    end = posterior.mean_and_log_std(second)[0] if to == "image" else -start
    return torch.stack(
        [interpolate_latents(a, b, steps, method=method) for a, b in zip(start, end, strict=True)]
    )


@torch.no_grad()
def interpolate_run(
    run_dir: str | os.PathLike[str],
    *,
    pairs: int = 4,
    steps: int = 8,
    seed: int = 0,
    method: Literal["linear", "spherical"] = "linear",
    to: Literal["image", "negation"] = "image",
    langevin_steps: tuple[int, int, int] | None = None,
    step_size: float | None = None,
    out: str | os.PathLike[str] | None = None,
    device: torch.device | None = None,
    data_root: str | None = None,
    raw: bool = False,
) -> Path:
    """Write the interpolation grid of the deep EBLVM run in ``run_dir`` (EMA model
    unless ``raw``) to ``out`` (default ``run_dir/interpolation.png``) and return its path.

    ``pairs`` pairs of distinct test images picked with ``seed``; ``steps`` >= 2 points per
    path (``method`` linear or spherical), ending at the second image's posterior mean or
    at the first one's negated (``to``, see ``pair_latents``); ``langevin_steps`` =
    (hold, anneal, final) and ``step_size`` replace the run's annealing settings.
    """
    for value, name, least in ((pairs, "pairs", 1), (steps, "steps", 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    path = Path(out) if out else Path(os.path.expanduser(str(run_dir))) / INTERPOLATION
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"--out must end in one of {', '.join(FORMATS)}, got {str(path)!r}")
    device = default_device(device)
    run = load_run(run_dir, device=device, raw=raw)
    if not isinstance(run.model, DeepEBLVM) or run.posterior is None:
        raise ValueError(f"{run_dir} holds a deep EBM: interpolation needs a deep EBLVM's latent h")
    settings = run.settings
    if data_root is not None:
        settings = settings.changed(data={"data_root": data_root})
    test = load_images(settings, split="test")
    if image_count(test) < 2 * pairs:
        raise ValueError(
            f"pairs must be at most half the {image_count(test)} test images, got {pairs}"
        )
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randperm(image_count(test), generator=generator)[: 2 * pairs]
    images = fetch(test, picks).to(device, next(run.model.parameters()).dtype)
    latents = pair_latents(
        run.posterior, images[:pairs], images[pairs:], steps, method=method, to=to
    )
    columns = [
        sample_at(
            run.model,
            latents[:, column],
            pairs,
            schedule=schedule_of(settings, langevin_steps),
            step_size=step_size or settings.sampling.step_size,
            sigma0=settings.objective.sigma0,
            generator=torch.Generator(device).manual_seed(seed),
        )
        for column in range(steps)
    ]
    grid = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: pair, then step
    return save_image_grid(grid, path, nrow=steps)

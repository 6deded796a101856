"""What each setting means and which values it takes, for ``eblvm settings [PRESET]``.

One entry per dotted name of :class:`~eblvm.settings.Settings`: (allowed values, one
line of meaning). The choices are the constants the checks use; the bounds restate
those of the sections' ``check`` (``tests/test_eblvm_cli_first_use.py`` holds them to
the checks).
"""

from __future__ import annotations

from eblvm.families import datasets
from eblvm.methods import METHODS
from eblvm.settings import (
    ALIASES,
    COMPILE,
    DEVICES,
    FIT_POINTS,
    LOG_Z_METHODS,
    NCE_NOISE,
    NCE_STARTS,
    NOISE_SCHEDULES,
    OBJECTIVES,
    POSTERIOR_LOSSES,
    SCHEDULES,
    SECTIONS,
    SELECTIONS,
    Settings,
)

COUNT = "integer >= {}"
POSITIVE = "> 0"
FRACTION = "in [0, 1)"
SWITCH = "true or false"
PATH = "a path"


def _one_of(choices: tuple[str, ...] | list[str]) -> str:
    return "one of " + ", ".join(choices)


DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "data.dataset": (_one_of(datasets()), "the data set (it and the method pick the family)"),
    "data.data_root": (PATH, "where downloaded data sets are"),
    "data.n_train": (COUNT.format(2), "training points of the 2-D toys and random images"),
    "data.batch_size": (COUNT.format(2), "the global minibatch"),
    "data.columns": (COUNT.format(2), "the checkerboard's board size"),
    "data.channels": (COUNT.format(1), "image channels (fixed by most image data sets)"),
    "data.image_size": ("a multiple of 8", "image side in pixels"),
    "data.hflip": (SWITCH, "flip training images left-right at random"),
    "model.h_dim": (COUNT.format(1), "latent dimension"),
    "model.weight_std": (POSITIVE, "GRBM: W ~ N(0, weight_std²) at the start"),
    "model.base_width": (COUNT.format(1), "deep models: channels of the first stage"),
    "model.blocks_per_stage": (COUNT.format(1), "deep models: residual blocks per stage"),
    "model.posterior_width": (COUNT.format(1), "deep EBLVM: channels of q's network"),
    "method.name": (_one_of(list(METHODS)), "the training method (`eblvm list` says each)"),
    "method.n_samples": (COUNT.format(1), "L: draws of q per example (VaGES: >= 2)"),
    "method.n_unroll": (COUNT.format(0), "BiSM: N unrolled steps of q"),
    "method.inner_lr": (POSITIVE, "BiSM: the unrolled steps' learning rate"),
    "method.refine_steps": (COUNT.format(0), "VaES/VaGES: Langevin steps refining draws in h"),
    "method.refine_step_size": (POSITIVE, "the refinement's Langevin step"),
    "method.refine_noise_std": (">= 0", "the refinement's noise"),
    "method.cd_steps": (COUNT.format(1), "CD/PCD: Gibbs sweeps per iteration"),
    "method.noise_ratio": (COUNT.format(1), "NCE/VNCE: ν noise samples per example"),
    "method.nce_noise": (_one_of(NCE_NOISE), "NCE's noise: N(0, I) or the data's Gaussian"),
    "method.nce_start": (_one_of(NCE_STARTS), "NCE's log-normaliser c at the start"),
    "method.particles": (COUNT.format(1), "VNCE: draws of q for the noise's weights"),
    "objective.name": (_one_of(OBJECTIVES), "the score-matching objective"),
    "objective.sigma": (POSITIVE, "DSM's noise σ"),
    "objective.projections": (COUNT.format(1), "SSM's random projections"),
    "objective.sigma_min": (POSITIVE + ", <= sigma_max", "MDSM's smallest noise level"),
    "objective.sigma_max": (POSITIVE, "MDSM's largest noise level"),
    "objective.schedule": (_one_of(NOISE_SCHEDULES), "MDSM's spacing of the levels"),
    "objective.sigma0": (POSITIVE, "MDSM's σ0; images: the samples' denoising step"),
    "posterior.steps": (COUNT.format(0), "K: Adam steps on q per minibatch"),
    "posterior.loss": (_one_of(POSTERIOR_LOSSES), "q's loss: the negative ELBO or Fisher"),
    "posterior.lr": (POSITIVE, "q's learning rate"),
    "posterior.temperature": (POSITIVE, "the Bernoulli q's relaxation temperature"),
    "posterior.fit_at": (_one_of(FIT_POINTS), "q is fitted at the objective's ṽ or the data"),
    "optimiser.lr": (POSITIVE, "Adam's learning rate on θ"),
    "optimiser.beta1": (FRACTION, "Adam's β1"),
    "optimiser.beta2": (FRACTION, "Adam's β2"),
    "optimiser.eps": (POSITIVE, "Adam's ε"),
    "optimiser.schedule": (_one_of(SCHEDULES), "the learning rates' schedule (θ and φ)"),
    "optimiser.lr_min": ("in [0, lr]", "cosine: the rate at the end"),
    "optimiser.ema_decay": (FRACTION, "moving average of θ (0: none)"),
    "optimiser.clip_norm": (">= 0", "clip θ's and φ's gradients to this norm (0: off)"),
    "cadence.iterations": (COUNT.format(1), "training iterations"),
    "cadence.log_every": (COUNT.format(1), "a metrics row every this many iterations"),
    "cadence.eval_every": (COUNT.format(1), "an evaluation every this many iterations"),
    "cadence.checkpoint_every": (COUNT.format(1), "a checkpoint every this many iterations"),
    "evaluation.log_z": (_one_of(LOG_Z_METHODS), "GRBMs: log Z exactly or by AIS"),
    "evaluation.exact_log_z_max_h": (COUNT.format(1), "auto: exact log Z up to this h_dim"),
    "evaluation.ais_chains": (COUNT.format(1), "AIS chains"),
    "evaluation.ais_steps": (COUNT.format(1), "AIS steps"),
    "evaluation.select_by": (_one_of(SELECTIONS), "what picks best.pt"),
    "evaluation.max_drop": (POSITIVE, "nats below the best that stop a run as diverged"),
    "evaluation.max_loss": (POSITIVE, "a loss above this stops a run as diverged"),
    "evaluation.max_posterior_loss": (
        ">= 0",
        "a posterior loss above this stops a run as diverged (0: off)",
    ),
    "sampling.hold_steps": (COUNT.format(0), "Langevin steps at T = t_max"),
    "sampling.anneal_steps": (COUNT.format(0), "Langevin steps from t_max down to T = 1"),
    "sampling.final_steps": (COUNT.format(0), "Langevin steps from T = 1 to 0"),
    "sampling.t_max": (">= 1", "the starting temperature"),
    "sampling.step_size": (POSITIVE, "the Langevin step"),
    "fid.samples": (COUNT.format(2), "samples per FID evaluation"),
    "fid.stats": (PATH + " (.npz) or empty", "reference statistics; empty: no FID"),
    "fid.weights": (PATH + " or empty", "Inception weights (or EBLVM_FID_WEIGHTS)"),
    "seed": ("integer in [0, 2^63)", "the run's seed"),
    "device": (_one_of(DEVICES), "where the run trains"),
    "amp": (SWITCH, "bf16 autocast of the deep models on CUDA"),
    "compile": (_one_of(COMPILE), "compile the training step into one graph"),
    "tensorboard": (SWITCH, "also write TensorBoard scalars (needs tensorboard)"),
}


def format_settings(settings: Settings, preset: str | None = None) -> str:
    """Every setting grouped by section: its name, type, value in ``settings`` (the
    defaults, or ``preset``'s), allowed values and meaning. With a preset, only the
    settings its run reads, and a line counting the others."""
    read = set(settings.reads()) if preset else {name for name, _ in settings.items()}
    rows = [
        (name, type(value).__name__, repr(value), *DESCRIPTIONS[name])
        for name, value in settings.items()
        if name in read
    ]
    widths = [max(len(row[0].rpartition(".")[2]) for row in rows)]
    widths += [max(len(row[i]) for row in rows) for i in (1, 2)]
    lines = [
        f"settings of {preset} ({settings.run_kind()}): name, type, value, allowed, meaning"
        if preset
        else "settings: name, type, default, allowed, meaning",
        "(`--set section.key=value`, or a TOML file of sections for `--config`)",
    ]
    section = None
    for name, kind, value, allowed, meaning in rows:
        group = name.partition(".")[0] if "." in name else "run"
        if group != section:
            section = group
            lines.append(f"\n[{section}]" if section in SECTIONS else "\n(run-wide)")
        leaf = name.rpartition(".")[2]
        lines.append(
            f"  {leaf:{widths[0]}}  {kind:{widths[1]}}  {value:{widths[2]}}  {allowed}; {meaning}"
        )
    unread = len(list(settings.items())) - len(rows)
    if unread:
        lines.append(f"\n{unread} more settings do not apply to this run (`eblvm settings`).")
    lines.append("\naliases: " + ", ".join(f"{alias} = {name}" for alias, name in ALIASES.items()))
    return "\n".join(lines) + "\n"

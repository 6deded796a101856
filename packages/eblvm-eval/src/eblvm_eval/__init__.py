"""Evaluation of energy-based latent variable models: exact and AIS log-partition
functions of GRBMs, log-likelihoods, density plots, Langevin samplers, FID and
image grids."""

from eblvm_eval._grbm import FreeEnergyModel, GRBMParameters
from eblvm_eval.ais import (
    AISInfo,
    AISParams,
    AISResult,
    AISState,
    ais_estimate,
    ais_init,
    ais_kernel,
    ais_log_partition,
    ais_params,
)
from eblvm_eval.fid import (
    INCEPTION_WEIGHTS_NAME,
    INCEPTION_WEIGHTS_SHA256,
    INCEPTION_WEIGHTS_URL,
    WEIGHTS_ENV_VAR,
    FeatureStats,
    InceptionV3Features,
    compute_features,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    load_inception,
    load_stats,
    save_stats,
)
from eblvm_eval.images import image_grid, interpolate_latents, save_image_grid
from eblvm_eval.likelihood import log_likelihood
from eblvm_eval.partition import MAX_EXACT_H_DIM, exact_log_partition
from eblvm_eval.plots import density_plot
from eblvm_eval.samplers import (
    AnnealedLangevinInfo,
    LangevinInfo,
    LangevinKernel,
    LangevinState,
    annealed_langevin,
    annealing_schedule,
    langevin_init,
    langevin_kernel,
    langevin_step,
)

__all__ = [
    "INCEPTION_WEIGHTS_NAME",
    "INCEPTION_WEIGHTS_SHA256",
    "INCEPTION_WEIGHTS_URL",
    "MAX_EXACT_H_DIM",
    "WEIGHTS_ENV_VAR",
    "AISInfo",
    "AISParams",
    "AISResult",
    "AISState",
    "AnnealedLangevinInfo",
    "FeatureStats",
    "FreeEnergyModel",
    "GRBMParameters",
    "InceptionV3Features",
    "LangevinInfo",
    "LangevinKernel",
    "LangevinState",
    "ais_estimate",
    "ais_init",
    "ais_kernel",
    "ais_log_partition",
    "ais_params",
    "annealed_langevin",
    "annealing_schedule",
    "compute_features",
    "density_plot",
    "exact_log_partition",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "image_grid",
    "interpolate_latents",
    "langevin_init",
    "langevin_kernel",
    "langevin_step",
    "load_inception",
    "load_stats",
    "log_likelihood",
    "save_image_grid",
    "save_stats",
]
__version__ = "0.1.0"

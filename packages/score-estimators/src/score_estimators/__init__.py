"""Variational estimates of the score and of its gradient for energy-based latent
variable models (VaES, VaGES and the estimators they are compared with)."""

from score_estimators.estimators import (
    BiSM,
    ExactScore,
    ImportanceSampling,
    VaES,
    VaESCV,
    VaGES,
    unroll_posterior,
    vages_weights,
    weighted_score,
)
from score_estimators.fitting import (
    at_fixed_v,
    draw,
    energy_at,
    fisher_loss,
    fit_posterior,
    fit_steps,
    kl_loss,
)
from score_estimators.langevin import Langevin, langevin_move
from score_estimators.posteriors import BernoulliPosterior, GaussianPosterior
from score_estimators.protocols import (
    ConditionedEnergy,
    Energy,
    EstimatorNoise,
    FusedPosterior,
    NoiseDriven,
    Posterior,
    PosteriorLoss,
    PosteriorSampler,
    ScoreEstimator,
    ScoreModel,
    standard_noise,
)

__all__ = [
    "BernoulliPosterior",
    "BiSM",
    "ConditionedEnergy",
    "Energy",
    "EstimatorNoise",
    "ExactScore",
    "FusedPosterior",
    "GaussianPosterior",
    "ImportanceSampling",
    "Langevin",
    "NoiseDriven",
    "Posterior",
    "PosteriorLoss",
    "PosteriorSampler",
    "ScoreEstimator",
    "ScoreModel",
    "VaES",
    "VaESCV",
    "VaGES",
    "at_fixed_v",
    "draw",
    "energy_at",
    "fisher_loss",
    "fit_posterior",
    "fit_steps",
    "kl_loss",
    "langevin_move",
    "standard_noise",
    "unroll_posterior",
    "vages_weights",
    "weighted_score",
]
__version__ = "0.5.0"

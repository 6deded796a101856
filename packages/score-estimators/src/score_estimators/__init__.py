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
from score_estimators.fitting import fisher_loss, fit_posterior, kl_loss
from score_estimators.langevin import LangevinRefined
from score_estimators.posteriors import (
    BernoulliPosterior,
    GaussianPosterior,
    Posterior,
    PosteriorSampler,
)

__all__ = [
    "BernoulliPosterior",
    "BiSM",
    "ExactScore",
    "GaussianPosterior",
    "ImportanceSampling",
    "LangevinRefined",
    "Posterior",
    "PosteriorSampler",
    "VaES",
    "VaESCV",
    "VaGES",
    "fisher_loss",
    "fit_posterior",
    "kl_loss",
    "unroll_posterior",
    "vages_weights",
    "weighted_score",
]
__version__ = "0.2.0"

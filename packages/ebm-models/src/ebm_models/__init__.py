"""Energy-based latent variable models: energies ``E(v, h)`` with exact answers where
the model allows them."""

from ebm_models.deep import AdditiveCoupling, ConvGaussianPosteriorNet, DeepEBLVM, DeepEBM
from ebm_models.gaussian import ExactGaussianPosterior, GaussianEBLVM
from ebm_models.grbm import GRBM, ExactBernoulliPosterior

__all__ = [
    "GRBM",
    "AdditiveCoupling",
    "ConvGaussianPosteriorNet",
    "DeepEBLVM",
    "DeepEBM",
    "ExactBernoulliPosterior",
    "ExactGaussianPosterior",
    "GaussianEBLVM",
]
__version__ = "0.4.1"

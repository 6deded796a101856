"""Energy-based latent variable models: energies ``E(v, h)`` with exact answers where
the model allows them."""

from ebm_models.grbm import GRBM, ExactBernoulliPosterior

__all__ = ["GRBM", "ExactBernoulliPosterior"]
__version__ = "0.1.0"

"""Turn a :class:`TrainConfig` into data, a model, a posterior and a training method."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from eblvm.config import TrainConfig
from eblvm.methods import ContrastiveDivergence, Method, Objective, ScoreMatching
from eblvm_data import Splits, checkerboard_splits, digits, frey_face
from ebm_models import GRBM
from score_estimators import BernoulliPosterior, BiSM, ExactScore, ImportanceSampling, VaES, VaGES
from score_objectives import dsm, ksd, mdsm, sm, ssm


def load_data(config: TrainConfig) -> Splits:
    """The configured data set's fixed train/validation/test split, each (N, D)."""
    if config.dataset == "checkerboard":
        return checkerboard_splits(n_train=config.n_train)
    if config.dataset == "digits":
        return digits()
    return frey_face(config.data_root)


def build_model(config: TrainConfig, train: torch.Tensor, generator: torch.Generator) -> GRBM:
    """A GRBM with b at the data mean, W ~ N(0, weight_std²), c = 0 and log σ = 0.

    The paper does not state W's scale; 0.5 leaves the symmetric start (where all
    hidden units agree) within a few thousand checkerboard iterations, 0.01 takes
    over ten thousand.
    """
    model = GRBM(train.shape[1], config.h_dim, weight_std=config.weight_std, generator=generator)
    with torch.no_grad():
        model.b.copy_(train.mean(0))
    return model


def build_posterior(
    config: TrainConfig, v_dim: int, generator: torch.Generator
) -> BernoulliPosterior:
    """Bernoulli q(h | v) with a linear parameter network (the paper's GRBM setting),
    initialised from ``generator`` like nn.Linear's default (uniform, bound 1/√D)."""
    net = nn.Linear(v_dim, config.h_dim)
    bound = v_dim**-0.5
    with torch.no_grad():
        net.weight.uniform_(-bound, bound, generator=generator)
        net.bias.uniform_(-bound, bound, generator=generator)
    return BernoulliPosterior(net, temperature=config.temperature)


def build_objective(config: TrainConfig) -> Objective:
    """The score-matching loss as ``objective(score_fn, v, generator)``."""
    if config.objective == "dsm":
        return lambda score_fn, v, g: dsm(score_fn, v, sigma=config.dsm_sigma, generator=g)
    if config.objective == "ssm":
        return lambda score_fn, v, g: ssm(
            score_fn, v, n_projections=config.ssm_projections, generator=g
        )
    if config.objective == "mdsm":
        return lambda score_fn, v, g: mdsm(
            score_fn,
            v,
            sigma_min=config.mdsm_sigma_min,
            sigma_max=config.mdsm_sigma_max,
            generator=g,
        )
    if config.objective == "ksd":
        return lambda score_fn, v, g: ksd(score_fn, v)
    return lambda score_fn, v, g: sm(score_fn, v)


def _adam(params: list[nn.Parameter], lr: float, config: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=(config.beta1, config.beta2))


def build_method(config: TrainConfig, model: GRBM, generator: torch.Generator) -> Method:
    """The training method: a score estimator with an objective, or CD / PCD."""
    theta_optimizer = _adam(list(model.parameters()), config.lr, config)
    if config.method in ("cd", "pcd"):
        return ContrastiveDivergence(
            model,
            theta_optimizer,
            steps=config.cd_steps,
            persistent=config.method == "pcd",
            generator=generator,
        )
    objective = build_objective(config)
    if config.method == "exact":
        return ScoreMatching(
            model, None, None, ExactScore(), objective, theta_optimizer, 0, generator
        )
    posterior = build_posterior(config, model.v_dim, generator)
    estimators: dict[str, Callable[[], Callable[..., torch.Tensor]]] = {
        "vages": partial(VaGES, config.n_samples),
        "vaes": partial(VaES, config.n_samples),
        "is": partial(ImportanceSampling, config.n_samples),
        "bism": partial(
            BiSM, config.n_unroll, n_samples=config.n_samples, inner_lr=config.inner_lr
        ),
    }
    return ScoreMatching(
        model,
        posterior,
        _adam(list(posterior.parameters()), config.posterior_lr, config),
        estimators[config.method](),
        objective,
        theta_optimizer,
        config.posterior_steps,
        generator,
    )

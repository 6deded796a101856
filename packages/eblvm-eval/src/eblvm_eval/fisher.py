"""Fisher divergence between the data and a model: exact, and learned with a critic.

D_F(p_D ‖ p_θ) = ½ E_{p_D}‖s_θ(v) − s_D(v)‖², s = ∇_v log p. When the data score s_D
is known, :func:`fisher_divergence` averages it over samples. When only samples of the
data are at hand, Stein's identity E_{p_D}[s_Dᵀf + tr ∇f] = 0 gives (appendix E)

    D_F^m = max_f E_{p_D}[ s_θ(v)ᵀf(v) + εᵀ∇_v(εᵀf(v)) − ½‖f(v)‖² ],

ε Rademacher (E εεᵀ = I, so the middle term is an unbiased trace), with the maximum
D_F at f = s_θ − s_D. :func:`learned_fisher_divergence` fits a critic f by Adam on
training data and reports the objective on held-out data. The model score s_θ comes
from any score function; for an EBLVM, VaES with a fitted posterior (the objective is
linear in s_θ, so an unbiased stochastic score adds variance, not bias).
Appendix F.3 (driven by ``eblvm.experiments.fisher``) perturbs a GRBM away from
N(0, I), with data N(0, I), where the exact value is known.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn

from eblvm_eval._common_checks import check_count
from ebm_models import GRBM
from score_estimators import BernoulliPosterior, PosteriorLoss, VaES, fit_posterior

ScoreFn = Callable[[Tensor], Tensor]


class FisherEstimate(NamedTuple):
    """A Monte Carlo average and its standard error."""

    value: float
    stderr: float


class LearnedFisher(NamedTuple):
    """The learned estimate D_F^m on the test data (mean and standard error over
    samples), the step whose critic was kept (best validation objective) and the
    validation objective at each evaluation."""

    value: float
    stderr: float
    best_step: int
    valid_curve: tuple[float, ...]


def _check_samples(value: object, name: str, dim: int | None = None) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    expected = "D" if dim is None else str(dim)
    if value.dim() != 2 or value.shape[0] < 2 or (dim is not None and value.shape[1] != dim):
        raise ValueError(f"{name} must have shape (N, {expected}) with N >= 2, got {value.shape}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains non-finite values")
    return value


def _mean_and_stderr(values: Tensor) -> FisherEstimate:
    values = values.detach().to(torch.float64)
    return FisherEstimate(float(values.mean()), float(values.std() / math.sqrt(len(values))))


def fisher_divergence(*, model_score: Tensor, data_score: Tensor) -> FisherEstimate:
    """½ mean_n ‖model_score_n − data_score_n‖² over samples v_n ~ p_D, with its standard
    error: the Fisher divergence D_F(p_D ‖ p_θ) when both scores are known.

    model_score, data_score: (N, D) at the same N ≥ 2 data points.
    """
    model_score = _check_samples(model_score, "model_score")
    data_score = _check_samples(data_score, "data_score", model_score.shape[1])
    if data_score.shape != model_score.shape:
        raise ValueError(
            f"data_score must have the shape of model_score {tuple(model_score.shape)}, "
            f"got {tuple(data_score.shape)}"
        )
    return _mean_and_stderr(0.5 * (model_score - data_score).square().sum(-1))


def rademacher(shape: tuple[int, ...], *, generator: torch.Generator | None = None) -> Tensor:
    """Independent ±1 entries with probability ½ each (float32): ``shape``."""
    return torch.randint(0, 2, shape, generator=generator).to(torch.float32) * 2 - 1


def critic_objective(
    critic: Callable[[Tensor], Tensor],
    v: Tensor,
    score: Tensor,
    *,
    probes: Tensor,
    create_graph: bool = False,
) -> Tensor:
    """Per-sample s(v)ᵀf(v) + εᵀ∇_v(εᵀf(v)) − ½‖f(v)‖², whose mean over v ~ p_D and ε
    estimates E[sᵀf + tr ∇f − ½‖f‖²] ≤ D_F(p_D ‖ p_θ).

    critic: f, (B, D) -> (B, D); v, score (the model score at v), probes ε: (B, D).
    -> (B,). ``create_graph=True`` keeps the graph for training the critic.
    """
    node = v.detach().requires_grad_(True)
    with torch.enable_grad():
        values = critic(node)
        if not isinstance(values, Tensor) or values.shape != v.shape:
            got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
            raise ValueError(f"critic must map (B, D) to (B, D) = {tuple(v.shape)}, got {got}")
        (grad,) = torch.autograd.grad((values * probes).sum(), node, create_graph=create_graph)
    return (score * values).sum(-1) + (grad * probes).sum(-1) - 0.5 * values.square().sum(-1)


class Critic(nn.Module):
    """f(v) = a ⊙ v + MLP(v): an elementwise linear map plus an MLP with two hidden SiLU
    layers of width ``width``. The elementwise map costs D parameters where a full linear
    map would cost D², whose noise (from Stein's identity on finitely many samples)
    swamps small divergences in high dimension. The output layer and a start at zero, so
    f ≡ 0 and the objective starts at 0, a valid lower bound. v: (B, D) -> (B, D)."""

    def __init__(self, dim: int, *, width: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_count(dim, "dim")
        check_count(width, "width")
        layers = [nn.Linear(dim, width), nn.Linear(width, width), nn.Linear(width, dim)]
        with torch.no_grad():
            for layer in layers[:2]:
                bound = 1 / math.sqrt(layer.in_features)
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
            layers[2].weight.zero_()
            layers[2].bias.zero_()
        self.mlp = nn.Sequential(layers[0], nn.SiLU(), layers[1], nn.SiLU(), layers[2])
        self.scale = nn.Parameter(torch.zeros(dim))

    def forward(self, v: Tensor) -> Tensor:
        result: Tensor = self.scale * v + self.mlp(v)
        return result


def _scores(score_fn: ScoreFn, v: Tensor) -> Tensor:
    score = score_fn(v)
    if not isinstance(score, Tensor) or score.shape != v.shape:
        got = tuple(score.shape) if isinstance(score, Tensor) else type(score).__name__
        raise ValueError(f"score_fn must map (B, D) to (B, D) = {tuple(v.shape)}, got {got}")
    return score.detach().to(v)


def learned_fisher_divergence(
    score_fn: ScoreFn,
    train: Tensor | Callable[[int], Tensor],
    valid: Tensor,
    test: Tensor,
    *,
    critic: nn.Module | None = None,
    width: int = 256,
    steps: int = 2000,
    batch_size: int = 500,
    lr: float = 1e-3,
    eval_every: int = 250,
    test_probes: int = 4,
    generator: torch.Generator | None = None,
) -> LearnedFisher:
    """Learned Fisher divergence D_F^m(p_D ‖ p_θ) from data samples and a model score.

    score_fn: the model score, (B, D) -> (B, D), possibly stochastic (e.g. VaES).
    train: data (N, D), minibatches drawn uniformly with replacement, or a callable
    ``draw(n) -> (n, D)`` of fresh data samples. valid, test: held-out data (N, D).
    The critic (by default :class:`Critic` of ``width``, seeded by ``generator``) is
    trained by Adam (``lr``, cosine decay to 0 over ``steps``) to maximise the objective
    on minibatches of ``batch_size`` with fresh probes. Before training, every
    ``eval_every`` steps and at the end, the validation objective (fixed probes and
    scores) is computed and the best critic kept (``valid_curve`` lists these values).
    The estimate is the kept critic's objective on ``test``, each sample averaged over
    ``test_probes`` draws of the probes and of the score; its standard error is over the
    test samples.
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
    valid = _check_samples(valid, "valid")
    dim = valid.shape[1]
    test = _check_samples(test, "test", dim)
    draw: Callable[[int], Tensor]
    if isinstance(train, Tensor):
        data = _check_samples(train, "train", dim)

        def draw_from_data(n: int) -> Tensor:
            return data[torch.randint(0, len(data), (n,), generator=generator)]

        draw = draw_from_data
    elif callable(train):
        draw = train
    else:
        raise TypeError(f"train must be a tensor or a callable, got {type(train).__name__}")
    for name, count in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every)):
        check_count(count, name)
    check_count(test_probes, "test_probes")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < math.inf:
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    if critic is None:
        critic = Critic(dim, width=width, generator=generator).to(valid)

    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    valid_score = _scores(score_fn, valid)
    valid_probes = rademacher(tuple(valid.shape), generator=generator).to(valid)

    def validate() -> float:
        values = critic_objective(critic, valid, valid_score, probes=valid_probes)
        return float(values.detach().mean())

    best_value, best_step, best_state = validate(), 0, copy.deepcopy(critic.state_dict())
    curve = [best_value]
    for step in range(1, steps + 1):
        v = draw(batch_size)
        if not isinstance(v, Tensor) or v.shape != (batch_size, dim):
            got = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"train must give batches of shape ({batch_size}, {dim}), got {got}")
        probes = rademacher(tuple(v.shape), generator=generator).to(v)
        objective = critic_objective(
            critic, v, _scores(score_fn, v), probes=probes, create_graph=True
        ).mean()
        if not bool(torch.isfinite(objective)):
            raise FloatingPointError(f"critic objective is not finite at step {step}")
        optimizer.zero_grad(set_to_none=True)
        (-objective).backward()
        optimizer.step()
        schedule.step()
        if step % eval_every == 0 or step == steps:
            value = validate()
            curve.append(value)
            if value > best_value:
                best_value, best_step = value, step
                best_state = copy.deepcopy(critic.state_dict())
    critic.load_state_dict(best_state)
    per_sample = torch.stack(
        [
            critic_objective(
                critic,
                test,
                _scores(score_fn, test),
                probes=rademacher(tuple(test.shape), generator=generator).to(test),
            ).detach()
            for _ in range(test_probes)
        ]
    ).mean(0)
    estimate = _mean_and_stderr(per_sample)
    return LearnedFisher(estimate.value, estimate.stderr, best_step, tuple(curve))


def perturbed_grbm(
    v_dim: int, h_dim: int, level: float, *, generator: torch.Generator | None = None
) -> GRBM:
    """A GRBM at N(0, I) (W = 0, b = 0, c = 0, σ = 1) moved by Gaussian noise of size
    ``level``: W, b, log σ ~ N(0, level²/D) entrywise, c ~ N(0, level²). float32."""
    check_count(v_dim, "v_dim")
    check_count(h_dim, "h_dim")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 <= level < math.inf:
        raise ValueError(f"level must be a finite number >= 0, got {level!r}")
    grbm = GRBM(v_dim, h_dim, weight_std=0.0)
    scale = level / math.sqrt(v_dim)
    with torch.no_grad():
        grbm.W.copy_(scale * torch.randn(v_dim, h_dim, generator=generator))
        grbm.b.copy_(scale * torch.randn(v_dim, generator=generator))
        grbm.c.copy_(level * torch.randn(h_dim, generator=generator))
        grbm.log_std.copy_(scale * torch.randn(v_dim, generator=generator))
    return grbm.requires_grad_(False)


def grbm_negative_elbo(
    energy: Callable[[Tensor, Tensor], Tensor],
    posterior: BernoulliPosterior,
    v: Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """KL(q ‖ p(h | v)) up to log p(v), in closed form for a GRBM and a factorised
    Bernoulli q (``energy`` a GRBM's, or its conditioned form (``__energy_at_v__``) that
    ``fit_posterior`` passes): the energy is linear in h, so E_q[E(v, h)] = E(v, π), and
    E_q[log q] = Σ_j π_j log π_j + (1 − π_j) log(1 − π_j). A posterior loss for
    ``score_estimators.fit_posterior`` (``n_samples`` and ``generator`` are unused: no
    draws). v: (B, D) -> scalar, averaged over the batch."""
    logits = posterior.logits(v)
    probs = torch.sigmoid(logits)
    neg_entropy = -nn.functional.binary_cross_entropy_with_logits(
        logits, probs, reduction="none"
    ).sum(-1)
    return (energy(v, probs) + neg_entropy).mean()


def fitted_vaes_score(
    grbm: GRBM,
    draw: Callable[[int], Tensor],
    *,
    steps: int,
    batch_size: int = 100,
    lr: float = 1e-2,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[ScoreFn, BernoulliPosterior]:
    """VaES with a fitted posterior: q(h | v) = Bernoulli(sigmoid(Uv + d)), starting at
    U = 0, d = 0, is fitted by KL (:func:`grbm_negative_elbo`) for ``steps`` Adam steps
    (``lr``, cosine decay to 0) on data batches ``draw(batch_size)``; the score then
    averages ∇_v log p̃(v, h) over ``n_samples`` exact binary draws from q. Returns the
    score function and q."""
    check_count(steps, "steps")
    layer = nn.Linear(grbm.v_dim, grbm.h_dim)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    posterior = BernoulliPosterior(layer, temperature=None)
    optimizer = torch.optim.Adam(posterior.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        fit_posterior(
            grbm,
            posterior,
            draw(batch_size),
            optimizer,
            steps=1,
            loss=cast(PosteriorLoss, grbm_negative_elbo),
        )
        schedule.step()
    posterior.requires_grad_(False)
    estimator = VaES(n_samples)

    def score_fn(v: Tensor) -> Tensor:
        return estimator(grbm, posterior, v, generator=generator).detach()

    return score_fn, posterior

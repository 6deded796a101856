"""Bad input at the public boundary: an empty batch, and v or posterior draws whose dtype
is not that of the energy or of the posterior's network, refused with errors that name
the argument (not an empty estimate, a NaN loss or torch's "expected m1 and m2 to have
the same dtype")."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from exact_models import DTYPE, BinaryLatentEnergy, GaussianLatentEnergy, LinearGaussianNet
from torch import Tensor, nn

from score_estimators import (
    BernoulliPosterior,
    BiSM,
    ExactScore,
    GaussianPosterior,
    ImportanceSampling,
    Langevin,
    VaES,
    VaESCV,
    VaGES,
    at_fixed_v,
    draw,
    energy_at,
    fisher_loss,
    fit_posterior,
    kl_loss,
    unroll_posterior,
)

V_DIM, H_DIM = 3, 4

ESTIMATORS = [
    VaES(2),
    VaES(2, refine=Langevin(2)),
    VaGES(2),
    VaGES(2, control_variate=True),
    VaESCV(2),
    ImportanceSampling(2),
    BiSM(1),
]


def energy() -> BinaryLatentEnergy:
    """Parameters in float64."""
    return BinaryLatentEnergy(V_DIM, H_DIM, scale=1.0, seed=0)


def bernoulli(dtype: torch.dtype = DTYPE) -> BernoulliPosterior:
    torch.manual_seed(0)
    return BernoulliPosterior(nn.Linear(V_DIM, H_DIM).to(dtype), temperature=0.5)


def gaussian() -> GaussianPosterior:
    """Parameters in float64."""
    return GaussianPosterior(LinearGaussianNet(V_DIM))


def data(batch: int = 5, dtype: torch.dtype = DTYPE) -> Tensor:
    return torch.randn(batch, V_DIM, generator=torch.Generator().manual_seed(1), dtype=dtype)


def _fit(v: Tensor) -> float:
    posterior = bernoulli()
    return fit_posterior(energy(), posterior, v, torch.optim.SGD(posterior.parameters(), lr=0.1))


# Every public function that takes a batch v.
CALLS: dict[str, Callable[[Tensor], object]] = {
    **{repr(e): (lambda v, e=e: e(energy(), bernoulli(), v)) for e in ESTIMATORS},
    "ExactScore": lambda v: ExactScore()(GaussianLatentEnergy(V_DIM, seed=0), None, v),
    "kl_loss": lambda v: kl_loss(energy(), bernoulli(), v),
    "fisher_loss": lambda v: fisher_loss(energy(), bernoulli(), v),
    "fit_posterior": _fit,
    "unroll_posterior": lambda v: unroll_posterior(energy(), bernoulli(), v, steps=0, lr=0.1),
    "draw": lambda v: draw(bernoulli(), v, 2),
    "energy_at": lambda v: energy_at(energy(), v),
    "at_fixed_v": lambda v: at_fixed_v(energy(), v),
    "BernoulliPosterior.logits": lambda v: bernoulli().logits(v),
    "BernoulliPosterior.rsample": lambda v: bernoulli().rsample(v, 2),
    "BernoulliPosterior.log_prob": lambda v: bernoulli().log_prob(
        torch.zeros(1, len(v), H_DIM, dtype=DTYPE), v
    ),
    "BernoulliPosterior.rsample_and_log_prob": lambda v: bernoulli().rsample_and_log_prob(v, 2),
    "GaussianPosterior.mean_and_log_std": lambda v: gaussian().mean_and_log_std(v),
    "GaussianPosterior.rsample_and_log_prob": lambda v: gaussian().rsample_and_log_prob(v, 2),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_an_empty_batch_is_refused_naming_v(name: str) -> None:
    with pytest.raises(ValueError, match=r"v must hold at least one example.*\(0, 3\)"):
        CALLS[name](torch.zeros(0, V_DIM, dtype=DTYPE))


@pytest.mark.parametrize("name", list(CALLS))
def test_a_batch_of_one_is_accepted(name: str) -> None:
    CALLS[name](data(batch=1))


@pytest.mark.parametrize(
    "call",
    [
        lambda q, v: q.logits(v),
        lambda q, v: q.rsample(v, 2),
        lambda q, v: q.log_prob(torch.zeros(1, len(v), H_DIM), v),
        lambda q, v: q.rsample_and_log_prob(v, 2),
    ],
)
def test_v_of_another_dtype_than_the_posterior_network_is_named(call) -> None:
    with pytest.raises(
        TypeError,
        match=r"v has dtype torch\.float64 but the posterior network's parameters have "
        r"dtype torch\.float32",
    ):
        call(bernoulli(torch.float32), data())
    with pytest.raises(TypeError, match=r"v has dtype torch\.float32 but the posterior network"):
        gaussian().rsample(data(dtype=torch.float32), 2)


@pytest.mark.parametrize(
    "call",
    [
        *[(lambda v, e=e: e(energy(), bernoulli(torch.float32), v)) for e in ESTIMATORS],
        lambda v: ExactScore()(GaussianLatentEnergy(V_DIM, seed=0), None, v),
        lambda v: kl_loss(energy(), bernoulli(torch.float32), v),
        lambda v: fisher_loss(energy(), bernoulli(torch.float32), v),
        lambda v: fit_posterior(
            energy(), q := bernoulli(torch.float32), v, torch.optim.SGD(q.parameters(), lr=0.1)
        ),
    ],
)
def test_v_of_another_dtype_than_the_energy_is_named(call) -> None:
    """float32 v and posterior, float64 energy: the energy fails inside, the error names v."""
    with pytest.raises(
        TypeError,
        match=r"v has dtype torch\.float32 but the energy's parameters have dtype torch\.float64",
    ):
        call(data(dtype=torch.float32))


class _Float32Draws:
    """A posterior whose draws come back in float32 whatever v's dtype."""

    def __init__(self, posterior: BernoulliPosterior) -> None:
        self.posterior = posterior

    def rsample(self, v: Tensor, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return self.posterior.rsample(v, n, generator=generator).float()

    def log_prob(self, h: Tensor, v: Tensor) -> Tensor:
        return self.posterior.log_prob(h.to(v.dtype), v)


@pytest.mark.parametrize("estimator", ESTIMATORS[:5], ids=repr)
def test_posterior_draws_of_another_dtype_than_the_energy_are_named(estimator) -> None:
    with pytest.raises(
        TypeError,
        match=r"the posterior's draws h have dtype torch\.float32 but the energy's parameters "
        r"have dtype torch\.float64",
    ):
        estimator(energy(), _Float32Draws(bernoulli()), data())


def test_other_errors_of_the_energy_pass_through_unchanged() -> None:
    class Failing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros((), dtype=DTYPE))

        def forward(self, v: Tensor, h: Tensor) -> Tensor:
            raise RuntimeError("the energy's own failure")

    with pytest.raises(RuntimeError, match="the energy's own failure"):
        VaES(2)(Failing(), bernoulli(), data())


def test_the_control_variate_refuses_refined_draws_and_a_posterior_without_log_prob():
    with pytest.raises(ValueError, match="control_variate needs draws of q itself"):
        VaGES(2, refine=Langevin(2), control_variate=True)
    with pytest.raises(TypeError, match="control_variate must be True or False"):
        VaES(2, control_variate=1)  # type: ignore[arg-type]

    class SamplerOnly:
        def rsample(self, v, n, *, generator=None):
            return torch.zeros(n, len(v), H_DIM, dtype=DTYPE)

    with pytest.raises(TypeError, match="needs the posterior's log_prob"):
        VaGES(2, control_variate=True)(energy(), SamplerOnly(), data())

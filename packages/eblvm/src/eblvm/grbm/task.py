"""GRBMs as a task of the training loop: data, models, evaluation.

The data are a fixed train/validation/test split of vectors; a run's model is a GRBM
with b at the data mean and W ~ N(0, weight_std²), and, for the estimators, a
Bernoulli q(h | v) with a linear parameter network (the paper's GRBM setting). Runs
of one shape train as a stack. An evaluation is the log-likelihood of the validation
and test splits with log Z exact (small h) or by AIS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
from torch import Tensor, nn

from eblvm.parts import Model
from eblvm.settings import Settings
from eblvm.stacked import StackedEnergy, StackedNetwork
from eblvm.task import RunSnapshot
from eblvm_data import (
    Splits,
    blobs_log_density,
    blobs_splits,
    checkerboard_log_density,
    checkerboard_splits,
    digits,
    frey_face,
    moons_splits,
    rings_log_density,
    rings_splits,
    swiss_roll_splits,
)
from eblvm_eval import ais_log_partition, density_plot, exact_log_partition, log_likelihood
from ebm_models import GRBM
from score_estimators import BernoulliPosterior
from score_objectives import dsm

SELECTION = ("validation_log_likelihood", "max")


class LogPartition(NamedTuple):
    value: float
    std_err: float
    method: str


TOYS: dict[str, Callable[..., Splits]] = {
    "blobs": blobs_splits,
    "swiss_roll": swiss_roll_splits,
    "moons": moons_splits,
    "rings": rings_splits,
}


def load_splits(settings: Settings) -> Splits:
    """The configured data set's fixed train/validation/test split, each (N, D)."""
    data = settings.data
    if data.dataset == "checkerboard":
        return checkerboard_splits(columns=data.columns, n_train=data.n_train)
    if data.dataset in TOYS:
        return TOYS[data.dataset](n_train=data.n_train)
    if data.dataset == "digits":
        return digits()
    return frey_face(data.data_root)


def data_log_likelihood(settings: Settings, test: Tensor) -> float | None:
    """The data distribution's own mean log-density on the test split, where it is known
    (the ceiling of a model's test log-likelihood): checkerboard, blobs and rings."""
    dataset = settings.data.dataset
    if dataset == "checkerboard":
        return float(checkerboard_log_density(test, columns=settings.data.columns).mean())
    densities: dict[str, Callable[[Tensor], Tensor]] = {
        "blobs": blobs_log_density,
        "rings": rings_log_density,
    }
    if dataset in densities:
        return float(densities[dataset](test.double()).mean())
    return None


def estimate_log_partition(model: GRBM, settings: Settings, *, seed: int) -> LogPartition:
    """Exact log Z by enumeration when h is small enough (``log_z="auto"``), else AIS."""
    evaluation = settings.evaluation
    use_exact = evaluation.log_z == "exact" or (
        evaluation.log_z == "auto" and model.h_dim <= evaluation.exact_log_z_max_h
    )
    with torch.no_grad():
        if use_exact:
            return LogPartition(float(exact_log_partition(model)), 0.0, "exact")
        result = ais_log_partition(
            model,
            n_chains=evaluation.ais_chains,
            n_steps=evaluation.ais_steps,
            generator=torch.Generator(model.W.device).manual_seed(seed),
        )
    return LogPartition(float(result.log_z), float(result.log_z_std_err), "ais")


def mean_log_likelihood(model: GRBM, v: Tensor, log_z: float, *, chunk: int = 10_000) -> float:
    """Average log p(v) over the rows of v: (N, D), in chunks."""
    device = model.W.device
    with torch.no_grad():
        total = sum(
            float(log_likelihood(model, part.to(device), log_z=log_z).double().sum())
            for part in v.split(chunk)
        )
    return total / len(v)


class GRBMTask:
    """The GRBM family (see the module docstring)."""

    stackable = True
    compile_by_default = True
    cpu_threads = 1

    def __init__(self, settings: Settings) -> None:
        self.splits = load_splits(settings)
        self.v_dim = int(self.splits.train.shape[1])

    @property
    def train_size(self) -> int:
        return len(self.splits.train)

    def selection(self, settings: Settings) -> tuple[str, str]:
        return SELECTION

    def batch(self, indices: Tensor, generator: torch.Generator) -> Tensor:
        return self.splits.train[indices]

    def build(self, settings: Settings, generator: torch.Generator) -> Model:
        """A GRBM with b at the data mean, W ~ N(0, weight_std²), c = 0, log σ = 0, and
        (for the score estimators) a Bernoulli q with a linear network initialised like
        nn.Linear's default (uniform, bound 1/√D), all from ``generator``."""
        h_dim = settings.model.h_dim
        energy = GRBM(self.v_dim, h_dim, weight_std=settings.model.weight_std, generator=generator)
        with torch.no_grad():
            energy.b.copy_(self.splits.train.mean(0))
        posterior = None
        if settings.method.declared.posterior:
            net = nn.Linear(self.v_dim, h_dim)
            bound = self.v_dim**-0.5
            with torch.no_grad():
                net.weight.uniform_(-bound, bound, generator=generator)
                net.bias.uniform_(-bound, bound, generator=generator)
            posterior = BernoulliPosterior(net, temperature=settings.posterior.temperature)
        return Model(energy, posterior, (h_dim,))

    def stack(self, models: Sequence[Model]) -> Model:
        """The runs' GRBMs as one StackedEnergy, their posteriors' networks as one."""
        energy = StackedEnergy([m.energy for m in models])
        posterior = None
        first = models[0].posterior
        if isinstance(first, BernoulliPosterior):
            nets = [cast(BernoulliPosterior, m.posterior).logits_net for m in models]
            posterior = BernoulliPosterior(StackedNetwork(nets), temperature=first.temperature)
        return Model(energy, posterior, models[0].latent_shape)

    def evaluate(self, runs: Sequence[RunSnapshot], iteration: int) -> list[dict[str, Any]]:
        """Per run (its moving average when it keeps one): log Z, the validation and test
        log-likelihood, and the test split's DSM loss of the exact score at the run's σ
        (with fixed noise, so that evaluations compare)."""
        rows = []
        for run in runs:
            grbm = run.average if run.average is not None else run.model.energy
            assert isinstance(grbm, GRBM)
            log_z = estimate_log_partition(grbm, run.settings, seed=run.settings.seed + iteration)
            test = self.splits.test.to(grbm.W.device)
            with torch.no_grad():
                test_dsm = dsm(
                    grbm.score,
                    test,
                    sigma=run.settings.objective.sigma,
                    generator=torch.Generator(test.device).manual_seed(0),
                )
            rows.append(
                {
                    "log_z": log_z.value,
                    "log_z_std_err": log_z.std_err,
                    "log_z_method": log_z.method,
                    "validation_log_likelihood": mean_log_likelihood(
                        grbm, self.splits.validation, log_z.value
                    ),
                    "test_log_likelihood": mean_log_likelihood(grbm, self.splits.test, log_z.value),
                    "test_dsm": float(test_dsm),
                }
            )
        return rows

    def best_record(self, run: RunSnapshot) -> dict[str, Any]:
        return {"model": {k: v.detach().cpu() for k, v in run.model.energy.state_dict().items()}}

    def finish(self, run: RunSnapshot, row: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
        """The summary's numbers (the selected evaluation's test log-likelihood when
        selecting by validation) and, for 2-D data, the density plot."""
        if "test_log_likelihood" not in row:
            return {}
        summary = {
            key: row[key]
            for key in ("test_log_likelihood", "validation_log_likelihood", "log_z", "log_z_method")
        }
        summary["data_log_likelihood"] = data_log_likelihood(run.settings, self.splits.test)
        if run.settings.evaluation.select_by == "validation" and best:
            summary["test_log_likelihood"] = best["test_log_likelihood"]
        if self.v_dim == 2:
            grbm = run.average if run.average is not None else run.model.energy
            log_z = row["log_z"]
            summary["density_plot"] = str(
                density_plot(
                    lambda x: log_likelihood(grbm, x, log_z=log_z),  # type: ignore[arg-type]
                    self.splits.test[:5000],
                    path=Path(run.folder) / "density.png",
                    title=f"{run.settings.method.name}-{run.settings.objective.name}, test "
                    f"log-likelihood {row['test_log_likelihood']:.4f}",
                )
            )
        return summary

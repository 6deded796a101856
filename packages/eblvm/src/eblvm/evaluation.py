"""Log-likelihood evaluation of a GRBM: exact log Z when h is small, AIS otherwise."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from eblvm.config import TrainConfig
from eblvm_eval import ais_log_partition, exact_log_partition, log_likelihood
from ebm_models import GRBM


class LogPartition(NamedTuple):
    value: float
    std_err: float
    method: str


def estimate_log_partition(model: GRBM, config: TrainConfig, *, seed: int) -> LogPartition:
    """Exact log Z by enumeration when ``h_dim`` allows it (``log_z="auto"``), else AIS."""
    use_exact = config.log_z == "exact" or (
        config.log_z == "auto" and model.h_dim <= config.exact_log_z_max_h
    )
    with torch.no_grad():
        if use_exact:
            return LogPartition(float(exact_log_partition(model)), 0.0, "exact")
        result = ais_log_partition(
            model,
            n_chains=config.ais_chains,
            n_steps=config.ais_steps,
            generator=torch.Generator().manual_seed(seed),
        )
    return LogPartition(float(result.log_z), float(result.log_z_std_err), "ais")


def mean_log_likelihood(model: GRBM, v: Tensor, log_z: float, *, chunk: int = 10_000) -> float:
    """Average log p(v) over the rows of v: (N, D), in chunks."""
    with torch.no_grad():
        total = sum(
            float(log_likelihood(model, part, log_z=log_z).double().sum())
            for part in v.split(chunk)
        )
    return total / len(v)

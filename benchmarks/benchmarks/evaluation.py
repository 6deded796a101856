"""Evaluation and objectives: AIS on the Frey-sized GRBM, KSD, annealed Langevin.

AIS runs 2000 chains; 2000 steps (the paper's setting) is a large size, 200 steps
runs everywhere. ``time_matrix_products`` times the two matrix products of every
AIS step alone, dense, the bar AIS is compared with (on CPU AIS skips most of the
zero triangle of its factor R, so its own products cost less than the bar's).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from . import workloads as w


def _eblvm_eval(module: str) -> ModuleType:
    """``eblvm_eval.<module>``; skips the benchmark where eblvm-eval is not installed
    (commits before it existed)."""
    try:
        return importlib.import_module(f"eblvm_eval.{module}")
    except ImportError as error:
        raise NotImplementedError(f"eblvm-eval is not installed: {error}") from error


class AIS:
    """log Z of the Frey-sized GRBM (560 × 400) by AIS with 2000 chains."""

    params = ([200, 2000], list(w.DEVICES))
    param_names = ("steps", "device")
    timeout = 900.0

    def setup(self, steps: int, device: str) -> None:
        dev = w.device(device)
        w.require_size(dev, large=steps > 200)
        self.ais_log_partition = _eblvm_eval("ais").ais_log_partition
        self.grbm = w.grbm_model(w.GRBM_SIZES["frey"], dev)
        self.device = dev

    def time_ais(self, steps: int, device: str) -> None:
        self.ais_log_partition(self.grbm, n_chains=w.AIS_CHAINS, n_steps=steps)
        w.synchronize(self.device)

    def time_matrix_products(self, steps: int, device: str) -> None:
        w.ais_matrix_products(self.grbm, n_chains=w.AIS_CHAINS, n_steps=steps)
        w.synchronize(self.device)


class KSD:
    """One θ step on the KSD of the Frey-sized GRBM's score (exact, or VaGES with L = 2
    from a fixed posterior): the U-statistic over B(B − 1) pairs."""

    params = ([100, 300, 1000], ["exact", "vages"], list(w.DEVICES))
    param_names = ("batch", "score", "device")
    timeout = 300.0

    def setup(self, batch: int, score: str, device: str) -> None:
        self.iteration = w.grbm_iteration(
            "frey",
            score,
            w.device(device),
            objective="ksd",
            batch=batch,
            posterior_steps=0,
        )
        self.iteration.step()
        w.synchronize(self.iteration.device)

    def time_theta_step(self, batch: int, score: str, device: str) -> None:
        self.iteration.step()
        w.synchronize(self.iteration.device)


class AnnealedLangevin:
    """40 steps of annealed Langevin dynamics in v (10 at T = 100, 20 geometric to
    T = 1, 10 to T = 0) and the denoising step, h fixed, one chain per image of the
    deep size's batch."""

    params = (list(w.DEEP_SIZES), list(w.DEVICES))
    param_names = ("size", "device")
    timeout = 300.0

    def setup(self, size: str, device: str) -> None:
        samplers = _eblvm_eval("samplers")
        self.device = w.device(device)
        self.score_fn, self.v0 = w.langevin_workload(size, self.device)
        self.sampler: Any = samplers.annealed_langevin
        self.schedule = samplers.annealing_schedule(hold_steps=10, anneal_steps=20, final_steps=10)

    def time_annealed_langevin(self, size: str, device: str) -> None:
        self.sampler(self.score_fn, self.v0, schedule=self.schedule)
        w.synchronize(self.device)

"""The objectives alone: KSD at the median bandwidth against a given one, and SM's trace.

KSD of 2000 samples in 50 dimensions with the score of N(0, I): ``median`` finds the
bandwidth from the B(B − 1)/2 pairwise distances, ``given`` is passed that median's
value, so the two differ by the median heuristic alone (goal: median ≤ 1.5 × given).
SM at batch 128 of a tanh MLP score (D → 128 → 128 → D): its value and the backward
pass to θ, for D = 2, 10 and 50; the exact trace takes D vector-Jacobian products.
"""

from __future__ import annotations

import torch
from torch import Tensor

from score_objectives import ksd, median_bandwidth, sm

from . import workloads as w

KSD_BATCH, KSD_DIM = 2000, 50
SM_BATCH, SM_WIDTH = 128, 128


def _standard_normal_score(x: Tensor) -> Tensor:
    return -x


class KSDBandwidth:
    """ksd(−x, v) of v (2000, 50), at the median bandwidth or at that value given."""

    params = (["median", "given"], list(w.DEVICES))
    param_names = ("bandwidth", "device")

    def setup(self, bandwidth: str, device: str) -> None:
        self.device = w.device(device)
        g = torch.Generator().manual_seed(0)
        self.v = torch.randn(KSD_BATCH, KSD_DIM, generator=g).to(self.device)
        self.bandwidth = None if bandwidth == "median" else median_bandwidth(self.v)

    def time_ksd(self, bandwidth: str, device: str) -> None:
        ksd(_standard_normal_score, self.v, bandwidth=self.bandwidth)
        w.synchronize(self.device)


class SMTrace:
    """sm of a tanh MLP score at batch 128, forward and backward to θ."""

    params = ([2, 10, 50], list(w.DEVICES))
    param_names = ("dim", "device")

    def setup(self, dim: int, device: str) -> None:
        self.device = w.device(device)
        torch.manual_seed(0)
        self.score = torch.nn.Sequential(
            torch.nn.Linear(dim, SM_WIDTH),
            torch.nn.Tanh(),
            torch.nn.Linear(SM_WIDTH, SM_WIDTH),
            torch.nn.Tanh(),
            torch.nn.Linear(SM_WIDTH, dim),
        ).to(self.device)
        g = torch.Generator().manual_seed(1)
        self.v = torch.randn(SM_BATCH, dim, generator=g).to(self.device)

    def time_sm_step(self, dim: int, device: str) -> None:
        self.score.zero_grad(set_to_none=True)
        sm(self.score, self.v).backward()
        w.synchronize(self.device)

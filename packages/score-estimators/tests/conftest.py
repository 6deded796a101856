"""Fixtures: small models with exact answers (see exact_models.py)."""

from __future__ import annotations

import pytest
import torch
from exact_models import DTYPE, BinaryLatentEnergy
from torch import Tensor


@pytest.fixture
def binary_model() -> BinaryLatentEnergy:
    return BinaryLatentEnergy(3, 4, scale=1.0, seed=0)


@pytest.fixture
def data() -> Tensor:
    return torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=DTYPE)

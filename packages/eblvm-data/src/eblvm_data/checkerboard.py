"""The 2-D checkerboard: uniform on the dark cells of a board on the unit square."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from eblvm_data._checks import check_points
from eblvm_data._common_checks import check_float_dtype, check_generator, check_int
from eblvm_data.splits import Splits, seeded_splits

#: True log-density of the default 2 × 2 board on its support: area ½, density 2.
CHECKERBOARD_LOG_DENSITY = math.log(2.0)

#: Seeds of ``torch.Generator().manual_seed`` for each split of `checkerboard_splits`.
CHECKERBOARD_SEEDS = Splits(train=1, validation=2, test=3)


def checkerboard(
    n: int,
    *,
    columns: int = 2,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``n`` points uniform on the dark cells of a ``columns × columns`` board.

    The board covers ``[0, 1]²``; cell ``(i, j)`` is
    ``[i / columns, (i + 1) / columns] × [j / columns, (j + 1) / columns]`` and
    is dark when ``i + j`` is even (the cell at the origin is dark), so there
    are ``⌈columns² / 2⌉`` dark cells. A dark cell is chosen with equal
    probability, then the point is uniform in it. The default board is
    ``[0, ½]² ∪ [½, 1]²``. ``generator`` must be a CPU generator; the result is
    on the CPU.

    Returns ``(n, 2)`` of ``dtype``.
    """
    n = check_int(n, "n", minimum=1)
    columns = check_int(columns, "columns", minimum=2)
    check_generator(generator, cpu=True)
    dtype = check_float_dtype(dtype)
    cells = _dark_cells(columns)
    cell = torch.randint(0, len(cells), (n,), generator=generator)
    offset = torch.rand(n, 2, generator=generator, dtype=dtype)
    return (cells[cell].to(dtype) + offset) / columns


def checkerboard_log_density(x: Tensor, *, columns: int = 2) -> Tensor:
    """The exact ``log p(x)`` of `checkerboard` with ``columns``: ``x: (B, 2) -> (B,)``.

    The dark cells cover the area ``A = ⌈columns² / 2⌉ / columns²``, so the
    density is ``1 / A`` on them: ``log p = log(columns² / ⌈columns² / 2⌉)``
    (``log 2`` for even ``columns``), and ``-inf`` on the light cells and off
    ``[0, 1]²``. Cells are closed: a point on (or within a few rounding errors
    of ``x``'s dtype from) an edge that a dark cell shares counts as dark, so a
    sample never gets ``-inf``. Same dtype and device as ``x``.
    """
    x = check_points(x)
    columns = check_int(columns, "columns", minimum=2)
    t = x.double() * columns
    slack = 4 * columns * torch.finfo(x.dtype).eps
    low = (t - slack).floor().clamp(0, columns - 1)
    high = (t + slack).floor().clamp(0, columns - 1)
    # Near an inner edge the point touches a cell of either parity, one of them dark.
    dark = (low.sum(dim=1) % 2 == 0) | (low != high).any(dim=1)
    inside = ((x >= 0) & (x <= 1)).all(dim=1)
    value = math.log(columns**2 / len(_dark_cells(columns)))
    return torch.full_like(x[:, 0], -math.inf).masked_fill(inside & dark, value)


def checkerboard_splits(
    *, columns: int = 2, n_train: int = 60000, n_validation: int = 10000, n_test: int = 10000
) -> Splits:
    """Fixed checkerboard splits, each ``(n, 2)`` float32.

    Split ``s`` is ``checkerboard(n_s, columns=columns,
    generator=torch.Generator().manual_seed(seed_s))`` with the seeds in
    `CHECKERBOARD_SEEDS` (train 1, validation 2, test 3).
    """
    return seeded_splits(
        lambda size, generator: checkerboard(size, columns=columns, generator=generator),
        CHECKERBOARD_SEEDS,
        n_train=n_train,
        n_validation=n_validation,
        n_test=n_test,
    )


def _dark_cells(columns: int) -> Tensor:
    """The ``(i, j)`` of the dark cells, ``(⌈columns² / 2⌉, 2)`` int64, row-major."""
    i, j = torch.meshgrid(torch.arange(columns), torch.arange(columns), indexing="ij")
    dark = (i + j) % 2 == 0
    return torch.stack([i[dark], j[dark]], dim=1)

"""float16 is refused, naming the argument; bfloat16 gives float32's values to its precision."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from objectives_testing import ElementwiseScore, seeded

from score_objectives import dsm, ksd, mdsm, median_bandwidth, rbf_stein_kernel, sm, ssm

ScoreFn = Callable[[torch.Tensor], torch.Tensor]

# Each objective with its random draws fixed by a fresh generator.
OBJECTIVES: dict[str, Callable[[ScoreFn, torch.Tensor], torch.Tensor]] = {
    "sm": lambda f, v: sm(f, v),
    "ssm": lambda f, v: ssm(f, v, n_projections=4, generator=seeded(60)),
    "dsm": lambda f, v: dsm(f, v, sigma=0.1, generator=seeded(61)),
    "mdsm": lambda f, v: mdsm(f, v, sigma_min=0.01, sigma_max=1.0, generator=seeded(62)),
    "ksd": lambda f, v: ksd(f, v),
}


def data(scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(16, 4, generator=seeded(63))


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_float16_data_are_refused(name: str) -> None:
    # In float16, mdsm's squared norms overflow to inf (float32: about 2e4 per sample)
    # and ksd of a small-scale sample is NaN; a refusal, not a wrong number.
    model = ElementwiseScore(torch.float16)
    with pytest.raises(TypeError, match="v must not be float16"):
        OBJECTIVES[name](model, data().half())


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_float16_scores_are_refused(name: str) -> None:
    model = ElementwiseScore(torch.float32)
    with pytest.raises(TypeError, match="score_fn must not return float16"):
        OBJECTIVES[name](lambda x: model(x).half(), data())


def test_float16_is_refused_by_the_kernel_and_the_bandwidth() -> None:
    v = data()
    with pytest.raises(TypeError, match="v must not be float16"):
        median_bandwidth(v.half())
    with pytest.raises(TypeError, match="x must not be float16"):
        rbf_stein_kernel(v.half(), v, v, v, bandwidth=1.0)
    with pytest.raises(TypeError, match="score_y must not be float16"):
        rbf_stein_kernel(v, v, v, v.half(), bandwidth=1.0)


@pytest.mark.parametrize("scale", [1.0, 1e-3])
@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_bfloat16_matches_float32_on_the_same_data(name: str, scale: float) -> None:
    # The same bfloat16-rounded data and parameters, computed in bfloat16 and in float32.
    # bfloat16 keeps float32's range, so nothing overflows (scale 1e-3 is the sample
    # on which float16 gives NaN for ksd); it has 8 significant bits, so the values
    # agree to a few percent, as the rounding of every operation allows.
    v = data(scale).bfloat16()
    low, full = ElementwiseScore(torch.bfloat16), ElementwiseScore(torch.float32)
    got = OBJECTIVES[name](low, v)
    want = OBJECTIVES[name](full, v.float())
    assert got.dtype == torch.bfloat16
    assert bool(torch.isfinite(got))
    torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)

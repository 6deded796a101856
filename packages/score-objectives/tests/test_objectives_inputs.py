"""Bad input is refused with an error that names the argument."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from score_objectives import (
    dsm,
    ksd,
    mdsm,
    median_bandwidth,
    noise_levels,
    rbf_stein_kernel,
    sm,
    ssm,
)

V = torch.randn(4, 3, generator=torch.Generator().manual_seed(50))
IMAGE = torch.randn(4, 1, 2, 2, generator=torch.Generator().manual_seed(51))


def score(x: torch.Tensor) -> torch.Tensor:
    return -x


def with_nan(v: torch.Tensor) -> torch.Tensor:
    bad = v.clone()
    bad[1, 0] = float("nan")
    return bad


CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    # v: type, dtype, dims, finiteness, for every objective.
    ("sm list", lambda: sm(score, [[1.0]]), TypeError, "v must be a torch.Tensor"),
    (
        "sm int",
        lambda: sm(score, torch.ones(4, 3, dtype=torch.long)),
        TypeError,
        "v must be a floating",
    ),
    ("sm 1-d", lambda: sm(score, torch.ones(4)), ValueError, "v must have shape"),
    ("sm 3-d", lambda: sm(score, IMAGE[:, 0]), ValueError, r"v must have shape \(B, D\)"),
    ("sm nan", lambda: sm(score, with_nan(V)), ValueError, "v contains non-finite values"),
    ("sm inf", lambda: sm(score, V / 0), ValueError, "v contains non-finite values"),
    # empty batches, and samples of no values
    ("sm empty", lambda: sm(score, torch.ones(0, 3)), ValueError, "v must not be empty"),
    ("sm no values", lambda: sm(score, torch.ones(4, 0)), ValueError, "v must not be empty"),
    ("ssm empty", lambda: ssm(score, torch.ones(0, 3)), ValueError, "v must not be empty"),
    (
        "dsm empty",
        lambda: dsm(score, torch.ones(0, 1, 2, 2), sigma=0.1),
        ValueError,
        "v must not be empty",
    ),
    (
        "mdsm empty",
        lambda: mdsm(score, torch.ones(0, 3), sigma_min=0.1, sigma_max=1.0),
        ValueError,
        "v must not be empty",
    ),
    (
        "mdsm empty levels",
        lambda: mdsm(score, torch.ones(0, 3), levels=torch.ones(0)),
        ValueError,
        "v must not be empty",
    ),
    ("ksd empty", lambda: ksd(score, torch.ones(0, 3)), ValueError, "v must not be empty"),
    (
        "median empty",
        lambda: median_bandwidth(torch.ones(0, 3)),
        ValueError,
        "v must not be empty",
    ),
    (
        "kernel x empty",
        lambda: rbf_stein_kernel(torch.ones(0, 3), V, torch.ones(0, 3), V, bandwidth=1.0),
        ValueError,
        "x must not be empty",
    ),
    (
        "kernel y empty",
        lambda: rbf_stein_kernel(V, torch.ones(0, 3), V, torch.ones(0, 3), bandwidth=1.0),
        ValueError,
        "y must not be empty",
    ),
    ("ssm nan", lambda: ssm(score, with_nan(V)), ValueError, "v contains non-finite values"),
    ("dsm 1-d", lambda: dsm(score, torch.ones(4), sigma=0.1), ValueError, "v must have shape"),
    (
        "mdsm int",
        lambda: mdsm(score, torch.ones(4, 3, dtype=torch.int32), sigma_min=0.1, sigma_max=1.0),
        TypeError,
        "v must be a floating",
    ),
    ("ksd nan", lambda: ksd(score, with_nan(V)), ValueError, "v contains non-finite values"),
    # reduction
    ("sm reduction", lambda: sm(score, V, reduction="sum"), ValueError, "reduction must be one of"),
    (
        "ssm reduction",
        lambda: ssm(score, V, reduction=None),
        ValueError,
        "reduction must be one of",
    ),
    (
        "dsm reduction",
        lambda: dsm(score, V, sigma=0.1, reduction="batchmean"),
        ValueError,
        "reduction",
    ),
    (
        "mdsm reduction",
        lambda: mdsm(score, V, sigma_min=0.1, sigma_max=1.0, reduction="Mean"),
        ValueError,
        "reduction",
    ),
    ("ksd reduction", lambda: ksd(score, V, reduction="sum"), ValueError, "reduction"),
    # sigma, sigma0, range, schedule
    ("dsm sigma 0", lambda: dsm(score, V, sigma=0.0), ValueError, "sigma must be finite and > 0"),
    (
        "dsm sigma < 0",
        lambda: dsm(score, V, sigma=-1.0),
        ValueError,
        "sigma must be finite and > 0",
    ),
    (
        "dsm sigma inf",
        lambda: dsm(score, V, sigma=float("inf")),
        ValueError,
        "sigma must be finite",
    ),
    ("dsm sigma str", lambda: dsm(score, V, sigma="0.1"), TypeError, "sigma must be a real number"),
    ("dsm sigma bool", lambda: dsm(score, V, sigma=True), TypeError, "sigma must be a real number"),
    (
        "mdsm sigma_min 0",
        lambda: mdsm(score, V, sigma_min=0.0, sigma_max=1.0),
        ValueError,
        "sigma_min must be finite and > 0",
    ),
    (
        "mdsm sigma_max < 0",
        lambda: mdsm(score, V, sigma_min=0.1, sigma_max=-1.0),
        ValueError,
        "sigma_max must be finite and > 0",
    ),
    (
        "mdsm min > max",
        lambda: mdsm(score, V, sigma_min=1.0, sigma_max=0.5),
        ValueError,
        "sigma_min must be <= sigma_max",
    ),
    (
        "mdsm sigma0",
        lambda: mdsm(score, V, sigma_min=0.1, sigma_max=1.0, sigma0=0),
        ValueError,
        "sigma0 must be finite and > 0",
    ),
    (
        "mdsm schedule",
        lambda: mdsm(score, V, sigma_min=0.1, sigma_max=1.0, schedule="cosine"),
        ValueError,
        "schedule must be one of",
    ),
    (
        "levels schedule",
        lambda: noise_levels(4, sigma_min=0.1, sigma_max=1.0, schedule="log"),
        ValueError,
        "schedule must be one of",
    ),
    (
        "levels batch 0",
        lambda: noise_levels(0, sigma_min=0.1, sigma_max=1.0, schedule="linear"),
        ValueError,
        "batch_size must be >= 1",
    ),
    (
        "levels batch float",
        lambda: noise_levels(2.0, sigma_min=0.1, sigma_max=1.0, schedule="linear"),
        TypeError,
        "batch_size must be an int",
    ),
    (
        "levels min > max",
        lambda: noise_levels(3, sigma_min=2.0, sigma_max=1.0, schedule="linear"),
        ValueError,
        "sigma_min must be <= sigma_max",
    ),
    (
        "levels dtype",
        lambda: noise_levels(3, sigma_min=0.1, sigma_max=1.0, schedule="linear", dtype=torch.int64),
        TypeError,
        "dtype must be a floating",
    ),
    # n_projections, projection
    ("ssm n 0", lambda: ssm(score, V, n_projections=0), ValueError, "n_projections must be >= 1"),
    (
        "ssm n float",
        lambda: ssm(score, V, n_projections=1.5),
        TypeError,
        "n_projections must be an int",
    ),
    (
        "ssm projection",
        lambda: ssm(score, V, projection="sphere"),
        ValueError,
        "projection must be one of",
    ),
    # injected noise
    (
        "ssm noise shape",
        lambda: ssm(score, V, n_projections=2, noise=torch.randn(1, 4, 3)),
        ValueError,
        r"noise must have shape \(2, 4, 3\)",
    ),
    (
        "ssm noise dtype",
        lambda: ssm(score, V, noise=torch.randn(1, 4, 3, dtype=torch.float64)),
        ValueError,
        "noise must have v's dtype",
    ),
    (
        "dsm noise shape",
        lambda: dsm(score, V, sigma=0.1, noise=torch.randn(4, 2)),
        ValueError,
        r"noise must have shape \(4, 3\)",
    ),
    (
        "dsm noise type",
        lambda: dsm(score, V, sigma=0.1, noise=[0.0]),
        TypeError,
        "noise must be a torch.Tensor",
    ),
    (
        "dsm noise nan",
        lambda: dsm(score, V, sigma=0.1, noise=with_nan(V)),
        ValueError,
        "noise contains non-finite",
    ),
    (
        "dsm noise and generator",
        lambda: dsm(score, V, sigma=0.1, noise=V, generator=torch.Generator()),
        ValueError,
        "noise and generator are exclusive",
    ),
    (
        "mdsm noise shape",
        lambda: mdsm(score, IMAGE, sigma_min=0.1, sigma_max=1.0, noise=torch.randn(4, 4)),
        ValueError,
        "noise must have shape",
    ),
    # score_fn output
    (
        "sm score shape",
        lambda: sm(lambda x: x.sum(1), V),
        ValueError,
        "score_fn must return a tensor of v's shape",
    ),
    ("ssm score shape", lambda: ssm(lambda x: x[:, :2], V), ValueError, "score_fn must return"),
    (
        "dsm score shape",
        lambda: dsm(lambda x: x.flatten(1), IMAGE, sigma=0.1),
        ValueError,
        "score_fn must return",
    ),
    (
        "mdsm score shape",
        lambda: mdsm(lambda x: x.T, V, sigma_min=0.1, sigma_max=1.0),
        ValueError,
        "score_fn must return",
    ),
    ("ksd score shape", lambda: ksd(lambda x: x[:2], V), ValueError, "score_fn must return"),
    (
        "ksd score type",
        lambda: ksd(lambda x: x.tolist(), V),
        TypeError,
        "score_fn must return a torch.Tensor",
    ),
    (
        "sm score no graph",
        lambda: sm(lambda x: -x.detach(), V),
        ValueError,
        "score_fn output carries no autograd graph",
    ),
    (
        "ssm score no graph",
        lambda: ssm(lambda x: torch.zeros_like(x).detach(), V),
        ValueError,
        "score_fn output carries no autograd graph",
    ),
    # ksd: pairs and bandwidth
    ("ksd one sample", lambda: ksd(score, V[:1]), ValueError, "v must hold at least 2 samples"),
    (
        "median one sample",
        lambda: median_bandwidth(V[:1]),
        ValueError,
        "v must hold at least 2 samples",
    ),
    (
        "median zero",
        lambda: median_bandwidth(torch.zeros(3, 2)),
        ValueError,
        "v has a zero median pairwise distance",
    ),
    (
        "ksd bandwidth 0",
        lambda: ksd(score, V, bandwidth=0.0),
        ValueError,
        "bandwidth must be finite and > 0",
    ),
    (
        "ksd bandwidth nan",
        lambda: ksd(score, V, bandwidth=float("nan")),
        ValueError,
        "bandwidth must be finite",
    ),
    (
        "ksd bandwidth vector",
        lambda: ksd(score, V, bandwidth=torch.ones(2)),
        ValueError,
        "bandwidth must be a number or a 0-dim",
    ),
    (
        "ksd bandwidth str",
        lambda: ksd(score, V, bandwidth="median"),
        TypeError,
        "bandwidth must be a number or a tensor",
    ),
    (
        "kernel trailing",
        lambda: rbf_stein_kernel(V, IMAGE, V, IMAGE, bandwidth=1.0),
        ValueError,
        "y must have x's trailing shape",
    ),
    (
        "kernel score_x",
        lambda: rbf_stein_kernel(V, V, V[:2], V, bandwidth=1.0),
        ValueError,
        "score_x must have shape",
    ),
    (
        "kernel score_y type",
        lambda: rbf_stein_kernel(V, V, V, None, bandwidth=1.0),
        TypeError,
        "score_y must be a torch.Tensor",
    ),
    (
        "kernel x 1-d",
        lambda: rbf_stein_kernel(V[0], V, V[0], V, bandwidth=1.0),
        ValueError,
        "x must have shape",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_naming_the_argument(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()

"""Bad input at the models' public methods: an empty batch, v, h or features in another
dtype than the model's, h of the wrong shape; refused with errors that name the argument
(not an empty result or torch's "expected m1 and m2 to have the same dtype"). The checks
are static, so the models still trace (make_fx) and map over stacked parameters (vmap)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
import torch
from torch import Tensor
from torch.fx.experimental.proxy_tensor import make_fx

from ebm_models import GRBM, ConvGaussianPosteriorNet, DeepEBLVM, DeepEBM, GaussianEBLVM

D, H = 3, 4
TINY = {"base_width": 4, "blocks_per_stage": 1}


def grbm(dtype: torch.dtype = torch.float32) -> GRBM:
    return GRBM(D, H, weight_std=0.5, generator=torch.Generator().manual_seed(0)).to(dtype)


def visible(batch: int = 5, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(batch, D, generator=torch.Generator().manual_seed(1), dtype=dtype)


def hidden(*shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    generator = torch.Generator().manual_seed(2)
    return torch.bernoulli(torch.full(shape, 0.5, dtype=dtype), generator=generator)


# The GRBM's and the Gaussian model's methods that take a batch v: (B, D).
V_METHODS: dict[str, Callable[[GRBM | GaussianEBLVM, Tensor], object]] = {
    "GRBM.energy": lambda m, v: m.energy(v, hidden(len(v), H, dtype=m.W.dtype)),
    "GRBM.__energy_at_v__": lambda m, v: m.__energy_at_v__(v),
    "GRBM.free_energy": lambda m, v: m.free_energy(v),
    "GRBM.score": lambda m, v: m.score(v),
    "GRBM.posterior_probs": lambda m, v: m.posterior_probs(v),
    "GRBM.posterior_logits": lambda m, v: m.posterior_logits(v),
    "GRBM.exact_posterior.rsample": lambda m, v: m.exact_posterior().rsample(v, 2),
    "GRBM.exact_posterior.log_prob": lambda m, v: m.exact_posterior().log_prob(
        hidden(1, len(v), H, dtype=m.W.dtype), v
    ),
    "GaussianEBLVM.free_energy": lambda m, v: m.free_energy(v),
    "GaussianEBLVM.score": lambda m, v: m.score(v),
    "GaussianEBLVM.posterior_mean": lambda m, v: m.posterior_mean(v),
    "GaussianEBLVM.exact_posterior.rsample": lambda m, v: m.exact_posterior().rsample(v, 2),
}


def _model(name: str, dtype: torch.dtype = torch.float32) -> GRBM | GaussianEBLVM:
    return grbm(dtype) if name.startswith("GRBM") else GaussianEBLVM(D, H).to(dtype)


@pytest.mark.parametrize("name", list(V_METHODS))
def test_an_empty_batch_is_refused_naming_v(name: str) -> None:
    with pytest.raises(ValueError, match=r"v must hold at least one example.*\(0, 3\)"):
        V_METHODS[name](_model(name), torch.zeros(0, D))


@pytest.mark.parametrize("name", list(V_METHODS))
def test_v_of_another_dtype_is_named(name: str) -> None:
    with pytest.raises(
        TypeError, match=r"v must have the model's dtype torch\.float32, got torch\.float64"
    ):
        V_METHODS[name](_model(name), visible(dtype=torch.float64))
    with pytest.raises(
        TypeError, match=r"v must have the model's dtype torch\.float64, got torch\.float32"
    ):
        V_METHODS[name](_model(name, torch.float64), visible())


def test_grbm_refuses_h_of_another_dtype_or_shape() -> None:
    model, v = grbm(), visible()
    with pytest.raises(TypeError, match=r"h must have the model's dtype torch\.float32"):
        model.energy(v, hidden(5, H, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"h must have the model's dtype torch\.float32"):
        model.visible_mean(hidden(5, H, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"h must have shape \(\*S, 5, 4\), got \(5, 3\)"):
        model.energy(v, hidden(5, H - 1))
    with pytest.raises(ValueError, match=r"h must have shape \(\*S, 5, 4\), got \(2, 4, 4\)"):
        model.__energy_at_v__(v)(hidden(2, 4, H))
    with pytest.raises(ValueError, match=r"h must have shape \(\*S, B, 4\), got \(5, 5\)"):
        model.visible_mean(hidden(5, H + 1))
    with pytest.raises(ValueError, match=r"h must have shape \(\*S, 5, 4\), got \(2, 5, 3\)"):
        model.exact_posterior().log_prob(hidden(2, 5, H - 1), v)


def test_deep_models_refuse_an_empty_batch() -> None:
    torch.manual_seed(0)
    eblvm, ebm = DeepEBLVM(3, H, **TINY), DeepEBM(3, **TINY)
    net = ConvGaussianPosteriorNet(3, H, width=4)
    empty = torch.zeros(0, 3, 32, 32)
    calls = [
        eblvm.features,
        lambda v: eblvm.energy(v, torch.zeros(0, H)),
        eblvm.__energy_at_v__,
        ebm.energy,
        ebm.score,
        net,
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"v must hold at least one example"):
            call(empty)
    with pytest.raises(ValueError, match=r"features must hold at least one example"):
        eblvm.energy_from_features(torch.zeros(0, H), torch.zeros(0, H))


def test_deep_eblvm_refuses_features_of_another_dtype() -> None:
    torch.manual_seed(0)
    model = DeepEBLVM(3, H, **TINY)
    features = torch.zeros(2, H, dtype=torch.float64)
    with pytest.raises(
        TypeError, match=r"features must have the model's dtype torch\.float32, got torch\.float64"
    ):
        model.energy_from_features(features, features)


def test_deep_eblvm_runs_under_autocast_with_h_in_the_features_dtype() -> None:
    """Under autocast g1 gives bf16 features; h in their dtype is accepted."""
    torch.manual_seed(0)
    model = DeepEBLVM(3, H, **TINY)
    v = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.features(v)
        energy = model.energy_from_features(features, torch.zeros(2, H, dtype=features.dtype))
    assert features.dtype == torch.bfloat16
    assert energy.shape == (2,) and bool(energy.isfinite().all())


def test_grbm_checks_let_it_trace_and_map_over_stacked_parameters() -> None:
    v = visible(dtype=torch.float64)
    model = grbm(torch.float64)
    graph = make_fx(lambda x: model.score(x))(v)
    torch.testing.assert_close(graph(2 * v), model.score(2 * v))
    models = [GRBM(D, H, generator=torch.Generator().manual_seed(s)).double() for s in range(3)]
    params = {
        name: torch.stack([dict(m.named_parameters())[name].detach() for m in models])
        for name, _ in models[0].named_parameters()
    }
    h = hidden(5, H, dtype=torch.float64)
    mapped = torch.func.vmap(lambda p: torch.func.functional_call(models[0], p, (v, h)))(params)
    for run, m in enumerate(models):
        torch.testing.assert_close(mapped[run], m.energy(v, h))


@pytest.mark.parametrize("model", [GRBM, GaussianEBLVM])
@pytest.mark.parametrize(
    ("weight_std", "error", "message"),
    [
        (math.nan, ValueError, "weight_std must be finite and >= 0, got nan"),
        (math.inf, ValueError, "weight_std must be finite and >= 0, got inf"),
        (-0.1, ValueError, "weight_std must be finite and >= 0, got -0.1"),
        ("0.1", TypeError, "weight_std must be a real number, got str"),
    ],
)
def test_a_weight_std_that_is_not_finite_and_non_negative_is_refused(
    model, weight_std, error, message
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        model(D, H, weight_std=weight_std)


@pytest.mark.parametrize("model", [GRBM, GaussianEBLVM])
def test_a_weight_std_of_zero_starts_with_zero_weights(model) -> None:
    assert torch.count_nonzero(model(D, H, weight_std=0).W) == 0
    assert torch.isfinite(model(D, H, weight_std=2).W).all()

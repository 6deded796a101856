"""Deep EBLVM, deep EBM and the convolutional posterior network, on tiny networks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from ebm_models import AdditiveCoupling, ConvGaussianPosteriorNet, DeepEBLVM, DeepEBM

H = 5
TINY = {"base_width": 4, "blocks_per_stage": 1}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """The networks here are tiny: intra-op threads would only add overhead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(batch: int, channels: int, size: int, *, seed: int, dtype: torch.dtype) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=g, dtype=dtype)


def _latents(*shape: int, seed: int, dtype: torch.dtype) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _eblvm(channels: int = 3, size: int = 32, dtype: torch.dtype = torch.float64) -> DeepEBLVM:
    torch.manual_seed(0)
    return DeepEBLVM(channels, H, image_size=size, **TINY).to(dtype)


def _count_calls(module: nn.Module) -> list[int]:
    calls = [0]

    def hook(*_: object) -> None:
        calls[0] += 1

    module.register_forward_hook(hook)
    return calls


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 64])
def test_shapes(channels: int, size: int) -> None:
    v = _images(2, channels, size, seed=1, dtype=torch.float32)
    eblvm = DeepEBLVM(channels, H, image_size=size, **TINY)
    assert eblvm.features(v).shape == (2, H)
    assert eblvm.energy(v, _latents(2, H, seed=2, dtype=torch.float32)).shape == (2,)
    assert eblvm(v, _latents(3, 2, H, seed=2, dtype=torch.float32)).shape == (3, 2)
    ebm = DeepEBM(channels, image_size=size, **TINY)
    assert ebm.energy(v).shape == (2,)
    assert ebm.score(v).shape == v.shape
    mean, log_std = ConvGaussianPosteriorNet(channels, H, width=4, image_size=size)(v)
    assert mean.shape == log_std.shape == (2, H)


def test_backbone_depth_follows_blocks_per_stage() -> None:
    """6k convolutions on the residual paths for k blocks per stage."""
    for k in (1, 2, 3):
        model = DeepEBLVM(1, H, base_width=4, blocks_per_stage=k)
        convs = [
            name
            for name, module in model.residual_net.named_modules()
            if isinstance(module, nn.Conv2d) and ".conv" in name
        ]
        assert len(convs) == 6 * k


def test_sample_broadcast_equals_loop() -> None:
    model = _eblvm()
    v = _images(2, 3, 32, seed=1, dtype=torch.float64)
    h = _latents(3, 2, H, seed=2, dtype=torch.float64)
    batched = model.energy(v, h)
    for i in range(3):
        torch.testing.assert_close(batched[i], model.energy(v, h[i]), rtol=1e-12, atol=1e-12)
        for b in range(2):
            alone = model.energy(v[b : b + 1], h[i, b : b + 1])
            torch.testing.assert_close(batched[i, b : b + 1], alone, rtol=1e-10, atol=1e-10)


def test_residual_net_runs_once_per_energy_call() -> None:
    model = _eblvm()
    calls = _count_calls(model.residual_net)
    v = _images(2, 3, 32, seed=1, dtype=torch.float64)
    model.energy(v, _latents(7, 2, H, seed=2, dtype=torch.float64))
    assert calls[0] == 1
    energy_of_h = model.__energy_at_v__(v)
    assert calls[0] == 2
    for seed in range(3):
        h = _latents(5, 2, H, seed=seed, dtype=torch.float64)
        torch.testing.assert_close(energy_of_h(h), model.energy(v, h), rtol=1e-12, atol=1e-12)
    assert calls[0] == 2 + 3  # the three direct energy calls above, none from energy_of_h


def test_energy_is_head_of_features() -> None:
    model = _eblvm()
    v = _images(2, 3, 32, seed=1, dtype=torch.float64)
    h = _latents(3, 2, H, seed=2, dtype=torch.float64)
    u = model.features(v)
    torch.testing.assert_close(model.energy(v, h), model.energy_from_features(u, h))
    nested = model.energy(v, h.expand(4, 3, 2, H))
    assert nested.shape == (4, 3, 2)
    torch.testing.assert_close(nested[2], model.energy(v, h))


def test_coupling_is_additive_and_exactly_invertible() -> None:
    torch.manual_seed(0)
    coupling = AdditiveCoupling(4, 3).double()
    u = _latents(2, 5, 4, seed=1, dtype=torch.float64)
    h = _latents(2, 5, 3, seed=2, dtype=torch.float64)
    y, h_out = coupling(u, h)
    assert torch.equal(h_out, h)
    # additive: the shift does not depend on u
    y_other, _ = coupling(u + 1.7, h)
    torch.testing.assert_close(y_other - y, torch.full_like(y, 1.7), rtol=0, atol=1e-12)
    u_back, h_back = coupling.inverse(y, h)
    torch.testing.assert_close(u_back, u, rtol=0, atol=1e-12)
    assert torch.equal(h_back, h)
    # unit lower-triangular Jacobian of (u, h) -> (y, h): determinant 1
    x = torch.cat([u[0, 0], h[0, 0]])

    def flat(x: Tensor) -> Tensor:
        y, h_out = coupling(x[:4], x[4:])
        return torch.cat([y, h_out])

    jacobian = torch.autograd.functional.jacobian(flat, x)
    torch.testing.assert_close(jacobian[:4, :4], torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(jacobian[4:, 4:], torch.eye(3, dtype=torch.float64))
    assert torch.equal(jacobian[4:, :4], torch.zeros(3, 4, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.det(jacobian), torch.tensor(1.0, dtype=torch.float64))


def test_every_parameter_receives_a_gradient() -> None:
    model = _eblvm()
    v = _images(2, 3, 32, seed=1, dtype=torch.float64)
    model.energy(v, _latents(2, 2, H, seed=2, dtype=torch.float64)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_ebm_score_matches_finite_differences() -> None:
    torch.manual_seed(0)
    model = DeepEBM(1, base_width=4, blocks_per_stage=1).double()
    v = _images(2, 1, 32, seed=1, dtype=torch.float64)
    score = model.score(v)
    eps = 1e-6
    g = torch.Generator().manual_seed(3)
    for _ in range(4):
        d = torch.randn(v.shape, generator=g, dtype=torch.float64)
        fd = (model.energy(v + eps * d) - model.energy(v - eps * d)) / (2 * eps)
        torch.testing.assert_close(-(score * d).flatten(1).sum(1), fd, rtol=1e-6, atol=1e-8)
    for index in [(0, 0, 0, 0), (1, 0, 17, 5), (0, 0, 31, 31)]:
        e = torch.zeros_like(v)
        e[index] = 1.0
        fd = (model.energy(v + eps * e) - model.energy(v - eps * e)) / (2 * eps)
        torch.testing.assert_close(-score[index], fd[index[0]], rtol=1e-6, atol=1e-8)


def test_ebm_score_carries_a_graph_to_parameters_and_v() -> None:
    torch.manual_seed(0)
    model = DeepEBM(1, base_width=4, blocks_per_stage=1).double()
    v = _images(2, 1, 32, seed=1, dtype=torch.float64)
    score = model.score(v)
    with torch.no_grad():
        torch.testing.assert_close(model.score(v), score.detach(), rtol=0, atol=0)
    grads = torch.autograd.grad(score.square().sum(), list(model.parameters()), allow_unused=True)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    v_node = v.clone().requires_grad_(True)
    (dv,) = torch.autograd.grad(model.score(v_node).sum(), v_node)
    assert bool(dv.isfinite().all())


def test_bad_input_is_refused() -> None:
    model = DeepEBLVM(3, H, **TINY)
    ebm = DeepEBM(3, **TINY)
    net = ConvGaussianPosteriorNet(3, H, width=4)
    h = torch.zeros(2, H)
    for fn in (lambda v: model.energy(v, h), ebm.energy, ebm.score, net, model.features):
        with pytest.raises(ValueError, match="v must have shape"):
            fn(torch.zeros(2, 1, 32, 32))
        with pytest.raises(ValueError, match="v must have shape"):
            fn(torch.zeros(2, 3, 64, 64))
        with pytest.raises(ValueError, match="v must have shape"):
            fn(torch.zeros(3, 32, 32))
        with pytest.raises(TypeError, match="v must have the model's dtype"):
            fn(torch.zeros(2, 3, 32, 32, dtype=torch.float64))
        with pytest.raises(TypeError, match=r"v must be a torch\.Tensor"):
            fn([[0.0]])
        with pytest.raises(ValueError, match="v contains non-finite"):
            fn(torch.full((2, 3, 32, 32), float("nan")))
    v = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match="h must have shape"):
        model.energy(v, torch.zeros(2, H + 1))
    with pytest.raises(ValueError, match="h must have shape"):
        model.energy(v, torch.zeros(4, 3, H))
    with pytest.raises(ValueError, match="h must have shape"):
        model.energy(v, torch.zeros(H))
    with pytest.raises(TypeError, match="h must have the model's dtype"):
        model.energy(v, torch.zeros(2, H, dtype=torch.float64))
    with pytest.raises(ValueError, match="features must have shape"):
        model.energy_from_features(torch.zeros(2, H + 1), h)
    with pytest.raises(ValueError, match="image_size must be a multiple of 8"):
        DeepEBLVM(3, H, image_size=30)
    with pytest.raises(ValueError, match="base_width must be a positive integer"):
        DeepEBM(3, base_width=0)
    with pytest.raises(ValueError, match="h_dim must be a positive integer"):
        ConvGaussianPosteriorNet(3, 0)


_MODELS = {
    (channels, dtype): (
        _eblvm(channels, 32, dtype),
        DeepEBM(channels, **TINY).to(dtype),
        ConvGaussianPosteriorNet(channels, H, width=4).to(dtype),
    )
    for channels in (1, 3)
    for dtype in (torch.float32, torch.float64)
}


@settings(max_examples=20, deadline=None)
@given(
    batch=st.integers(1, 3),
    n_samples=st.one_of(st.none(), st.integers(1, 3)),
    channels=st.sampled_from([1, 3]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_hypothesis_shapes(
    batch: int, n_samples: int | None, channels: int, dtype: torch.dtype, seed: int
) -> None:
    eblvm, ebm, net = _MODELS[(channels, dtype)]
    v = _images(batch, channels, 32, seed=seed, dtype=dtype)
    lead = () if n_samples is None else (n_samples,)
    energy = eblvm.energy(v, _latents(*lead, batch, H, seed=seed + 1, dtype=dtype))
    assert energy.shape == (*lead, batch) and energy.dtype == dtype
    assert bool(energy.isfinite().all())
    score = ebm.score(v)
    assert score.shape == v.shape and bool(score.isfinite().all())
    mean, log_std = net(v)
    assert mean.shape == log_std.shape == (batch, H)
    assert bool(mean.isfinite().all() and log_std.isfinite().all())

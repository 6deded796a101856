"""SM and SSM against closed forms, direct Jacobians and each other."""

from __future__ import annotations

import math

import pytest
import torch
from objectives_testing import ElementwiseScore, GaussianScore, TanhScore, random_spd, seeded

from score_objectives import sm, ssm

DIM = 3


def gaussian_setup(batch: int, seed: int) -> tuple[GaussianScore, torch.Tensor]:
    """A Gaussian model and data from a different Gaussian N(m, AAᵀ)."""
    g = seeded(seed)
    precision = random_spd(DIM, generator=g, dtype=torch.float64)
    model = GaussianScore(precision, torch.randn(DIM, generator=g, dtype=torch.float64))
    shift = torch.randn(DIM, generator=g, dtype=torch.float64) + 1.0
    mix = torch.randn(DIM, DIM, generator=g, dtype=torch.float64)
    v = torch.randn(batch, DIM, generator=g, dtype=torch.float64) @ mix.T + shift
    return model, v


def grads(model: torch.nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(model.parameters())))


def test_sm_equals_gaussian_closed_form_in_value_and_gradient() -> None:
    model, v = gaussian_setup(batch=64, seed=0)
    p = model.precision.detach()
    centred = v - model.mean.detach()
    scatter = centred.T @ centred / v.shape[0]
    # L = ½ tr(P² S) − tr P with S the scatter of v − μ about μ;
    # ∂L/∂P = ½(PS + SP) − I (already symmetric, so also ∂L/∂R), ∂L/∂μ = −P² mean(v − μ).
    expected_value = 0.5 * torch.trace(p @ p @ scatter) - torch.trace(p)
    expected_raw = 0.5 * (p @ scatter + scatter @ p) - torch.eye(DIM, dtype=torch.float64)
    expected_mean = -(p @ p) @ centred.mean(dim=0)

    loss = sm(model, v)
    grad_raw, grad_mean = grads(model, loss)

    # Exact identities evaluated in float64: only rounding separates the two sides.
    torch.testing.assert_close(loss, expected_value, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_raw, expected_raw, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_mean, expected_mean, rtol=1e-10, atol=1e-12)
    per_sample = sm(model, v, reduction="none")
    expected_per_sample = 0.5 * (centred @ p).pow(2).sum(dim=1) - torch.trace(p)
    torch.testing.assert_close(per_sample, expected_per_sample.detach(), rtol=1e-12, atol=1e-12)


def test_sm_equals_direct_jacobian_trace_for_nonlinear_score() -> None:
    g = seeded(1)
    model = TanhScore(4, generator=g, dtype=torch.float64)
    v = torch.randn(6, 4, generator=g, dtype=torch.float64)
    direct = []
    for row in v:
        jacobian = torch.autograd.functional.jacobian(model, row, create_graph=True)
        direct.append(0.5 * model(row).pow(2).sum() + torch.trace(jacobian))
    direct_values = torch.stack(direct)

    per_sample = sm(model, v, reduction="none")

    # Same derivatives taken two ways in float64: rounding only.
    torch.testing.assert_close(per_sample, direct_values, rtol=1e-12, atol=1e-12)
    for got, want in zip(
        grads(model, per_sample.mean()), grads(model, direct_values.mean()), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def sm_one_pass_per_dimension(model: torch.nn.Module, v: torch.Tensor) -> torch.Tensor:
    """Per-sample SM with the trace from one autograd pass per dimension."""
    x = v.detach().requires_grad_(True)
    s = model(x)
    trace = torch.zeros(v.shape[0], dtype=v.dtype)
    for d in range(v.shape[1]):
        (grad,) = torch.autograd.grad(s[:, d].sum(), x, create_graph=True)
        trace = trace + grad[:, d]
    return 0.5 * s.pow(2).sum(dim=1) + trace


@pytest.mark.parametrize("activation", [torch.nn.Tanh, torch.nn.SiLU])
def test_sm_on_an_mlp_equals_one_pass_per_dimension(activation: type[torch.nn.Module]) -> None:
    dim = 20  # two mapped passes, of 16 directions and of 4
    torch.manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Linear(dim, 16), activation(), torch.nn.Linear(16, dim)
    ).double()
    v = torch.randn(9, dim, generator=seeded(8), dtype=torch.float64)
    per_sample = sm(model, v, reduction="none")
    expected = sm_one_pass_per_dimension(model, v)

    # The same vector-Jacobian products, mapped or one at a time, in float64.
    torch.testing.assert_close(per_sample, expected, rtol=1e-12, atol=1e-12)
    for got, want in zip(
        grads(model, per_sample.mean()), grads(model, expected.mean()), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


class CubeWithBufferedBackward(torch.autograd.Function):
    """x³, whose backward scales a fresh buffer in place: autograd runs it for one
    direction at a time, but torch.func.vmap cannot map it over directions."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return (3 * x * x).mul_(grad)


def test_sm_falls_back_to_one_pass_per_dimension_where_the_graph_cannot_be_mapped() -> None:
    a = torch.nn.Parameter(torch.tensor(0.7, dtype=torch.float64))

    def score(x: torch.Tensor) -> torch.Tensor:
        return -a * CubeWithBufferedBackward.apply(x)

    v = torch.randn(6, DIM, generator=seeded(9), dtype=torch.float64)
    x = v.clone().requires_grad_(True)
    s = score(x)
    directions = torch.eye(DIM, dtype=torch.float64).unsqueeze(1).expand(DIM, *v.shape)
    with pytest.raises(RuntimeError):
        torch.func.vmap(lambda u: torch.autograd.grad(s, x, u, create_graph=True)[0])(directions)

    per_sample = sm(score, v, reduction="none")
    (grad_a,) = torch.autograd.grad(per_sample.mean(), a)

    # s = −a x³ elementwise has the diagonal Jacobian −3a x², so the per-sample SM is
    # ½a² Σx⁶ − 3a Σx², and its derivative in a is a Σx⁶ − 3 Σx².
    sixth, second = v.pow(6).sum(dim=1), v.pow(2).sum(dim=1)
    expected = 0.5 * 0.7**2 * sixth - 3 * 0.7 * second
    torch.testing.assert_close(per_sample.detach(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_a, (0.7 * sixth - 3 * second).mean(), rtol=1e-12, atol=1e-12)


def test_ssm_with_injected_noise_equals_direct_quadratic_form() -> None:
    g = seeded(2)
    model = TanhScore(4, generator=g, dtype=torch.float64)
    v = torch.randn(5, 4, generator=g, dtype=torch.float64)
    noise = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    direct = torch.zeros(5, dtype=torch.float64)
    for b, row in enumerate(v):
        jacobian = torch.autograd.functional.jacobian(model, row)
        score = model(row).detach()
        for eps in noise[:, b]:
            direct[b] += (0.5 * (eps @ score) ** 2 + eps @ jacobian @ eps) / noise.shape[0]

    per_sample = ssm(model, v, n_projections=noise.shape[0], noise=noise, reduction="none")

    torch.testing.assert_close(per_sample.detach(), direct, rtol=1e-12, atol=1e-12)


def test_ssm_on_image_shaped_input_equals_elementwise_closed_form() -> None:
    # s(x) = −a·x + b·tanh(x) elementwise has the diagonal Jacobian −a + b·sech²(x).
    g = seeded(3)
    model = ElementwiseScore(torch.float64)
    v = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(2, 4, 2, 3, 3, generator=g, dtype=torch.float64)
    a, b = model.a.detach(), model.b.detach()
    score = -a * v + b * torch.tanh(v)
    diagonal = -a + b / torch.cosh(v) ** 2
    projected = (noise * score).flatten(2).sum(dim=2)
    quadratic = (noise**2 * diagonal).flatten(2).sum(dim=2)
    expected = (0.5 * projected**2 + quadratic).mean(dim=0)

    per_sample = ssm(model, v, n_projections=noise.shape[0], noise=noise, reduction="none")

    torch.testing.assert_close(per_sample.detach(), expected, rtol=1e-12, atol=1e-12)


def test_ssm_with_gaussian_projections_agrees_with_sm_within_monte_carlo_error() -> None:
    model, v = gaussian_setup(batch=128, seed=4)
    groups, per_group = 16, 16
    noise = torch.randn(groups * per_group, *v.shape, generator=seeded(5), dtype=torch.float64)
    values, group_grads = [], []
    for chunk in noise.split(per_group):
        loss = ssm(model, v, n_projections=per_group, noise=chunk)
        values.append(loss.detach())
        group_grads.append(torch.cat([g.flatten() for g in grads(model, loss)]))
    value = torch.stack(values).mean()
    stacked = torch.stack(group_grads)
    sm_loss = sm(model, v)
    sm_grad = torch.cat([g.flatten() for g in grads(model, sm_loss)])

    # Value: for a linear score the per-(sample, projection) term is ½X² − Q with
    # X = εᵀs_b, Q = εᵀPε, ε ~ N(0, I). Gaussian quadratic forms give
    # Var = ½‖s_b‖⁴ + 2tr(P²) − 2 s_bᵀPs_b exactly, and E = ½‖s_b‖² − tr P = SM's term.
    # The mean over B samples × M projections has SE = sqrt(Σ_b Var_b / M) / B; 4 SE.
    p = model.precision.detach()
    s = model(v).detach()
    variances = 0.5 * s.pow(2).sum(1) ** 2 + 2 * torch.trace(p @ p) - 2 * ((s @ p) * s).sum(1)
    se = math.sqrt(float(variances.sum()) / noise.shape[0]) / v.shape[0]
    assert abs(float(value - sm_loss.detach())) < 4 * se

    # Gradient: 16 independent groups of projections; the spread of the group
    # gradients estimates the SE of their mean. 5 SE (t with 15 degrees of freedom:
    # two-sided tail about 1.6e-4 per coordinate).
    grad_se = stacked.std(dim=0) / math.sqrt(groups)
    assert torch.all((stacked.mean(dim=0) - sm_grad).abs() < 5 * grad_se)
    # The Jacobian term's gradient (−I in R) must be there: dropping it would move
    # the diagonal of R's gradient by 1, far outside the tolerance.
    assert float(grad_se.max()) < 0.1


@pytest.mark.parametrize("projection", ["rademacher", "gaussian"])
def test_ssm_projections_have_identity_second_moment(projection: str) -> None:
    # For a linear score s = −Pz the expected SSM term is ½ zᵀP E[εεᵀ] P z − tr(P E[εεᵀ]),
    # which equals SM's term exactly when E[εεᵀ] = I; with one sample and a single
    # coordinate (D = 1) SSM is ½ε²s² − ε²P, and ε² = 1 for Rademacher signs.
    model = GaussianScore(torch.tensor([[1.5]]), torch.tensor([0.2]))
    v = torch.tensor([[0.7], [-1.1], [2.0]])
    projections = 1000
    value = ssm(
        model, v, n_projections=projections, projection=projection, generator=seeded(6)
    ).detach()
    sm_value = sm(model, v).detach()
    if projection == "rademacher":
        torch.testing.assert_close(value, sm_value, rtol=1e-5, atol=1e-5)
    else:
        # E[ε²] = 1, Var(ε²) = 2: the per-sample term c_b ε² with
        # c_b = ½s_b² − P has SE sqrt(2 Σ c_b² / M) / B over M projections; 4 SE.
        c = 0.5 * model(v).detach().pow(2).squeeze(1) - 1.5
        se = math.sqrt(2 * float(c.pow(2).sum()) / projections) / 3
        assert abs(float(value - sm_value)) < 4 * se

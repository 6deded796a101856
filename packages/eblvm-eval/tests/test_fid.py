"""FID: the Fréchet distance against closed forms, statistics, files, the Inception network."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from eblvm_eval import fid
from eblvm_eval.fid import (
    INCEPTION_WEIGHTS_NAME,
    INCEPTION_WEIGHTS_SHA256,
    WEIGHTS_ENV_VAR,
    FeatureStats,
    InceptionV3Features,
    compute_features,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    load_inception,
    load_stats,
    save_stats,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_spd(dim: int, generator: torch.Generator, *, rank: int | None = None) -> np.ndarray:
    """A A^T / k + (0.1 I when full rank): (dim, dim) float64, of the given rank."""
    k = dim if rank is None else rank
    a = torch.randn(dim, k, generator=generator, dtype=torch.float64).numpy()
    spd = a @ a.T / k
    return spd + 0.1 * np.eye(dim) if rank is None else spd


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root by eigen-decomposition (eigenvalues clipped at 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def reference_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    """tr (Σ1 Σ2)^{1/2} = Σ_i √λ_i(Σ1^{1/2} Σ2 Σ1^{1/2}): a float64 eigen-decomposition."""
    root1 = psd_sqrt(s1)
    values = np.linalg.eigvalsh(root1 @ s2 @ root1)
    trace_root = float(np.sqrt(np.clip(values, 0.0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_root)


# --------------------------------------------------------------------------- distance


def test_diagonal_covariances_match_the_closed_form() -> None:
    g = seeded(0)
    dim = 7
    mu1 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    mu2 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    a = torch.rand(dim, generator=g, dtype=torch.float64).numpy() * 3 + 0.1
    b = torch.rand(dim, generator=g, dtype=torch.float64).numpy() * 3 + 0.1
    # Commuting covariances: FID = ‖μ1 − μ2‖² + Σ_i (√a_i − √b_i)².
    expected = float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())

    value = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))

    assert value == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("dim", [1, 5, 32])
def test_random_spd_covariances_match_an_eigendecomposition(dim: int) -> None:
    g = seeded(1 + dim)
    mu1 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    mu2 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    s1, s2 = random_spd(dim, g), random_spd(dim, g)

    value = frechet_distance(mu1, s1, mu2, s2)

    assert value == pytest.approx(reference_distance(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)


def test_identical_statistics_give_zero_and_the_distance_is_symmetric() -> None:
    g = seeded(2)
    dim = 16
    mu = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    other_mu = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    s1, s2 = random_spd(dim, g), random_spd(dim, g)

    assert abs(frechet_distance(mu, s1, mu, s1)) < 1e-10 * np.trace(s1)
    forward = frechet_distance(mu, s1, other_mu, s2)
    backward = frechet_distance(other_mu, s2, mu, s1)
    assert forward == pytest.approx(backward, rel=1e-10)
    assert forward > 0


def test_torch_and_numpy_inputs_give_the_same_value() -> None:
    g = seeded(3)
    mu1, mu2 = torch.randn(4, generator=g), torch.randn(4, generator=g)
    s1 = torch.from_numpy(random_spd(4, g)).float()
    s2 = torch.from_numpy(random_spd(4, g)).float()

    from_torch = frechet_distance(mu1, s1, mu2, s2)
    from_numpy = frechet_distance(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())

    assert from_torch == from_numpy
    assert from_torch == pytest.approx(
        reference_distance(
            mu1.double().numpy(), s1.double().numpy(), mu2.double().numpy(), s2.double().numpy()
        ),
        rel=1e-9,
    )


def test_singular_covariances_match_the_eigendecomposition() -> None:
    g = seeded(4)
    dim = 12
    mu1 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    mu2 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    s1, s2 = random_spd(dim, g, rank=3), random_spd(dim, g, rank=5)

    value = frechet_distance(mu1, s1, mu2, s2)

    # Rank-deficient product: the square root is less well conditioned than in the
    # full-rank case, still accurate to ~1e-7 relative.
    assert value == pytest.approx(reference_distance(mu1, s1, mu2, s2), rel=1e-6, abs=1e-6)
    zero = np.zeros((dim, dim))
    assert frechet_distance(mu1, zero, mu2, zero) == pytest.approx(float(((mu1 - mu2) ** 2).sum()))


def test_a_non_finite_square_root_is_recomputed_with_eps_on_the_diagonals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    g = seeded(5)
    dim, eps = 6, 1e-3
    mu1 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    mu2 = torch.randn(dim, generator=g, dtype=torch.float64).numpy()
    s1, s2 = random_spd(dim, g, rank=2), random_spd(dim, g, rank=2)
    real_sqrtm = fid._sqrtm
    calls: list[np.ndarray] = []

    def first_call_fails(matrix: np.ndarray) -> np.ndarray:
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(fid, "_sqrtm", first_call_fails)
    value = frechet_distance(mu1, s1, mu2, s2, eps=eps)

    assert len(calls) == 2
    offset = eps * np.eye(dim)
    np.testing.assert_allclose(calls[1], (s1 + offset) @ (s2 + offset), rtol=1e-14)
    # tr Σ1 + tr Σ2 come from the covariances as given, the root from the shifted ones.
    shifted = reference_distance(mu1, s1 + offset, mu2, s2 + offset)
    expected = shifted - 2 * dim * eps
    assert value == pytest.approx(expected, rel=1e-8, abs=1e-8)


def test_an_indefinite_covariance_gives_a_large_imaginary_part_and_is_refused() -> None:
    mu = np.zeros(2)
    with pytest.raises(ValueError, match="imaginary part"):
        frechet_distance(mu, np.diag([-1.0, 1.0]), mu, np.eye(2))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((2, 1)), np.eye(2), np.zeros(2), np.eye(2)), "mu1 must have shape"),
        ((np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), "mu2 must have shape"),
        ((np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)), "sigma1 must have shape"),
        ((np.zeros(2), np.eye(2), np.zeros(2), np.ones(2)), "sigma2 must have shape"),
        ((np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2)), "sigma1"),
        ((np.array([0.0, np.nan]), np.eye(2), np.zeros(2), np.eye(2)), "mu1 contains non-finite"),
        ((np.zeros(2), np.eye(2), np.zeros(2), np.full((2, 2), np.inf)), "sigma2 contains"),
    ],
)
def test_bad_statistics_are_refused_naming_the_argument(
    args: tuple[np.ndarray, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        frechet_distance(*args)


def test_non_arrays_and_bad_eps_are_refused() -> None:
    with pytest.raises(TypeError, match="mu1"):
        frechet_distance([0.0, 1.0], np.eye(2), np.zeros(2), np.eye(2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), eps=0.0)


@settings(max_examples=25, deadline=None)
@given(
    dim=st.integers(1, 6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    as_numpy=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_distance_is_finite_non_negative_and_symmetric(
    dim: int, dtype: torch.dtype, as_numpy: bool, seed: int
) -> None:
    g = seeded(seed)
    mu1 = torch.randn(dim, generator=g, dtype=dtype)
    mu2 = torch.randn(dim, generator=g, dtype=dtype)
    s1 = torch.from_numpy(random_spd(dim, g)).to(dtype)
    s2 = torch.from_numpy(random_spd(dim, g)).to(dtype)
    args: list[np.ndarray] | list[Tensor]
    args = [x.numpy() for x in (mu1, s1, mu2, s2)] if as_numpy else [mu1, s1, mu2, s2]

    value = frechet_distance(*args)
    swapped = frechet_distance(args[2], args[3], args[0], args[1])

    assert math.isfinite(value)
    assert value >= -1e-9
    assert value == pytest.approx(swapped, rel=1e-8, abs=1e-10)
    expected = reference_distance(*(x.double().numpy() for x in (mu1, s1, mu2, s2)))
    assert value == pytest.approx(expected, rel=1e-8, abs=1e-9)


# --------------------------------------------------------------------------- statistics


def test_feature_statistics_are_the_mean_and_unbiased_covariance() -> None:
    g = seeded(6)
    features = torch.randn(9, 3, generator=g, dtype=torch.float32)
    x = features.double().numpy()
    n = x.shape[0]
    mean = [sum(x[i, a] for i in range(n)) / n for a in range(3)]
    cov = [
        [
            sum((x[i, a] - mean[a]) * (x[i, b] - mean[b]) for i in range(n)) / (n - 1)
            for b in range(3)
        ]
        for a in range(3)
    ]

    stats = feature_statistics(features)

    assert stats.count == 9
    assert stats.mu.dtype == np.float64 and stats.sigma.dtype == np.float64
    np.testing.assert_allclose(stats.mu, mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(stats.sigma, cov, rtol=1e-12, atol=1e-14)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 20),
    dim=st.integers(1, 5),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_feature_statistics_shapes(n: int, dim: int, dtype: torch.dtype, seed: int) -> None:
    features = torch.randn(n, dim, generator=seeded(seed), dtype=dtype)

    stats = feature_statistics(features)

    assert stats.mu.shape == (dim,) and stats.sigma.shape == (dim, dim)
    assert stats.count == n
    assert np.isfinite(stats.mu).all() and np.isfinite(stats.sigma).all()
    np.testing.assert_allclose(stats.sigma, stats.sigma.T)


@pytest.mark.parametrize(
    "features", [torch.zeros(1, 3), torch.zeros(5), torch.zeros(4, 0), torch.zeros(2, 2, 2)]
)
def test_feature_statistics_refuses_bad_shapes(features: Tensor) -> None:
    with pytest.raises(ValueError, match="features must have shape"):
        feature_statistics(features)


def test_fid_of_gaussian_features_matches_the_closed_form() -> None:
    dim, n = 3, 20000
    g = seeded(3)
    mu1 = torch.tensor([0.0, 0.5, -0.5], dtype=torch.float64)
    mu2 = torch.tensor([0.5, -0.5, 0.5], dtype=torch.float64)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    b = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    s1 = a @ a.T / dim + 0.5 * torch.eye(dim, dtype=torch.float64)
    s2 = b @ b.T / dim + 0.5 * torch.eye(dim, dtype=torch.float64)
    exact = reference_distance(mu1.numpy(), s1.numpy(), mu2.numpy(), s2.numpy())
    g = seeded(7)
    x = mu1 + torch.randn(n, dim, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    y = mu2 + torch.randn(n, dim, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(s2).T

    value = fid_from_features(x, y)

    # Exact FID 2.54. Over 300 independent repeats of this set-up (N = 20000 per side)
    # the estimate had standard deviation 0.029 and mean bias +0.004: 5 sd is 0.15.
    assert abs(value - exact) < 0.15
    with pytest.raises(ValueError, match="features2 must have 3 columns"):
        fid_from_features(x, y[:, :2])


# --------------------------------------------------------------------------- files


def test_stats_round_trip_through_an_npz_file(tmp_path: Path) -> None:
    stats = feature_statistics(torch.randn(30, 4, generator=seeded(8)))
    path = tmp_path / "sub" / "stats.npz"

    returned = save_stats(stats, path)
    loaded = load_stats(path)

    assert returned == path
    assert sorted(os.listdir(path.parent)) == ["stats.npz"]  # no temporary file left
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    assert loaded.count == 30
    with np.load(path) as archive:
        assert sorted(archive.files) == ["count", "mu", "sigma"]


def test_stats_files_without_a_count_load_with_count_none(tmp_path: Path) -> None:
    path = tmp_path / "reference.npz"
    np.savez(path, mu=np.zeros(3), sigma=np.eye(3))

    loaded = load_stats(path)

    assert loaded.count is None
    np.testing.assert_array_equal(loaded.sigma, np.eye(3))
    save_stats(loaded, tmp_path / "copy.npz")
    with np.load(tmp_path / "copy.npz") as archive:
        assert sorted(archive.files) == ["mu", "sigma"]


def test_load_stats_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        load_stats(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=r"must name a \.npz file"):
        load_stats(tmp_path / "stats.txt")
    (tmp_path / "garbage.npz").write_bytes(b"not an archive")
    with pytest.raises(ValueError, match=r"not a readable \.npz archive"):
        load_stats(tmp_path / "garbage.npz")
    np.savez(tmp_path / "half.npz", mu=np.zeros(3))
    with pytest.raises(ValueError, match="lacks the array"):
        load_stats(tmp_path / "half.npz")
    np.savez(tmp_path / "wrong.npz", mu=np.zeros(3), sigma=np.eye(2))
    with pytest.raises(ValueError, match="sigma must have shape"):
        load_stats(tmp_path / "wrong.npz")


@pytest.mark.parametrize("damage", ["truncated", "corrupt member", "corrupt compressed member"])
def test_load_stats_refuses_a_damaged_archive_naming_it(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "stats.npz"
    save = np.savez_compressed if damage == "corrupt compressed member" else np.savez
    save(path, mu=np.arange(64.0), sigma=np.eye(64))
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:  # overwrite the middle of the first member's data; the central directory stays
        data[200:400] = bytes(range(200))
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"not a readable \.npz archive") as info:
        load_stats(path)
    assert str(path) in str(info.value)


def test_save_stats_refuses_bad_input_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="stats must be a FeatureStats"):
        save_stats((np.zeros(2), np.eye(2), 3), tmp_path / "s.npz")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"stats\.sigma"):
        save_stats(FeatureStats(np.zeros(2), np.eye(3), 3), tmp_path / "s.npz")
    with pytest.raises(ValueError, match=r"stats\.count"):
        save_stats(FeatureStats(np.zeros(2), np.eye(2), 0), tmp_path / "s.npz")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- compute_features


class FlattenExtractor(nn.Module):
    """(b, C, H, W) -> (b, C·H·W) times a constant: features known in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * x.flatten(1)


def test_compute_features_batches_a_tensor_and_reports_progress() -> None:
    images = torch.rand(7, 1, 2, 2, generator=seeded(9))
    extractor = FlattenExtractor().eval()
    calls: list[tuple[int, int | None]] = []

    features = compute_features(
        images, extractor, batch_size=3, progress=lambda done, total: calls.append((done, total))
    )

    assert calls == [(3, 7), (6, 7), (7, 7)]
    assert features.dtype == torch.float64 and features.shape == (7, 4)
    torch.testing.assert_close(features, 2.0 * images.flatten(1).double())
    assert not features.requires_grad


def test_compute_features_takes_an_iterable_of_batches() -> None:
    images = torch.rand(10, 1, 2, 2, generator=seeded(10))

    def batches() -> Iterator[Tensor]:
        yield images[:6]
        yield images[6:]

    calls: list[tuple[int, int | None]] = []

    features = compute_features(
        batches(),
        FlattenExtractor().eval(),
        batch_size=4,
        progress=lambda done, total: calls.append((done, total)),
    )

    assert calls == [(4, None), (6, None), (10, None)]
    torch.testing.assert_close(features, 2.0 * images.flatten(1).double())


def test_compute_features_refuses_bad_input() -> None:
    images = torch.rand(4, 1, 2, 2, generator=seeded(11))
    extractor = FlattenExtractor()
    with pytest.raises(ValueError, match="training mode"):
        compute_features(images, extractor)
    extractor.eval()
    with pytest.raises(TypeError, match=r"\(x for x, _ in loader\)"):
        compute_features([(images, torch.zeros(4))], extractor)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        compute_features(images, extractor, batch_size=0)
    with pytest.raises(ValueError, match="holds no images"):
        compute_features([], extractor)
    with pytest.raises(ValueError, match=r"shape \(4, F\)"):
        compute_features(images, lambda x: x)
    with pytest.raises(ValueError, match="non-finite features"):
        compute_features(images, lambda x: x.flatten(1) / 0.0)


# --------------------------------------------------------------------------- Inception


@pytest.fixture(scope="module")
def random_inception() -> InceptionV3Features:
    with torch.random.fork_rng():
        torch.manual_seed(12)
        return InceptionV3Features().eval()


@pytest.fixture(scope="module")
def weights_file(
    random_inception: InceptionV3Features, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("weights") / INCEPTION_WEIGHTS_NAME
    torch.save(random_inception.state_dict(), path)
    return path


def test_network_has_the_fid_inception_parameters(random_inception: InceptionV3Features) -> None:
    state = random_inception.state_dict()
    # torchvision's Inception3 has 27,161,264 parameters (1000 classes, with the auxiliary
    # head). The FID network drops the auxiliary head (conv0 128·768 + 2·128, conv1
    # 768·128·25 + 2·768, fc 768·1000 + 1000: 3,326,696) and has 1008 classes (+8·2049).
    expected = 27_161_264 - 3_326_696 + 8 * 2049
    assert sum(p.numel() for p in random_inception.parameters()) == expected
    # 94 convolutions, each followed by a batch norm (weight, bias, 3 buffers), and fc.
    assert len(state) == 94 * 6 + 2
    spot_checks = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_1.conv.weight": (448, 2048, 1, 1),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    for key, shape in spot_checks.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(key.startswith("AuxLogits") for key in state)


def test_weights_load_strictly_and_the_network_gives_2048_features(
    weights_file: Path, random_inception: InceptionV3Features
) -> None:
    model = load_inception(weights_file, expected_sha256=None)

    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    loaded = model.state_dict()
    assert loaded.keys() == random_inception.state_dict().keys()
    for key, value in random_inception.state_dict().items():
        assert loaded[key].device.type == "cpu" and torch.equal(loaded[key], value), key
    images = torch.rand(2, 3, 16, 16, generator=seeded(13))
    features = compute_features(images, model)
    assert features.shape == (2, 2048)
    assert torch.isfinite(features).all()


def test_the_hash_check_compares_the_whole_sha256(
    weights_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()
    assert INCEPTION_WEIGHTS_SHA256.startswith("6726825d")  # the prefix in the file name

    with pytest.raises(
        ValueError, match=f"has SHA-256 {digest}, expected {INCEPTION_WEIGHTS_SHA256}"
    ):
        load_inception(weights_file)
    prefix_only = digest[:8] + "0" * 56 if digest[8] != "0" else digest[:8] + "1" * 56
    with pytest.raises(ValueError, match="SHA-256"):
        load_inception(weights_file, expected_sha256=prefix_only)
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        load_inception(weights_file, expected_sha256=digest[:8])

    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(weights_file))
    model = load_inception(expected_sha256=digest.upper())
    assert isinstance(model, InceptionV3Features)


def test_missing_weights_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEIGHTS_ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError) as unset:
        load_inception()
    message = str(unset.value)
    for part in (
        INCEPTION_WEIGHTS_NAME,
        INCEPTION_WEIGHTS_SHA256,
        fid.INCEPTION_WEIGHTS_URL,
        f"{WEIGHTS_ENV_VAR} is not set",
        "load_inception(weights_path=...)",
        f"set the environment variable {WEIGHTS_ENV_VAR}=",
        "never downloaded",
    ):
        assert part in message

    monkeypatch.setenv(WEIGHTS_ENV_VAR, str(tmp_path / "absent.pth"))
    with pytest.raises(FileNotFoundError, match=rf"no file at {WEIGHTS_ENV_VAR}=.*absent\.pth"):
        load_inception()
    with pytest.raises(FileNotFoundError, match=r"no file at weights_path=.*other\.pth"):
        load_inception(tmp_path / "other.pth")


def test_a_file_of_other_weights_is_refused(
    tmp_path: Path, random_inception: InceptionV3Features
) -> None:
    path = tmp_path / "partial.pth"
    state = dict(random_inception.state_dict())
    del state["fc.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match="does not match the FID InceptionV3"):
        load_inception(path, expected_sha256=None)
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="state dict of tensors"):
        load_inception(path, expected_sha256=None)


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_a_pickle_of_other_objects_is_refused_without_torchs_unsafe_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "crafted.pth"
    torch.save({"fc.weight": _Payload()}, path)
    with pytest.raises(ValueError, match="cannot be read safely") as refused:
        load_inception(path, expected_sha256=None)
    assert "weights_only" not in str(refused.value) and "unpickled!" not in capsys.readouterr().out


def test_preprocessing_resizes_and_maps_to_minus_one_one(
    random_inception: InceptionV3Features,
) -> None:
    grey = torch.full((2, 1, 8, 5), 0.25)
    grey[1] = 1.0

    x = random_inception.preprocess(grey)

    assert x.shape == (2, 3, 299, 299)
    # Bilinear resizing keeps a constant image constant: 2·0.25 − 1 and 2·1 − 1.
    torch.testing.assert_close(x[0], torch.full((3, 299, 299), -0.5))
    torch.testing.assert_close(x[1], torch.full((3, 299, 299), 1.0))
    with pytest.raises(ValueError, match=r"images must lie in \[0, 1\]"):
        random_inception.preprocess(torch.full((1, 3, 4, 4), 1.5))
    with pytest.raises(ValueError, match="images contains non-finite"):
        random_inception.preprocess(torch.full((1, 3, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="C in"):
        random_inception.preprocess(torch.zeros(1, 2, 4, 4))


def _avg_pool_excluding_padding(x: Tensor) -> Tensor:
    return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def test_blocks_concatenate_their_branches_in_the_published_order(
    random_inception: InceptionV3Features,
) -> None:
    # Branch order and pooling of the FID network's blocks (torchvision's Inception3 order;
    # average pools without the zero padding; a max pool in Mixed_7c). Checked on a small
    # positive input, which tells the two pools, and the padding rule, apart.
    net = random_inception
    g = seeded(14)
    max_pool = torch.nn.functional.max_pool2d

    def x(channels: int) -> Tensor:
        return torch.rand(1, channels, 5, 5, generator=g) + 0.5

    a, b, c, d = net.Mixed_5b, net.Mixed_6a, net.Mixed_6b, net.Mixed_7a
    cases: list[tuple[nn.Module, Tensor, list[Tensor]]] = []
    xa = x(192)
    cases.append(
        (
            a,
            xa,
            [
                a.branch1x1(xa),
                a.branch5x5_2(a.branch5x5_1(xa)),
                a.branch3x3dbl_3(a.branch3x3dbl_2(a.branch3x3dbl_1(xa))),
                a.branch_pool(_avg_pool_excluding_padding(xa)),
            ],
        )
    )
    xb = x(288)
    cases.append(
        (
            b,
            xb,
            [
                b.branch3x3(xb),
                b.branch3x3dbl_3(b.branch3x3dbl_2(b.branch3x3dbl_1(xb))),
                max_pool(xb, 3, stride=2),
            ],
        )
    )
    xc = x(768)
    double = xc
    for name in ("1", "2", "3", "4", "5"):
        double = getattr(c, f"branch7x7dbl_{name}")(double)
    cases.append(
        (
            c,
            xc,
            [
                c.branch1x1(xc),
                c.branch7x7_3(c.branch7x7_2(c.branch7x7_1(xc))),
                double,
                c.branch_pool(_avg_pool_excluding_padding(xc)),
            ],
        )
    )
    xd = x(768)
    cases.append(
        (
            d,
            xd,
            [
                d.branch3x3_2(d.branch3x3_1(xd)),
                d.branch7x7x3_4(d.branch7x7x3_3(d.branch7x7x3_2(d.branch7x7x3_1(xd)))),
                max_pool(xd, 3, stride=2),
            ],
        )
    )
    for e, channels, pool in (
        (net.Mixed_7b, 1280, _avg_pool_excluding_padding),
        (net.Mixed_7c, 2048, lambda t: max_pool(t, 3, stride=1, padding=1)),
    ):
        xe = x(channels)
        narrow = e.branch3x3_1(xe)
        deep = e.branch3x3dbl_2(e.branch3x3dbl_1(xe))
        cases.append(
            (
                e,
                xe,
                [
                    e.branch1x1(xe),
                    e.branch3x3_2a(narrow),
                    e.branch3x3_2b(narrow),
                    e.branch3x3dbl_3a(deep),
                    e.branch3x3dbl_3b(deep),
                    e.branch_pool(pool(xe)),
                ],
            )
        )

    with torch.no_grad():
        for block, inputs, parts in cases:
            torch.testing.assert_close(block(inputs), torch.cat(parts, dim=1), rtol=0, atol=0)

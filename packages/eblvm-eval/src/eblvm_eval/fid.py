"""Fréchet Inception Distance (FID): feature statistics, the distance, the network.

The FID between two image sets is the Fréchet distance between Gaussians fitted to
their InceptionV3 pool features,

    FID = ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2}),

computed in float64 the way the widely used PyTorch implementation does, so that the
same statistics give the same value.

The network is ``InceptionV3Features`` with the standard FID weights, the file
``pt_inception-2015-12-05-6726825d.pth`` published with pytorch-fid. Nothing is ever
downloaded: ``load_inception`` reads a local copy named by its argument or by the
``EBLVM_FID_WEIGHTS`` environment variable and checks its SHA-256 before loading.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import torch
from scipy import linalg
from torch import Tensor, nn

from eblvm_eval._common_checks import check_count
from eblvm_eval._inception import InceptionV3Features
from eblvm_eval.files import write_atomically

__all__ = [
    "INCEPTION_WEIGHTS_NAME",
    "INCEPTION_WEIGHTS_SHA256",
    "INCEPTION_WEIGHTS_URL",
    "WEIGHTS_ENV_VAR",
    "FeatureStats",
    "InceptionV3Features",
    "compute_features",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "load_inception",
    "load_stats",
    "save_stats",
]

INCEPTION_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    + INCEPTION_WEIGHTS_NAME
)
# SHA-256 of the whole file (95,628,359 bytes); its first 8 hex digits are the
# "6726825d" in the file name.
INCEPTION_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_ENV_VAR = "EBLVM_FID_WEIGHTS"

ArrayLike = np.ndarray | Tensor


# --------------------------------------------------------------------------- distance


def _as_float64(value: object, name: str) -> np.ndarray:
    """A float64 numpy copy of a real numpy array or tensor, refused if non-finite."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        array = value.detach().to("cpu", torch.float64).numpy()
    elif isinstance(value, np.ndarray):
        if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        array = value.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a numpy array or torch.Tensor, got {type(value).__name__}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains non-finite values")
    return array


def _check_mean(value: object, name: str) -> np.ndarray:
    mu = _as_float64(value, name)
    if mu.ndim != 1 or mu.shape[0] < 1:
        raise ValueError(f"{name} must have shape (F,) with F >= 1, got {mu.shape}")
    return mu


def _check_covariance(value: object, name: str, dim: int) -> np.ndarray:
    sigma = _as_float64(value, name)
    if sigma.shape != (dim, dim):
        raise ValueError(
            f"{name} must have shape ({dim}, {dim}) to match the mean, got {sigma.shape}"
        )
    scale = float(np.abs(sigma).max())
    if float(np.abs(sigma - sigma.T).max()) > 1e-5 * scale:
        raise ValueError(f"{name} must be symmetric (a covariance matrix)")
    return sigma


def frechet_distance(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike, *, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2), in float64.

    ``mu1, mu2: (F,)``; ``sigma1, sigma2: (F, F)`` symmetric; numpy arrays or tensors.
    ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1 Σ2)^{1/2}, with the square root from
    ``scipy.linalg.sqrtm``. If that root has non-finite entries (a singular product),
    it is recomputed for (Σ1 + eps·I)(Σ2 + eps·I). Rounding can leave a complex root:
    an imaginary part is dropped when every diagonal entry's is within 1e-3 of zero,
    otherwise ``ValueError`` (the covariances are far from positive semi-definite).
    Matches pytorch-fid's ``calculate_frechet_distance`` on the same statistics.
    """
    m1 = _check_mean(mu1, "mu1")
    m2 = _check_mean(mu2, "mu2")
    if m2.shape != m1.shape:
        raise ValueError(f"mu2 must have shape {m1.shape} like mu1, got {m2.shape}")
    s1 = _check_covariance(sigma1, "sigma1", m1.shape[0])
    s2 = _check_covariance(sigma2, "sigma2", m1.shape[0])
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < np.inf:
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")

    root = _sqrtm(s1 @ s2)
    if not np.isfinite(root).all():
        offset = eps * np.eye(m1.shape[0])
        root = _sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(root):
        if not np.allclose(np.diagonal(root).imag, 0.0, atol=1e-3):
            largest = float(np.abs(root.imag).max())
            raise ValueError(
                f"the square root of sigma1 @ sigma2 has an imaginary part up to {largest:.3g}; "
                "sigma1 and sigma2 must be positive semi-definite covariance matrices"
            )
        root = root.real
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(root))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm``; its singular-matrix warning is handled by the caller's checks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        return np.asarray(linalg.sqrtm(matrix))


# --------------------------------------------------------------------------- statistics


class FeatureStats(NamedTuple):
    """Gaussian summary of a feature set.

    ``mu: (F,)`` float64 mean; ``sigma: (F, F)`` float64 covariance (divisor N − 1);
    ``count``: the number of feature vectors N, or None when read from a file that does
    not record it (statistics files of other FID tools hold only ``mu`` and ``sigma``).
    """

    mu: np.ndarray
    sigma: np.ndarray
    count: int | None  # type: ignore[assignment]  # shadows tuple.count on purpose


def feature_statistics(features: ArrayLike) -> FeatureStats:
    """Mean and covariance (divisor N − 1) of ``features: (N, F)``, N >= 2, in float64."""
    array = _as_float64(features, "features")
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"features must have shape (N, F) with N >= 2, F >= 1, got {array.shape}")
    mu = array.mean(axis=0)
    sigma = np.atleast_2d(np.cov(array, rowvar=False))
    return FeatureStats(mu=mu, sigma=sigma, count=array.shape[0])


def _check_stats(stats: object, name: str) -> FeatureStats:
    if not isinstance(stats, FeatureStats):
        raise TypeError(f"{name} must be a FeatureStats, got {type(stats).__name__}")
    mu = _check_mean(stats.mu, f"{name}.mu")
    sigma = _check_covariance(stats.sigma, f"{name}.sigma", mu.shape[0])
    count = stats.count
    if count is not None:
        count = check_count(count, f"{name}.count")
    return FeatureStats(mu=mu, sigma=sigma, count=count)


def _check_npz_path(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    result = Path(path)
    if result.suffix != ".npz":
        raise ValueError(f"path must name a .npz file, got {str(result)!r}")
    return result


def save_stats(stats: FeatureStats, path: str | os.PathLike[str]) -> Path:
    """Write ``stats`` to the .npz file ``path`` (arrays ``mu``, ``sigma`` and ``count``).

    The layout is the one FID tools share (``mu``, ``sigma``); ``count`` is left out when
    it is None. Written atomically; missing parent folders are created. Returns the path.
    """
    checked = _check_stats(stats, "stats")
    target = _check_npz_path(path)

    def write(file: BinaryIO) -> None:
        if checked.count is None:
            np.savez(file, mu=checked.mu, sigma=checked.sigma)
        else:
            count = np.asarray(checked.count, dtype=np.int64)
            np.savez(file, mu=checked.mu, sigma=checked.sigma, count=count)

    return write_atomically(target, write)


def load_stats(path: str | os.PathLike[str]) -> FeatureStats:
    """Read statistics written by ``save_stats`` or another FID tool (``mu``, ``sigma``).

    Raises ``FileNotFoundError`` naming the path when there is no such file, and
    ``ValueError`` when the file is not an .npz archive or lacks valid ``mu``/``sigma``.
    """
    source = _check_npz_path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no statistics file at {str(source)!r}")
    try:
        with np.load(source, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{str(source)!r} is not a readable .npz archive: {error}") from error
    missing = [key for key in ("mu", "sigma") if key not in contents]
    if missing:
        raise ValueError(f"{str(source)!r} lacks the array(s) {', '.join(missing)}")
    count: int | None = None
    if "count" in contents:
        raw = contents["count"]
        if raw.shape != () or not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"{str(source)!r} holds a 'count' that is not an integer scalar")
        count = int(raw)
    where = f"the 'mu'/'sigma' arrays of {str(source)!r}"
    try:
        return _check_stats(FeatureStats(contents["mu"], contents["sigma"], count), "stats")
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where} are not valid statistics: {error}") from error


def fid_from_features(features1: ArrayLike, features2: ArrayLike, *, eps: float = 1e-6) -> float:
    """FID between two feature sets ``(N1, F)`` and ``(N2, F)``, N1, N2 >= 2."""
    stats1 = feature_statistics(features1)
    stats2 = feature_statistics(features2)
    if stats1.mu.shape != stats2.mu.shape:
        raise ValueError(
            f"features2 must have {stats1.mu.shape[0]} columns like features1, "
            f"got {stats2.mu.shape[0]}"
        )
    return frechet_distance(stats1.mu, stats1.sigma, stats2.mu, stats2.sigma, eps=eps)


# --------------------------------------------------------------------------- features


def _chunks(images: Tensor | Iterable[Tensor], batch_size: int) -> Iterator[Tensor]:
    """Split a tensor, or each tensor of an iterable, into pieces of <= batch_size images."""
    source: Iterable[object] = [images] if isinstance(images, Tensor) else images
    for batch in source:
        if not isinstance(batch, Tensor):
            raise TypeError(
                "images must be a tensor (N, ...) or an iterable of tensors (B, ...), got an "
                f"iterable holding {type(batch).__name__}; for a loader of (image, label) "
                "pairs pass (x for x, _ in loader)"
            )
        if batch.dim() < 1:
            raise ValueError(
                "images must hold tensors with a leading batch dimension, got a scalar"
            )
        yield from batch.split(batch_size)


@torch.no_grad()
def compute_features(
    images: Tensor | Iterable[Tensor],
    extractor: Callable[[Tensor], Tensor],
    *,
    batch_size: int = 50,
    progress: Callable[[int, int | None], object] | None = None,
) -> Tensor:
    """Run ``extractor`` over ``images`` batch by batch -> ``(N, F)`` float64 on the CPU.

    ``images``: one tensor ``(N, C, H, W)`` or an iterable of batches ``(B, C, H, W)``
    (e.g. a DataLoader yielding image tensors); each is cut into pieces of at most
    ``batch_size`` images. ``extractor``: ``(b, C, H, W) -> (b, F)``, e.g. from
    ``load_inception``; a module must be in eval mode, and the images are moved to the
    device of its parameters. ``progress``, if given, is called as ``progress(done, total)``
    after each piece: the images processed so far, and N for a tensor (None for an
    iterable, whose length is not known in advance). No gradients are recorded.
    """
    batch_size = check_count(batch_size, "batch_size")
    if not callable(extractor):
        raise TypeError(f"extractor must be callable, got {type(extractor).__name__}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be callable or None, got {type(progress).__name__}")
    device: torch.device | None = None
    if isinstance(extractor, nn.Module):
        if extractor.training:
            raise ValueError(
                "extractor is in training mode (batch norm would use batch statistics); "
                "call extractor.eval() first"
            )
        parameter = next(extractor.parameters(), None)
        device = None if parameter is None else parameter.device

    total = images.shape[0] if isinstance(images, Tensor) and images.dim() >= 1 else None
    outputs: list[Tensor] = []
    done = 0
    for chunk in _chunks(images, batch_size):
        features = extractor(chunk if device is None else chunk.to(device))
        expected_dim = outputs[0].shape[1] if outputs else None
        if (
            not isinstance(features, Tensor)
            or features.dim() != 2
            or features.shape[0] != chunk.shape[0]
            or (expected_dim is not None and features.shape[1] != expected_dim)
        ):
            got = tuple(features.shape) if isinstance(features, Tensor) else type(features)
            want = f"({chunk.shape[0]}, {'F' if expected_dim is None else expected_dim})"
            raise ValueError(f"extractor must return features of shape {want}, got {got}")
        if not bool(torch.isfinite(features).all()):
            raise ValueError(f"extractor returned non-finite features for images {done} onwards")
        outputs.append(features.to("cpu", torch.float64))
        done += chunk.shape[0]
        if progress is not None:
            progress(done, total)
    if not outputs:
        raise ValueError("images holds no images")
    return torch.cat(outputs)


# --------------------------------------------------------------------------- weights


_MISSING_WEIGHTS = (
    "The FID network needs the weights file {name} (95.6 MB, SHA-256 {sha}), which is "
    "never downloaded automatically. {problem} Download it from {url}, put it anywhere "
    "(e.g. ~/.cache/eblvm/{name}), then pass its path as load_inception(weights_path=...) "
    "or set the environment variable {env}=/path/to/{name}."
)


def _missing(problem: str) -> FileNotFoundError:
    return FileNotFoundError(
        _MISSING_WEIGHTS.format(
            name=INCEPTION_WEIGHTS_NAME,
            sha=INCEPTION_WEIGHTS_SHA256,
            url=INCEPTION_WEIGHTS_URL,
            env=WEIGHTS_ENV_VAR,
            problem=problem,
        )
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_inception(
    weights_path: str | os.PathLike[str] | None = None,
    *,
    expected_sha256: str | None = INCEPTION_WEIGHTS_SHA256,
) -> InceptionV3Features:
    """The FID InceptionV3 with its weights loaded, in eval mode, without gradients, on CPU.

    ``weights_path``: the local copy of ``pt_inception-2015-12-05-6726825d.pth``; when
    None, the path in the environment variable ``EBLVM_FID_WEIGHTS``. With neither, or
    no file there, ``FileNotFoundError`` says where to get the file and where to point.

    ``expected_sha256``: the SHA-256 (64 hex digits) the whole file must have, by default
    that of the published file, whose name carries its first 8 digits; a mismatch raises
    ``ValueError`` before anything is unpickled. None skips the check (for a file you
    made yourself). The file is then read with ``torch.load(weights_only=True)`` and
    loaded with ``strict=True``: every parameter and buffer must be present with the
    right shape, and nothing else.
    """
    if expected_sha256 is not None and (
        not isinstance(expected_sha256, str)
        or not re.fullmatch(r"[0-9a-fA-F]{64}", expected_sha256)
    ):
        raise ValueError(
            f"expected_sha256 must be 64 hexadecimal digits or None, got {expected_sha256!r}"
        )
    if weights_path is None:
        from_env = os.environ.get(WEIGHTS_ENV_VAR, "")
        if not from_env:
            raise _missing(f"No weights_path was given and {WEIGHTS_ENV_VAR} is not set.")
        path = Path(from_env)
        origin = f"{WEIGHTS_ENV_VAR}={from_env!r}"
    elif isinstance(weights_path, (str, os.PathLike)):
        path = Path(weights_path)
        origin = f"weights_path={str(path)!r}"
    else:
        raise TypeError(
            f"weights_path must be a str, os.PathLike or None, got {type(weights_path).__name__}"
        )
    if not path.is_file():
        raise _missing(f"There is no file at {origin}.")

    if expected_sha256 is not None:
        actual = _sha256(path)
        if actual != expected_sha256.lower():
            raise ValueError(
                f"weights file {str(path)!r} has SHA-256 {actual}, expected "
                f"{expected_sha256.lower()}: it is not the expected {INCEPTION_WEIGHTS_NAME} "
                "(a different or damaged file)"
            )

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch's reasons are its internals (and advise unsafe loading)
        raise ValueError(
            f"weights file {str(path)!r} is damaged or not a state dict of tensors: it "
            "cannot be read safely (weights only)"
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"weights file {str(path)!r} does not hold a state dict of tensors")
    # Built without storage, then given the file's tensors: no random initialisation or
    # copy of 24M parameters that would be overwritten anyway.
    with torch.device("meta"):
        model = InceptionV3Features()
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise ValueError(
            f"weights file {str(path)!r} does not match the FID InceptionV3: {error}"
        ) from error
    model.eval()
    model.requires_grad_(False)
    return model

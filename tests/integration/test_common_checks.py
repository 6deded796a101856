"""The argument checks that every package states the same way are one file,
``_common_checks.py``, copied into each package (score-estimators and score-objectives
depend on torch only and not on each other, so neither can import the other's).

These tests keep the copies one implementation: the same source everywhere, the same
refusals (type and message) for the same bad input in every package, and no package
growing its own variant of a common check elsewhere.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "score-estimators": "score_estimators",
    "score-objectives": "score_objectives",
    "ebm-models": "ebm_models",
    "eblvm-data": "eblvm_data",
    "eblvm-eval": "eblvm_eval",
    "eblvm": "eblvm",
}
COPIES = {
    name: ROOT / "packages" / name / "src" / module / "_common_checks.py"
    for name, module in PACKAGES.items()
}
COMMON = (
    "check_int",
    "check_count",
    "check_real",
    "check_bool",
    "check_choice",
    "check_reduction",
    "check_generator",
    "check_float_dtype",
    "check_finite_result",
    "values_readable",
)

# (call, expected error, expected message): one bad input of each kind.
BAD_INPUTS = [
    (
        lambda c: c.check_int(1.5, "n_projections"),
        TypeError,
        "n_projections must be an int, got float",
    ),
    (lambda c: c.check_int(True, "n"), TypeError, "n must be an int, got bool"),
    (lambda c: c.check_int(0, "batch_size"), ValueError, "batch_size must be >= 1, got 0"),
    (lambda c: c.check_int(1, "columns", minimum=2), ValueError, "columns must be >= 2, got 1"),
    (lambda c: c.check_count(0, "steps"), ValueError, "steps must be a positive integer, got 0"),
    (lambda c: c.check_count(2.0, "n"), ValueError, "n must be a positive integer, got 2.0"),
    (
        lambda c: c.check_count(-1, "steps", minimum=0),
        ValueError,
        "steps must be an integer >= 0, got -1",
    ),
    (lambda c: c.check_real("0.1", "sigma"), TypeError, "sigma must be a real number, got str"),
    (lambda c: c.check_real(True, "sigma"), TypeError, "sigma must be a real number, got bool"),
    (lambda c: c.check_real(float("inf"), "mean"), ValueError, "mean must be finite, got inf"),
    (
        lambda c: c.check_real(0.0, "sigma", positive=True),
        ValueError,
        "sigma must be finite and > 0, got 0.0",
    ),
    (
        lambda c: c.check_real(float("nan"), "noise", non_negative=True),
        ValueError,
        "noise must be finite and >= 0, got nan",
    ),
    (lambda c: c.check_bool(1, "image"), TypeError, "image must be a bool, got int"),
    (
        lambda c: c.check_choice("sphere", "projection", ("gaussian", "rademacher")),
        ValueError,
        "projection must be one of ('gaussian', 'rademacher'), got 'sphere'",
    ),
    (
        lambda c: c.check_reduction("sum"),
        ValueError,
        "reduction must be one of ('mean', 'none'), got 'sum'",
    ),
    (
        lambda c: c.check_generator(0),
        TypeError,
        "generator must be a torch.Generator or None, got int",
    ),
    (
        lambda c: c.check_float_dtype(torch.int64),
        TypeError,
        "dtype must be a floating-point torch.dtype, got torch.int64",
    ),
    (
        lambda c: c.check_finite_result(
            torch.tensor(float("nan")), "dsm", what="the loss", cause="the score gave NaN"
        ),
        FloatingPointError,
        "dsm: the loss is not finite (nan); the score gave NaN",
    ),
    (
        lambda c: c.check_finite_result(
            torch.tensor([1.0, float("nan"), float("-inf"), float("inf")]),
            "VaGES",
            what="the score estimate",
            cause="v is huge",
        ),
        FloatingPointError,
        "VaGES: the score estimate is not finite (1 nan and 2 infinite of 4 entries); v is huge",
    ),
]


def test_every_copy_is_the_same_file() -> None:
    sources = {name: path.read_text() for name, path in COPIES.items()}
    first = sources["score-estimators"]
    assert [name for name, source in sources.items() if source != first] == []


def test_the_copy_says_it_is_a_copy_of_every_package() -> None:
    source = COPIES["score-estimators"].read_text()
    for module in PACKAGES.values():
        assert module in source, f"the copies' docstring does not name {module}"
    assert "tests/integration/test_common_checks.py" in source


@pytest.mark.parametrize("package", list(PACKAGES))
def test_every_copy_defines_the_common_checks(package: str) -> None:
    module = importlib.import_module(f"{PACKAGES[package]}._common_checks")
    assert all(callable(getattr(module, name, None)) for name in COMMON)


@pytest.mark.parametrize(("call", "error", "message"), BAD_INPUTS)
def test_every_package_refuses_the_same_way(call, error, message) -> None:
    for package, module_name in PACKAGES.items():
        checks = importlib.import_module(f"{module_name}._common_checks")
        with pytest.raises(error) as raised:
            call(checks)
        assert str(raised.value) == message, package


def test_good_input_is_returned() -> None:
    for module_name in PACKAGES.values():
        checks = importlib.import_module(f"{module_name}._common_checks")
        assert checks.check_int(3, "n") == 3
        assert checks.check_count(0, "steps", minimum=0) == 0
        assert checks.check_real(2, "sigma", positive=True) == 2.0
        assert checks.check_choice("mean", "reduction", ("mean",)) == "mean"
        assert checks.check_generator(None) is None
        assert checks.values_readable(torch.zeros(2))
        finite = torch.tensor([1.0, -2.0])
        assert checks.check_finite_result(finite, "f", what="x", cause="y") is finite


def test_no_package_defines_a_common_check_elsewhere() -> None:
    """A second ``def check_int`` (or any common check) in a package would be a variant."""
    pattern = re.compile(rf"^def _?({'|'.join(COMMON)})\(", re.M)
    found = [
        f"{path.relative_to(ROOT)}: {match.group(1)}"
        for path in sorted((ROOT / "packages").glob("*/src/**/*.py"))
        if path.name != "_common_checks.py"
        for match in pattern.finditer(path.read_text())
    ]
    assert found == []

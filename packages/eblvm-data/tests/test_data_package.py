"""The package's public names and version."""

from __future__ import annotations

import re
from pathlib import Path

import eblvm_data


def test_version_matches_pyproject() -> None:
    # A plain search, since tomllib needs Python 3.11 and the package allows 3.10.
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    found = re.search(r'^version = "([^"]+)"$', text, flags=re.MULTILINE)
    assert found is not None
    version = found.group(1)
    assert eblvm_data.__version__ == version == "0.4.0"


def test_every_public_name_is_there() -> None:
    assert len(set(eblvm_data.__all__)) == len(eblvm_data.__all__)
    for name in eblvm_data.__all__:
        assert hasattr(eblvm_data, name), name
    for toy in ("checkerboard", "blobs", "swiss_roll", "moons", "rings"):
        assert f"{toy}_splits" in eblvm_data.__all__

"""Every package carries the repository's licence and the same project metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = sorted(path.parent for path in (ROOT / "packages").glob("*/pyproject.toml"))


@pytest.mark.parametrize("package", PACKAGES, ids=lambda path: path.name)
def test_license_is_the_repository_license(package):
    assert (package / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()


@pytest.mark.parametrize("package", PACKAGES, ids=lambda path: path.name)
def test_project_metadata(package):
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert project["readme"] == "README.md"
    assert project["authors"] == [{"name": "The score-estimators authors"}]
    assert {"Homepage", "Documentation", "Source", "Changelog"} <= set(project["urls"])
    assert project["urls"]["Source"].endswith(f"/packages/{package.name}")
    assert any(c.startswith("Programming Language :: Python :: 3") for c in project["classifiers"])
    # PEP 639: a licence expression replaces the licence classifiers.
    assert not any(c.startswith("License ::") for c in project["classifiers"])

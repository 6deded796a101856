"""Every dependency of one package of this repository on another states a floor that
provides what it imports: at least the depended-on package's current major.minor.

When a package's API grows, its version moves (a minor bump), and every package that
depends on it must raise its floor with it: a floor below the current version would let
pip pair the dependent with a release that lacks what it imports.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECTS = sorted((ROOT / "packages").glob("*/pyproject.toml"))


def _projects() -> dict[str, dict]:
    """Each package's [project] table, by its pip name."""
    projects = {}
    for path in PYPROJECTS:
        project = tomllib.loads(path.read_text())["project"]
        projects[project["name"]] = project
    return projects


def floor_problems(projects: dict[str, dict]) -> list[str]:
    """One line per internal dependency whose floor is missing, an exact pin, or lower
    than the depended-on package's current major.minor."""
    problems = []
    for name, project in projects.items():
        for line in project.get("dependencies", []):
            requirement = Requirement(line)
            if requirement.name not in projects:
                continue
            current = Version(projects[requirement.name]["version"])
            needed = Version(f"{current.major}.{current.minor}")
            floors = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
            pins = [s for s in requirement.specifier if s.operator in ("==", "===")]
            if pins:
                problems.append(f"{name}: {line!r} pins a version; state a floor (>=) instead")
            elif not floors:
                problems.append(f"{name}: {line!r} has no floor; needs >={needed}")
            elif max(floors) < needed:
                problems.append(
                    f"{name}: {line!r} allows {requirement.name} below its current "
                    f"{current}; needs >={needed}"
                )
    return problems


def test_every_package_is_found() -> None:
    assert {
        "score-estimators",
        "score-objectives",
        "ebm-models",
        "eblvm-data",
        "eblvm-eval",
        "eblvm",
    } <= set(_projects())


def test_internal_floors_are_the_current_versions() -> None:
    assert floor_problems(_projects()) == []


def test_the_check_refuses_low_missing_and_pinned_floors() -> None:
    projects = {
        "base": {"version": "0.4.1", "dependencies": ["torch>=2.2"]},
        "low": {"version": "1.0.0", "dependencies": ["base>=0.3"]},
        "missing": {"version": "1.0.0", "dependencies": ["base"]},
        "upper-only": {"version": "1.0.0", "dependencies": ["base<1"]},
        "pinned": {"version": "1.0.0", "dependencies": ["base==0.4.1"]},
        "good": {"version": "1.0.0", "dependencies": ["base>=0.4", "torch>=2.2"]},
    }
    problems = floor_problems(projects)
    assert [p.split(":")[0] for p in problems] == ["low", "missing", "upper-only", "pinned"]
    assert "needs >=0.4" in problems[0]


@pytest.mark.parametrize("pyproject", PYPROJECTS, ids=lambda p: p.parent.name)
def test_the_version_attribute_is_the_pyproject_version(pyproject: Path) -> None:
    project = tomllib.loads(pyproject.read_text())["project"]
    module = project["name"].replace("-", "_")
    init = (pyproject.parent / "src" / module / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', init, re.M)
    assert found is not None and found.group(1) == project["version"]

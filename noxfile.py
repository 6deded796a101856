"""Sessions over the monorepo's packages.

- ``tests``: every package installed together; each package's tests and the
  root integration tests.
- ``isolated``: one fresh environment per package holding only that package,
  its declared dependencies (local ones by path) and the test tools.
- ``lint``, ``typecheck``: ruff and mypy over the sources.
- ``main``: the README's main job, a real training run with evaluation.
- ``bench``: a quick asv pass over the working tree and the performance goals'
  ratios (``benchmarks/README.md``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))

# Packages in dependency order, with the local packages each needs at run or
# test time. Packages from PyPI come from each pyproject.toml.
LOCAL_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "score-estimators": (),
    "score-objectives": (),
    "ebm-models": (),
    "eblvm-data": (),
    "eblvm-eval": ("ebm-models", "score-estimators"),
    "eblvm": (
        "score-estimators",
        "score-objectives",
        "ebm-models",
        "eblvm-data",
        "eblvm-eval",
    ),
}
PACKAGES = [name for name in LOCAL_DEPENDENCIES if (ROOT / "packages" / name).is_dir()]

nox.options.sessions = ["lint", "typecheck", "tests", "isolated"]
nox.options.reuse_existing_virtualenvs = False


def _install_packages(session: nox.Session, names: list[str], extras: str = "") -> None:
    paths = [f"{ROOT / 'packages' / name}{extras}" for name in names]
    session.install(*CONSTRAINTS, *paths)


@nox.session
def tests(session: nox.Session) -> None:
    """All packages together: every package's tests and the integration tests."""
    _install_packages(session, PACKAGES, "[test]")
    test_dirs = [str(ROOT / "packages" / name / "tests") for name in PACKAGES]
    session.run("pytest", *test_dirs, str(ROOT / "tests" / "integration"), *session.posargs)


@nox.session
@nox.parametrize("package", PACKAGES)
def isolated(session: nox.Session, package: str) -> None:
    """One package alone: proves that ``pip install <package>`` is enough."""
    local = [name for name in LOCAL_DEPENDENCIES[package] if name in PACKAGES]
    if local:
        _install_packages(session, local)
    _install_packages(session, [package], "[test]")
    session.run("pytest", str(ROOT / "packages" / package / "tests"), *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", str(ROOT))
    session.run("ruff", "format", "--check", str(ROOT))


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over every package's sources."""
    _install_packages(session, PACKAGES)
    session.install("mypy")
    sources = [str(ROOT / "packages" / name / "src") for name in PACKAGES]
    session.run("mypy", *sources)


@nox.session
def main(session: nox.Session) -> None:
    """The main job: a short checkerboard VaGES-DSM training run with evaluation."""
    _install_packages(session, PACKAGES)
    out = session.posargs[0] if session.posargs else str(ROOT / "runs" / "checkerboard-quick")
    session.run("eblvm", "train", "checkerboard-quick", "--out", out)


BENCHMARKS = ROOT / "benchmarks"
# The timings behind the ratio table (asv matches "name(params)"): sampled in
# rounds, the rest once.
RATIO_BENCHMARKS = (
    r"(training\.GRBMIteration\.time_iteration\('frey', '(vages|bism0|bism5)'"
    r"|training\.DeepIteration\.time_iteration\('\w+', '(ebm|vages|bism0|bism5)'"
    r"|evaluation\.AIS\.)"
)


@nox.session
def bench(session: nox.Session) -> None:
    """A quick asv pass over the working tree, then the goals' ratios from that run."""
    _install_packages(session, PACKAGES)
    session.install("asv")
    tmp = Path(session.create_tmp()).resolve()
    conf = json.loads((BENCHMARKS / "asv.conf.json").read_text())
    conf.update(
        repo=str(ROOT),
        benchmark_dir=str(BENCHMARKS / "benchmarks"),
        results_dir=str(tmp / "results"),
        html_dir=str(tmp / "html"),
        env_dir=str(tmp / "env"),
    )
    config = tmp / "asv.conf.json"
    config.write_text(json.dumps(conf, indent=2))
    head = session.run("git", "-C", str(ROOT), "rev-parse", "HEAD", external=True, silent=True)
    env = {"EBLVM_BENCH_THREADS": os.environ.get("EBLVM_BENCH_THREADS", "1")}
    run = ["asv", "run", "--config", str(config), "--python=same"]
    run += ["--set-commit-hash", str(head).strip()]
    session.run("asv", "machine", "--yes", "--config", str(config))
    session.run(*run, "--quick", "--bench", f"^(?!{RATIO_BENCHMARKS})", env=env)
    session.run(
        *run,
        "--bench",
        f"^{RATIO_BENCHMARKS}",
        "--attribute",
        "repeat=2",
        "--attribute",
        "rounds=3",
        "--attribute",
        "warmup_time=0",
        "--record-samples",
        env=env,
    )
    session.run("python", str(BENCHMARKS / "ratios.py"), "--results", str(tmp / "results"))

"""Sessions over the monorepo's packages.

- ``tests``: every package installed together; each package's tests and the
  root integration tests.
- ``isolated``: one fresh environment per package holding only that package,
  its declared dependencies (local ones by path) and the test tools.
- ``lint``, ``typecheck``: ruff and mypy over the sources.
- ``main``: the README's main job, a real training run with evaluation.
- ``reproduce``: ``eblvm reproduce --quick``, the appendix's claims at a small scale
  (about 5 minutes on two free cores), into a temporary folder or the one given after ``--``.
- ``bench``: a quick asv pass over the working tree and the performance goals'
  ratios (``benchmarks/README.md``); earlier results are kept
  (``benchmarks/.asv``), ``-- publish`` writes their dashboard.
- ``docs``: the documentation site (``mkdocs build --strict`` into ``site/``).
- ``build``: every package's sdist and wheel, checked, each wheel installed alone.
- ``examples``: every script in ``examples/`` run as a user runs it, on its tiny
  settings (``--tiny``: seconds each).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import nox
import tomllib
from nox.virtualenv import VirtualEnv

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))


def _local_dependencies() -> dict[str, tuple[str, ...]]:
    """Each package under packages/ with the packages of the repository it depends on
    (read from its pyproject.toml), in an order where dependencies come first."""
    found: dict[str, tuple[str, ...]] = {}
    for pyproject in sorted((ROOT / "packages").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        found[project["name"]] = tuple(
            re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0]
            for requirement in project.get("dependencies", [])
        )
    local = {name: tuple(d for d in deps if d in found) for name, deps in found.items()}
    ordered: dict[str, tuple[str, ...]] = {}
    while len(ordered) < len(local):
        for name, deps in local.items():
            if name not in ordered and all(d in ordered for d in deps):
                ordered[name] = deps
    return ordered


LOCAL_DEPENDENCIES = _local_dependencies()


def _closure(package: str) -> set[str]:
    """The package and every local package it needs, directly or through another."""
    needed, todo = set(), [package]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo.extend(LOCAL_DEPENDENCIES[name])
    return needed


PACKAGES = list(LOCAL_DEPENDENCIES)

nox.options.sessions = ["lint", "typecheck", "tests", "isolated"]
nox.options.reuse_existing_virtualenvs = False


def _frees_its_environment(body: Callable[..., None]) -> Callable[..., None]:
    """A session whose environment is deleted once it has passed, its ``tmp`` folder
    (the session's outputs) kept, unless environments are reused (``nox -r``): they are
    rebuilt on every run anyway, and each holds its own torch (about 1 GB), too many at
    once for a CI machine's disk. A failed session's environment stays, to look into."""

    @functools.wraps(body)
    def session_then_free(session: nox.Session, *args: object, **kwargs: object) -> None:
        body(session, *args, **kwargs)
        environment = session.virtualenv
        if isinstance(environment, VirtualEnv) and not environment.reuse_existing:
            for path in Path(environment.location).iterdir():
                if path.name == "tmp":
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()

    return session_then_free


def _import_name(package: str) -> str:
    return package.replace("-", "_")


def _install_packages(session: nox.Session, names: list[str], extras: str = "") -> None:
    paths = [f"{ROOT / 'packages' / name}{extras}" for name in names]
    session.install(*CONSTRAINTS, *paths)


@nox.session
@_frees_its_environment
def tests(session: nox.Session) -> None:
    """All packages together: every package's tests and the integration tests."""
    _install_packages(session, PACKAGES, "[test]")
    test_dirs = [str(ROOT / "packages" / name / "tests") for name in PACKAGES]
    session.run("pytest", *test_dirs, str(ROOT / "tests" / "integration"), *session.posargs)


@nox.session
@nox.parametrize("package", PACKAGES)
@_frees_its_environment
def isolated(session: nox.Session, package: str) -> None:
    """One package alone: proves that ``pip install <package>`` is enough."""
    local = [name for name in PACKAGES if name in _closure(package) and name != package]
    if local:
        _install_packages(session, local)
    _install_packages(session, [package], "[test]")
    session.run("pytest", str(ROOT / "packages" / package / "tests"), *session.posargs)


@nox.session
@_frees_its_environment
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", str(ROOT))
    session.run("ruff", "format", "--check", str(ROOT))


@nox.session
@_frees_its_environment
def typecheck(session: nox.Session) -> None:
    """mypy over every package's sources."""
    _install_packages(session, PACKAGES)
    session.install("mypy")
    sources = [str(ROOT / "packages" / name / "src") for name in PACKAGES]
    session.run("mypy", *sources)


# KaTeX typesets the site's math in the browser; the site carries it (no CDN).
KATEX = "katex@0.16.47"
KATEX_FILES = ("katex.min.js", "katex.min.css", "fonts/", "contrib/auto-render.min.js")


@nox.session
@_frees_its_environment
def docs(session: nox.Session) -> None:
    """The documentation site in site/: the hand-written pages under docs/, the package
    READMEs included, every package's API from its docstrings and the ``eblvm``
    command's help (which is why the packages are installed); warnings are errors."""
    _install_packages(session, PACKAGES)
    # ruff lays out the signatures
    session.install("mkdocs>=1.6,<2", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26", "ruff")
    tmp = Path(session.create_tmp()).resolve()
    for old in tmp.glob("katex-*.tgz"):
        old.unlink()
    session.run("npm", "pack", KATEX, "--silent", "--pack-destination", str(tmp), external=True)
    (archive,) = tmp.glob("katex-*.tgz")
    katex = ROOT / "docs" / "assets" / "katex"
    shutil.rmtree(katex, ignore_errors=True)
    with tarfile.open(archive) as tar:
        prefix = "package/dist/"
        members = [
            member
            for member in tar.getmembers()
            if member.isfile()
            and any(member.name.startswith(prefix + wanted) for wanted in KATEX_FILES)
        ]
        for member in members:
            member.name = member.name.removeprefix(prefix)
        tar.extractall(katex, members=members, filter="data")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--config-file",
        str(ROOT / "mkdocs.yml"),
        "--site-dir",
        str(ROOT / "site"),
        *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session
@_frees_its_environment
def build(session: nox.Session) -> None:
    """Every package's metadata rated by pyroma; its sdist and wheel (the wheel built
    from the sdist), checked by ``twine check --strict``; then each wheel alone in a
    fresh environment, with the wheels of the local packages it needs, imported."""
    session.install("build", "twine", "pyroma")
    for name in PACKAGES:  # packaging metadata: pyroma's rating, 8 of 10 at least
        session.run("pyroma", "--min", "8", str(ROOT / "packages" / name))
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for name in PACKAGES:
        session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT / "packages" / name))
    session.run("twine", "check", "--strict", *sorted(str(path) for path in dist.iterdir()))
    for name in PACKAGES:
        venv = tmp / f"alone-{name}"
        session.run("python", "-m", "venv", "--clear", str(venv))
        python = str(venv / "bin" / "python")
        wheels = [str(_wheel(dist, needed)) for needed in sorted(_closure(name))]
        session.run(
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            *CONSTRAINTS,
            "--find-links",
            str(dist),
            *wheels,
            external=True,
        )
        session.run(python, "-c", f"import {_import_name(name)}", external=True)
        shutil.rmtree(venv)  # each holds a torch of its own


def _wheel(dist: Path, package: str) -> Path:
    """The one wheel of ``package`` in ``dist``."""
    (wheel,) = dist.glob(f"{_import_name(package)}-*.whl")
    return wheel


@nox.session
@_frees_its_environment
def main(session: nox.Session) -> None:
    """The main job: a short checkerboard VaGES-DSM training run with evaluation."""
    _install_packages(session, PACKAGES)
    out = session.posargs[0] if session.posargs else str(ROOT / "runs" / "checkerboard-quick")
    session.run("eblvm", "train", "checkerboard-quick", "--out", out)


@nox.session
@_frees_its_environment
def reproduce(session: nox.Session) -> None:
    """The appendix's claims at the quick scale: ``eblvm reproduce --quick`` writes
    REPORT.md (and its runs) into a fresh temporary folder, or into ``nox -s reproduce --
    DIR`` (resumed when it holds a quick reproduction)."""
    _install_packages(session, PACKAGES)
    if session.posargs:
        out = session.posargs[0]
    else:
        out = str(Path(session.create_tmp()).resolve() / "reproduce")
        shutil.rmtree(out, ignore_errors=True)
    session.run("eblvm", "reproduce", "--quick", "--out", out)


EXAMPLES = ROOT / "examples"
# The examples that read Debian's dataset-fashion-mnist, and where its files are.
FASHION_EXAMPLES = ("fashion_deep_eblvm.py",)
FASHION_FILES = tuple(
    Path("/usr/share/datasets/fashion-mnist") / f"{name}-images-idx3-ubyte.gz"
    for name in ("train", "t10k")
)


@nox.session
@_frees_its_environment
def examples(session: nox.Session) -> None:
    """Every ``examples/*.py`` with ``--tiny``, in a scratch folder (their outputs go to
    its ``runs/examples``). Without the Fashion-MNIST files, the examples that need them
    must refuse in one line with exit status 2, and do."""
    _install_packages(session, PACKAGES)
    scripts = sorted(EXAMPLES.glob("*.py"))
    if not scripts:
        session.error(f"no examples in {EXAMPLES}")
    tmp = Path(session.create_tmp()).resolve()
    shutil.rmtree(tmp / "runs", ignore_errors=True)
    session.chdir(tmp)
    have_fashion = all(path.is_file() for path in FASHION_FILES)
    for script in scripts:
        if script.name in FASHION_EXAMPLES and not have_fashion:
            session.log(f"{script.name}: no Fashion-MNIST files; it must exit with status 2")
            session.run("python", str(script), "--tiny", success_codes=[2])
        else:
            session.run("python", str(script), "--tiny")


BENCHMARKS = ROOT / "benchmarks"
# The timings behind the ratio table (asv matches "name(params)"): sampled in
# rounds, the rest once.
RATIO_BENCHMARKS = (
    r"(training\.GRBMIteration\.time_iteration\('frey', '(vages|bism0|bism5)'"
    r"|training\.DeepIteration\.time_iteration\('\w+', '(ebm|vages|bism0|bism5)'"
    r"|training\.StackedGRBM\.\w+\('(vages-dsm|dsm|cd|bism-dsm-n0)'"
    r"|evaluation\.AIS\.)"
)
# Every stacked method compiles one graph per stack size: all of them with `-- stacks`.
STACKED = r"training\.StackedGRBM\."


# Results accumulate here across runs (git-ignored), one folder per machine, so that
# `nox -s bench -- publish` draws each benchmark's history over commits.
ASV_DIR = BENCHMARKS / ".asv"


def _asv_config(session: nox.Session) -> tuple[Path, str]:
    """asv's configuration for this checkout (results kept in benchmarks/.asv, graphs
    along the branch checked out) and the machine name the results are filed under:
    ``EBLVM_BENCH_MACHINE``, else the host's name."""
    tmp = Path(session.create_tmp()).resolve()
    branch = session.run(
        "git", "-C", str(ROOT), "rev-parse", "--abbrev-ref", "HEAD", external=True, silent=True
    )
    conf = json.loads((BENCHMARKS / "asv.conf.json").read_text())
    conf.update(
        repo=str(ROOT),
        benchmark_dir=str(BENCHMARKS / "benchmarks"),
        results_dir=str(ASV_DIR / "results"),
        html_dir=str(ASV_DIR / "html"),
        env_dir=str(tmp / "env"),
    )
    if str(branch).strip() != "HEAD":  # not detached
        conf["branches"] = [str(branch).strip()]
    config = tmp / "asv.conf.json"
    config.write_text(json.dumps(conf, indent=2))
    return config, os.environ.get("EBLVM_BENCH_MACHINE") or platform.node() or "local"


@nox.session
@_frees_its_environment
def bench(session: nox.Session) -> None:
    """A quick asv pass over the working tree, then the goals' ratios from that run
    (``nox -s bench -- readme`` also writes them into benchmarks/README.md; ``stacks``
    adds every checkerboard method's compiled stacks). Results are kept in
    benchmarks/.asv/results beside the earlier runs'; ``nox -s bench -- publish``
    writes their dashboard into benchmarks/.asv/html instead of running anything."""
    session.install("asv")
    config, machine = _asv_config(session)
    if "publish" in session.posargs:
        session.run("asv", "publish", "--config", str(config))
        session.log(f"dashboard: {ASV_DIR / 'html' / 'index.html'} (asv preview serves it)")
        return
    _install_packages(session, PACKAGES)
    head = str(
        session.run("git", "-C", str(ROOT), "rev-parse", "HEAD", external=True, silent=True)
    ).strip()
    env = {"EBLVM_BENCH_THREADS": os.environ.get("EBLVM_BENCH_THREADS", "1")}
    run = ["asv", "run", "--config", str(config), "--python=same", "--machine", machine]
    run += ["--set-commit-hash", head]
    session.run("asv", "machine", "--yes", "--machine", machine, "--config", str(config))
    # `nox -s bench -- stacks` also times every checkerboard method's stacks (once each).
    skipped = RATIO_BENCHMARKS if "stacks" in session.posargs else f"{RATIO_BENCHMARKS}|{STACKED}"
    session.run(*run, "--quick", "--bench", f"^(?!{skipped})", env=env)
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
    # This run's file (this machine, this commit), not an earlier run's.
    results = ASV_DIR / "results" / machine
    latest = max(results.glob(f"{head[:8]}-*.json"), key=lambda path: path.stat().st_mtime)
    readme = ["--readme", str(BENCHMARKS / "README.md")] if "readme" in session.posargs else []
    session.run("python", str(BENCHMARKS / "ratios.py"), "--file", str(latest), *readme)

"""Every ```python example in the READMEs runs alone, as written.

Each block runs by itself in a fresh namespace (in a folder of its own), as a reader
who copies that one block would run it: a block that needs an import or a name of
the block before fails here. Python that is shown but not run (it needs downloaded
data sets or weights, or takes minutes) is fenced as ```py, with the reason beside it
in the README; shell commands are fenced as ```bash.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", *sorted((ROOT / "packages").glob("*/README.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SHELL = re.compile(r"^(eblvm|pip|python3? -m|torchrun|nox|mkdocs)\b", re.M)
LANGUAGES = {"python", "py", "bash", "console", "text", "toml", "yaml", "json", "diff"}


def _blocks(readme: Path) -> list[tuple[int, str, str]]:
    """(line, language, code) of every fenced block of ``readme``."""
    text = readme.read_text()
    return [
        (text[: match.start()].count("\n") + 1, match.group(1), match.group(2))
        for match in FENCE.finditer(text)
    ]


EXAMPLES = [
    pytest.param(readme, line, code, id=f"{readme.relative_to(ROOT)}:{line}")
    for readme in READMES
    for line, language, code in _blocks(readme)
    if language == "python"
]


@pytest.mark.parametrize(("readme", "line", "code"), EXAMPLES)
def test_each_example_runs_alone(readme, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{readme.name}:{line}", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_block_says_its_language_and_shell_is_not_python(readme):
    for line, language, code in _blocks(readme):
        assert language in LANGUAGES, f"{readme.name}:{line}: fence it with a language"
        if language in ("python", "py"):
            assert not SHELL.search(code), f"{readme.name}:{line}: shell commands are ```bash"


@pytest.mark.parametrize(
    ("readme", "line", "code"),
    [
        pytest.param(readme, line, code, id=f"{readme.relative_to(ROOT)}:{line}")
        for readme in READMES
        for line, language, code in _blocks(readme)
        if language == "toml"
    ],
)
def test_each_settings_file_applies(readme, line, code, tmp_path):
    from eblvm import apply_overrides, get_preset

    path = tmp_path / "settings.toml"
    path.write_text(code)
    apply_overrides(get_preset("checkerboard-vages-dsm"), [], config=path)

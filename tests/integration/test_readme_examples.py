"""Every ```python example in the READMEs runs as written.

The blocks of one README run in order in one namespace, as a reader would run
them. Snippets that need files the tests cannot have (downloaded data sets,
weights) are fenced as ```py and shown, not run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", *sorted((ROOT / "packages").glob("*/README.md"))]


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(ROOT)))
def test_examples_run(readme, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for index, code in enumerate(blocks):
        exec(compile(code, f"{readme.name}#{index}", "exec"), namespace)

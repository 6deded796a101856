"""MkDocs hooks.

- The ``eblvm`` command's help, generated: a page that holds the line
  ``<!-- eblvm help -->`` gets, in its place, the help of ``eblvm`` and of each of its
  subcommands as the installed command prints it, so the reference follows the parser
  and is never copied by hand.
- Docstrings' reStructuredText roles (``:class:`~pkg.mod.Name```) read as code
  (``Name``) in the generated API pages.
- A pipe escaped inside code in a README's table (``\\|``, which GitHub needs) reads
  as a plain pipe.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterator
from typing import Any

from markdown import Extension, Markdown
from markdown.preprocessors import Preprocessor

MARKER = "<!-- eblvm help -->"
WIDTH = "80"


def _helps() -> Iterator[tuple[str, str]]:
    """(command line, help text) for ``eblvm`` and each subcommand, in the parser's order."""
    from eblvm.cli import parser

    top = parser()
    yield "eblvm", top.format_help()
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield f"eblvm {name}", subparser.format_help()


def _reference() -> str:
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH  # argparse wraps to the terminal's width
    try:
        helps = list(_helps())
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(
        f"### `{command}`\n\n```text\n{text.rstrip()}\n```\n" for command, text in helps
    )


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, _reference())


ROLE = re.compile(r":(?:class|func|meth|attr|mod|data|exc|obj):`(~?)([\w.]+)`")


def _role_as_code(match: re.Match[str]) -> str:
    short, path = match.groups()
    return f"`{path.rsplit('.', 1)[-1] if short else path}`"


class _Roles(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        return [ROLE.sub(_role_as_code, line) for line in lines]


class RolesAsCode(Extension):
    """``:class:`~a.b.Name``` -> ``Name`` (and the other roles likewise)."""

    def extendMarkdown(self, md: Markdown) -> None:
        md.preprocessors.register(_Roles(md), "rst_roles", 40)


def on_config(config: Any, **kwargs: Any) -> Any:
    config.markdown_extensions.append(RolesAsCode())
    return config


CODE = re.compile(r"<code>(.*?)</code>", re.S)
ESCAPED_PIPE = "\\|"


def _plain_pipes(match: re.Match[str]) -> str:
    return f"<code>{match.group(1).replace(ESCAPED_PIPE, '|')}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    return CODE.sub(_plain_pipes, html)

"""MkDocs hook: the `eblvm` command's help, generated, where a page asks for it.

A page that holds the line ``<!-- eblvm help -->`` gets, in its place, the help of
``eblvm`` and of each of its subcommands as the installed command prints it, so the
reference follows the parser and is never copied by hand.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- eblvm help -->"
WIDTH = "88"


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
    return "\n".join(f"### `{command}`\n\n```text\n{text.rstrip()}\n```\n" for command, text in helps)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, _reference())

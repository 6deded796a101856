"""MkDocs hooks.

- The ``eblvm`` command's help, generated: a page that holds the line
  ``<!-- eblvm help -->`` gets, in its place, the help of ``eblvm`` and of each of its
  subcommands as the installed command prints it, so the reference follows the parser
  and is never copied by hand.
- Docstrings' reStructuredText roles (``:class:`~pkg.mod.Name```) read as code
  (``Name``) in the generated API pages.
- A pipe escaped inside code in a README's table (``\\|``, which GitHub needs) reads
  as a plain pipe.
- The method catalogue linked both ways: each object that a section of methods.md
  names under "Estimators" or "Objectives" gets, under its heading in the API
  reference, a link back to that section.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterator
from typing import Any

from markdown import Extension, Markdown
from markdown.extensions.toc import slugify
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


CATALOGUE = "methods.md"
CATALOGUE_PARTS = ("## Estimators", "## Objectives")
SECTION = re.compile(r"^### (.+)$")
REFERENCE = re.compile(r"\]\[([\w.]+)\]")


def catalogue_sections(markdown: str) -> dict[str, tuple[str, str]]:
    """identifier -> (title, anchor) of the first ``###`` section of the catalogue's
    parts that names it in a cross-reference ``[text][identifier]``."""
    sections: dict[str, tuple[str, str]] = {}
    part = section = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            part, section = line.strip(), None
        elif match := SECTION.match(line):
            section = match.group(1).strip()
        elif part in CATALOGUE_PARTS and section is not None:
            for identifier in REFERENCE.findall(line):
                sections.setdefault(identifier, (section, slugify(section, "-")))
    return sections


def _heading(identifier: str) -> re.Pattern[str]:
    return re.compile(rf'(<h[1-6] id="{re.escape(identifier)}"[^>]*>.*?</h[1-6]>)', re.S)


def _escaped(text: str) -> str:
    """``text`` as a literal in a replacement template."""
    return text.replace("\\", "\\\\")


def _with_catalogue_links(html: str, package: str, sections: dict[str, tuple[str, str]]) -> str:
    """The API page of ``package`` (its import name) with a link under each heading
    that the catalogue names; a named object without a heading fails the build."""
    for identifier, (title, anchor) in sections.items():
        if identifier.split(".")[0] != package:
            continue
        link = (
            f'<p class="catalogue-link">In the method catalogue: '
            f'<a href="../methods.html#{anchor}">{title}</a></p>'
        )
        html, found = _heading(identifier).subn(rf"\g<1>{_escaped(link)}", html, 1)
        if not found:
            raise ValueError(f"{CATALOGUE} names {identifier}, which has no heading in the API")
    return html


def on_page_content(html: str, page: Any, config: Any, **kwargs: Any) -> str:
    html = CODE.sub(_plain_pipes, html)
    uri = page.file.src_uri
    if uri.startswith("api/"):
        package = uri.removeprefix("api/").removesuffix(".md").replace("-", "_")
        with open(os.path.join(config["docs_dir"], CATALOGUE), encoding="utf-8") as file:
            html = _with_catalogue_links(html, package, catalogue_sections(file.read()))
    return html

"""The code blocks of a guide page, read once, classified, and checked without a server.

A fence's info string is ``LANG [OPTION ...]``. What each kind becomes:

``python`` defining ``test_*`` functions
    a pytest module of its own: fixtures, markers, parametrize and Hypothesis
    decorators work as in any test file.
``python`` (anything else)
    a script, run by pytest-markdown-docs; ``fixture:NAME`` injects fixtures.
``python illustration``
    a fragment or an anti-pattern shown on purpose: compiled, never run.
``sql``
    run against a fresh pggit database; ``error=SQLSTATE`` (or a condition
    name such as ``error=invalid_parameter_value``) says the block must fail
    with that error; ``continuation`` runs it in the database of the previous
    ``sql`` block of the page. What it prints must be what the
    ``text output`` block right below it shows (``pages/sql_output.py``);
    only a block marked ``setup`` may go without one, and then a
    ``continuation`` block after it must show the effect.
``text output``
    the output of the ``sql`` block directly above it (only blank lines
    between): what ``psql -X`` prints, with named placeholders such as
    ``<trinity-id>`` for values that differ from run to run.
``bash`` / ``console`` / ``shell``
    commands checked without running them: pytest options exist, marker
    expressions name registered markers and select tests, make targets and
    pip extras exist, paths exist.
``text symptom``
    an error message quoted under "Symptoms"; a test in the same section
    must reproduce it through the ``quoted_symptom`` fixture.

``pages/evaluators/`` holds what each kind becomes; a fence left open is a
``PageError`` naming the page and line, never a block that swallows the rest.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt

from pggit_chaos.paths import REPO

PYTHON = {"python", "py", "python3"}
SQL = {"sql", "postgresql", "psql"}
SHELL = {"bash", "console", "shell", "sh"}
# Info-string options this project gives meaning to (see the module docstring).
OWN_OPTIONS = {"illustration", "continuation", "symptom", "output", "setup"}


class PageError(ValueError):
    """A page that cannot be read into blocks; the message names the page and line."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    options: tuple[str, ...]
    code: str
    section: str  # the nearest heading above the block
    section_index: int  # ordinal of that heading on the page
    end_line: int = 0  # 1-based line of the closing fence
    directly_below: bool = False  # only blank lines separate it from the fence above it
    output: Block | None = None  # for a sql block, the text output block directly below it

    @property
    def first_code_line(self) -> int:
        return self.line + 1

    def option(self, prefix: str) -> str | None:
        """Value of ``prefix=VALUE`` or ``prefix:VALUE`` among the options."""
        for opt in self.options:
            for sep in ("=", ":"):
                if opt.startswith(prefix + sep):
                    return opt[len(prefix) + 1:]
        return None

    def has(self, flag: str) -> bool:
        return flag in self.options

    @property
    def kind(self) -> str:
        if self.lang in PYTHON:
            if self.has("illustration"):
                return "illustration"
            return "tests" if defines_tests(self.code) else "script"
        if self.lang in SQL:
            return "illustration" if self.has("illustration") else "sql"
        if self.lang in SHELL:
            return "illustration" if self.has("illustration") else "shell"
        if self.has("symptom"):
            return "symptom"
        if self.has("output"):
            return "output"
        return "text"

    def padded_code(self) -> str:
        """The code preceded by blank lines, so its line numbers are the page's."""
        return "\n" * (self.first_code_line - 1) + self.code


def defines_tests(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(
        isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
        for node in tree.body
    ) or any(isinstance(node, ast.ClassDef) and node.name.startswith("Test") for node in tree.body)


def test_parameters(code: str) -> set[str]:
    """Names of every parameter of the block's test functions (fixtures they ask for)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            names.update(a.arg for a in node.args.args + node.args.kwonlyargs)
    return names


class _BlockParser(MarkdownIt):
    """Remembers the tokens of the texts it parsed: each page is read by the page collector and by
    pytest-markdown-docs, and both only read the tokens."""

    def __init__(self) -> None:
        super().__init__("commonmark")
        self.disable("inline")
        self._parsed: dict[str, list] = {}

    def parse(self, src: str, env=None):  # noqa: ANN001, ANN201 - MarkdownIt's own signature
        if env is not None:  # an env collects what parsing finds (references): parse anew
            return super().parse(src, env)
        if src not in self._parsed:
            self._parsed[src] = super().parse(src)
        return self._parsed[src]


@cache
def block_parser() -> MarkdownIt:
    """A CommonMark parser of blocks only: fences, headings and their raw text, without parsing inside them.

    Inline parsing (emphasis, links, code spans) was half of what reading the
    pages and the toolkit's docstrings cost each pytest process, and nothing
    here reads its result. pytest-markdown-docs uses it too (``integration.py``'s
    ``pytest_markdown_docs_markdown_it``), so each text is parsed once a process.
    """
    return _BlockParser()


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, in order, with the section it sits in."""
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    tokens = block_parser().parse(text)
    blocks: list[Block] = []
    section, section_index = "", 0
    previous_end = None  # 0-based index of the line after the last fence seen (directive fences too)
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            section = tokens[i + 1].content
            section_index += 1
        elif token.type == "fence" and token.map:
            _check_closed(page, lines, token.map, token.markup)
            info = token.info.strip()
            start, end = token.map
            directly_below = previous_end is not None and not any(line.strip() for line in lines[previous_end:start])
            previous_end = end
            # MyST directive fences ({code-block} python, {note}, ...) are not code to run.
            if info.startswith("{"):
                continue
            parts = info.split()
            lang = parts[0].lower() if parts else ""
            blocks.append(Block(page, start + 1, lang, tuple(parts[1:]), token.content,
                                section, section_index, end, directly_below))
    # Each SQL block carries its output as read now: its test compares with what was collected, never with a
    # page re-read while the run goes on (an edit would move the lines under it).
    return [replace(b, output=_following_output(b, blocks[i + 1:i + 2])) if b.kind == "sql" else b
            for i, b in enumerate(blocks)]


def _following_output(block: Block, following: list[Block]) -> Block | None:
    if following and following[0].kind == "output" and following[0].directly_below:
        return following[0]
    return None


def output_of(block: Block, blocks: list[Block] | None = None) -> Block | None:
    """The ``text output`` block directly below ``block`` (only blank lines between), or None."""
    return block.output


def _check_closed(page: Path, lines: list[str], span: list[int], markup: str) -> None:
    """Raise PageError if a fence has no closing line (CommonMark would run it to the end of its container)."""
    start, end = span
    # A closing fence is the block's last line: the opening character, at least as many, nothing after;
    # a list item's indentation or a blockquote's ``>`` may come before it.
    closing = lines[end - 1].lstrip(" \t>") if end - 1 > start and end - 1 < len(lines) else ""
    if not re.fullmatch(re.escape(markup[0]) + "{%d,}[ \t]*" % len(markup), closing):
        raise PageError(f"{display_path(page)}:{start + 1}: the {markup} fence opened here is never closed, "
                        "so the rest of the page would be read as its code")


def display_path(page: Path) -> str:
    """The page as messages name it: relative to the repository when it lives there."""
    try:
        return page.resolve().relative_to(REPO.resolve()).as_posix()
    except ValueError:
        return str(page)

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
    ``sql`` block of the page.
``bash`` / ``console`` / ``shell``
    commands checked without running them: pytest options exist, marker
    expressions name registered markers and select tests, make targets and
    pip extras exist, paths exist.
``text symptom``
    an error message quoted under "Symptoms"; a test in the same section
    must reproduce it through the ``quoted_symptom`` fixture.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from markdown_it import MarkdownIt

PYTHON = {"python", "py", "python3"}
SQL = {"sql", "postgresql", "psql"}
SHELL = {"bash", "console", "shell", "sh"}
# Info-string options this project gives meaning to (see the module docstring).
OWN_OPTIONS = {"illustration", "continuation", "symptom"}


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


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark")


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, in order, with the section it sits in."""
    text = page.read_text(encoding="utf-8")
    tokens = _parser().parse(text)
    blocks: list[Block] = []
    section, section_index = "", 0
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            section = tokens[i + 1].content
            section_index += 1
        elif token.type == "fence" and token.map:
            info = token.info.strip()
            # MyST directive fences ({code-block} python, {note}, ...) are not code to run.
            if info.startswith("{"):
                continue
            parts = info.split()
            lang = parts[0].lower() if parts else ""
            blocks.append(Block(page, token.map[0] + 1, lang, tuple(parts[1:]), token.content,
                                section, section_index))
    return blocks


# --------------------------------------------------------------------------
# Quoted symptoms
# --------------------------------------------------------------------------


def symptom_matches(quoted: str, actual: str) -> bool:
    """Does a real error message match the one quoted on the page?

    Whitespace runs compare equal; ``...`` in the quote stands for any text
    (ids, timings and pids differ from run to run).
    """
    def norm(s: str) -> str:
        return " ".join(s.split())

    pattern = ".*?".join(re.escape(part) for part in norm(quoted).split("..."))
    return re.fullmatch(pattern, norm(actual), flags=re.DOTALL) is not None


def symptom_for(block: Block, blocks: list[Block]) -> Block | None:
    """The symptom quoted in the same section as ``block``, before it."""
    found = None
    for other in blocks:
        if other.line >= block.line:
            break
        if other.kind == "symptom" and other.section_index == block.section_index:
            found = other
    return found


def symptom_reproducers(symptom: Block, blocks: list[Block]) -> list[Block]:
    """Test blocks after the symptom, in its section, that ask for ``quoted_symptom``."""
    return [
        b for b in blocks
        if b.line > symptom.line and b.section_index == symptom.section_index
        and b.kind == "tests" and "quoted_symptom" in test_parameters(b.code)
    ]


# --------------------------------------------------------------------------
# Shell blocks
# --------------------------------------------------------------------------


@dataclass
class Command:
    line: int
    argv: list[str]


def shell_commands(block: Block) -> list[Command]:
    """The commands of a shell block: prompts stripped, continuations joined, comments dropped."""
    commands: list[Command] = []
    pending, start = "", block.first_code_line
    for offset, raw in enumerate(block.code.splitlines()):
        line = raw.strip()
        if not pending:
            start = block.first_code_line + offset
            if block.lang == "console" and not line.startswith("$"):
                continue  # console output, not a command
            line = line.removeprefix("$").strip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if not full or full.startswith("#"):
            continue
        argv = shlex.split(full, comments=True)
        if argv:
            commands.append(Command(start, argv))
    return commands


PYTEST_LAUNCHERS = (["pytest"], [".venv/bin/pytest"], ["python", "-m", "pytest"],
                    ["python3", "-m", "pytest"], [".venv/bin/python", "-m", "pytest"])


def pytest_args(argv: list[str]) -> list[str] | None:
    """The arguments after the pytest launcher, or None if this is not a pytest call."""
    for launcher in PYTEST_LAUNCHERS:
        if argv[: len(launcher)] == launcher:
            return argv[len(launcher):]
    # make test PYTEST_ARGS="..." passes arguments through to pytest.
    if argv[:1] == ["make"]:
        for arg in argv[1:]:
            if arg.startswith("PYTEST_ARGS="):
                return shlex.split(arg.split("=", 1)[1])
    return None


def marker_names(expression: str) -> set[str]:
    """The marker names a -m expression uses."""
    return set(re.findall(r"[A-Za-z_][\w]*", expression)) - {"and", "or", "not"}


def makefile_targets(makefile: Path) -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", makefile.read_text(), flags=re.M))


# --------------------------------------------------------------------------
# Paths named on a page
# --------------------------------------------------------------------------

REPO_DIRS = ("docs", "tests", "examples", "tools", "extension", ".ci", ".github")
_PATH = re.compile(
    r"(?<![\w/.-])((?:" + "|".join(re.escape(d) for d in REPO_DIRS) + r")/[\w./*<>-]*[\w/*])"
)


@dataclass
class NamedPath:
    line: int
    text: str


def named_paths(page: Path) -> list[NamedPath]:
    """Repository paths a page names (in prose, inline code or code blocks)."""
    found = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        for match in _PATH.finditer(line):
            text = match.group(1).rstrip(".")
            found.append(NamedPath(number, text))
    return found


def path_exists(root: Path, text: str) -> bool:
    """A named path exists; ``*`` and ``<name>`` placeholders match at least one file."""
    if "<" in text:
        text = re.sub(r"<[^>]*>", "*", text)
    if "*" in text:
        return any(root.glob(text))
    return (root / text).exists()


@dataclass
class PageProblems:
    """Everything static that is wrong with a page, for one readable failure."""

    problems: list[str] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.problems.append(f"line {line}: {message}")

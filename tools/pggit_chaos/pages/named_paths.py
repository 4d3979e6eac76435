"""The repository paths a page names, and whether each exists."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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

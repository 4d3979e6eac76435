"""The package keeps its shape: each module says what it is in its first line, stays small, and imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

from pggit_chaos import paths

PACKAGE = paths.PACKAGE
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "extension" not in p.relative_to(PACKAGE).parts)
MAX_LINES = 400
# Longer than MAX_LINES, each one concept (much of their length is runnable docstring examples).
ONE_CONCEPT = {
    "checkers.py": "the invariants, each a short function with an example",
    "generators.py": "the Hypothesis strategies, each with an example",
    "nemesis/proxy.py": "FaultyProxy: the proxy, its links and their pumps, whose locking is easiest to read in one place",
    "measure/mutants.py": "the catalog: data, one entry per hand-written bug",
    "measure/mutant_triage.py": "the triage: data, one verdict per surviving generated mutant",
}
# Rooms and the rooms they may import from: the toolkit never reaches into the pages or the measuring tools.
ROOM_IMPORTS = {
    "server": {"server", "paths"},
    "plugin": {"plugin", "server", "paths", "toolkit"},
    "toolkit": {"toolkit", "server", "paths"},
    "pages": {"pages", "paths", "server", "toolkit"},
    "measure": {"measure", "pages", "server", "paths", "toolkit"},
}


def room_of(module: str) -> str:
    """The room of a module name below pggit_chaos (the toolkit is the top-level modules and nemesis)."""
    first = module.split(".")[1] if module.count(".") else ""
    if first in {"server", "plugin", "pages", "measure", "paths"}:
        return first
    if first == "cli":
        return "measure"
    return "toolkit"


def test_every_module_opens_with_one_line_saying_what_it_is():
    bad = []
    for path in MODULES:
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
        first = (doc or "").splitlines()[0].strip() if doc else ""
        if not first or not first.endswith((".", ":")) and len(first.split()) < 3:
            bad.append(str(path.relative_to(PACKAGE)))
    assert not bad, f"modules without a first line that says what they are: {bad}"


def test_no_module_is_longer_than_one_concept_needs():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert set(long) <= set(ONE_CONCEPT), f"over {MAX_LINES} lines: {long}"


def test_imports_between_rooms_point_one_way():
    wrong = []
    for path in MODULES:
        module = "pggit_chaos." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        room = room_of(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pggit_chaos"):
                targets = [node.module] if node.module.count(".") else [f"pggit_chaos.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("pggit_chaos.")]
            else:
                continue
            for target in targets:
                if room_of(target) not in ROOM_IMPORTS[room]:
                    wrong.append(f"{path.relative_to(PACKAGE)} ({room}) imports {target} ({room_of(target)})")
    assert not wrong, "imports against the rooms' direction:\n" + "\n".join(wrong)


def test_the_room_check_sees_a_wrong_arrow():
    """Positive control: the toolkit importing the pages would be reported."""
    assert room_of("pggit_chaos.checkers") == "toolkit"
    assert room_of("pggit_chaos.pages.parse") not in ROOM_IMPORTS["toolkit"]
    assert room_of("pggit_chaos.nemesis.network") == "toolkit"
    assert Path(PACKAGE / "checkers.py") in MODULES

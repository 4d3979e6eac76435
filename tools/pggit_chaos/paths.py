"""Where things are: pggit's files shipped with the package, and the handbook's checkout when there is one."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# pggit itself: a link to the checkout's extension/ in the source tree, real files in a built wheel.
EXTENSION_DIR = PACKAGE / "extension"
EXTENSION_SQL = EXTENSION_DIR / "pggit--1.0.0.sql"


def handbook_root() -> Path | None:
    """The handbook's checkout (tools/pggit_chaos is two levels down), or None for an installed wheel."""
    root = PACKAGE.parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "docs").is_dir() else None


# The measure and pages rooms work on the handbook's own tree; outside a checkout, on the current directory.
REPO = handbook_root() or Path.cwd()

"""The toolkit reference (docs/reference/toolkit.md) names every module of the package, so a new one cannot be left off."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import pggit_chaos

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "toolkit.md"
# Modules the page leaves out, each with its reason.
LEFT_OUT = {
    "pggit_chaos.server.__main__": "a manual check run with python -m; importing it for autodoc would be pointless",
}


def modules() -> set[str]:
    return {module.name for module in pkgutil.walk_packages(pggit_chaos.__path__, "pggit_chaos.")}


def documented(page: str) -> set[str]:
    """The modules an ``automodule`` (or ``autofunction`` of one of their functions) of the page names."""
    names = set(re.findall(r"^\s*\.\. automodule:: (\S+)", page, re.MULTILINE))
    return names | {name.rsplit(".", 1)[0] for name in re.findall(r"^\s*\.\. autofunction:: (\S+)", page, re.MULTILINE)}


def test_every_module_of_the_package_is_on_the_toolkit_reference():
    found = modules()
    assert {"pggit_chaos.client", "pggit_chaos.schema_objects", "pggit_chaos.measure.junit"} <= found
    # The check itself: a module that no directive names is missing.
    assert documented(".. automodule:: pggit_chaos.client\n") == {"pggit_chaos.client"}
    missing = sorted(found - documented(PAGE.read_text(encoding="utf-8")) - set(LEFT_OUT))
    assert not missing, f"modules not on docs/reference/toolkit.md: {missing}"
    assert set(LEFT_OUT) <= found, "a left-out module no longer exists: drop it from LEFT_OUT"

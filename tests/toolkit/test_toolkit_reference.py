"""The toolkit's docstring examples: collected by `make test` under the package's own names, rendered on the site."""

from __future__ import annotations

import glob
import importlib.util
import inspect
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PUBLIC_MODULES = ["client", "history", "checkers", "generators", "snapshot", "monitor", "interleavings",
                  "nemesis.server", "nemesis.network", "nemesis.proxy", "nemesis.resources", "nemesis.settings", "nemesis.tracking",
                  "nemesis.injector"]


def _toolkit_testpaths() -> list[str]:
    """The testpaths of pyproject.toml under tools/, globs expanded as pytest expands them."""
    paths = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    return sorted(p for entry in paths if entry.startswith("tools/") for p in glob.glob(entry, root_dir=REPO))


def _collect(*also_import: str) -> dict:
    """Collect the toolkit's testpaths in a fresh interpreter; report the items and every pggit_chaos module loaded."""
    script = (
        "import importlib, json, sys, pytest\n"
        "class Items:\n"
        "    def pytest_collection_finish(self, session):\n"
        "        self.ids = [item.nodeid for item in session.items]\n"
        "items = Items()\n"
        "code = pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', '-p', 'no:xdist', *sys.argv[2:]],"
        " plugins=[items])\n"
        "for name in sys.argv[1].split(',') if sys.argv[1] else []:\n"
        "    importlib.import_module(name)\n"
        "loaded = {name: getattr(module, '__file__', None) for name, module in sys.modules.items()\n"
        "          if 'pggit_chaos' in name}\n"
        "print(json.dumps({'code': int(code), 'items': items.ids, 'modules': loaded}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, ",".join(also_import), *_toolkit_testpaths()],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def _twice(modules: dict) -> list[str]:
    """Files loaded under two module names (``pggit_chaos.x`` and ``tools.pggit_chaos.x``)."""
    by_file: dict[str, list[str]] = {}
    for name, path in modules.items():
        if path:
            by_file.setdefault(path, []).append(name)
    return sorted(f"{path}: {names}" for path, names in by_file.items() if len(names) > 1)


def test_the_toolkit_testpaths_hold_every_public_module():
    paths = _toolkit_testpaths()
    for module in PUBLIC_MODULES:
        path = f"tools/pggit_chaos/{module.replace('.', '/')}.py"
        assert path in paths or str(Path(path).parent) in paths, f"{path} is not in pyproject.toml's testpaths"


def test_docstring_examples_are_collected_and_the_package_is_imported_once():
    collected = _collect()
    assert collected["code"] == 0
    examples = [item for item in collected["items"] if "[CodeFence#" in item]
    for module in PUBLIC_MODULES:
        assert any(item.startswith(f"tools/pggit_chaos/{module.replace('.', '/')}.py::") for item in examples), module
    assert not [name for name in collected["modules"] if name.startswith("tools.")], collected["modules"]
    assert _twice(collected["modules"]) == []
    assert collected["modules"]["pggit_chaos.checkers"] == str(REPO / "tools/pggit_chaos/checkers.py")


def test_the_double_import_check_sees_a_second_name_for_the_same_file():
    # Positive control: the repository root is on sys.path (pythonpath = ["."]), so the namespace
    # package "tools" makes a second copy of a module possible; the check above would name it.
    collected = _collect("tools.pggit_chaos.history")
    assert f"{REPO / 'tools/pggit_chaos/history.py'}: ['pggit_chaos.history', 'tools.pggit_chaos.history']" \
        in _twice(collected["modules"])


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_function_and_class_has_an_example(module):
    imported = importlib.import_module(f"pggit_chaos.{module}")
    names = getattr(imported, "__all__", None) or [n for n in vars(imported) if not n.startswith("_")]
    missing = []
    for name in names:
        obj = getattr(imported, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != imported.__name__:
            continue
        documented = [obj] + [member for _, member in inspect.getmembers(obj, inspect.isfunction)
                              if member.__qualname__.startswith(f"{obj.__name__}.")] if inspect.isclass(obj) else [obj]
        if not any("```python" in (inspect.getdoc(o) or "") for o in documented):
            missing.append(name)
    assert not missing, f"pggit_chaos.{module}: no runnable example for {missing}"


def test_docstring_fences_render_as_code_blocks_with_their_fixtures():
    spec = importlib.util.spec_from_file_location("handbook_conf", REPO / "conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    lines = ["Text before.", "```python fixture:sync_conn fixture:pg_cluster", "x = 1", "", "    y = 2", "```",
             "Text after."]
    conf.markdown_fences_to_rst(None, "function", "f", None, {}, lines)
    assert lines == ["Text before.", "", ".. code-block:: python",
                     "   :caption: receives the pytest fixtures: sync_conn, pg_cluster", "",
                     "   x = 1", "", "       y = 2", "", "Text after."]
    untouched = ["No fence here: ``literal``.", "", "::", "", "    a reST literal block"]
    copy = list(untouched)
    conf.markdown_fences_to_rst(None, "function", "f", None, {}, copy)
    assert copy == untouched

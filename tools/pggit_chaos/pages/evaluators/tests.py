"""Evaluator for test-defining python blocks: each becomes a real test module, its asserts rewritten by pytest.

The block is written to ``_build/pages/<page>/line_<N>_<hash>.py``, padded
with blank lines so its line numbers are the page's, and imported through the
ordinary import system after ``pytest.register_assert_rewrite``: pytest's own
import hook rewrites its asserts, so failures show pytest's detailed messages,
and tracebacks name that file at the page's line numbers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import pytest

from pggit_chaos.pages.base import REPO
from pggit_chaos.pages.parse import Block, display_path

BUILD_DIR = REPO / "_build" / "pages"


def module_for(block: Block) -> types.ModuleType:
    """Import the block as a test module; its ``__file__`` is the page, as before."""
    source = materialized_source(block)
    path = _write_once(_build_path(block, source), source)
    name = path.stem
    # Marked before the import, so pytest's import hook (whatever python_files says) rewrites its asserts.
    pytest.register_assert_rewrite(name)
    spec = _find_spec(name, path.parent)
    module = importlib.util.module_from_spec(spec)
    # Blocks read their own page through __file__ (the page's tree checks do); the code still runs from `path`.
    module.__file__ = str(block.page)
    # Registered so Hypothesis, pickling and tracebacks can find the module by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def materialized_source(block: Block) -> str:
    """The file's text: a header on line 1, then blank lines, so the code starts on its page line."""
    header = f"# {display_path(block.page)}, the block at line {block.line}; written for pytest, edit the page instead."
    return header + block.padded_code()  # the padding holds at least one line break: fences start on line 1 or later


def _build_path(block: Block, source: str) -> Path:
    """Where the block's file goes: under the page's own folder, named by line and content."""
    try:
        folder = BUILD_DIR / block.page.resolve().relative_to(REPO.resolve())
    except ValueError:
        # A page outside the repository gets a folder named after its directory's hash.
        digest = hashlib.sha256(str(block.page.resolve().parent).encode()).hexdigest()[:12]
        folder = BUILD_DIR / "_outside" / digest / block.page.name
    # The content hash keeps module names unique across pages, and a changed block out of a stale
    # bytecode cache (pytest's cache checks only the source's size and mtime in whole seconds).
    digest = hashlib.sha256(f"{block.page.resolve()}\n{source}".encode()).hexdigest()[:12]
    return folder / f"line_{block.line}_{digest}.py"


def _write_once(path: Path, source: str) -> Path:
    """Write the file unless it is already there (its name holds its content's hash), atomically."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # Earlier versions of the same block go, so the folder holds what the page says now.
    for stale in path.parent.glob(f"line_{path.stem.split('_')[1]}_*.py"):
        if stale != path:
            stale.unlink(missing_ok=True)
    # xdist workers collect the same page at once: each writes its own temporary file, then renames it.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(source)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _find_spec(name: str, folder: Path) -> importlib.machinery.ModuleSpec:
    """Ask each finder on sys.meta_path for ``name`` in ``folder``, as the import system does for a package's module."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        spec = find_spec(name, [str(folder)]) if find_spec else None
        if spec is not None and spec.loader is not None:
            return spec
    raise ImportError(f"no import finder found {name} in {folder}")


def prune_orphans(build_dir: Path = BUILD_DIR) -> None:
    """Remove the built files of pages that no longer exist (scratch pages, renamed pages)."""
    if not build_dir.is_dir():
        return
    # Any collection builds every page it finds, other runs' short-lived scratch pages included; such a run
    # may remove its folders while this walks them (os.walk passes over them where rglob raises).
    built = [Path(top, name) for top, dirs, _ in os.walk(build_dir) for name in dirs if name.endswith(".md")]
    for folder in sorted(built, reverse=True):
        relative = folder.relative_to(build_dir)
        if folder.is_dir() and relative.parts[0] != "_outside" and not (REPO / relative).exists():
            shutil.rmtree(folder, ignore_errors=True)
            for parent in folder.parents:
                if parent == build_dir:
                    break
                try:
                    parent.rmdir()  # only once empty
                except OSError:
                    break

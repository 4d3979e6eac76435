"""Sphinx extension: each code block on the site shows its result from the latest verified run.

The results come from ``_build/doc-results.json``, written by the pytest run
that ``make site`` does first (its shape and reader: ``tools/pggit_chaos/pages/results.py``);
nothing here is typed by hand. A badge says how the block was verified (ran,
checked without running, or compiled), how that went, how long it took and
when. A page whose text changed since that run says its results are stale, and
so does one whose results ran against another pggit than ``extension/`` holds
now; results of a run on another server, or with no record of what they ran
against, show as not run.

Badges are attached when a page is written, from the results read at the start
of that build, and a page whose badges would change is read and written again
(``env-get-outdated``): an incremental build shows the latest results on every
page, not only on the pages whose text changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging

from pggit_chaos.pages import parse as gb
from pggit_chaos.pages import results as doc_results

logger = logging.getLogger(__name__)

LABELS = {
    "passed": "✔ passed",
    "failed": "✘ failed",
    "skipped": "– skipped",
    "xfailed": "✔ expected failure",
}
# How each kind of block is verified: the second part of its badge.
HOW = {
    "tests": "ran",
    "script": "ran",
    "sql": "ran",
    "shell": "checked, not run",
    "symptom": "checked: a test below reproduces the quoted message",
    "illustration": "compiled, never run",
}
# Kinds whose result depends on the server (the badge names the PostgreSQL version).
ON_SERVER = {"tests", "script", "sql", "symptom"}

Badge = tuple[int, str, str, str]  # (opening-fence line, the block's code, text, css class)


def _load_results(app: Sphinx) -> doc_results.Results:
    path = Path(app.confdir) / app.config.doc_results_file
    try:
        return doc_results.read_results(path)
    except doc_results.CorruptResults as exc:
        logger.warning("%s; every block shows as not run", exc)
        return doc_results.empty_results()


def _badge(kind: str, entry: doc_results.BlockResult | None, page: doc_results.PageResult | None,
           stale: str | None, results: doc_results.Results) -> tuple[str, str]:
    """(text, css class) for one block."""
    how = HOW[kind]
    if entry is None:
        verb = {"ran": "run", "compiled, never run": "compiled"}.get(how, "checked")
        return f"Not {verb} in the latest verified run", "not-run"
    label = LABELS.get(entry["outcome"], entry["outcome"])
    parts = [label, how, f"{entry['duration']:.2f} s"]
    if kind in ON_SERVER:
        versions = ", ".join(page.get("pg_versions") or results.get("pg_versions", [])) or "unknown"
        parts.append(f"PostgreSQL {versions}")
    parts.append(f"run {page.get('finished') or results.get('finished', '?')}")
    if stale:
        parts.insert(0, f"STALE ({stale} since this run)")
    return " · ".join(parts), "stale" if stale else entry["outcome"]


def page_badges(source: Path, relative: str, results: doc_results.Results, own_sha256: str) -> list[Badge]:
    """The badge of every verified block of a page, by its opening-fence line."""
    if source.suffix != ".md" or not source.exists():
        return []
    page = results["pages"].get(relative)
    reason = doc_results.foreign_reason(page, own_sha256) if page is not None else None
    stale = None
    if page is not None and reason is None:
        if page.get("sha256") != hashlib.sha256(source.read_bytes()).hexdigest():
            stale = "page changed"
    elif page is not None and page.get("server") == doc_results.OWN_SERVER and "pggit_sha256" in page:
        stale = "pggit changed"  # the site's file only takes own-pggit runs: the script changed since
    else:
        page = None  # another server, or no record of what it ran against: not the site's results
    try:
        blocks = gb.read_blocks(source)
    except gb.PageError as exc:
        logger.warning("%s", exc, location=str(source))
        return []
    badges = []
    for block in blocks:
        if block.kind in HOW:
            entry = (page or {}).get("blocks", {}).get(str(block.line))
            badges.append((block.line, block.code, *_badge(block.kind, entry, page, stale, results)))
    return badges


def _relative(app: Sphinx, source: Path) -> str | None:
    try:
        return source.resolve().relative_to(Path(app.confdir).resolve()).as_posix()
    except ValueError:
        return None


def _badges_of(app: Sphinx, env: BuildEnvironment, docname: str) -> list[Badge]:
    source = Path(env.doc2path(docname))
    relative = _relative(app, source)
    if relative is None:
        return []
    return page_badges(source, relative, env.doc_results, env.doc_results_own_sha256)


def pages_with_new_results(app: Sphinx, env: BuildEnvironment, added, changed, removed) -> list[str]:
    """Read this build's results; return the pages whose badges differ from those they were last written with."""
    env.doc_results = _load_results(app)
    env.doc_results_own_sha256 = doc_results.own_pggit_sha256()
    previous = getattr(env, "doc_result_badges", {})
    current = {}
    for docname in sorted(env.found_docs):
        badges = _badges_of(app, env, docname)
        current[docname] = hashlib.sha256(json.dumps(badges).encode()).hexdigest()
    env.doc_result_badges = current
    return [d for d in current if d not in added and previous.get(d) != current[d]]


def add_result_badges(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Put each block's badge right after it, as the page is written."""
    badges = {line: (code, text, css) for line, code, text, css in _badges_of(app, app.env, docname)}
    for block_node in list(doctree.findall(nodes.literal_block)):
        code, text, css = badges.get(block_node.line, (None, "", ""))
        # Same line and same code: a docstring's example on the page (autodoc) is not the page's block.
        if code is None or block_node.astext().strip() != code.strip():
            continue
        badge = nodes.container(classes=["block-result", f"block-result-{css}"])
        badge += nodes.paragraph(text=text)
        block_node.parent.insert(block_node.parent.index(block_node) + 1, badge)


def setup(app: Sphinx) -> dict:
    app.add_config_value("doc_results_file", "_build/doc-results.json", "env")
    app.connect("env-get-outdated", pages_with_new_results)
    app.connect("doctree-resolved", add_result_badges)
    app.add_css_file("block-results.css")
    # env_version: environments pickled before badges moved to the write stage hold badges in their doctrees.
    return {"version": "1.0", "env_version": 2, "parallel_read_safe": True, "parallel_write_safe": True}

"""Sphinx extension: each code block on the site shows its result from the latest verified run.

The results come from ``_build/doc-results.json``, written by the pytest run
that ``make site`` does first (its shape and reader: ``tools/pggit_chaos/pages/results.py``);
nothing here is typed by hand. A page whose text changed since that run says its results are
stale; a block that never ran says so.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
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
EXECUTED_KINDS = {"tests", "script", "sql", "shell", "symptom"}


def _load_results(app: Sphinx) -> doc_results.Results:
    path = Path(app.confdir) / app.config.doc_results_file
    try:
        return doc_results.read_results(path)
    except doc_results.CorruptResults as exc:
        logger.warning("%s; every block shows as not run", exc)
        return doc_results.empty_results()


def _badge_text(kind: str, entry: doc_results.BlockResult | None, stale: bool,
                results: doc_results.Results) -> tuple[str, str]:
    """(text, css class) for one block."""
    if kind == "illustration":
        return "Illustration: checked to parse, never run", "illustration"
    if entry is None:
        return "Not run in the latest verified run", "not-run"
    label = LABELS.get(entry["outcome"], entry["outcome"])
    versions = ", ".join(results.get("pg_versions", [])) or "unknown"
    parts = [label]
    if kind == "symptom":
        parts = [f"{label}: the quoted message was checked"] if entry["outcome"] == "passed" else parts
    parts += [f"{entry['duration']:.2f} s", f"PostgreSQL {versions}", f"run {results.get('finished', '?')}"]
    if stale:
        parts.insert(0, "STALE (page changed since this run)")
    return " · ".join(parts), "stale" if stale else entry["outcome"]


def add_result_badges(app: Sphinx, doctree: nodes.document) -> None:
    source = Path(doctree["source"])
    if source.suffix != ".md":
        return
    try:
        relative = source.resolve().relative_to(Path(app.confdir).resolve()).as_posix()
    except ValueError:
        return
    results = app.env.doc_results
    page = results["pages"].get(relative)
    stale = page is not None and page.get("sha256") != hashlib.sha256(source.read_bytes()).hexdigest()
    try:
        blocks = {b.line: b for b in gb.read_blocks(source)}
    except gb.PageError as exc:
        logger.warning("%s", exc, location=str(source))
        return
    for block_node in list(doctree.findall(nodes.literal_block)):
        block = blocks.get(block_node.line)
        if block is None or block.kind not in EXECUTED_KINDS | {"illustration"}:
            continue
        entry = (page or {}).get("blocks", {}).get(str(block.line))
        text, css = _badge_text(block.kind, entry, stale, results)
        badge = nodes.container(classes=["block-result", f"block-result-{css}"])
        badge += nodes.paragraph(text=text)
        block_node.parent.insert(block_node.parent.index(block_node) + 1, badge)


def load_results(app: Sphinx, env, docnames) -> None:
    env.doc_results = _load_results(app)


def setup(app: Sphinx) -> dict:
    app.add_config_value("doc_results_file", "_build/doc-results.json", "env")
    app.connect("env-before-read-docs", load_results)
    app.connect("doctree-read", add_result_badges)
    app.add_css_file("block-results.css")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

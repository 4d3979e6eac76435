"""The failure-mode collector: a pytest plugin that reads each chaos test's categories, tiers and faults from its code.

``collect_failure_modes`` runs pytest with ``--collect-only`` and this module
as a plugin (no test runs); the plugin writes, for every collected chaos
test, its categories (markers), the tiers it belongs to and the faults its
code uses, recognised by the patterns of ``FAULTS`` in the test's source
and in the helpers and fixtures of its module that it uses.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from pggit_chaos.measure.suite_run import CHAOS_PATHS, TIERS
from pggit_chaos.pages import markexpr
from pggit_chaos.paths import REPO

FAILURE_MODES_ENV = "PGGIT_FAILURE_MODES"

# The chaos categories (pytest markers), rows of the failure-mode matrix.
CATEGORIES = ["property", "concurrent", "transaction", "crash", "resource", "load",
              "corruption", "migration", "integrity", "recovery", "security",
              "partitions", "isolation", "settings", "backup"]

# The faults, columns of the matrix: what a test does to pggit, recognised in its code.
FAULTS: dict[str, tuple[str, str]] = {
    "server crash": (r"\bcrash_postmaster\b|\.crash\(", "the postmaster and every backend killed (SIGKILL), crash recovery on restart"),
    "restart or reload": (r"\.restart\(|\.set_config\(|\.configured\(|\breset_config\b|\b(?:server|session)_configured\b",
                          "the server restarted or its settings changed under running sessions"),
    "backend terminated": (r"\bterminate_backends?\b|pg_terminate_backend", "the server ends a session (pg_terminate_backend)"),
    "connection cut": (r"\bcut_connection\b|\bbreak_connection\b|\bsimulate_connection_failure\b",
                       "the client's link goes dead mid-session"),
    "network fault": (r"\bFaultyProxy\b", "latency, silence or reset on the wire (FaultyProxy)"),
    "connections exhausted": (r"\bconnections_exhausted\b|max_connections|PoolTimeout|TooManyConnections",
                              "no connection left, on the server or in a pool"),
    "memory capped": (r"\bmemory_capped\b|work_mem", "sorts and hashes limited to the smallest work_mem"),
    "disk capped": (r"\btemp_disk_capped\b|temp_file_limit|DiskFull|\bdisk_full\b", "temporary files limited"),
    "timeout or cancel": (r"statement_timeout|lock_timeout|idle_in_transaction|pg_cancel_backend|QueryCanceled|LockNotAvailable",
                          "a statement cancelled by a timeout or a cancel request"),
    "concurrent sessions": (r"\brun_workers\b|\bBarrier\b|ThreadPoolExecutor|threading\.Thread|asyncio\.gather|\bchaos_pool\b",
                            "several sessions at once"),
    "deadlock": (r"[Dd]eadlock", "sessions that wait for each other"),
    "serialization conflict": (r"SERIALIZABLE|REPEATABLE READ|SerializationFailure",
                               "REPEATABLE READ or SERIALIZABLE transactions in conflict"),
    "random delay": (r"\ba?random_delay\b", "random pauses between steps"),
    "rollback or savepoint": (r"\bROLLBACK\b|\bSAVEPOINT\b|\.rollback\(\)|\bRollback\b",
                              "work undone by ROLLBACK or ROLLBACK TO SAVEPOINT"),
    "constraint violation": (r"UniqueViolation|CheckViolation|ForeignKeyViolation|NotNullViolation|IntegrityError|DEFERRABLE",
                             "user constraints failing around pggit calls"),
    # Every pattern of a tuple must match: a migration call and an expected error.
    "failing migration": ((r"\b(?:apply|rollback)_migration\b", r"pytest\.raises|psycopg\.errors|sqlstate|except psycopg"),
                          "migration SQL that fails, and must leave no trace"),
    "tracking switched off": (r"\bDISABLE\b|session_replication_role|\btracking_paused\b", "DDL made while pggit's event triggers do not fire"),
    "metadata damage": (r"\bDAMAGE\b|\b(?:UPDATE|DELETE\s+FROM|INSERT\s+INTO|TRUNCATE|ALTER\s+TABLE)\s+pggit\.|setval\(",
                        "pggit's own tables or sequence changed behind its back"),
    "input at a limit": (r"\b1_?600\b|\b10_?00[01]\b|\b25[56]\b|NAMEDATALEN|2147483647|2 ?\*\* ?31",
                         "inputs at and just over a limit: 1,600 columns, 10,000-character messages, 255-character names, int overflow"),
    "generated inputs": (r"@given\b|RuleBasedStateMachine|@rule\b", "inputs generated and shrunk by Hypothesis"),
}


class _ModuleSource:
    """A test module's top-level definitions, for following what a test uses."""

    def __init__(self, path: Path):
        self.text = path.read_text(encoding="utf-8")
        self.lines = self.text.splitlines()
        tree = ast.parse(self.text)
        self.defs: dict[str, ast.AST] = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        self.defs[target.id] = node

    def source_of(self, start: list[str]) -> str:
        """The source of ``start`` and of every top-level definition they use, transitively."""
        seen: set[str] = set()
        todo = [n for n in start if n in self.defs]
        parts = []
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            node = self.defs[name]
            # Decorators (@given, @pytest.mark...) are outside the node's own segment.
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            parts.append("\n".join(self.lines[first - 1:node.end_lineno]))
            for sub in ast.walk(node):
                used = sub.id if isinstance(sub, ast.Name) else sub.attr if isinstance(sub, ast.Attribute) else None
                if used in self.defs and used not in seen:
                    todo.append(used)
        return "\n".join(parts)


def _item_source(item, modules: dict[Path, _ModuleSource]) -> str:
    """The code a collected test runs: a guide's block, or its function or class with what they use."""
    import pytest

    module_node = item.getparent(pytest.Module)
    block = getattr(module_node, "block", None)
    if block is not None:  # a test defined in a guide's code block
        return block.code
    path = Path(item.path)
    if path.suffix != ".py":
        return ""
    if path not in modules:
        modules[path] = _ModuleSource(path)
    start = [item.cls.__name__] if getattr(item, "cls", None) is not None else [getattr(item, "originalname", item.name)]
    start += list(getattr(item, "fixturenames", []))
    return modules[path].source_of(start)


def faults_in(source: str) -> list[str]:
    """The names of the faults whose patterns all match ``source``."""
    found = []
    for name, (pattern, _) in FAULTS.items():
        patterns = pattern if isinstance(pattern, tuple) else (pattern,)
        if all(re.search(p, source) for p in patterns):
            found.append(name)
    return found


def pytest_collection_finish(session) -> None:
    """With ``PGGIT_FAILURE_MODES=FILE`` set, write every collected chaos test's failure modes to FILE."""
    target = os.environ.get(FAILURE_MODES_ENV)
    if not target:
        return
    # The tiers are -m expressions, read by the same parser the pages use for theirs.
    tiers = {name: markexpr.parse(expr) for name, expr in {**TIERS, "weekly": "soak"}.items()}
    modules: dict[Path, _ModuleSource] = {}
    tests = []
    for item in session.items:
        marks = {m.name for m in item.iter_markers()}
        if "chaos" not in marks:
            continue
        tests.append({
            "nodeid": item.nodeid,
            "categories": [c for c in CATEGORIES if c in marks],
            "tiers": [t for t, expr in tiers.items() if expr.matches(marks)],
            "faults": faults_in(_item_source(item, modules)),
        })
    Path(target).write_text(json.dumps({
        "categories": CATEGORIES,
        "faults": {name: description for name, (_, description) in FAULTS.items()},
        "tests": tests,
    }, indent=1) + "\n")


def collect_failure_modes(output: Path) -> None:
    """Collect the chaos suite (no test runs) and write each test's categories and faults."""
    env = {**os.environ, FAILURE_MODES_ENV: str(output)}
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *CHAOS_PATHS, "--collect-only", "-q", "-m", "chaos",
         "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:pggit-doc-results", "-p", __name__],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0 or not output.exists():
        raise SystemExit(f"collecting the chaos suite failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")

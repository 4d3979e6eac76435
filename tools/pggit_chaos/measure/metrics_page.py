"""Write ``docs/metrics.md`` and its plots from the measured results; nothing on the page is typed by hand.

    python -m pggit_chaos.measure.metrics_page [--no-import] [--no-collect]

Inputs, all machine-readable:

- ``_build/metrics/mutation-smoke.json`` and ``mutation-full.json``
  (``tools/pggit_chaos/measure/runner.py``): mutation scores, the killing tests, the
  baseline runs' per-test durations and Hypothesis statistics, and the
  shrinking done where a property test killed a mutant;
- ``_build/metrics/stability.json`` (``tools/pggit_chaos/measure/stability.py``): repeated smoke
  runs with random seeds, and the full tier's wall time;
- ``docs/_data/metrics/failure-modes.json``: every chaos test's categories
  (markers) and the faults its code uses, made here by a collection-only
  pytest run with this module as a plugin (static analysis of each test's
  source and of the helpers and fixtures of its module that it uses).

Complete results found under ``_build/metrics`` are first copied to
``docs/_data/metrics`` (committed, so the site builds without rerunning
anything); the page and the plots in ``docs/_static/metrics`` are then made
from ``docs/_data/metrics`` alone.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from pggit_chaos.paths import REPO

BUILD_DIR = REPO / "_build" / "metrics"
DATA_DIR = REPO / "docs" / "_data" / "metrics"
PLOT_DIR = REPO / "docs" / "_static" / "metrics"
PAGE = REPO / "docs" / "metrics.md"
# The headline numbers, included into the chaos guide's Metrics section.
SUMMARY = DATA_DIR / "summary.md"
RESULT_FILES = ("mutation-smoke.json", "mutation-full.json", "stability.json", "bench-describe.json")
FAILURE_MODES_ENV = "PGGIT_FAILURE_MODES"

# The chaos categories (pytest markers), rows of the failure-mode matrix.
CATEGORIES = ["property", "concurrent", "transaction", "crash", "resource", "load",
              "corruption", "migration", "integrity", "recovery"]

# The faults, columns of the matrix: what a test does to pggit, recognised in its code.
FAULTS: dict[str, tuple[str, str]] = {
    "server crash": (r"\bcrash_postmaster\b|\.crash\(", "the postmaster and every backend killed (SIGKILL), crash recovery on restart"),
    "restart or reload": (r"\.restart\(|\.set_config\(|\.configured\(|\breset_config\b",
                          "the server restarted or its settings changed under running sessions"),
    "backend terminated": (r"\bterminate_backends?\b|pg_terminate_backend", "the server ends a session (pg_terminate_backend)"),
    "connection cut": (r"\bcut_connection\b|\bbreak_connection\b|\bsimulate_connection_failure\b",
                       "the client's link goes dead mid-session"),
    "network fault": (r"\bFaultyProxy\b", "latency, silence or reset on the wire (FaultyProxy)"),
    "connections exhausted": (r"\bconnections_exhausted\b|max_connections|PoolTimeout|TooManyConnections",
                              "no connection left, on the server or in a pool"),
    "memory capped": (r"\bmemory_capped\b|work_mem", "sorts and hashes limited to the smallest work_mem"),
    "disk capped": (r"\btemp_disk_capped\b|temp_file_limit|DiskFull", "temporary files limited"),
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
    "tracking switched off": (r"\bDISABLE\b|session_replication_role", "DDL made while pggit's event triggers do not fire"),
    "metadata damage": (r"\bDAMAGE\b|\b(?:UPDATE|DELETE\s+FROM|INSERT\s+INTO|TRUNCATE|ALTER\s+TABLE)\s+pggit\.|setval\(",
                        "pggit's own tables or sequence changed behind its back"),
    "input at a limit": (r"\b1_?600\b|\b10_?00[01]\b|\b25[56]\b|NAMEDATALEN|2147483647|2 ?\*\* ?31",
                         "inputs at and just over a limit: 1,600 columns, 10,000-character messages, 255-character names, int overflow"),
    "generated inputs": (r"@given\b|RuleBasedStateMachine|@rule\b", "inputs generated and shrunk by Hypothesis"),
}


# --------------------------------------------------------------------------
# The pytest plugin: each collected chaos test's markers, tiers and faults
# --------------------------------------------------------------------------


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
    found = []
    for name, (pattern, _) in FAULTS.items():
        patterns = pattern if isinstance(pattern, tuple) else (pattern,)
        if all(re.search(p, source) for p in patterns):
            found.append(name)
    return found


def pytest_collection_finish(session) -> None:
    target = os.environ.get(FAILURE_MODES_ENV)
    if not target:
        return
    from _pytest.mark.expression import Expression

    from pggit_chaos.measure.runner import TIERS

    tiers = {name: Expression.compile(expr) for name, expr in {**TIERS, "weekly": "soak"}.items()}
    modules: dict[Path, _ModuleSource] = {}
    tests = []
    for item in session.items:
        marks = {m.name for m in item.iter_markers()}
        if "chaos" not in marks:
            continue
        tests.append({
            "nodeid": item.nodeid,
            "categories": [c for c in CATEGORIES if c in marks],
            "tiers": [t for t, expr in tiers.items() if expr.evaluate(lambda name, **kw: name in marks)],
            "faults": faults_in(_item_source(item, modules)),
        })
    Path(target).write_text(json.dumps({
        "categories": CATEGORIES,
        "faults": {name: description for name, (_, description) in FAULTS.items()},
        "tests": tests,
    }, indent=1) + "\n")


def collect_failure_modes(output: Path) -> None:
    """Collect the chaos suite (no test runs) and write each test's categories and faults."""
    from pggit_chaos.measure.runner import CHAOS_PATHS

    env = {**os.environ, FAILURE_MODES_ENV: str(output)}
    env.pop("PYTEST_XDIST_WORKER", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *CHAOS_PATHS, "--collect-only", "-q", "-m", "chaos",
         "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:pggit-doc-results", "-p", "pggit_chaos.measure.metrics_page"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0 or not output.exists():
        raise SystemExit(f"collecting the chaos suite failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


# --------------------------------------------------------------------------
# Importing results
# --------------------------------------------------------------------------


def _slim(name: str, data: dict) -> dict:
    """Drop what the page never shows (long output tails), keep everything it does."""
    if name.startswith("mutation-"):
        for mutant in data["mutants"]:
            mutant.pop("output_tail", None)
    elif name == "stability.json":
        for run in data["runs"]:
            run.pop("output_tail", None)
    return data


def import_results() -> list[str]:
    """Copy complete results from _build/metrics into docs/_data/metrics; returns the names copied."""
    copied = []
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for name in RESULT_FILES:
        source = BUILD_DIR / name
        if not source.exists():
            continue
        data = json.loads(source.read_text())
        if name.startswith("mutation-") and not data.get("complete"):
            continue
        (DATA_DIR / name).write_text(json.dumps(_slim(name, data), indent=1) + "\n")
        copied.append(name)
    return copied


# --------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _save(fig, name: str) -> str:
    PLOT_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT_DIR / name, dpi=110, bbox_inches="tight", metadata={"Software": None})
    return f"_static/metrics/{name}"


def _passing_run_seconds(stability: dict | None, tier: str) -> list[float]:
    """Wall times of the stability runs of ``tier`` that passed (pytest-xdist, as make runs it)."""
    return [r["seconds"] for r in (stability or {}).get("runs", []) if r["tier"] == tier and r["exitstatus"] == 0]


def _measured_dates(smoke: dict, full: dict, stability: dict | None) -> list[str]:
    return sorted({d[:10] for d in (smoke["started"], full["started"], (stability or {}).get("started", smoke["started"]))})


def _describe_total(result: dict, width: int) -> float:
    """Seconds of create, hash and alter together at ``width`` columns."""
    return sum(result["seconds"][str(width)].values())


def plot_kills_by_category(smoke: dict, full: dict) -> str:
    plt = _pyplot()
    from pggit_chaos.measure.mutants import CATEGORIES as MUTANT_CATEGORIES

    cats = [c for c in MUTANT_CATEGORIES if any(m["category"] == c for m in full["mutants"])]
    total = [sum(1 for m in full["mutants"] if m["category"] == c) for c in cats]
    killed = {
        tier: [sum(1 for m in data["mutants"] if m["category"] == c and m["status"] == "killed") for c in cats]
        for tier, data in (("smoke", smoke), ("full", full))
    }
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(cats) + 1.2))
    ys = range(len(cats))
    ax.barh([y for y in ys], total, height=0.8, color="#e8e8e8", label="mutants in the catalog")
    ax.barh([y + 0.2 for y in ys], killed["full"], height=0.35, color="#1f6fb2", label="killed by the full tier")
    ax.barh([y - 0.2 for y in ys], killed["smoke"], height=0.35, color="#7fb8e6", label="killed by the smoke tier")
    for y, n, k in zip(ys, total, killed["full"]):
        ax.text(n + 0.05, y, f"{k}/{n}", va="center", fontsize=9)
    ax.set_yticks(list(ys), cats)
    ax.invert_yaxis()
    ax.set_xlabel("mutants")
    ax.set_xlim(0, max(total) + 0.8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / (0.42 * len(cats) + 1.2) - 0.12), ncol=3, frameon=False)
    ax.set_title("Mutants killed per category")
    return _save(fig, "killed-by-category.png")


def plot_tier_times(smoke: dict, full: dict, stability: dict | None) -> str:
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    labels, values, errors = [], [], []
    for tier, data in (("smoke", smoke), ("full", full)):
        labels.append(f"{tier}\n1 process")
        values.append(data["baseline"]["seconds"])
        errors.append((0, 0))
        runs = _passing_run_seconds(stability, tier)
        if runs:
            median = statistics.median(runs)
            labels.append(f"{tier}\nxdist ({stability['workers']})")
            values.append(median)
            errors.append((median - min(runs), max(runs) - median))
    left.bar(labels, values, color=["#7fb8e6" if "smoke" in label else "#1f6fb2" for label in labels],
             yerr=list(zip(*errors)), capsize=4)
    left.set_ylabel("seconds")
    left.set_title("One run of the tier")
    right.bar(["smoke", "full"], [smoke["wall_seconds"] / 60, full["wall_seconds"] / 60], color=["#7fb8e6", "#1f6fb2"])
    right.set_ylabel("minutes")
    right.set_title(f"Whole catalog ({full['score']['total']} mutants, {full['jobs']} jobs)")
    fig.tight_layout()
    return _save(fig, "time-per-tier.png")


def plot_stability(stability: dict) -> str:
    plt = _pyplot()
    runs = [r for r in stability["runs"] if r["tier"] == "smoke"]
    fig, ax = plt.subplots(figsize=(8, 2.6))
    xs = range(1, len(runs) + 1)
    colours = ["#2e8b57" if r["exitstatus"] == 0 else "#c0392b" for r in runs]
    ax.bar(list(xs), [r["seconds"] for r in runs], color=colours)
    ax.set_xticks(list(xs))
    ax.set_xlabel("smoke run (green: passed, red: failed)")
    ax.set_ylabel("seconds")
    ax.set_title(f"{len(runs)} smoke runs, each with a random Hypothesis seed")
    return _save(fig, "stability-runs.png")


def plot_describe_cost(bench: dict) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    widths = bench["widths"]
    for result, colour in zip(bench["results"], ["#1f6fb2", "#c0392b", "#e67e22", "#8e44ad"]):
        total = [_describe_total(result, w) * 1000 for w in widths]
        ax.plot(widths, total, marker="o", color=colour,
                label=f"{result['label']} (k = {_describe_exponent(result):.2f})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.set_xlabel("columns, each with a default")
    ax.set_ylabel("ms: create + hash + alter")
    ax.set_title("What describing a wide table costs (log-log; k: growth exponent)")
    ax.legend(frameon=False)
    return _save(fig, "describe-cost.png")


def _describe_exponent(result: dict) -> float:
    """The growth exponent of the three steps' total time over the widths."""
    from pggit_chaos.measure.bench_describe import growth_exponent

    widths = sorted(int(w) for w in result["seconds"])
    return growth_exponent(widths, [_describe_total(result, w) for w in widths])


# --------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip().replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _pct(killed: int, total: int) -> str:
    return f"{100 * killed / total:.0f}%" if total else "n/a"


def _short_test(nodeid: str) -> str:
    """A test id as a reader finds it: file, class if any, and test name (parameters kept).

    A guide's block node (``line-80``) is left out: the test's name finds it on the page.
    """
    path, *parts = nodeid.split("::")
    return "::".join([path] + [p for p in parts if not re.fullmatch(r"line-\d+", p)])


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _verdict(mutant: dict | None) -> str:
    if mutant is None:
        return "not run"
    if mutant["status"] == "killed":
        return f"killed ({len(mutant['killed_by'])})"
    return mutant["status"]


def _example_text(example: str | None) -> str:
    """Hypothesis's minimal failing example in one line: the inputs, or a state machine's steps."""
    if not example:
        return "(not recorded)"
    header, _, body = example.partition("\n")
    if "<state machine>" in header:
        steps = [line.strip().removeprefix("state.") for line in body.splitlines()
                 if line.strip().startswith("state.") and line.strip() != "state.teardown()"]
        body = "; ".join(steps)
    else:
        body = example.split("(", 1)[1] if "(" in example else example
        body = re.sub(r"^\s*\w+=<[^>]*>,?\s*$", "", body, flags=re.M)  # fixtures, not inputs
        body = re.sub(r"\s*# or any other generated value", "", body)
        body = body.rstrip().rstrip(")").strip().rstrip(",")
    body = re.sub(r"\s+", " ", body)
    return body[:160] + (" …" if len(body) > 160 else "")


def render(smoke: dict, full: dict, stability: dict | None, modes: dict, bench: dict | None = None) -> str:
    plots = {
        "kills": plot_kills_by_category(smoke, full),
        "times": plot_tier_times(smoke, full, stability),
    }
    if stability:
        plots["stability"] = plot_stability(stability)
    if bench:
        plots["describe"] = plot_describe_cost(bench)
    benched = {r["mutant"]: r for r in (bench or {}).get("results", []) if r.get("mutant")}
    smoke_by = {m["name"]: m for m in smoke["mutants"]}
    full_by = {m["name"]: m for m in full["mutants"]}
    names = list(full_by) + [n for n in smoke_by if n not in full_by]
    catalog = {m["name"]: m for m in full["mutants"] + smoke["mutants"]}
    from pggit_chaos.measure.mutants import by_name

    # The catalog's current wording (the recorded names and categories are checked against it by a test).
    current = by_name()
    catalog = {n: {**m, "description": current[n].description} if n in current else m for n, m in catalog.items()}
    machine = full["machine"]
    dates = _measured_dates(smoke, full, stability)
    pg = sorted({v for v in (smoke["pg_version"], full["pg_version"]) if v})
    contract = full["score"].get("contract_killed")

    lines = [
        "# Metrics: what the chaos suite catches",
        "",
        "How good is the chaos suite at finding bugs in pggit? This page answers with",
        "numbers from real runs: every table and plot below is generated by",
        "`tools/pggit_chaos/measure/metrics_page.py` from the machine-readable results of the mutation",
        "runner, the stability runs and pytest itself (the files in",
        "`docs/_data/metrics/`). None of it is typed by hand; `make metrics` measures",
        "everything again and rewrites this page.",
        "",
        f"**Measured** on {', '.join(dates)} (UTC), on PostgreSQL {', '.join(pg) or 'unknown'}, "
        f"on a machine with {machine['cores']} cores ({machine['platform']}), with Python {machine['python']}, "
        f"pytest {machine.get('pytest', '?')} and Hypothesis {machine.get('hypothesis', '?')}.",
        "",
    ]
    loads = [f"{what} {data['load_average_at_start'][0]:.1f}"
             for what, data in (("smoke catalog", smoke), ("full catalog", full), ("stability runs", stability or {}))
             if data.get("load_average_at_start")]
    if loads:
        lines += [f"The machine's load average (1 minute) when each run started: {', '.join(loads)}; "
                  "other work running at the same time makes every wall time longer.", ""]
    lines += [
        "## Bug detection rate",
        "",
        f"The catalog in `tools/pggit_chaos/measure/mutants.py` holds {full['score']['total']} realistic pggit bugs, each a",
        "small, named edit of the extension's SQL (a missing row lock, an ID taken from",
        "the clock, a schema hash that ignores a default, a name spliced into SQL, ...).",
        "`tools/pggit_chaos/measure/runner.py` installs each mutant into a throwaway PostgreSQL of",
        "its own and runs a tier of the chaos suite (`tests/chaos/`, `examples/` and the",
        "guides' chaos tests) against it. A mutant is *killed* when at least one test",
        "fails; the unmutated SQL must pass the tier first, or the run stops.",
        "",
    ]
    score_rows = []
    for tier, data in (("smoke", smoke), ("full", full)):
        s = data["score"]
        score_rows.append([tier, f"`{data['markexpr']}`", f"{s['killed']}/{s['total']}", _pct(s["killed"], s["total"]),
                           len(s["survived"]), data["baseline"]["tests"], _minutes(data["wall_seconds"]), data["jobs"]])
    lines += _table(["tier", "marker expression", "killed", "mutation score", "survived", "tests in the tier",
                     "runner wall time", "mutants at once"], score_rows)
    lines += [""]
    if contract is not None:
        lines += [
            f"For comparison, the contract tests of `tests/extension/` alone kill {contract} of the "
            f"{full['score']['total']} mutants ({_pct(contract, full['score']['total'])}); they are not part of either tier.",
            "",
        ]
    lines += [f"![Mutants killed per category, smoke and full tier]({plots['kills']})", ""]

    survivors = [n for n in names if full_by.get(n, {}).get("status") != "killed" or smoke_by.get(n, {}).get("status") != "killed"]
    lines += ["### Surviving mutants", ""]
    if not survivors:
        lines += ["None: both tiers kill every mutant of the catalog.", ""]
    else:
        lines += ["A mutant that survives a tier is a bug that tier would let through:", ""]
        for name in survivors:
            m = catalog[name]
            lost = [t for t, by in (("smoke", smoke_by), ("full", full_by)) if by.get(name, {}).get("status") != "killed"]
            line = f"- `{name}` ({m['category']}), survives the {' and the '.join(lost)} tier: {m['description']}."
            killers = full_by.get(name, {}).get("killed_by", []) if lost == ["smoke"] else []
            if killers:
                marks = sorted({mk for k in killers for mk in full["baseline"]["markers"].get(k, [])
                                if mk in ("slow", "destructive")})
                line += (f" Only the full tier's {' and '.join(marks) or 'extra'} tests catch it: "
                         + ", ".join(f"`{_short_test(k)}`" for k in killers[:3])
                         + (f" and {len(killers) - 3} more" if len(killers) > 3 else "") + ".")
            if name in benched:
                line += (" Its answers are right, only slow, and no test asserts a time: the describe benchmark "
                         f"measures it (growth exponent {_describe_exponent(benched[name]):.2f} against pggit's "
                         f"{_describe_exponent(bench['results'][0]):.2f}; see [Performance](#performance)).")
            lines.append(line)
        lines += [""]

    lines += ["### Every mutant", ""]
    rows = []
    for name in names:
        m = catalog[name]
        row = [f"`{name}`", m["category"], m["description"], _verdict(smoke_by.get(name)), _verdict(full_by.get(name))]
        if contract is not None:
            row.append(full_by.get(name, {}).get("contract", {}).get("status", "not run"))
        rows.append(row)
    header = ["mutant", "category", "the bug it stands for", "smoke", "full"] + (["contract tests"] if contract is not None else [])
    lines += _table(header, rows)
    lines += ["", "The number after *killed* is how many tests failed. The tests that killed each",
              "mutant in the full tier:", ""]
    for name in names:
        killers = full_by.get(name, {}).get("killed_by", [])
        if not killers:
            continue
        shown = ", ".join(f"`{_short_test(k)}`" for k in killers[:4])
        more = f", and {len(killers) - 4} more" if len(killers) > 4 else ""
        lines.append(f"- `{name}`: {shown}{more}")
    lines += [""]

    # ---- failure modes ----------------------------------------------------------
    tests = modes["tests"]
    faults = list(modes["faults"])
    matrix: dict[str, Counter] = defaultdict(Counter)
    files_by_fault: dict[str, Counter] = defaultdict(Counter)
    for test in tests:
        for fault in test["faults"]:
            files_by_fault[fault][test["nodeid"].split("::")[0]] += 1
            for category in test["categories"]:
                matrix[category][fault] += 1
            matrix["all chaos tests"][fault] += 1
    used_faults = [f for f in faults if matrix["all chaos tests"][f]]
    unused = [f for f in faults if not matrix["all chaos tests"][f]]
    per_category = Counter(c for t in tests for c in t["categories"])
    lines += [
        "## Coverage of failure modes",
        "",
        f"Which faults each category of chaos test injects, counted over the {len(tests)} collected chaos",
        "tests (all tiers). Rows are the faults, recognised in each test's code and in the",
        "helpers and fixtures of its module that it uses; columns are the categories",
        "(pytest markers, with their number of tests; a test may have several). A dot is",
        "a combination no test covers.",
        "",
    ]
    columns = [c for c in CATEGORIES if per_category[c]] + ["all chaos tests"]
    rows = [[f"**{fault}**"] + [matrix[c][fault] or "·" for c in columns] for fault in used_faults]
    header = ["fault"] + [f"{c} ({per_category[c] if c in per_category else len(tests)})" for c in columns]
    lines += _table(header, rows)
    lines += ["", "What each fault is, and the files whose tests inject it:", ""]
    for fault in used_faults:
        where = ", ".join(f"`{path}` ({n})" for path, n in sorted(files_by_fault[fault].items()))
        lines.append(f"- **{fault}**: {modes['faults'][fault]}. {where}")
    if unused:
        lines += ["", "Faults no chaos test injects yet: " + ", ".join(f"**{f}**" for f in unused) + "."]
    lines += [""]
    tier_counts = Counter(t for test in tests for t in test["tiers"])
    lines += [f"By tier: {tier_counts['smoke']} tests in smoke, {tier_counts['full']} in full, "
              f"{tier_counts['weekly']} weekly-size (soak).", ""]

    # ---- stability ----------------------------------------------------------------
    lines += ["## Stability", ""]
    if stability:
        smoke_runs = [r for r in stability["runs"] if r["tier"] == "smoke"]
        failed = stability["failed_runs"]
        lines += [
            f"The smoke tier ran {len(smoke_runs)} times in a row, as `make smoke` runs it (pytest-xdist, "
            f"workers: {stability['workers']}), each time with a new random Hypothesis seed "
            f"(`--hypothesis-seed`), on {stability['started'][:10]}. "
            + (f"**{failed} of {len(smoke_runs)} runs failed.**" if failed else
               f"**No run failed: 0 flaky failures in {len(smoke_runs)} runs.**"),
            "",
            f"![Duration and result of each smoke run]({plots['stability']})",
            "",
        ]
        if stability["failures_by_test"]:
            lines += ["Tests that failed in some runs:", ""]
            lines += _table(["test", "failed runs"], [[f"`{_short_test(t)}`", n] for t, n in stability["failures_by_test"].items()])
            lines += [""]
        seeds = ", ".join(str(r["seed"]) for r in smoke_runs)
        lines += [f"The seeds, in run order (`--hypothesis-seed=N` replays one): {seeds}.", ""]
    else:
        lines += ["No stability run has been recorded yet (`python -m pggit_chaos.measure.stability --runs 20`).", ""]

    # ---- performance ----------------------------------------------------------------
    lines += ["## Performance", "", "Wall time of each tier against the unmutated extension:", ""]
    rows = []
    for tier, data in (("smoke", smoke), ("full", full)):
        xdist = _passing_run_seconds(stability, tier)
        xdist_text = (f"{statistics.median(xdist):.0f} s (median of {len(xdist)}; {min(xdist):.0f}–{max(xdist):.0f} s)"
                      if xdist else "not measured")
        rows.append([tier, data["baseline"]["tests"], f"{data['baseline']['seconds']:.0f} s", xdist_text,
                     _minutes(data["wall_seconds"])])
    lines += _table(["tier", "tests", "one pytest process", f"pytest-xdist ({(stability or {}).get('workers', 'auto')} workers)",
                     f"whole mutation catalog ({full['jobs']} at once)"], rows)
    lines += [
        "",
        "One process is how the mutation runner runs a tier (one throwaway cluster per",
        f"mutant, {full['jobs']} mutants at a time on this machine); pytest-xdist is how `make smoke`",
        "and `make full` run it.",
        "",
        f"![Wall time per tier, and of the whole mutation catalog]({plots['times']})",
        "",
        "The slowest tests of the full tier (one process):",
        "",
    ]
    slowest = sorted(full["baseline"]["durations"].items(), key=lambda kv: -kv[1])[:10]
    lines += _table(["test", "seconds"], [[f"`{_short_test(n)}`", f"{s:.2f}"] for n, s in slowest])
    lines += [""]
    lines += _describe_section(bench, plots.get("describe"))

    # ---- shrinking ------------------------------------------------------------------
    lines += [
        "## Shrinking",
        "",
        "Examples Hypothesis ran per property test in the full tier's baseline run",
        f"(seed {full['hypothesis_seed']}; the `dev` profile allows 25 unless a test says otherwise):",
        "",
    ]
    rows = [[f"`{_short_test(n)}`", h["passing"], h["invalid"], f"{h['seconds']:.2f}", h["stopped_because"] or ""]
            for n, h in full["baseline"]["hypothesis"].items()]
    lines += _table(["property test", "examples passed", "examples rejected", "seconds", "stopped because"], rows)
    lines += [
        "",
        "Where a property test killed a mutant, Hypothesis shrank the failing input to a",
        "minimal one. How many examples it ran until the first failure, and how many",
        "shrink steps it tried (and how many made the example smaller):",
        "",
    ]
    kills = []
    for tier, data in (("full", full), ("smoke", smoke)):
        for m in data["mutants"]:
            for k in m.get("property_kills", []):
                key = (m["name"], k["test"])
                if key not in {(x[0], x[1]) for x in kills}:
                    kills.append((m["name"], k["test"], k))
    if kills:
        with_examples = any(k.get("falsifying_example") for _, _, k in kills)
        rows = [[f"`{name}`", f"`{_short_test(test)}`", k["examples_before_failure"], k["shrinks_tried"],
                 k["shrinks_successful"]] + ([_code(_example_text(k.get("falsifying_example")))] if with_examples else [])
                for name, test, k in kills]
        lines += _table(["mutant", "property test", "examples to the failure", "shrinks tried", "shrinks that helped"]
                        + (["minimal failing example"] if with_examples else []), rows)
        steps = [k["shrinks_tried"] for _, _, k in kills]
        lines += ["", f"{len(kills)} property-test kills; shrink steps tried: median {statistics.median(steps):.0f}, "
                      f"most {max(steps)}.", ""]
        if not with_examples:
            lines += ["These runs recorded no minimal examples: their recorder did not yet know the",
                      "\"Failing test case\" wording of this Hypothesis release. The next `make metrics`",
                      "records them.", ""]
    else:
        lines += ["No property test killed a mutant.", ""]

    lines += [
        "## How to measure again",
        "",
        "`make metrics` runs the whole catalog against the smoke and the full tier,",
        "the smoke tier 20 times for stability and the full tier once for its time,",
        "then rewrites this page. The parts one by one:",
        "",
        "- `python -m pggit_chaos.measure.runner --tier smoke` (or `full`; `--only NAME` for",
        "  single mutants, `--jobs N` for parallel runs; `--quick` for the score alone, each",
        "  mutant meeting its last killers first, in a few minutes)",
        "- `python -m pggit_chaos.measure.stability --runs 20`",
        "- `python -m pggit_chaos.measure.bench_describe` (the cost of describing a wide table, by width)",
        "- `python -m pggit_chaos.measure.metrics_page` (copies the results into `docs/_data/metrics/`",
        "  and renders this page and its plots)",
        "",
        "A mutant that no test kills is either a gap in the suite, closed by a new",
        "chaos test, or an edit that changes nothing observable, which is dropped from",
        "the catalog.",
        "",
    ]
    return "\n".join(lines)


def render_summary(smoke: dict, full: dict, stability: dict | None, bench: dict | None) -> str:
    """The headline numbers as a table, for the chaos guide to include."""
    rows = []
    for tier, data in (("smoke", smoke), ("full", full)):
        score = data["score"]
        rows.append([f"mutation score, {tier} tier", f"{_pct(score['killed'], score['total'])} "
                     f"({score['killed']} of {score['total']} mutants killed)"])
    if stability:
        runs = [r for r in stability["runs"] if r["tier"] == "smoke"]
        rows.append(["stability", f"{stability['failed_runs']} failed of {len(runs)} smoke runs with random seeds"])
    for tier, data in (("smoke", smoke), ("full", full)):
        xdist = _passing_run_seconds(stability, tier)
        timing = f"{statistics.median(xdist):.0f} s with pytest-xdist" if xdist else \
            f"{data['baseline']['seconds']:.0f} s in one process"
        rows.append([f"wall time, {tier} tier", f"{timing}, {data['baseline']['tests']} tests"])
    if bench:
        base = bench["results"][0]
        widest = bench["widths"][-1]
        rows.append(["describing a wide table", f"{_describe_total(base, widest) * 1000:.0f} ms at {widest} columns, "
                     f"growth exponent {_describe_exponent(base):.2f}"])
    machine = full["machine"]
    dates = _measured_dates(smoke, full, stability)
    lines = [
        "<!-- Generated by tools/pggit_chaos/measure/metrics_page.py from docs/_data/metrics; do not edit. -->",
        "<!-- pyml disable-next-line md041 -->",
        *_table(["metric", "measured"], rows),
        "",
        f"Measured on {', '.join(dates)} (UTC), PostgreSQL {full['pg_version']}, {machine['cores']} cores.",
        "",
    ]
    return "\n".join(lines)


def _describe_section(bench: dict | None, plot: str | None) -> list[str]:
    lines = ["### Describing a wide table", ""]
    if not bench:
        return lines + ["Not measured yet (`python -m pggit_chaos.measure.bench_describe`).", ""]
    widths = bench["widths"]
    lines += [
        "pggit describes and hashes a table whenever DDL touches it; the cost should grow",
        "in proportion to the table's width. `tools/pggit_chaos/measure/bench_describe.py` creates a table with",
        "a default on every column (pggit versions it), hashes it with",
        "`calculate_schema_hash` and changes its last default (versioned again), at each",
        f"width, median of {bench['repeat']} rounds, on PostgreSQL {bench['pg_version']}, {bench['started'][:10]}.",
        "The growth exponent k fits `time ~ width**k` over the widths: about 1 is linear,",
        "about 2 quadratic. Milliseconds for the three steps together:",
        "",
    ]
    header = ["extension"] + [f"{w} columns" for w in widths] + ["k (all steps)"] + [f"k ({s})" for s in bench["steps"]]
    rows = [[r["label"]] + [f"{_describe_total(r, w) * 1000:.0f}" for w in widths]
            + [f"{_describe_exponent(r):.2f}"] + [f"{r['growth_exponent'][s]:.2f}" for s in bench["steps"]]
            for r in bench["results"]]
    lines += _table(header, rows) + [""]
    if plot:
        lines += [f"![Cost of describing a wide table, by width]({plot})", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pggit_chaos.measure.metrics_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-import", action="store_true", help="use docs/_data/metrics as it is")
    parser.add_argument("--no-collect", action="store_true", help="keep the recorded failure-mode data")
    args = parser.parse_args(argv)
    if not args.no_import:
        copied = import_results()
        print(f"imported: {', '.join(copied) or 'nothing new'}")
    if not args.no_collect:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "failure-modes.json"
            collect_failure_modes(out)
            shutil.copy(out, DATA_DIR / "failure-modes.json")
    missing = [n for n in ("mutation-smoke.json", "mutation-full.json", "failure-modes.json") if not (DATA_DIR / n).exists()]
    if missing:
        raise SystemExit(f"missing results in {DATA_DIR}: {', '.join(missing)}; run make metrics")
    load = lambda n: json.loads((DATA_DIR / n).read_text())  # noqa: E731
    optional = lambda n: load(n) if (DATA_DIR / n).exists() else None  # noqa: E731
    smoke, full = load("mutation-smoke.json"), load("mutation-full.json")
    stability, bench = optional("stability.json"), optional("bench-describe.json")
    PAGE.write_text(render(smoke, full, stability, load("failure-modes.json"), bench))
    SUMMARY.write_text(render_summary(smoke, full, stability, bench))
    print(f"wrote {PAGE.relative_to(REPO)} and {PLOT_DIR.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())

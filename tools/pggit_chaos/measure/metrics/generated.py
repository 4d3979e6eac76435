"""The Metrics page's section on generated mutants: both catalogs side by side, per operator, per function, survivors, agreement, trend.

Its data: ``mutation-fast-generated-<tier>.json`` and
``mutation-fast-hand-<tier>.json`` (``pggit-chaos mutate-fast``),
``generated-mutants.json`` (``pggit-chaos mutants-generate
--check-install``), ``selection-agreement.json`` (the same mutants run with
``--select coverage`` and ``--select all``) and ``mutation-trend.json`` (one
row per fast run, appended by ``fast_runner.py``), all in
``docs/_data/metrics``; the triage is ``tools/pggit_chaos/measure/mutant_triage.py``.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from pggit_chaos.measure.metrics.markdown import code, minutes, pct, prose, short_test, table

FILES = ("mutation-fast-generated-full.json", "mutation-fast-generated-smoke.json", "mutation-fast-hand-full.json",
         "mutation-fast-hand-smoke.json", "generated-mutants.json", "selection-agreement.json",
         "mutation-trend.json")


def _scored(data: dict, triage: dict) -> dict:
    """Counts of a fast run with the triage applied: equivalent mutants leave the score, whether the runner
    skipped them (status ``equivalent``) or they survived and were judged so afterwards."""
    counts = Counter(m["status"] for m in data["mutants"])
    judged = sum(1 for m in data["mutants"] if m["status"] in ("survived", "unreached")
                 and triage.get(m["id"], {}).get("verdict") == "equivalent")
    every = {v: counts.get(v, 0) for v in ("killed", "survived", "unreached", "stillborn", "error")}
    surviving = counts["survived"] + counts["unreached"] - judged
    return {**every, "equivalent": judged + counts["equivalent"], "surviving": surviving,
            "scored": counts["killed"] + surviving}


def _heat(n: int) -> str:
    return "█" * min(n, 20) + ("+" if n > 20 else "")


def section(data: dict[str, dict | None], triage: dict, rules: dict[str, str]) -> list[str]:
    """The section's Markdown lines; ``data`` maps each of FILES to its content (or None when not measured)."""
    lines = ["## Generated mutants", "",
             "The catalog above was written by the people who wrote the tests. The generator",
             "(`pggit-chaos mutants-generate`, `tools/pggit_chaos/measure/mutagen*.py`) makes mutants nobody chose:",
             "it parses `extension/pggit--1.0.0.sql` with PostgreSQL's own parser (pglast) and applies each",
             "mutation operator below at every place it fits. `pggit-chaos mutate-fast` runs each mutant against",
             "only the tests that ran the statement it edits (a marker before each PL/pgSQL statement logs its",
             "run), or, for an edit outside every statement, the tests that reached the function (PostgreSQL's",
             "own function counters); the map is one run of `pggit-chaos reach`. Best killers go first, and the",
             "first failure ends the mutant. A mutant no test reaches",
             "is *unreached* (it survives without a run); one whose script does not install or whose function",
             "does not compile is *stillborn* and counts nowhere; a survivor a person judged *equivalent*",
             "(`tools/pggit_chaos/measure/mutant_triage.py`) leaves the score, and later runs skip it.", ""]
    runs = [(cat, tier, data.get(f"mutation-fast-{cat}-{tier}.json")) for cat in ("hand", "generated")
            for tier in ("smoke", "full")]
    runs = [(c, t, d) for c, t, d in runs if d]
    if not runs:
        return lines + ["Not measured yet: run `make metrics`.", ""]
    rows = []
    for cat, tier, run in runs:
        s = _scored(run, triage)
        sample = f" (sample of {run['sample']})" if run.get("sample") else ""
        if run.get("again_of"):
            sample = sample[:-1] + f" drawn at {run['again_of']}, run again)"
        if run.get("interrupted_after"):
            sample += f", stopped after {run['interrupted_after']}"
        tier_shown = f"{tier} + contract" if run.get("contract") else tier
        rows.append([f"{'hand-written' if cat == 'hand' else 'generated'}{sample}", tier_shown, len(run["mutants"]),
                     s["killed"], s["surviving"], s["unreached"], s["equivalent"],
                     s["stillborn"], s["error"], pct(s["killed"], s["scored"]), minutes(run["wall_seconds"]),
                     run["jobs"]])
    lines += ["### Both catalogs", "",
              *table(["catalog", "tier", "mutants", "killed", "surviving (not equivalent)", "of them unreached",
                      "equivalent", "stillborn", "errors", "score", "wall time", "workers"], rows), ""]
    generated = next((d for c, t, d in reversed(runs) if c == "generated"), None)
    if generated:
        lines += _per_operator(generated, data.get("generated-mutants.json"), triage, rules)
        lines += _per_function(generated, triage)
        lines += _survivors(generated, triage)
        lines += _never_run(generated)
    lines += _agreement(data.get("selection-agreement.json"))
    lines += _trend(data.get("mutation-trend.json"))
    return lines + [
        "A tier marked *+ contract* ran the contract tests (`tests/extension`) beside the chaos tests",
        "(`mutate-fast --contract`).", "",
        "Measured with `pggit-chaos reach --tier full` (the map), `pggit-chaos mutants-generate --check-install`",
        "(the generated catalog and its stillborn mutants), `pggit-chaos mutate-fast --catalog hand` and",
        "`--catalog generated` (`--sample N` for a deterministic sample, `--agreement N` to run N of them",
        "against every test as well), then `pggit-chaos metrics`.", ""]


def _per_operator(run: dict, made: dict | None, triage: dict, rules: dict[str, str]) -> list[str]:
    by_op = defaultdict(list)
    for m in run["mutants"]:
        by_op[m["operator"]].append(m)
    made_per_op = (made or {}).get("per_operator", {})
    stillborn = (made or {}).get("stillborn_per_operator", {})
    rows = []
    for op in sorted(set(by_op) | set(made_per_op)):
        ms = by_op.get(op, [])
        s = _scored({"mutants": ms}, triage)
        rows.append([f"`{op}`", rules.get(op, ""), made_per_op.get(op, len(ms)), stillborn.get(op, 0), len(ms),
                     s["killed"], s["surviving"], s["equivalent"],
                     pct(s["killed"], s["scored"])])
    return ["### Per operator", "",
            f"*generated* counts every mutant of today's script; the other columns are the {run['tier']} tier's run"
            + (f" of a sample of {run['sample']}" if run.get("sample") else "")
            + (f" drawn at {run['again_of']}, run again ({len(run['mutants'])} of them still made)"
               if run.get("again_of") else "") + ".", "",
            *table(["operator", "rule", "generated", "stillborn", "run", "killed", "surviving", "equivalent",
                    "score"], rows), ""]


def _per_function(run: dict, triage: dict) -> list[str]:
    by_fn = defaultdict(list)
    for m in run["mutants"]:
        by_fn[m["function"]].append(m)
    rows = []
    for fn in sorted(by_fn, key=lambda f: min(m.get("line") or 0 for m in by_fn[f])):
        ms = by_fn[fn]
        s = _scored({"mutants": ms}, triage)
        surviving = s["surviving"]
        rows.append([f"`{fn}`", min(m.get("line") or 0 for m in ms), len(ms), s["killed"], surviving,
                     pct(s["killed"], s["scored"]), _heat(surviving)])
    return ["### Per pggit function", "",
            "The functions in the order of the SQL file; the last column is a heat map of surviving mutants",
            "(one block each, equivalent ones left out).", "",
            *table(["function", "first line", "mutants", "killed", "surviving", "score", "surviving mutants"], rows),
            ""]


def _survivors(run: dict, triage: dict) -> list[str]:
    rows = []
    for m in run["mutants"]:
        if m["status"] not in ("survived", "unreached"):
            continue
        entry = triage.get(m["id"], {})
        verdict = entry.get("verdict", "not triaged")
        rows.append([f"`{m['id']}`", f"`extension/pggit--1.0.0.sql:{m['line']}`", f"`{m['function']}`",
                     code(m["description"].split(": ", 1)[-1]), m["status"], verdict, prose(entry.get("reason", ""))])
    lines = ["### Surviving generated mutants", ""]
    if not rows:
        return lines + ["None survived.", ""]
    return lines + [*table(["mutant", "line", "function", "edit", "verdict", "triage", "reason"], rows), ""]


def _never_run(run: dict) -> list[str]:
    never = run.get("statements_never_run")
    if never is None:
        return []
    lines = ["### Statements no test runs", "",
             "The reach run's markers show which PL/pgSQL statements the tests ran; these ran in none of them",
             "(every mutant of one is *unreached*). Each is a corner of the input space no test reaches yet.", ""]
    if not never:
        return lines + ["Every statement ran in at least one test.", ""]
    return lines + [*table(["function", "line", "statement"],
                           [[f"`{n['function']}`", f"`extension/pggit--1.0.0.sql:{n['line']}`", code(n["text"])]
                            for n in never]), ""]


def _agreement(data: dict | None) -> list[str]:
    lines = ["### Does selection change a verdict?", ""]
    if not data:
        return lines + ["Not measured yet.", ""]
    pairs = data["pairs"]
    agree = sum(1 for p in pairs if p["coverage"] == p["all"])
    tier = f"{data['tier']} tier and the contract tests" if data.get("contract") else f"{data['tier']} tier"
    lines += [f"{len(pairs)} mutants ({data['what']}) were run twice: with coverage selection, and against every test",
              f"of the {tier}. The verdicts agree for {agree} of {len(pairs)}; their own run times add up to "
              f"{minutes(data['seconds_coverage'])} with selection and {minutes(data['seconds_all'])} against every test.",
              ""]
    differ = [p for p in pairs if p["coverage"] != p["all"]]
    if differ:
        lines += [*table(["mutant", "with selection", "every test", "killed by"],
                         [[f"`{p['id']}`", p["coverage"], p["all"], short_test(p.get("killed_by") or "")]
                          for p in differ]), ""]
    return lines


def _trend(rows: list | None) -> list[str]:
    lines = ["### Trend", ""]
    if not rows:
        return lines + ["One row per fast run appears here once runs are recorded.", ""]
    return lines + [*table(["started", "catalog", "tier", "mutants", "killed", "scored", "score", "wall time"],
                           [[r["started"], r["catalog"], r["tier"] + (" + contract" if r.get("contract") else ""),
                             r["mutants"], r["killed"], r["scored"],
                             pct(r["killed"], r["scored"]), minutes(r["wall_seconds"])] for r in rows]), ""]

"""The triage of surviving generated mutants: each one equivalent (with the reason no test can see it) or a gap in the suite.

A generated mutant that survives the full tier is read by a person and
recorded here under its id (``pggit-chaos mutants-generate --list`` shows
ids, lines and edits). ``equivalent``: the edit changes nothing a caller
can observe, and the reason says why; such mutants leave the score and are
counted apart on the Metrics page. ``gap``: the edit is a real bug the suite
misses; the reason names the test that now kills it, or says what test is
still to be written. A mutant whose id no longer exists (the script
changed) is reported by ``check``, so the file never silently describes
another script.
"""

from __future__ import annotations

VERDICTS = ("equivalent", "gap")

TRIAGE: dict[str, dict[str, str]] = {
}


def verdict(mutant_id: str) -> str | None:
    """``equivalent``, ``gap``, or None for a mutant not triaged yet."""
    entry = TRIAGE.get(mutant_id)
    return entry["verdict"] if entry else None


def check(known_ids: set[str]) -> list[str]:
    """Problems with the triage: unknown verdicts, missing reasons, ids the generator no longer makes."""
    problems = []
    for mutant_id, entry in TRIAGE.items():
        if entry.get("verdict") not in VERDICTS:
            problems.append(f"{mutant_id}: verdict must be one of {VERDICTS}, got {entry.get('verdict')!r}")
        if not entry.get("reason"):
            problems.append(f"{mutant_id}: no reason given")
        if mutant_id not in known_ids:
            problems.append(f"{mutant_id}: the generator no longer makes this mutant; triage it again")
    return problems

"""Hypothesis's reports read as data: the minimal failing example, the per-phase statistics, the example in one line."""

from __future__ import annotations

import re

# Hypothesis's report of the minimal failing input: older releases say "Falsifying example",
# newer ones "Failing test case"; a state machine's steps follow as "state.rule(...)" lines.
_EXAMPLE = re.compile(
    r"^((?:Falsifying (?:explicit )?example|Failing test case)[^\n]*\n(?:(?:[ \t)]|state\b).*\n?)*)", re.M)

_PHASE = re.compile(r"- during (\w+) phase \(([\d.]+) seconds\):(.*?)(?=\n  - |\Z)", re.S)


def falsifying_example(text: str) -> str | None:
    """The minimal failing example in a failed test's report, or None if it has none."""
    plain = "\n".join(re.sub(r"^E {1,7}", "", line) for line in text.splitlines())  # pytest's "E   " prefix
    match = _EXAMPLE.search(plain)
    return match.group(1).strip() if match else None


def parse_hypothesis_statistics(text: str) -> dict:
    """Hypothesis's ``--hypothesis-show-statistics`` text for one test, as numbers per phase."""
    phases = {}
    for name, seconds, body in _PHASE.findall(text):
        phase = {"seconds": float(seconds)}
        counts = re.search(r"(\d+) passing, (\d+) failing, and (\d+) invalid", body)
        if counts:
            phase.update(passing=int(counts.group(1)), failing=int(counts.group(2)), invalid=int(counts.group(3)))
        shrinks = re.search(r"Tried (\d+) shrinks of which (\d+) were successful", body)
        if shrinks:
            phase.update(shrinks_tried=int(shrinks.group(1)), shrinks_successful=int(shrinks.group(2)))
        phases[name] = phase
    stopped = re.search(r"Stopped because (.*)", text)
    return {"phases": phases, "stopped_because": stopped.group(1).strip() if stopped else None}


def example_text(example: str | None) -> str:
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

"""The guide's CI table says what the workflows really do.

Three sources must agree: the workflows (`.github/workflows/*.yml`), the
test progression (`.github/chaos-progression.json`, the one list of
categories still allowed to fail) and the table under "In CI" in
`docs/testing/CHAOS_ENGINEERING.md`: triggers, marker expressions, and
which jobs may fail.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
PROGRESSION = REPO / ".github" / "chaos-progression.json"
GUIDE = REPO / "docs" / "testing" / "CHAOS_ENGINEERING.md"
MAKEFILE = REPO / "Makefile"


@dataclass(frozen=True)
class CiJob:
    workflow: str
    job: str
    triggers: frozenset[str]
    markers: str  # the pytest -m expression the job runs, or "" for jobs that run no marker tier
    must_pass: bool


def can_fail_expression() -> str:
    return " or ".join(json.loads(PROGRESSION.read_text())["can_fail"])


def make_markers() -> dict[str, str]:
    """Each make target's -m expression."""
    targets, current = {}, None
    for line in MAKEFILE.read_text().splitlines():
        match = re.match(r"^([a-z]+):", line)
        if match:
            current = match.group(1)
        elif current and line.startswith("\t") and "pytest" in line:
            found = re.search(r'-m "([^"]+)"', line)
            if found:
                targets[current] = found.group(1)
    return targets


def _job_markers(steps: list[dict]) -> str:
    """The last -m a job's commands pass to pytest, with the progression substituted."""
    targets, markers = make_markers(), ""
    for step in steps:
        for command in (step.get("run") or "").splitlines():
            command = command.strip().replace("$CAN_FAIL", can_fail_expression())
            # A manual run may narrow the weekly tier to one category; that is not another tier.
            if not command.startswith(("make ", ".venv/bin/pytest")) or "$CATEGORY" in command:
                continue
            words = shlex.split(command)
            if words[0] == "make" and words[1] in targets:
                markers = targets[words[1]]
            args = next((shlex.split(w.split("=", 1)[1]) for w in words if w.startswith("PYTEST_ARGS=")), words)
            if "-m" in args:
                markers = args[args.index("-m") + 1]
            if command.startswith("make") and " site" in command and not markers:
                markers = "(guides)"
    return markers


def workflow_jobs() -> set[CiJob]:
    jobs = set()
    for path in sorted(WORKFLOWS.glob("*.yml")):
        data = yaml.safe_load(path.read_text())
        on = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
        triggers = frozenset(on if isinstance(on, (dict, list)) else [on])
        for name, job in data["jobs"].items():
            if "steps" not in job or not any("run" in s for s in job["steps"]):
                continue
            markers = _job_markers(job["steps"])
            if not markers:
                continue
            must_pass = not job.get("continue-on-error", False)
            jobs.add(CiJob(path.name, name, triggers, markers, must_pass))
    return jobs


def guide_jobs() -> set[CiJob]:
    """Rows of the table in the guide's "In CI" section."""
    text = GUIDE.read_text()
    section = text.split("### In CI", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    jobs = set()
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        triggers, workflow, job, markers, must_pass = cells[:5]
        jobs.add(CiJob(
            workflow=workflow.strip("`").rsplit("/", 1)[-1],
            job=job.strip("`"),
            triggers=frozenset(t.strip("` ") for t in triggers.split(",")),
            markers=markers.strip("`"),
            must_pass={"yes": True, "no": False}[must_pass.lower()],
        ))
    return jobs


def guide_can_fail() -> list[str]:
    section = GUIDE.read_text().split("### Test progression", 1)[1].split("\n#", 1)[0]
    match = re.search(r"still allowed to fail[^:]*:\s*(.+)", section)
    assert match, "the guide's Test progression section must list the categories still allowed to fail"
    return re.findall(r"`([a-z_]+)`", match.group(1))


def test_guide_table_lists_exactly_the_workflows_jobs():
    in_workflows, in_guide = workflow_jobs(), guide_jobs()
    only_workflows = sorted(map(str, in_workflows - in_guide))
    only_guide = sorted(map(str, in_guide - in_workflows))
    assert not only_workflows and not only_guide, (
        "the guide's CI table and the workflows disagree\n"
        f"in the workflows, not in the guide:\n  " + "\n  ".join(only_workflows) +
        "\nin the guide, not in the workflows:\n  " + "\n  ".join(only_guide)
    )


def test_guide_progression_lists_the_can_fail_file():
    assert guide_can_fail() == json.loads(PROGRESSION.read_text())["can_fail"]


def test_can_fail_categories_are_registered_markers():
    import tomllib

    markers = {m.split(":")[0] for m in tomllib.loads((REPO / "pyproject.toml").read_text())
               ["tool"]["pytest"]["ini_options"]["markers"]}
    assert set(json.loads(PROGRESSION.read_text())["can_fail"]) <= markers


def test_every_tier_has_a_workflow_job():
    """smoke on pull requests, full on main, soak weekly: the split the guide promises."""
    jobs = workflow_jobs()
    tiers = make_markers()
    assert any(j.markers == tiers["smoke"] and "pull_request" in j.triggers and j.must_pass for j in jobs)
    assert any(j.markers.startswith(tiers["full"]) and "push" in j.triggers for j in jobs)
    assert any(j.markers == tiers["weekly"] and "schedule" in j.triggers for j in jobs)

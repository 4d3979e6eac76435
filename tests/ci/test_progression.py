"""The progression's rule: a test may fail only when every one of its categories may; an empty list is no rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pggit_chaos.measure.progression import PROGRESSION_FILE, Progression
from pggit_chaos.pages import markexpr

PROGRAM = Path(sys.executable).with_name("pggit-chaos")


def _progression(tmp_path: Path, can_fail: list[str]) -> Path:
    path = tmp_path / "chaos-progression.json"
    path.write_text(json.dumps({"can_fail": can_fail}))
    return path


def test_a_test_with_a_category_that_must_pass_stays_must_pass(tmp_path):
    rule = Progression.load(_progression(tmp_path, ["load"]))
    must, may = markexpr.parse(rule.must_pass("not soak")), markexpr.parse(rule.may_fail("not soak"))
    for marks, may_fail in [({"chaos", "load"}, True), ({"chaos", "load", "resource"}, False),
                            ({"chaos", "resource"}, False), (set(), False), ({"load", "soak"}, True)]:
        assert rule.test_may_fail(marks) is may_fail, marks
        if "soak" not in marks:
            assert must.matches(marks) is not may_fail and may.matches(marks) is may_fail, marks


def test_an_empty_list_leaves_every_expression_as_it_was(tmp_path):
    rule = Progression.load(_progression(tmp_path, []))
    assert rule.must_pass("chaos and not soak") == "chaos and not soak"
    assert rule.must_pass() == "" and rule.may_fail("not soak") is None and not rule.test_may_fail({"load"})
    assert "()" not in rule.must_pass("not soak")


def test_every_category_may_fail_at_once(tmp_path):
    everything = Progression.load(PROGRESSION_FILE).categories
    rule = Progression.load(_progression(tmp_path, list(everything)))
    assert markexpr.parse(rule.must_pass("not soak")).matches(set())  # a test of no category still must pass
    assert not markexpr.parse(rule.must_pass("not soak")).matches({"load", "crash"})


def test_a_name_that_is_no_category_is_refused(tmp_path):
    with pytest.raises(ValueError, match="slow"):
        Progression.load(_progression(tmp_path, ["slow"]))


def test_the_command_prints_each_rule_and_handles_an_empty_list(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(PROGRAM), "progression", *args], capture_output=True, text=True, timeout=60)

    empty = _progression(tmp_path, [])
    assert run("may-fail", "not soak", "--progression", str(empty)).stdout == ""
    assert run("may-fail", "not soak", "--progression", str(empty), "--output-name", "m").stdout == "m=\n"
    assert run("must-pass", "not soak", "--progression", str(empty)).stdout == "not soak\n"
    listed = run("must-pass", "not soak", "--progression", str(_progression(tmp_path, ["load"])))
    assert listed.stdout.startswith("(not soak) and not ((load) and not (")
    bad = run("weekly", "--category", "nightly")
    assert bad.returncode == 2 and "no category 'nightly'" in bad.stderr
    weekly = run("weekly", "--category", "crash", "--output-name", "matrix")
    suite, soak = (json.loads(line.split("=", 1)[1]) for line in weekly.stdout.splitlines())
    assert {e["markers"] for e in suite} == {"not soak and crash"} and {e["markers"] for e in soak} == {"soak and crash"}

"""The pages' own -m parser reads marker expressions as pytest does: same names, same selection, clear refusals."""

from __future__ import annotations

import itertools
import sys

import pytest
from pggit_chaos.pages import markexpr

from tests import forked_pytest

EXPRESSIONS = ["chaos", "not soak", "chaos and not slow and not destructive and not soak",
               "(slow or soak) and not chaos", "not (chaos or slow)"]
MARKS = ("chaos", "slow", "soak", "destructive")


def test_names_are_every_marker_an_expression_uses():
    assert markexpr.parse("chaos and not (slow or soak)").names == {"chaos", "slow", "soak"}
    assert markexpr.parse("not_a_keyword").names == {"not_a_keyword"}
    assert markexpr.parse("").names == frozenset()


def test_selection_follows_and_or_not_and_parentheses():
    expr = markexpr.parse("chaos and not (slow or soak)")
    assert expr.matches({"chaos"})
    assert not expr.matches({"chaos", "slow"})
    assert not expr.matches(set())
    assert markexpr.parse("").matches(set())  # an empty expression selects everything
    assert not markexpr.parse("soak and not soak").matches({"soak"})


@pytest.mark.parametrize("bad", ["chaos and", "chaos slow", "(chaos", "chaos)", "and", "chaos @ slow", "f(x)"])
def test_a_bad_expression_is_refused_with_the_expression_named(bad):
    with pytest.raises(markexpr.MarkerExpressionError) as err:
        markexpr.parse(bad)
    assert repr(bad) in str(err.value) and "column" in str(err.value)


def test_selection_agrees_with_pytest_itself(tmp_path):
    """Every combination of four marks, selected by pytest's -m and by ours, for a handful of expressions."""
    combos = [c for n in range(len(MARKS) + 1) for c in itertools.combinations(MARKS, n)]
    lines = ["import pytest"]
    for i, combo in enumerate(combos):
        lines += [f"@pytest.mark.{m}" for m in combo] + [f"def test_{i}(): pass"]
    (tmp_path / "test_marks.py").write_text("\n".join(lines) + "\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for expression in EXPRESSIONS:
        result = forked_pytest.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
             "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path), "-m", expression, "test_marks.py"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
        by_pytest = {line.split("::")[1] for line in result.stdout.splitlines() if "::test_" in line}
        ours = {f"test_{i}" for i, combo in enumerate(combos) if markexpr.parse(expression).matches(set(combo))}
        assert by_pytest == ours, (expression, result.stdout[-2000:], result.stderr[-2000:])

"""The generated mutants (``pggit_chaos.measure.mutagen``, ``mutagen_rules``, ``mutagen_clauses``, ``mutagen_check``): deterministic, stable, documented, checked at install.

The generator parses today's ``extension/pggit--1.0.0.sql``; these tests
hold for whatever the script says, so they name no mutant by its id except
through the generator itself.
"""

from __future__ import annotations

import re

import pytest
from pggit_chaos.measure import mutagen, mutagen_check, mutants
from pggit_chaos.measure.mutagen_clauses import OPERATORS, rule

SQL = mutagen.EXTENSION_SQL.read_text()


@pytest.fixture(scope="module")
def generated():
    return mutagen.generate(SQL)


def test_the_same_script_gives_the_same_mutants_with_unique_ids(generated):
    again = mutagen.generate(SQL)
    assert again == generated
    assert len({m.id for m in generated}) == len(generated)
    assert all(re.fullmatch(r"[a-z-]+:[a-z_()]+:[0-9a-f]{10}", m.id) for m in generated)


def test_ids_survive_an_edit_above_them_and_only_the_lines_move(generated):
    header, rest = SQL.split("\n", 2)[:2], SQL.split("\n", 2)[2]
    edited = "\n".join(header) + "\n-- a comment and a new line that change no function\n\n" + rest
    moved = mutagen.generate(edited)
    assert [m.id for m in moved] == [m.id for m in generated]
    assert {m.line - g.line for m, g in zip(moved, generated)} == {2}


def test_ids_depend_on_the_edit_not_on_its_line(generated):
    first = generated[0]
    assert first.id.startswith(f"{first.operator}:")
    assert str(first.line) not in first.id.split(":")[1]


def test_every_operator_makes_at_least_one_mutant_of_todays_script(generated):
    used = {m.operator for m in generated}
    assert set(OPERATORS) - used == set()


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_every_operator_documents_its_rule(name):
    doc = OPERATORS[name].__doc__
    assert doc.startswith(f"{name}: ")
    assert len(rule(name)) > 30


def test_the_issue_asks_for_these_operators():
    wanted = {"comparison-swap", "boolean-swap", "drop-conjunct", "remove-lock", "lock-strength", "off-by-one",
              "result-null", "result-constant", "result-empty", "delete-statement", "remove-set-option",
              "drop-security-definer", "add-security-definer", "drop-grant", "drop-revoke", "remove-order-by",
              "remove-collate", "union-swap", "remove-exception-handler", "errcode-change"}
    assert wanted <= set(OPERATORS)


def test_every_mutant_names_its_function_and_line_and_changes_only_its_span(generated):
    lines = SQL.split("\n")
    for m in generated[:: max(1, len(generated) // 200)]:
        mutated = m.apply(SQL)
        assert mutated != SQL
        assert m.original.split("\n")[0] in lines[m.line - 1]
        assert mutated.encode()[:m.start] == SQL.encode()[:m.start]
        assert m.function == mutagen.SCRIPT or m.function.startswith("pggit.")


def test_a_mutant_of_a_changed_script_is_refused(generated):
    m = next(g for g in generated if g.operator == "remove-lock")
    changed = SQL[:m.start] + "x" + SQL[m.start + 1:]
    with pytest.raises(mutants.MutantError, match="generate the mutants again"):
        m.apply(changed)


def test_row_locks_are_removed_and_weakened_where_the_script_takes_them(generated):
    removed = [m for m in generated if m.operator == "remove-lock" and m.original.startswith("FOR ")]
    assert removed and all(re.fullmatch(r"FOR (UPDATE|SHARE|NO KEY UPDATE|KEY SHARE).*", m.original, re.S)
                           for m in removed)
    assert all(m.replacement == "" for m in removed)


def test_a_dropped_conjunct_keeps_the_rest_of_the_condition(generated):
    for m in (g for g in generated if g.operator == "drop-conjunct"):
        assert m.replacement == ""
        assert re.search(r"^AND\b|\bAND\s*$", m.original.strip()), m.description


@pytest.mark.needs_control
def test_a_mutant_that_does_not_install_is_reported_stillborn_with_its_reason(pg_server, generated):
    if not getattr(pg_server, "can_control", False):
        pytest.skip("needs a server this run started (not --dsn)")
    good = next(g for g in generated if g.operator == "remove-order-by")
    body = SQL.index("BEGIN", SQL.index("LANGUAGE plpgsql"))
    broken = mutagen.GeneratedMutant("delete-statement:broken:0000000000", "delete-statement", "pggit.x",
                                     SQL.count("\n", 0, body) + 1, body, body + len("BEGIN"), "BEGIN",
                                     "BEGIN RETURN (")
    dead = mutagen_check.stillborn([good, broken], SQL, pg_server.install)
    assert list(dead) == [broken.id]
    assert dead[broken.id].startswith("pggit._restored_branch_replaces_seed() does not compile: ")


def test_the_triage_names_only_mutants_the_generator_makes_each_with_a_verdict_and_a_reason(generated):
    from pggit_chaos.measure import mutant_triage

    assert mutant_triage.check({m.id for m in generated}) == []


def test_a_triage_entry_without_a_reason_or_for_a_lost_mutant_is_refused(monkeypatch):
    from pggit_chaos.measure import mutant_triage

    monkeypatch.setattr(mutant_triage, "TRIAGE", {"off-by-one:gone:0000000000": {"verdict": "maybe", "reason": ""}})
    problems = mutant_triage.check(set())
    assert len(problems) == 3 and "verdict must be one of" in problems[0] and "no reason" in problems[1]
    assert "no longer makes this mutant" in problems[2]


def test_a_gaps_named_killers_are_the_test_ids_in_its_reason_and_an_equivalent_names_none(monkeypatch):
    from pggit_chaos.measure import mutant_triage

    reason = ("killed by tests/chaos/test_x.py::test_a[orphan chain] and by "
              "tests/extension/test_y.py::TestZ::test_b (a note), not by tests/chaos")
    monkeypatch.setattr(mutant_triage, "TRIAGE", {"gap:f:1": {"verdict": "gap", "reason": reason},
                                                  "eq:f:2": {"verdict": "equivalent", "reason": reason}})
    assert mutant_triage.named_killers("gap:f:1") == ["tests/chaos/test_x.py::test_a[orphan chain]",
                                                      "tests/extension/test_y.py::TestZ::test_b"]
    assert mutant_triage.named_killers("eq:f:2") == [] and mutant_triage.named_killers("unknown") == []

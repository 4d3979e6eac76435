"""Integrity chaos, invariant by invariant: one corruption, one failing check that names the damaged row.

pggit's contract ("Integrity is complete"): every invariant of its data
model has a check in ``verify_integrity()``, and a corruption that breaks one
invariant is reported by that check with a detail naming the damaged row.
``tests/extension/test_integrity.py`` shows one hand-made damage per check;
here Hypothesis generates the history (commits, branches made from branches,
deleted branches, DDL), draws a corruption recipe from the table below and a
victim row from that history, applies it behind pggit's back to a fresh
database, and checks the whole report: before, every check passes (the
positive control); after, the recipe's check fails naming the victim, and
every other check still passes.

A recipe breaks one invariant only where the data model allows it: a parent
cycle always has a parent that comes after its child, so the cycle recipe may
also fail ``commit_parents_precede_children`` (and ``linear_branch_history``,
since the commit that became its own parent already had a child). Recipes that
need it pick their victim so that nothing else breaks: for example, a head
moved back is chosen on a branch whose old head another branch still reaches.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pggit_chaos.client import commit, create_branch
from pggit_chaos.nemesis import tracking_paused
from pggit_chaos.profiles import share_of_examples
from psycopg.conninfo import conninfo_to_dict

pytestmark = [pytest.mark.chaos, pytest.mark.integrity, pytest.mark.corruption]

GHOST = "TRN-20000101000000-000000000000-0badf00d"


@dataclass(frozen=True)
class Commit:
    hash: str
    id: int
    branch_id: int
    parent: str | None


@dataclass(frozen=True)
class Branch:
    name: str
    id: int
    parent_id: int | None
    head: str | None


class Meta:
    """pggit's commit graph and history as read from its tables."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.commits = {r[0]: Commit(*r) for r in conn.execute(
            "SELECT hash, id, branch_id, parent_commit_hash FROM pggit.commits ORDER BY id")}
        self.branches = {r[0]: Branch(*r) for r in conn.execute(
            "SELECT name, id, parent_branch_id, head_commit_hash FROM pggit.branches ORDER BY id")}
        self.by_id = {b.id: b for b in self.branches.values()}
        self.history = conn.execute(
            "SELECT id, object_id, count(*) OVER (PARTITION BY object_id), "
            "row_number() OVER (PARTITION BY object_id ORDER BY id) FROM pggit.history ORDER BY id").fetchall()
        self.objects = [r[0] for r in conn.execute("SELECT id FROM pggit.objects ORDER BY id")]

    def own(self, branch: Branch) -> list[Commit]:
        return [c for c in self.commits.values() if c.branch_id == branch.id]

    def line(self, branch: Branch) -> set[int]:
        """The branch's id and those of the branches it descends from."""
        ids, current = set(), branch
        while current is not None and current.id not in ids:
            ids.add(current.id)
            current = self.by_id.get(current.parent_id)
        return ids

    def reachable(self, heads: list[str | None], parents: dict[str, str | None]) -> set[str]:
        seen: set[str] = set()
        for head in heads:
            while head is not None and head in parents and head not in seen:
                seen.add(head)
                head = parents[head]
        return seen

    def all_reachable_with(self, heads: dict[str, str | None] | None = None,
                           parents: dict[str, str | None] | None = None) -> bool:
        """Whether every commit stays reachable from a branch head after the given changes."""
        head_map = {name: b.head for name, b in self.branches.items()} | (heads or {})
        parent_map = {h: c.parent for h, c in self.commits.items()} | (parents or {})
        return self.reachable(list(head_map.values()), parent_map) == set(self.commits)


@dataclass(frozen=True)
class Recipe:
    """A corruption: the check it breaks, its victims in a history, and how it is made (returns the value to name)."""

    check: str
    victims: Callable[[Meta], list]
    apply: Callable[[psycopg.Connection, Meta, object], str]
    also: frozenset[str] = frozenset()


def _sql(conn: psycopg.Connection, statement: str, *params) -> None:
    conn.execute(statement, params or None)


def _new_id(conn: psycopg.Connection) -> str:
    return conn.execute("SELECT pggit.generate_trinity_id()").fetchone()[0]


def _insert_commit(conn: psycopg.Connection, hash_: str, branch_id: int, parent: str | None) -> None:
    _sql(conn, "INSERT INTO pggit.commits (hash, branch_id, parent_commit_hash, message) VALUES (%s, %s, %s, 'planted')",
         hash_, branch_id, parent)


def _head_missing(conn, meta, b):
    _sql(conn, "UPDATE pggit.branches SET head_commit_hash = %s WHERE id = %s", GHOST, b.id)
    return b.name


def _head_off_branch(conn, meta, victim):
    b, c = victim
    _sql(conn, "UPDATE pggit.branches SET head_commit_hash = %s WHERE id = %s", c.hash, b.id)
    return b.name


def _head_behind(conn, meta, b):
    _sql(conn, "UPDATE pggit.branches SET head_commit_hash = %s WHERE id = %s", meta.commits[b.head].parent, b.id)
    return b.name


def _parent_missing(conn, meta, c):
    _sql(conn, "UPDATE pggit.commits SET parent_commit_hash = %s WHERE hash = %s", GHOST, c.hash)
    return c.hash


def _parent_later(conn, meta, c):
    _sql(conn, "UPDATE pggit.commits SET committed_at = p.committed_at - interval '1 hour' FROM pggit.commits p "
               "WHERE p.hash = pggit.commits.parent_commit_hash AND pggit.commits.hash = %s", c.hash)
    return c.hash


def _fork(conn, meta, victim):
    child, follower = victim  # a second child of child's parent on child's branch, made the head of a follower
    planted = _new_id(conn)
    _insert_commit(conn, planted, child.branch_id, child.parent)
    _sql(conn, "UPDATE pggit.branches SET head_commit_hash = %s WHERE id = %s", planted, follower.id)
    return planted


def _cycle(conn, meta, c):
    _sql(conn, "UPDATE pggit.commits SET parent_commit_hash = hash WHERE hash = %s", c.hash)
    return c.hash


def _branch_parent_missing(conn, meta, b):
    _sql(conn, "UPDATE pggit.branches SET parent_branch_id = 999999 WHERE id = %s", b.id)
    return b.name


def _branch_cycle(conn, meta, victim):
    ancestor, descendant = victim
    _sql(conn, "UPDATE pggit.branches SET parent_branch_id = %s WHERE id = %s", descendant.id, ancestor.id)
    return ancestor.name


def _commit_branch_missing(conn, meta, c):
    _sql(conn, "UPDATE pggit.commits SET branch_id = 999999 WHERE hash = %s", c.hash)
    return c.hash


def _duplicate_id(conn, meta, c):
    _sql(conn, "ALTER TABLE pggit.commits DROP CONSTRAINT commits_hash_key")
    _insert_commit(conn, c.hash, c.branch_id, None)
    return c.hash


def _duplicate_branch(conn, meta, b):
    _sql(conn, "ALTER TABLE pggit.branches DROP CONSTRAINT branches_name_key")
    _sql(conn, "INSERT INTO pggit.branches (name, parent_branch_id, head_commit_hash) "
               "SELECT name, parent_branch_id, head_commit_hash FROM pggit.branches WHERE id = %s", b.id)
    return b.name


def _sequence_behind(conn, meta, c):
    number = int(c.hash[19:31])
    _sql(conn, "SELECT setval('pggit.trinity_id_seq', %s, %s)", max(number - 1, 1), number > 1)
    return c.hash


def _version_mismatch(conn, meta, object_id):
    _sql(conn, "UPDATE pggit.objects SET version_major = version_major + 7 WHERE id = %s", object_id)
    return f"(id {object_id})"


def _history_backwards(conn, meta, history_id):
    _sql(conn, "UPDATE pggit.history SET new_version = '0.0.0' WHERE id = %s", history_id)
    return f"history row {history_id} "


def _object_deleted(conn, meta, object_id):
    _sql(conn, "DELETE FROM pggit.objects WHERE id = %s", object_id)
    return f"object id {object_id} "


def _branch_renamed_badly(conn, meta, b):
    _sql(conn, "UPDATE pggit.branches SET name = name || ' copy' WHERE id = %s", b.id)
    return f"branch id {b.id}:"


def _branch_status_unknown(conn, meta, b):
    _sql(conn, "ALTER TABLE pggit.branches DROP CONSTRAINT branches_status_check")
    _sql(conn, "UPDATE pggit.branches SET status = 'LOST' WHERE id = %s", b.id)
    return b.name


def _orphan(conn, meta, victim):
    branch, parent = victim
    planted = _new_id(conn)
    _insert_commit(conn, planted, branch.id, parent.hash)
    return planted


def _orphan_chain(conn, meta, victim):
    branch, parent = victim
    first, second = _new_id(conn), _new_id(conn)
    _insert_commit(conn, first, branch.id, parent.hash)
    _insert_commit(conn, second, branch.id, first)
    return first  # a parent itself, yet reachable from no head


def _parent_off_line(conn, meta, victim):
    c, stranger = victim
    _sql(conn, "UPDATE pggit.commits SET parent_commit_hash = %s WHERE hash = %s", stranger.hash, c.hash)
    return c.hash


def _no_own(meta: Meta) -> list[Branch]:
    return [b for b in meta.branches.values() if b.head and not meta.own(b)]


def _with_own(meta: Meta) -> list[Branch]:
    return [b for b in meta.branches.values() if meta.own(b)]


def _orphan_victims(meta: Meta) -> list[tuple[Branch, Commit]]:
    """A branch and a commit on its line before it that none of the branch's own commits has as parent."""
    return [(b, p) for b in _with_own(meta) for p in meta.commits.values()
            if p.branch_id in meta.line(b) - {b.id} and not any(c.parent == p.hash for c in meta.own(b))]


RECIPES: dict[str, Recipe] = {
    "head points nowhere": Recipe("branch_heads_exist", _no_own, _head_missing),
    "head on another branch": Recipe("branch_heads_on_branch", lambda m: [
        (b, c) for b in _no_own(m) for c in m.commits.values() if c.branch_id not in m.line(b)], _head_off_branch),
    "head moved back": Recipe("branch_chains_end_at_heads", lambda m: [
        b for b in _with_own(m) if m.all_reachable_with(heads={b.name: m.commits[b.head].parent})], _head_behind),
    "parent missing": Recipe("commit_parents_exist", lambda m: [
        c for c in m.commits.values() if m.all_reachable_with(parents={c.hash: None})], _parent_missing),
    "parent committed later": Recipe("commit_parents_precede_children", lambda m: [
        c for c in m.commits.values() if c.parent], _parent_later),
    "fork": Recipe("linear_branch_history", lambda m: [
        (c, f) for c in m.commits.values() if c.parent
        for f in _no_own(m) if c.branch_id in m.line(f) and f.id != c.branch_id], _fork),
    "parent cycle": Recipe("no_commit_cycles", lambda m: [
        c for c in m.commits.values() if c.hash not in {b.head for b in m.branches.values()}
        and m.all_reachable_with(parents={c.hash: c.hash})], _cycle,
                           frozenset({"commit_parents_precede_children", "linear_branch_history"})),
    "branch parent missing": Recipe("branch_parents_exist", lambda m: [
        b for b in m.branches.values() if b.parent_id], _branch_parent_missing),
    "branch cycle": Recipe("no_branch_cycles", lambda m: [
        # A root closes the cycle: every branch keeps the ancestors it had (a branch that lost them would have
        # commits whose parents are off its line).
        (a, d) for d in m.branches.values() for a in m.branches.values()
        if a.parent_id is None and a.id in m.line(d) and a.id != d.id],
        _branch_cycle),
    "commit of a missing branch": Recipe("commit_branches_exist", lambda m: list(m.commits.values()),
                                         _commit_branch_missing),
    "duplicate Trinity ID": Recipe("unique_commit_ids", lambda m: [
        c for c in m.commits.values() if m.by_id[c.branch_id].name != "main"
        and not any(o.branch_id == c.branch_id and o.parent is None for o in m.commits.values())], _duplicate_id),
    "duplicate branch": Recipe("unique_branch_names", _no_own, _duplicate_branch),
    "sequence behind": Recipe("sequence_ahead_of_ids", lambda m: list(m.commits.values()), _sequence_behind),
    "version disagrees with history": Recipe("versions_match_history", lambda m: m.objects, _version_mismatch),
    "history goes down": Recipe("versions_increase", lambda m: [
        h for h, _, count, position in m.history if 1 < position < count], _history_backwards),
    "object deleted under its history": Recipe("history_objects_exist", lambda m: m.objects, _object_deleted),
    "branch name git refuses": Recipe("branch_rows_valid", lambda m: list(m.branches.values()), _branch_renamed_badly),
    "unknown branch status": Recipe("branch_rows_valid", lambda m: list(m.branches.values()), _branch_status_unknown),
    "orphan commit": Recipe("commits_reachable", _orphan_victims, _orphan),
    "orphan chain": Recipe("commits_reachable", _orphan_victims, _orphan_chain),
    "parent on another line": Recipe("commit_parents_on_branch_line", lambda m: [
        (c, u) for c in m.commits.values() if c.parent and m.commits[c.parent].branch_id != c.branch_id
        for u in m.commits.values() if u.id < c.id and u.branch_id not in m.line(m.by_id[c.branch_id])],
        _parent_off_line),
}

_fresh = itertools.count()


def build_history(conn: psycopg.Connection, extra: list[tuple[str, int]]) -> None:
    """A history with every shape the recipes need, then the drawn extra steps."""
    commit(conn, "main", "m1")
    create_branch(conn, "side")
    commit(conn, "side", "s1")
    commit(conn, "main", "m2")
    create_branch(conn, "feature")
    commit(conn, "feature", "f1")
    commit(conn, "feature", "f2")
    conn.execute("CREATE TABLE t1 (id int)")
    conn.execute("ALTER TABLE t1 ADD COLUMN a int")
    conn.execute("COMMENT ON TABLE t1 IS 'x'")
    conn.execute("CREATE TABLE t2 (id int)")
    for step, pick in extra:
        names = [n for (n,) in conn.execute("SELECT name FROM pggit.branches WHERE status = 'ACTIVE' ORDER BY id")]
        name = names[pick % len(names)]
        if step == "commit":
            commit(conn, name, f"extra {next(_fresh)}")
        elif step == "branch":
            create_branch(conn, f"b{next(_fresh)}", name)
        elif step == "delete" and name not in ("main", "feature"):  # "sub" is made from feature below
            conn.execute("SELECT pggit.delete_branch_simple(%s)", (name,))
        elif step == "ddl":
            conn.execute(f"ALTER TABLE t{1 + pick % 2} ADD COLUMN c{next(_fresh)} int")
    # Last, so that no drawn step changes them: branches with no commit of their own.
    create_branch(conn, "sub", "feature")        # forked at feature's tip
    create_branch(conn, "idle")                  # from main
    commit(conn, "main", "m3")


def report(conn: psycopg.Connection) -> dict[str, tuple[bool, str]]:
    return {name: (ok, detail) for name, ok, detail in conn.execute("SELECT * FROM pggit.verify_integrity()")}


def test_every_invariant_has_a_recipe_and_every_check_a_corruption(conn_fresh):
    """The table of recipes covers every check verify_integrity reports, and every check of the table is reported."""
    checks = set(report(conn_fresh))
    assert {r.check for r in RECIPES.values()} == checks


@pytest.fixture
def conn_fresh(db_connection_string: str):
    with psycopg.connect(db_connection_string, autocommit=True) as conn:
        yield conn


@contextlib.contextmanager
def _fresh_database(pg_server, make_database) -> Iterator[psycopg.Connection]:
    """A connection to a new database with pggit; the database is dropped on the way out (one per example)."""
    dsn = make_database(pggit=True)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            yield conn
    finally:
        pg_server.drop_database(conninfo_to_dict(dsn)["dbname"])


def _corrupt_and_check(conn: psycopg.Connection, extra: list[tuple[str, int]], recipe: str,
                       choose: Callable[[list], object]) -> None:
    build_history(conn, extra)
    before = report(conn)
    assert all(ok for ok, _ in before.values()), {k: d for k, (ok, d) in before.items() if not ok}
    spec = RECIPES[recipe]
    meta = Meta(conn)
    victims = spec.victims(meta)
    assert victims, f"the history offers no victim for {recipe!r}"
    victim = choose(victims)
    with tracking_paused(conn, how="replica"):
        named = spec.apply(conn, meta, victim)
    after = report(conn)
    assert set(after) == set(before)
    ok, detail = after[spec.check]
    assert not ok, f"{recipe}: {spec.check} did not notice: {detail}"
    assert named in detail, f"{recipe}: {spec.check} does not name {named!r}: {detail}"
    collateral = {name: d for name, (good, d) in after.items() if not good and name != spec.check}
    assert set(collateral) <= spec.also, f"{recipe} also failed other checks: {collateral}"


@pytest.mark.distinct_cases  # each recipe damages what another check guards: the smoke tier runs them all
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_each_recipe_fails_exactly_its_check_naming_the_damaged_row(pg_server, make_database, recipe):
    """Every recipe once, on the base history and its first victim: all checks pass before; after, the recipe's check
    fails naming the victim and the others pass."""
    with _fresh_database(pg_server, make_database) as conn:
        _corrupt_and_check(conn, [], recipe, lambda victims: victims[0])


@pytest.mark.slow
@pytest.mark.property
# Half the profile's examples (10 in dev and gate, 250 in thorough): each one makes a database, a history and a
# corruption and runs every check, about 0.2 s an example; the test above runs every recipe once.
@share_of_examples(2, 10)
@given(extra=st.lists(st.tuples(st.sampled_from(["commit", "branch", "delete", "ddl"]), st.integers(0, 31)),
                      max_size=6),
       recipe=st.sampled_from(sorted(RECIPES)), data=st.data())
def test_a_corruption_that_breaks_one_invariant_fails_exactly_its_check_naming_the_damaged_row(
        pg_server, make_database, extra, recipe, data):
    """On a fresh database with a generated history every check passes; after one drawn corruption of a drawn
    victim, made behind pggit's back, the recipe's check fails with a detail naming the victim and every other
    check (but the unavoidable ones the recipe declares) still passes."""
    with _fresh_database(pg_server, make_database) as conn:
        _corrupt_and_check(conn, extra, recipe, lambda victims: data.draw(st.sampled_from(victims), label="victim"))


# One-off corruptions: what a check must report (or must survive) beyond one drawn victim.


def _base(conn: psycopg.Connection) -> dict[str, str]:
    """Three commits on main, a branch 'feature' from main with one commit of its own; every check passes."""
    ids = {f"m{i}": commit(conn, "main", f"m{i}") for i in (1, 2, 3)}
    create_branch(conn, "feature")
    ids["f1"] = commit(conn, "feature", "f1")
    assert all(ok for ok, _ in report(conn).values()), report(conn)
    return ids


def test_a_commit_no_head_reaches_is_reported_though_later_commits_on_two_branches_follow_it(conn_fresh):
    """After a commit planted on feature (its parent m1 is on feature's line, so no fork), one more commit on each
    branch: every commit but the planted one now has a later commit whose parent is some other commit, and the
    planted one is still reachable from no head, which commits_reachable names, and it alone."""
    conn = conn_fresh
    ids = _base(conn)
    planted = _new_id(conn)
    feature = conn.execute("SELECT id FROM pggit.branches WHERE name = 'feature'").fetchone()[0]
    with tracking_paused(conn, how="replica"):
        _insert_commit(conn, planted, feature, ids["m1"])
    later = [commit(conn, "main", "m4"), commit(conn, "feature", "f2")]
    ok, detail = report(conn)["commits_reachable"]
    assert not ok and planted in detail, detail
    assert not any(reachable in detail for reachable in [*ids.values(), *later]), detail


def test_a_check_that_cannot_run_is_not_ok_whatever_the_check_before_it_said(conn_fresh):
    """Trinity IDs and parents in different collations: every check that compares a parent with a Trinity ID
    cannot run, and says so with ok false, also no_commit_cycles, whose neighbour before it
    (linear_branch_history, which compares no parent with an ID) runs and passes."""
    conn = conn_fresh
    _base(conn)
    with tracking_paused(conn, how="replica"):
        _sql(conn, 'ALTER TABLE pggit.commits ALTER COLUMN hash TYPE text COLLATE "C"')
        _sql(conn, 'ALTER TABLE pggit.commits ALTER COLUMN parent_commit_hash TYPE text COLLATE "POSIX"')
    rows = conn.execute("SELECT check_name, ok, detail FROM pggit.verify_integrity()").fetchall()
    names = [name for name, _, _ in rows]
    after = {name: (ok, detail) for name, ok, detail in rows}
    assert names.index("no_commit_cycles") == names.index("linear_branch_history") + 1
    assert after["linear_branch_history"] == (True, "every branch has a linear history"), after
    assert after["no_commit_cycles"][1].startswith("check failed: "), after["no_commit_cycles"]
    could_not_run = {name: ok for name, (ok, detail) in after.items() if detail.startswith("check failed: ")}
    assert "no_commit_cycles" in could_not_run and all(ok is False for ok in could_not_run.values()), could_not_run


# A column renamed behind pggit's back that the named check reads and the check just before it does not.
CANNOT_RUN = {
    "commit_parents_precede_children": ("commit_parents_exist",
                                        "ALTER TABLE pggit.commits RENAME COLUMN committed_at TO committed_on"),
    "linear_branch_history": ("commit_parents_precede_children",
                              "ALTER TABLE pggit.commits RENAME COLUMN branch_id TO branch_ref"),
    "commits_reachable": ("commit_parents_on_branch_line",
                          "ALTER TABLE pggit.branches RENAME COLUMN head_commit_hash TO head_ref"),
}


@pytest.mark.parametrize("check", sorted(CANNOT_RUN))
def test_a_check_that_cannot_run_after_a_passing_check_is_not_ok(conn_fresh, check):
    """The check cannot run (a column it reads is gone) and says so with ok false, though the check reported just
    before it runs and passes; every check that could not run says ok false, not null (branch_heads_exist, the
    first, too, when the head column is gone)."""
    conn = conn_fresh
    _base(conn)
    previous, statement = CANNOT_RUN[check]
    with tracking_paused(conn, how="replica"):
        _sql(conn, statement)
    rows = conn.execute("SELECT check_name, ok, detail FROM pggit.verify_integrity()").fetchall()
    names = [name for name, _, _ in rows]
    after = {name: (ok, detail) for name, ok, detail in rows}
    assert names.index(check) == names.index(previous) + 1
    assert after[previous][0] is True, after[previous]
    assert after[check][0] is False and after[check][1].startswith("check failed: "), after[check]
    could_not_run = {name: ok for name, (ok, detail) in after.items() if detail.startswith("check failed: ")}
    assert all(ok is False for ok in could_not_run.values()), could_not_run


def test_a_duplicated_branch_id_that_closes_a_loop_is_reported_and_every_check_ends(conn_fresh):
    """A second row with main's id whose parent is feature: a walk from main's id to its children reaches feature,
    and from feature a row with main's id again. Every check still answers (within seconds), and the duplicate id
    is reported."""
    conn = conn_fresh
    _base(conn)
    main_id = conn.execute("SELECT id FROM pggit.branches WHERE name = 'main'").fetchone()[0]
    with tracking_paused(conn, how="replica"):
        _sql(conn, "ALTER TABLE pggit.branches DROP CONSTRAINT branches_pkey CASCADE")
        _sql(conn, "INSERT INTO pggit.branches (id, name, parent_branch_id, head_commit_hash) "
                   "SELECT %s, 'main-again', f.id, f.head_commit_hash FROM pggit.branches f WHERE f.name = 'feature'",
             main_id)
    conn.execute("SET statement_timeout = '10s'")
    after = report(conn)
    assert {"no_branch_cycles", "branch_parents_exist", "unique_branch_names"} <= set(after)
    ok, detail = after["unique_branch_names"]
    assert not ok and f"branch id {main_id} is used by 2 branches" in detail, detail


def test_ids_and_parents_in_different_collations_stop_no_parent_check_while_no_commit_has_a_parent(conn_fresh):
    """Trinity IDs and parents in different collations, but no commit has a parent (main's only commit and a root
    commit planted as feature's head): there is no parent to compare with an ID, and commit_parents_exist and
    commit_parents_precede_children run and pass. Positive control: once a commit has a parent, the check that
    compares it with the IDs cannot run and is not ok."""
    conn = conn_fresh
    main_root = commit(conn, "main", "m1")
    create_branch(conn, "feature")
    root = _new_id(conn)
    feature = conn.execute("SELECT id FROM pggit.branches WHERE name = 'feature'").fetchone()[0]
    with tracking_paused(conn, how="replica"):
        _insert_commit(conn, root, feature, None)
        _sql(conn, "UPDATE pggit.branches SET head_commit_hash = %s WHERE id = %s", root, feature)
        _sql(conn, 'ALTER TABLE pggit.commits ALTER COLUMN hash TYPE text COLLATE "C"')
        _sql(conn, 'ALTER TABLE pggit.commits ALTER COLUMN parent_commit_hash TYPE text COLLATE "POSIX"')
    after = report(conn)
    assert after["commit_parents_exist"] == (True, "every parent commit exists"), after
    assert after["commit_parents_precede_children"] == (True, "every parent commit precedes its children"), after
    with tracking_paused(conn, how="replica"):
        _sql(conn, "UPDATE pggit.commits SET parent_commit_hash = %s WHERE hash = %s", main_root, root)
    ok, detail = report(conn)["commit_parents_precede_children"]
    assert ok is False and detail.startswith("check failed: "), detail

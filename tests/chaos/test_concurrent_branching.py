"""Concurrent branching: sessions racing to create, use and delete branches.

``create_branch`` must let exactly one of several sessions creating the same
name succeed, and give the others a clear error: SQLSTATE 23505
(unique_violation) with a message naming the branch, never a bare constraint
error. A new branch starts at its parent's head. A commit racing a
``delete_branch_simple`` either lands before the delete or is refused
(55000, object_not_in_prerequisite_state): once a client has been told the
branch is deleted, no commit on it may succeed.

Workload: sessions released together by a barrier, or two sessions in a
fixed interleaving (one holds a lock in an open transaction, the other is
observed blocked). Fault: the concurrency itself. History: what each session
was told. Invariants: ``single_branch``, ``refused_after_acknowledged``, and
``pggit_consistent`` (linear chains, acknowledged commits present, failed
ones absent, unique IDs, integrity).
"""

from __future__ import annotations

import contextlib
import threading
import time

import psycopg
import pytest
from pggit_chaos import checkers
from pggit_chaos.client import commit, create_branch, head
from pggit_chaos.history import History, run_workers
from pggit_chaos.interleavings import Step, interleave

pytestmark = [pytest.mark.chaos, pytest.mark.concurrent]

UNIQUE_VIOLATION = "23505"
OBJECT_NOT_IN_PREREQUISITE_STATE = "55000"


def _delete_branch(conn: psycopg.Connection, name: str) -> None:
    conn.execute("SELECT pggit.delete_branch_simple(%s)", (name,))


def _primary(error: str) -> str:
    """The error's own message line, without DETAIL or CONTEXT: a clear error names the value there."""
    return error.splitlines()[0]


@pytest.mark.parametrize("workers", [2, 10, 40])
def test_concurrent_creation_of_one_branch_name_lets_exactly_one_succeed(db_connection_string, sync_conn, workers):
    """Of many sessions creating the same branch at once, one succeeds and every other gets 23505 naming the branch."""
    sync_conn.autocommit = True
    commit(sync_conn, "main", "base")
    rounds = 6
    round_start = threading.Barrier(workers)

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            # Each round, every worker races for one new name. The explicit transaction keeps the
            # winner's row uncommitted for one more round trip, so the losers meet it in the unique index.
            for r in range(rounds):
                round_start.wait(timeout=30)
                name = f"feature/contested-{r}"
                with contextlib.suppress(psycopg.Error), history.record(worker, "create_branch", name) as op, \
                        conns[worker].transaction():
                    op.result = create_branch(conns[worker], name)

        history = run_workers(workers, work)

    for r in range(rounds):
        name = f"feature/contested-{r}"
        attempts = [op for op in history.of("create_branch") if op.args[0] == name]
        winners = [op for op in attempts if op.ok is True]
        assert len(winners) == 1, history.dump()
        unclear = [(op.worker, op.sqlstate, op.error) for op in attempts if op.ok is not True
                   and (op.ok is None or op.sqlstate != UNIQUE_VIOLATION or name not in _primary(op.error))]
        assert not unclear, f"losers without a clear 23505 naming {name!r}: {unclear}"
        assert len(attempts) == workers
        branch = checkers.single_branch(sync_conn, name)
        assert branch["id"] == winners[0].result
        assert branch["head_commit_hash"] == head(sync_conn, "main")
    checkers.integrity_ok(sync_conn)


@pytest.mark.parametrize("first_outcome", ["commit", "rollback"])
def test_second_creator_of_a_branch_waits_for_the_first_then_fails_clearly_or_succeeds(
        db_connection_string, sync_conn, first_outcome):
    """B creating a name that A's open transaction is creating waits: A commits, B gets 23505; A rolls back, B wins."""
    sync_conn.autocommit = True
    commit(sync_conn, "main", "base")
    name = "feature/pair"
    history = History()

    run = interleave(db_connection_string, history, Step.call("create_branch", create_branch, name),
                     Step.call("create_branch", create_branch, name, may_fail=True), end=first_outcome)
    assert run.holder_pid in run.wait.blocking_pids

    a_op, b_op = history.of("create_branch")
    branch = checkers.single_branch(sync_conn, name)
    if first_outcome == "commit":
        assert b_op.ok is False and b_op.sqlstate == UNIQUE_VIOLATION, history.dump()
        assert name in _primary(b_op.error)
        assert branch["id"] == a_op.result
    else:
        assert b_op.ok is True, history.dump()
        assert branch["id"] == b_op.result
    assert branch["head_commit_hash"] == head(sync_conn, "main")
    checkers.integrity_ok(sync_conn)


def test_many_distinct_branches_created_at_once_start_at_their_parents_head(db_connection_string, sync_conn):
    """Branches created concurrently from two parents all exist once, each with its parent's head and parent id."""
    sync_conn.autocommit = True
    for i in range(3):
        commit(sync_conn, "main", f"main {i}")
    create_branch(sync_conn, "dev")
    commit(sync_conn, "dev", "dev only")
    parents = {"main": head(sync_conn, "main"), "dev": head(sync_conn, "dev")}
    assert parents["main"] != parents["dev"]
    workers = 16

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            parent = "main" if worker % 2 == 0 else "dev"
            with history.record(worker, "create_branch", f"topic/{worker}", parent) as op:
                op.result = create_branch(conns[worker], f"topic/{worker}", parent)

        history = run_workers(workers, work)

    assert len(history.acknowledged("create_branch")) == workers, history.dump()
    parent_ids = dict(sync_conn.execute("SELECT name, id FROM pggit.branches WHERE name IN ('main', 'dev')"))
    for op in history.acknowledged("create_branch"):
        name, parent = op.args
        branch = checkers.single_branch(sync_conn, name)
        assert (branch["id"], branch["parent_branch_id"], branch["head_commit_hash"], branch["status"]) == \
            (op.result, parent_ids[parent], parents[parent], "ACTIVE"), name
    checkers.integrity_ok(sync_conn)


def test_branches_created_while_their_parent_moves_start_on_the_parents_chain(db_connection_string, sync_conn):
    """Branches created while commits land on the parent each start at a commit of the parent's chain."""
    sync_conn.autocommit = True
    commit(sync_conn, "main", "base")
    creators, committers = 8, 4

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True))
                 for _ in range(creators + committers)]

        def work(worker: int, history: History) -> None:
            if worker < creators:
                with history.record(worker, "create_branch", f"moving/{worker}") as op:
                    op.result = create_branch(conns[worker], f"moving/{worker}")
            else:
                for i in range(5):
                    message = f"worker {worker} commit {i}"
                    with history.record(worker, "commit", "main", message) as op:
                        op.result = commit(conns[worker], "main", message)

        history = run_workers(creators + committers, work)

    assert len(history.acknowledged("create_branch")) == creators, history.dump()
    assert len(history.acknowledged("commit")) == committers * 5, history.dump()
    main_chain = set(checkers.pggit_consistent(sync_conn, history).chains["main"])
    for worker in range(creators):
        branch = checkers.single_branch(sync_conn, f"moving/{worker}")
        assert branch["head_commit_hash"] in main_chain, branch


def test_commits_racing_a_delete_land_before_it_or_are_refused(db_connection_string, sync_conn):
    """Commits racing delete_branch_simple either land before the delete or get 55000; none succeeds after it."""
    sync_conn.autocommit = True
    branch = "doomed/race"
    create_branch(sync_conn, branch)
    committers = 6
    deleted = threading.Event()

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True))
                 for _ in range(committers + 1)]

        def work(worker: int, history: History) -> None:
            conn = conns[worker]
            if worker == committers:
                # The deleter strikes once the committers are under way.
                deadline = time.monotonic() + 30
                while len(history.acknowledged("commit")) < committers and time.monotonic() < deadline:
                    time.sleep(0.001)
                with history.record(worker, "delete", branch):
                    _delete_branch(conn, branch)
                deleted.set()
                return
            # Commit until one attempt has started after the delete returned (bounded, in case it never does).
            for i in range(1000):
                after_delete = deleted.is_set()
                message = f"worker {worker} commit {i}"
                with contextlib.suppress(psycopg.Error), history.record(worker, "commit", branch, message) as op:
                    op.result = commit(conn, branch, message)
                if after_delete:
                    return

        history = run_workers(committers + 1, work)

    assert len(history.acknowledged("delete")) == 1, history.dump()
    assert checkers.single_branch(sync_conn, branch)["status"] == "DELETED"
    unexpected = [(op.worker, op.sqlstate, op.error) for op in history.failed("commit")
                  if op.sqlstate != OBJECT_NOT_IN_PREREQUISITE_STATE or branch not in _primary(op.error)]
    assert not unexpected, f"commits that failed for another reason than the clear 55000: {unexpected}"
    assert not history.unknown("commit")
    refused_late = checkers.refused_after_acknowledged(history, "delete", "commit", OBJECT_NOT_IN_PREREQUISITE_STATE)
    assert refused_late >= committers, history.dump()
    chain = checkers.pggit_consistent(sync_conn, history, branch=branch).chains[branch]
    assert set(chain) == {op.result for op in history.acknowledged("commit")}


def test_delete_waits_for_an_open_commit_which_then_stays(db_connection_string, sync_conn):
    """A delete that waits for another session's open commit runs after it: the commit stays, later ones are refused."""
    sync_conn.autocommit = True
    branch = "doomed/after-commit"
    create_branch(sync_conn, branch)
    history = History()

    interleave(db_connection_string, history,
               Step.call("commit", commit, branch, "A"), Step.call("delete", _delete_branch, branch))

    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="doomed/after-commit"):
        commit(sync_conn, branch, "too late")
    assert checkers.single_branch(sync_conn, branch)["status"] == "DELETED"
    chains = checkers.pggit_consistent(sync_conn, history, branch=branch).chains
    assert chains[branch] == [history.acknowledged("commit")[0].result]


def test_commit_waiting_for_an_open_delete_is_refused_and_writes_nothing(db_connection_string, sync_conn):
    """A commit that waits for another session's open delete is refused with 55000 once the delete commits."""
    sync_conn.autocommit = True
    branch = "doomed/after-delete"
    create_branch(sync_conn, branch)
    before = commit(sync_conn, branch, "before")
    history = History()

    interleave(db_connection_string, history,
               Step.call("delete", _delete_branch, branch), Step.call("commit", commit, branch, "B", may_fail=True))

    (b_op,) = history.of("commit")
    assert b_op.ok is False and b_op.sqlstate == OBJECT_NOT_IN_PREREQUISITE_STATE, history.dump()
    assert branch in _primary(b_op.error)
    assert checkers.pggit_consistent(sync_conn, history, branch=branch).chains[branch] == [before]
    assert checkers.single_branch(sync_conn, branch)["status"] == "DELETED"


@pytest.mark.parametrize("delete_outcome", ["commit", "rollback"])
def test_branching_from_a_parent_whose_delete_is_open_waits_then_is_refused_or_succeeds(
        db_connection_string, sync_conn, delete_outcome):
    """A create_branch from a parent that another session's open transaction is deleting waits for it:
    the delete commits, the child is refused with 55000 naming the parent; the delete rolls back, the
    child starts at the parent's head."""
    sync_conn.autocommit = True
    parent = "doomed/parent"
    create_branch(sync_conn, parent)
    commit(sync_conn, parent, "on the parent")
    history = History()

    interleave(db_connection_string, history,
               Step.call("delete", _delete_branch, parent),
               Step.call("create_branch", create_branch, "doomed/child", parent, may_fail=True), end=delete_outcome)

    (b_op,) = history.of("create_branch")
    if delete_outcome == "commit":
        assert b_op.ok is False and b_op.sqlstate == OBJECT_NOT_IN_PREREQUISITE_STATE, history.dump()
        assert parent in _primary(b_op.error)
        assert sync_conn.execute("SELECT count(*) FROM pggit.branches WHERE name = 'doomed/child'").fetchone() == (0,)
    else:
        assert b_op.ok is True, history.dump()
        assert checkers.single_branch(sync_conn, "doomed/child")["head_commit_hash"] == head(sync_conn, parent)
    checkers.integrity_ok(sync_conn)

"""Concurrent commits: many committers, one branch, one linear history.

``commit_changes`` must append exactly one commit whose parent is the branch
head at that moment, and move the head to it, atomically. N concurrent
committers on one branch therefore leave one chain of N commits: no fork (two
commits with the same parent), no lost head (a commit nobody points at).

Workload: committers released together by a barrier (``run_workers``), or two
sessions in a fixed interleaving. Fault: the concurrency itself. History: what
each committer was told. Invariants: ``pggit_consistent`` (one linear chain
per branch, unique Trinity IDs, whole rows, the acknowledged commits
present, integrity).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pggit_chaos import checkers
from pggit_chaos.client import commit, parent_of
from pggit_chaos.generators import commit_message
from pggit_chaos.history import History, run_workers
from pggit_chaos.interleavings import Step, interleave

pytestmark = [pytest.mark.chaos, pytest.mark.concurrent]

# At least this many commits per run, so that even two workers surely overlap.
MIN_COMMITS = 40


@pytest.mark.parametrize(
    "workers",
    [2, 10, 30, pytest.param(100, marks=[pytest.mark.slow, pytest.mark.soak])],
)
def test_concurrent_commits_on_one_branch_form_one_linear_chain(db_connection_string, sync_conn, workers):
    """N workers committing to one branch at once leave one chain of exactly their N acknowledged commits."""
    sync_conn.autocommit = True
    sync_conn.execute("SELECT pggit.create_branch('race/one')")

    per_worker = max(3, MIN_COMMITS // workers)
    history, rounds = History(), 0

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            for i in range(per_worker):
                message = f"worker {worker} round {rounds} commit {i}"
                with history.record(worker, "commit", "race/one", message) as op:
                    op.result = commit(conns[worker], "race/one", message)

        # Two workers' 40 commits take about 20 ms: on a busy machine one thread once made all of its own before
        # the other was scheduled. The race is run again on the same branch until two commits overlapped.
        while rounds < 5 and not history.overlapping():
            run_workers(workers, work, history)
            rounds += 1

    acknowledged = history.acknowledged("commit")
    assert len(acknowledged) == rounds * workers * per_worker, history.dump()
    assert history.overlapping(), f"no two commits overlapped in {rounds} rounds:\n{history.dump()}"
    chain = checkers.pggit_consistent(sync_conn, history, branch="race/one").chains["race/one"]
    assert len(chain) == rounds * workers * per_worker
    assert set(chain) == {op.result for op in acknowledged}


def test_concurrent_commits_on_many_branches_keep_one_chain_per_branch(db_connection_string, sync_conn):
    """Workers spreading commits over several branches at once leave each branch one chain of its own commits."""
    sync_conn.autocommit = True
    base = commit(sync_conn, "main", "base")
    branches = ["main"] + [f"spread/{i}" for i in range(3)]
    for name in branches[1:]:
        sync_conn.execute("SELECT pggit.create_branch(%s)", (name,))
    workers, rounds = 12, 4

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            for i in range(rounds):
                branch = branches[(worker + i) % len(branches)]
                message = f"worker {worker} round {i} on {branch}"
                with history.record(worker, "commit", branch, message) as op:
                    op.result = commit(conns[worker], branch, message)

        history = run_workers(workers, work)

    assert len(history.acknowledged("commit")) == workers * rounds, history.dump()
    chains = checkers.pggit_consistent(sync_conn, history, branch=branches).chains
    for branch in branches:
        expected = {op.result for op in history.acknowledged("commit") if op.args[0] == branch}
        # main also holds the "base" commit made before the workload.
        assert set(chains[branch]) == (expected | {base} if branch == "main" else expected)


def test_blocked_committer_builds_on_the_commit_it_waited_for(db_connection_string, sync_conn):
    """A commit that waits for another session's open commit gets that commit as its parent."""
    sync_conn.autocommit = True
    sync_conn.execute("SELECT pggit.create_branch('queue')")
    history = History()

    # A: commit_changes inside an open transaction (branch row locked until COMMIT); B waits for it.
    run = interleave(db_connection_string, history,
                     Step.call("commit", commit, "queue", "A"), Step.call("commit", commit, "queue", "B"))
    assert run.holder_pid in run.wait.blocking_pids
    a_id, b_id = run.first.result, run.second.result

    assert parent_of(sync_conn, b_id) == a_id
    assert checkers.pggit_consistent(sync_conn, history, branch="queue").chains == {"queue": [a_id, b_id]}


@pytest.mark.property
def test_pooled_concurrent_commits_keep_every_message_on_one_chain_per_branch(chaos_pool):
    """20+ commits with arbitrary messages, sent at once through a connection pool, all land exactly once, in chains."""
    # Open every pooled connection up front: the pool draws from the global random module when it opens one,
    # which Hypothesis reports when it happens while the next example is being generated.
    chaos_pool.resize(min_size=chaos_pool.max_size, max_size=chaos_pool.max_size)
    chaos_pool.wait(timeout=30)

    @given(
        messages=st.lists(commit_message(max_length=300), min_size=20, max_size=30),
        branch_count=st.integers(1, 3),
    )
    def pooled_commits(messages: list[str], branch_count: int) -> None:
        run = uuid.uuid4().hex[:8]
        branches = [f"pool/{run}/{i}" for i in range(branch_count)]  # auto-created by their first commits
        history = History()
        barrier = threading.Barrier(len(messages))

        def send(index: int) -> None:
            branch, message = branches[index % branch_count], messages[index]
            barrier.wait(timeout=30)
            with chaos_pool.connection() as conn, history.record(index, "commit", branch, message) as op:
                op.result = commit(conn, branch, message)

        with ThreadPoolExecutor(len(messages)) as pool:
            for future in [pool.submit(send, i) for i in range(len(messages))]:
                future.result(timeout=60)

        assert len(history.acknowledged("commit")) == len(messages)
        with chaos_pool.connection() as conn:
            chains = checkers.pggit_consistent(conn, history, branch=branches).chains
            for branch in branches:
                checkers.single_branch(conn, branch)
                assert set(chains[branch]) == {op.result for op in history.acknowledged("commit")
                                               if op.args[0] == branch}

    pooled_commits()


def test_concurrent_auto_creation_of_one_branch_makes_one_row_and_one_chain(db_connection_string, sync_conn):
    """Committers racing to auto-create the same new branch leave one branch row and one chain of all their commits."""
    sync_conn.autocommit = True
    base = commit(sync_conn, "main", "base")
    workers, rounds = 8, 6
    round_start = threading.Barrier(workers)

    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(psycopg.connect(db_connection_string, autocommit=True)) for _ in range(workers)]

        def work(worker: int, history: History) -> None:
            # Every round, all workers race to create one more branch with their first commit.
            for r in range(rounds):
                round_start.wait(timeout=30)
                message = f"worker {worker} round {r}"
                with contextlib.suppress(psycopg.Error), history.record(worker, "commit", f"auto/{r}", message) as op:
                    op.result = commit(conns[worker], f"auto/{r}", message)

        history = run_workers(workers, work)

    assert len(history.acknowledged("commit")) == workers * rounds, history.dump()
    main_id = sync_conn.execute("SELECT id FROM pggit.branches WHERE name = 'main'").fetchone()[0]
    chains = checkers.pggit_consistent(sync_conn, history, branch=[f"auto/{r}" for r in range(rounds)]).chains
    for r in range(rounds):
        branch = checkers.single_branch(sync_conn, f"auto/{r}")
        assert branch["parent_branch_id"] == main_id
        assert len(chains[f"auto/{r}"]) == workers
        assert parent_of(sync_conn, chains[f"auto/{r}"][0]) == base  # the branch started at main's head


def test_second_auto_creator_waits_and_commits_on_the_first_ones_branch(db_connection_string, sync_conn):
    """A session auto-creating a branch that another open transaction is creating waits, then uses that branch."""
    sync_conn.autocommit = True
    history = History()

    run = interleave(db_connection_string, history,
                     Step.call("commit", commit, "auto/pair", "A"), Step.call("commit", commit, "auto/pair", "B"))
    a_id, b_id = run.first.result, run.second.result

    checkers.single_branch(sync_conn, "auto/pair")
    assert parent_of(sync_conn, b_id) == a_id
    assert checkers.pggit_consistent(sync_conn, history, branch="auto/pair").chains == {"auto/pair": [a_id, b_id]}

"""Concurrency example: N committers on one branch leave one linear chain.

The four parts of a chaos test, in order:

- workload: every worker commits to ``main`` several times, on its own connection;
- fault: none besides the concurrency itself (the workers start together);
- history: ``History`` records what each worker asked and what it was told;
- invariant: the checkers of ``tools/pggit_chaos/checkers.py`` judge the result.
"""

import psycopg
import pytest
from pggit_chaos import checkers
from pggit_chaos.history import History, run_workers

COMMITS_PER_WORKER = 5


@pytest.mark.chaos
@pytest.mark.concurrent
@pytest.mark.parametrize("workers", [2, 8])
def test_concurrent_commits_form_one_chain(db_connection_string, sync_conn, workers):
    def work(worker: int, history: History) -> None:
        with psycopg.connect(db_connection_string, autocommit=True) as conn:
            for i in range(COMMITS_PER_WORKER):
                message = f"worker {worker} commit {i}"  # unique, so a lost commit is visible
                with history.record(worker, "commit", "main", message) as op:
                    op.result = conn.execute(
                        "SELECT pggit.commit_changes(%s, %s)", ("main", message)
                    ).fetchone()[0]

    history = run_workers(workers, work)

    # Every worker was told its commits succeeded ...
    assert len(history.acknowledged("commit")) == workers * COMMITS_PER_WORKER, history.dump()
    # ... and the database agrees: each one is there, once, in a single chain, and the metadata is whole.
    sync_conn.autocommit = True
    chain = checkers.pggit_consistent(sync_conn, history).chains["main"]
    assert len(chain) == workers * COMMITS_PER_WORKER

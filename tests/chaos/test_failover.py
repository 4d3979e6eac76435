"""Failover: the primary is killed under load, its streaming standby is promoted, and clients reconnect to it.

Each test gets a throwaway primary and a standby of it (``standby_pair``:
``pg_basebackup`` through a replication slot, the same binaries). Workers
commit against the primary with ``pggit.commit_changes``, two on main and
two on branches of their own, each altering a tracked table of its own
before every commit, so versions move too. Once enough is acknowledged the
primary is SIGKILLed with every server process, the standby promoted
(``nemesis.fail_over``), and the workers reconnect with the connection
string they started with, which names both servers and asks for the one
that takes writes (``target_session_attrs=read-write``), and commit on.

With a synchronous standby nothing acknowledged may be lost. With an
asynchronous one, acknowledged commits may be lost: that is the trade-off
PostgreSQL documents, and the test reports how many, asserting only what
still holds. Both read the killed primary afterwards (started alone once
more) to compare the two histories and to see whether a sequence number it
issued was issued again.

Each test runs twice: the primary killed at once, and killed after the link
to the standby stalled (``nemesis.replication_stalled``) while the load went
on without it. The second is where an asynchronous standby loses the most,
and what makes the synchronous test fail on every run if its standby is not
synchronous. The figures (commits acknowledged and lost, failover time from
the kill to the first write, sequence numbers issued again) go to
``record_property`` and to a printed ``failover figures:`` line (``-rP``).
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass

import psycopg
import pytest
from pggit_chaos import checkers, nemesis
from pggit_chaos.client import commit, create_branch
from pggit_chaos.history import History, Operation, run_workers

pytestmark = [
    pytest.mark.chaos, pytest.mark.failover, pytest.mark.crash, pytest.mark.destructive,
    pytest.mark.slow, pytest.mark.needs_control, pytest.mark.needs_superuser,
]

WORKERS = 4
ACKNOWLEDGED_BEFORE_FAILOVER = 40
# With the link to the standby stalled: commits begun after the stall and acknowledged before the kill.
HELD_BACK = 2
COMMITS_AFTER_FAILOVER = 5  # per worker, on the promoted server
# Bounds that only a hang reaches.
LOAD_SECONDS = 60.0
RECONNECT_SECONDS = 60.0
SEQUENCE_PART = re.compile(r"^TRN-\d{14}-(\d{12})-[0-9a-f]{8}$")


def _branch(worker: int) -> str:
    return "main" if worker < 2 else f"failover/{worker}"


def _table(worker: int) -> str:
    return f"tracked_{worker}"


def _number(trinity_id: str) -> int:
    return int(SEQUENCE_PART.match(trinity_id).group(1))


@dataclass
class Failover:
    """One run of the workload: its history, the failover in it, and how long the failover took.

    Each operation's last argument is the port of the server its session was
    connected to: the primary's, or the promoted standby's.
    """

    history: History
    fault: Operation
    seconds: float
    promoted_port: int
    # IDs generate_trinity_id() handed out before the load, on the standby before it began.
    generated: list[str]

    def after(self, op: str) -> list[Operation]:
        """Acknowledged ``op`` operations of the promoted server."""
        return [o for o in self.history.acknowledged(op) if o.args[-1] == self.promoted_port]

    def before(self, op: str) -> list[Operation]:
        """Acknowledged ``op`` operations of the primary (everything acknowledged but ``after``)."""
        later = self.after(op)
        return [o for o in self.history.acknowledged(op) if o not in later]


def _reconnect(pair) -> psycopg.Connection:
    """A connection to whichever server takes writes, as a client's pool would retry it."""
    deadline = time.monotonic() + RECONNECT_SECONDS
    while True:
        try:
            return psycopg.connect(pair.dsn(), autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _until(condition, what: str, timeout: float = LOAD_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        time.sleep(0.005)


def _waiting_for_the_standby(pair) -> int:
    """Sessions of the test database that wait for the synchronous standby, or for a lock that one of those holds
    (two workers commit on main); 0 while none waits for the standby."""
    with pair.primary.connect() as conn:
        return conn.execute(
            "SELECT CASE WHEN bool_or(wait_event = 'SyncRep') THEN count(*) ELSE 0 END FROM pg_stat_activity "
            "WHERE datname = %s AND state = 'active' AND (wait_event = 'SyncRep' OR wait_event_type = 'Lock')",
            (pair.database,)).fetchone()[0]


def _run_workload(pair, stall: bool) -> Failover:
    """Commit and alter on four sessions; fail over once enough is acknowledged; commit on after it.

    With ``stall``, the link to the standby stalls first and the primary is
    killed once the load has moved on without it: ``HELD_BACK`` commits begun
    since were acknowledged (asynchronous), or every session waits for the
    standby (synchronous). Without, the primary is killed at once.
    """
    with psycopg.connect(pair.dsn(), autocommit=True) as setup:
        for worker in range(WORKERS):
            setup.execute(f"CREATE TABLE {_table(worker)} (id int)")
            if _branch(worker) != "main":
                create_branch(setup, _branch(worker))
        # PostgreSQL WAL-logs a sequence once every 32 values: a random number of IDs first puts the
        # failover anywhere in that cycle, from one run to the next.
        generated = [setup.execute("SELECT pggit.generate_trinity_id()").fetchone()[0]
                     for _ in range(random.randrange(32))]
    pair.standby.wait_streaming()
    history = History()
    enough, promoted, stop = threading.Event(), threading.Event(), threading.Event()
    acknowledged: list[str] = []
    seconds: list[float] = []
    errors: list[BaseException] = []

    def fail_over() -> None:
        try:
            if not enough.wait(LOAD_SECONDS) or stop.is_set():
                return
            if stall:
                with nemesis.replication_stalled(pair, history=history):
                    since = time.monotonic()
                    _until(lambda: len([o for o in history.acknowledged("commit") if o.started > since]) >= HELD_BACK
                           or _waiting_for_the_standby(pair) >= WORKERS,
                           f"{HELD_BACK} commits acknowledged, or {WORKERS} sessions waiting for the standby")
                    seconds.append(nemesis.fail_over(pair, history=history))
            else:
                seconds.append(nemesis.fail_over(pair, history=history))
            promoted.set()
        except BaseException as exc:  # noqa: BLE001 - raised in the test below
            errors.append(exc)
        finally:
            if not promoted.is_set():
                stop.set()  # no failover: the workers stop rather than wait for one

    def work(worker: int, history: History) -> None:
        conn, i, after = None, 0, 0
        try:
            while after < COMMITS_AFTER_FAILOVER and not stop.is_set():
                conn = conn or _reconnect(pair)
                port, i = conn.info.port, i + 1
                message = f"worker {worker} commit {i}"
                try:
                    with history.record(worker, "ddl", _table(worker), f"c{i}", port):
                        conn.execute(f"ALTER TABLE {_table(worker)} ADD COLUMN c{i} int")
                    with history.record(worker, "commit", _branch(worker), message, port) as op:
                        op.result = commit(conn, _branch(worker), message)
                except psycopg.OperationalError as exc:
                    if exc.sqlstate is not None and not exc.sqlstate.startswith(("08", "57P")):
                        raise  # the server answered: a real failure, not the failover
                    conn.close()
                    conn = None
                    continue
                acknowledged.append(op.result)
                if len(acknowledged) >= ACKNOWLEDGED_BEFORE_FAILOVER:
                    enough.set()
                if port == pair.standby.port:
                    after += 1
        finally:
            if conn is not None:
                conn.close()

    nemesis_thread = threading.Thread(target=fail_over, name="failover")
    nemesis_thread.start()
    try:
        run_workers(WORKERS, work, history, timeout=LOAD_SECONDS + 2 * RECONNECT_SECONDS)
    finally:
        if not enough.is_set():  # the workload ended before the failover: the nemesis stands down
            stop.set()
            enough.set()
        nemesis_thread.join(LOAD_SECONDS + RECONNECT_SECONDS)
    failed = [(o.worker, o.op, o.args, o.error) for o in history.failed("commit") + history.failed("ddl")]
    assert not failed, f"the server refused operations: {failed}"
    if errors:
        raise errors[0]
    assert not nemesis_thread.is_alive() and seconds, "the primary was not killed and the standby not promoted"
    (fault,) = history.faults("failover")
    if stall:
        checkers.fault_struck(history, "replication_stall", "commit")
    struck = checkers.fault_struck(history, "failover")
    unknown = history.unknown("commit") + history.unknown("ddl")
    assert all(o in struck for o in unknown), "an outcome was lost, but not at the failover"
    return Failover(history, fault, seconds[0], pair.standby.port, generated)


def _chains(rows) -> dict[str, list[str]]:
    """Each branch's chain, oldest first, from (branch, hash, parent) rows of one linear history."""
    by_branch: dict[str, dict[str, str | None]] = {}
    for branch, trinity_id, parent in rows:
        by_branch.setdefault(branch, {})[trinity_id] = parent
    chains = {}
    for branch, parents in by_branch.items():
        heads = set(parents) - set(parents.values())
        assert len(heads) == 1, f"branch {branch!r} is not one chain: heads {heads}"
        chain, cursor = [], heads.pop()
        while cursor in parents:
            chain.append(cursor)
            cursor = parents[cursor]
        chains[branch] = chain[::-1]
    return chains


CHAIN_ROWS = ("SELECT b.name, c.hash, c.parent_commit_hash FROM pggit.commits c "
              "JOIN pggit.branches b ON b.id = c.branch_id")


def _check_promoted(pair, run: Failover, record_property) -> dict[str, int]:
    """What holds after any failover, synchronous or not; returns the figures it measured.

    On the promoted server: integrity, whole rows, unique IDs, one linear
    chain per branch; each branch's history from before the failover is a
    prefix of the killed primary's (nothing diverged, only a tail can be
    missing); every commit and column acknowledged after the failover is
    there; each tracked table's version is one MINOR step per column it has,
    its recorded hash the live one, no drift; no Trinity ID handed out twice,
    and after the promotion only sequence numbers above every ID the promoted
    server holds from before (the IDs generated before the load included).
    """
    with psycopg.connect(pair.dsn(), autocommit=True) as conn:
        assert conn.info.port == pair.standby.port and conn.execute("SELECT NOT pg_is_in_recovery()").fetchone()[0]
        checkers.pggit_consistent(conn, branch=checkers.EVERY_BRANCH)
        after = History(run.after("commit") + run.after("ddl"))
        checkers.acknowledged_commits_present(conn, after)
        live_columns = {}
        for worker in range(WORKERS):
            table = _table(worker)
            columns = live_columns[table] = [c for (c,) in conn.execute(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped AND attname <> 'id'", (table,))]
            assert {o.args[1] for o in after.acknowledged("ddl") if o.args[0] == table} <= set(columns)
            checkers.table_consistent(conn, table, {"MINOR": len(columns)})
            version = conn.execute("SELECT full_version FROM pggit.get_version(%s)", (table,)).fetchone()[0]
            assert version == f"1.{len(columns)}.0", (table, version, columns)
        assert checkers.schema_consistent(conn) == {f"public.{_table(w)}" for w in range(WORKERS)}
        checkers.drift_is(conn, set())
        promoted_chains = _chains(conn.execute(CHAIN_ROWS).fetchall())

        after_ids = {o.result for o in run.after("commit")}
        held_before = {h for chain in promoted_chains.values() for h in chain} - after_ids | set(run.generated)
        # One more client, one ID at a time: every number it gets is above everything before it.
        fresh = [commit(conn, "main", f"after the failover {i}") for i in range(10)]
        fresh += [conn.execute("SELECT pggit.generate_trinity_id()").fetchone()[0] for _ in range(10)]
        stream = sorted(held_before, key=_number) + sorted(after_ids, key=_number) + fresh
        checkers.trinity_sequence_increasing({"the promoted server, before then after the failover": stream})
        checkers.unique_trinity_ids(conn, extra_ids=fresh)
        checkers.integrity_ok(conn)

    former_chains = _chains(pair.former_primary(CHAIN_ROWS))
    for branch, chain in promoted_chains.items():
        survived = [h for h in chain if h not in after_ids]
        assert former_chains.get(branch, [])[:len(survived)] == survived, \
            f"branch {branch!r}: the promoted history is not a prefix of the killed primary's"
    former = {h for chain in former_chains.values() for h in chain}
    acknowledged_before = {o.result for o in run.before("commit")}
    assert acknowledged_before <= former, "the killed primary itself lacks an acknowledged commit"
    handed_out_after = after_ids | set(fresh)
    assert not handed_out_after & (former | held_before | acknowledged_before), "a Trinity ID was handed out twice"
    lost = acknowledged_before - held_before
    issued_after = {_number(h) for h in handed_out_after}
    figures = {
        "commits_acknowledged": len(run.history.acknowledged("commit")),
        "commits_acknowledged_before_failover": len(acknowledged_before),
        "acknowledged_commits_lost": len(lost),
        "ddl_acknowledged_lost": len([o for o in run.before("ddl") if o.args[1] not in live_columns[o.args[0]]]),
        "in_flight_at_failover": len(run.history.unknown("commit")) + len(run.history.unknown("ddl")),
        "commits_only_on_killed_primary": len(former - held_before),
        # Sequence numbers of those that the promoted server handed out again (as parts of other IDs).
        "lost_acknowledged_numbers_issued_again": len({_number(h) for h in lost} & issued_after),
        "unacknowledged_numbers_issued_again": len({_number(h) for h in former - held_before - lost} & issued_after),
        "ids_generated_before_load": len(run.generated),
        "sequence_jump_at_promotion": min(issued_after) - max(map(_number, held_before), default=0),
        "failover_ms": round(run.seconds * 1000),
    }
    for name, value in figures.items():
        record_property(name, value)
    print("failover figures: " + ", ".join(f"{name}={value}" for name, value in figures.items()))
    return figures


STALL = pytest.mark.parametrize("stall", [False, True], ids=["killed", "link-stalled-then-killed"])


@STALL
def test_a_synchronous_standby_promoted_after_the_primary_is_killed_has_every_acknowledged_commit(
        standby_pair, record_property, stall):
    """synchronous_commit = on with synchronous_standby_names naming the standby: the promoted standby
    holds every commit and every DDL a client was told about, and all of the above holds."""
    standby_pair.replicate(synchronous=True)
    run = _run_workload(standby_pair, stall)
    assert len(run.before("commit")) >= ACKNOWLEDGED_BEFORE_FAILOVER
    with psycopg.connect(standby_pair.dsn(), autocommit=True) as conn:
        checkers.pggit_consistent(conn, run.history, branch=checkers.EVERY_BRANCH)
        for ddl in run.history.acknowledged("ddl"):
            assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
                                (ddl.args[0], ddl.args[1])).fetchone()[0] == 1, f"acknowledged DDL lost: {ddl}"
    figures = _check_promoted(standby_pair, run, record_property)
    assert figures["acknowledged_commits_lost"] == 0


@STALL
def test_an_asynchronous_standby_may_lose_acknowledged_commits_and_says_how_many(standby_pair, record_property, stall):
    """Asynchronous replication: acknowledged commits may be lost at a failover (the documented trade-off).

    The test measures and reports how many; it asserts what still holds:
    only a tail of each branch is missing, IDs stay unique and the sequence
    goes on above every ID the promoted server holds, integrity and drift are
    clean, versions and hashes agree.
    """
    standby_pair.replicate(synchronous=False)
    run = _run_workload(standby_pair, stall)
    assert len(run.before("commit")) >= ACKNOWLEDGED_BEFORE_FAILOVER
    _check_promoted(standby_pair, run, record_property)

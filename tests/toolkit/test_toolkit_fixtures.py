"""Each client fixture of the chaos toolkit does what its name says."""

from __future__ import annotations

import sys
import threading

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from tests import forked_pytest


def test_db_connection_string_points_at_a_fresh_pggit_database(db_connection_string):
    with psycopg.connect(db_connection_string) as conn:
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'pggit'").fetchone() == ("pggit",)
        assert conn.execute("SELECT count(*) FROM pggit.commits").fetchone()[0] == 0
        assert conn.execute("SELECT current_database()").fetchone()[0] != "pggit_template"


def test_sync_conn_starts_with_autocommit_off(sync_conn, db_connection_string):
    assert sync_conn.autocommit is False
    sync_conn.execute("CREATE TABLE not_yet_visible (n int)")
    with psycopg.connect(db_connection_string) as other:
        assert other.execute("SELECT to_regclass('not_yet_visible')").fetchone()[0] is None
    sync_conn.rollback()
    assert sync_conn.execute("SELECT to_regclass('not_yet_visible')").fetchone()[0] is None


def test_sync_conn_can_be_switched_to_autocommit(sync_conn, db_connection_string):
    sync_conn.autocommit = True
    sync_conn.execute("CREATE TABLE visible_at_once (n int)")
    with psycopg.connect(db_connection_string) as other:
        assert other.execute("SELECT to_regclass('visible_at_once')").fetchone()[0] is not None


@pytest.mark.asyncio
async def test_async_conn_is_an_asyncio_connection_to_the_same_database(async_conn, db_connection_string):
    assert isinstance(async_conn, psycopg.AsyncConnection)
    cur = await async_conn.execute("SELECT current_database(), pggit.generate_trinity_id()")
    dbname, trinity_id = await cur.fetchone()
    assert dbname == psycopg.conninfo.conninfo_to_dict(db_connection_string)["dbname"]
    assert trinity_id


def test_isolated_schema_is_first_on_the_search_path_and_holds_new_tables(sync_conn, isolated_schema):
    assert sync_conn.execute("SELECT current_schemas(false)").fetchone()[0][0] == isolated_schema
    sync_conn.execute("CREATE TABLE lands_here (n int)")
    sync_conn.commit()
    schema = sync_conn.execute(
        "SELECT relnamespace::regnamespace::text FROM pg_class WHERE relname = 'lands_here'"
    ).fetchone()[0]
    assert schema == isolated_schema


def test_chaos_pool_hands_out_at_most_ten_connections_then_times_out(chaos_pool):
    held = [chaos_pool.getconn() for _ in range(10)]
    try:
        pids = {conn.info.backend_pid for conn in held}
        assert len(pids) == 10
        with pytest.raises(PoolTimeout):
            chaos_pool.getconn(timeout=0.2)
    finally:
        for conn in held:
            chaos_pool.putconn(conn)
    with chaos_pool.connection(timeout=1) as conn:
        assert conn.execute("SELECT 1").fetchone()[0] == 1


def test_chaos_pool_serves_concurrent_workers(chaos_pool):
    seen: list[int] = []
    lock = threading.Lock()

    def work():
        with chaos_pool.connection() as conn:
            pid = conn.execute("SELECT pg_backend_pid() FROM pg_sleep(0.05)").fetchone()[0]
        with lock:
            seen.append(pid)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 20
    assert 1 < len(set(seen)) <= 10


CRASHING = '''
import os, time
def test_before(): time.sleep(0.5)
def test_crashes(): os._exit(1)
def test_after(): time.sleep(0.5)
def test_more(): pass
def test_last(): time.sleep(1)
'''


@pytest.mark.timeout(240)
def test_a_worker_crash_under_loadgroup_ends_the_run_naming_the_test(tmp_path):
    """pytest-xdist 3.8 can hang a --dist loadgroup run for good once it replaces a crashed worker (this file
    hung, twice in two tries, until killed at 60 s): the plugin makes a crash end the run instead. That the
    worker really crashed is in the report: the test it was running is named as its cause."""
    (tmp_path / "test_crashing.py").write_text(CRASHING)
    result = forked_pytest.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
         "test_crashing.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "crashed while running 'test_crashing.py::test_crashes'" in result.stdout, result.stdout[-3000:]
    assert "crashed and worker restarting disabled" in result.stdout, result.stdout[-3000:]

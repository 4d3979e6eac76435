"""One initdb per run: clusters start from copies of it, each with a password of its own, and the copy goes with its run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
from pggit_chaos import server
from pggit_chaos.server import initdb_cache

# A process of its own (no cache named in its environment unless the test names one): it starts clusters and
# prints, for each, its directory, its system identifier and whether the initdb cache's password still logs in.
CLUSTERS = textwrap.dedent("""
    import os, sys, psycopg
    from pggit_chaos import server
    from pggit_chaos.server import initdb_cache
    install = server.find_install(None)
    for _ in range(int(sys.argv[1])):
        cluster = server.Cluster(install=install)
        cluster.create().start()
        with cluster.connect() as conn:
            identifier = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
        cache = os.environ.get(initdb_cache.CACHE_ENV, "")
        folders = [f for f in os.listdir(cache) if len(f) == 16] if cache else []
        old = open(os.path.join(cache, folders[0], "password")).read() if folders else ""
        try:
            psycopg.connect(cluster.dsn(), password=old, passfile="/nonexistent").close()
            old_logs_in = True
        except psycopg.OperationalError:
            old_logs_in = False
        print(cluster.root, identifier, cache, old_logs_in, flush=True)
        cluster.destroy()
    if len(sys.argv) > 2:
        print("waiting", flush=True)
        sys.stdin.readline()
""")


def _clusters(count: int, env: dict[str, str], wait: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLUSTERS, str(count), *(["wait"] if wait else [])],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != initdb_cache.CACHE_ENV}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def _lines(proc: subprocess.Popen, count: int) -> list[list[str]]:
    lines = [proc.stdout.readline().split() for _ in range(count)]
    assert all(len(line) == 4 for line in lines), (lines, proc.stderr.read() if proc.poll() is not None else "")
    return lines


def test_clusters_of_one_run_copy_one_initdb_and_each_takes_a_password_of_its_own():
    proc = _clusters(3, _env())
    lines = _lines(proc, 3)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    identifiers = {identifier for _, identifier, _, _ in lines}
    caches = {cache for _, _, cache, _ in lines}
    assert len(identifiers) == 1, "three copies of one initdb share its system identifier"
    assert len(caches) == 1 and next(iter(caches)).startswith(str(server.cluster_base_dir()))
    assert [old for *_, old in lines] == ["False"] * 3, "the cache's password must not log in once a cluster started"
    assert not Path(next(iter(caches))).exists(), "the cache goes when the process that made it exits"

    # The positive control: a run of its own runs initdb of its own, so its clusters' identifier differs.
    other = _clusters(1, _env())
    [(_, identifier, cache, _)] = _lines(other, 1)
    assert other.wait(timeout=120) == 0
    assert identifier not in identifiers and cache not in caches


def test_a_process_started_by_the_run_copies_the_runs_initdb(tmp_path):
    parent = _clusters(1, _env(), wait=True)
    [(_, identifier, cache, _)] = _lines(parent, 1)
    assert parent.stdout.readline().strip() == "waiting"
    try:
        child = _clusters(1, _env(**{initdb_cache.CACHE_ENV: cache}))
        [(_, child_identifier, child_cache, _)] = _lines(child, 1)
        assert child.wait(timeout=120) == 0
        assert (child_identifier, child_cache) == (identifier, cache)
        assert Path(cache).exists(), "the child leaves the parent's cache alone"
    finally:
        parent.communicate("\n", timeout=60)
    assert not Path(cache).exists()


# Run by every xdist worker (--dist each): which worker, its server's system identifier, the cache it copied.
WORKER_TEST = textwrap.dedent("""
    import os


    def test_report(pg_server):
        with pg_server.connect() as conn:
            identifier = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
        with open(os.environ["REPORT"], "a") as report:
            report.write(f"{os.environ['PYTEST_XDIST_WORKER']} {identifier} {os.environ['PGGIT_INITDB_CACHE']}\\n")
""")


def test_the_workers_of_an_xdist_run_copy_one_initdb(tmp_path):
    (tmp_path / "test_worker.py").write_text(WORKER_TEST)
    report = tmp_path / "report.txt"
    done = subprocess.run([sys.executable, "-m", "pytest", "test_worker.py", "-q", "-n", "2", "--dist", "each",
                           "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path)],
                          cwd=tmp_path, env=_env(REPORT=str(report)), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line.split() for line in report.read_text().splitlines()]
    assert sorted(worker for worker, _, _ in lines) == ["gw0", "gw1"]
    assert len({identifier for _, identifier, _ in lines}) == 1, f"each worker ran an initdb of its own: {lines}"
    assert len({cache for *_, cache in lines}) == 1 and not Path(lines[0][2]).exists(), "gone with the run"


@pytest.mark.parametrize("named", ["elsewhere", "writable by others", "not a cache"])
def test_a_named_cache_that_is_not_this_accounts_own_is_ignored(tmp_path, named):
    folder = tmp_path / {"elsewhere": "missing", "writable by others": f"{initdb_cache.CACHE_PREFIX}x",
                         "not a cache": "some-folder"}[named]
    if named != "elsewhere":
        folder.mkdir()
        folder.chmod(0o777 if named == "writable by others" else 0o700)
        (folder / "lock").write_text("")
    proc = _clusters(1, _env(**{initdb_cache.CACHE_ENV: str(folder)}))
    [(_, _, cache, _)] = _lines(proc, 1)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    assert cache != str(folder) and Path(cache).name.startswith(initdb_cache.CACHE_PREFIX)
    if folder.exists():
        assert [p.name for p in folder.iterdir()] == ["lock"], "nothing was written into the named folder"


def test_a_killed_runs_cache_is_swept_by_the_next(cluster_base):
    proc = _clusters(1, _env(), wait=True)  # _env() passes on cluster_base's PGGIT_CLUSTER_DIR
    [(_, _, cache, _)] = _lines(proc, 1)
    assert proc.stdout.readline().strip() == "waiting"
    assert Path(cache).parent == cluster_base
    assert Path(cache) not in server.remove_stale_directories(cluster_base), "never swept while its run lives"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert Path(cache).exists(), "SIGKILL: nothing of the run could remove it"
    assert Path(cache) in server.remove_stale_directories(cluster_base)
    assert not Path(cache).exists()


def test_a_copy_that_fails_falls_back_to_initdb(monkeypatch, tmp_path):
    original = server.Cluster._run

    def run(self, argv, what):
        if argv[0] == "cp":
            raise server.ClusterError("copy refused for the test")
        return original(self, argv, what)

    monkeypatch.setattr(server.Cluster, "_run", run)
    cluster = server.Cluster(install=server.find_install(None))
    try:
        cluster.create().start()
        with psycopg.connect(cluster.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert cluster._initdb_password == cluster.password  # its own initdb, its own password from the start
    finally:
        cluster.destroy()

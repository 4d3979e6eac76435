"""The mutant catalog stays usable: every edit applies to today's SQL, and every mutant installs.

A mutant whose ``find`` no longer matches would silently measure nothing;
one that breaks ``CREATE EXTENSION`` would be "killed" by every test for a
reason that says nothing about the suite. Both are caught here, in the
ordinary test run, rather than in a half-hour mutation run.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
from pggit_chaos import server
from pggit_chaos.measure import mutants
from pggit_chaos.measure.hypothesis_report import parse_hypothesis_statistics


def test_every_mutant_applies_exactly_once_to_the_current_sql():
    assert mutants.check_catalog() == []


def test_the_catalog_is_large_and_spread_over_every_category():
    assert len(mutants.MUTANTS) >= 25
    used = {m.category for m in mutants.MUTANTS}
    assert used == set(mutants.CATEGORIES), f"categories without a mutant: {set(mutants.CATEGORIES) - used}"


def test_a_stale_mutant_is_refused_naming_it():
    stale = mutants.Mutant("gone_for_good", "locking", "a line that is no longer there", "no such text", "x")
    with pytest.raises(mutants.MutantError, match="'gone_for_good'.*occurs 0 times"):
        stale.apply(mutants.EXTENSION_SQL.read_text())
    twice = mutants.Mutant("ambiguous", "locking", "a line that is there twice", "FOR UPDATE;", "")
    with pytest.raises(mutants.MutantError, match="'ambiguous'.*occurs [2-9]\\d* times"):
        twice.apply(mutants.EXTENSION_SQL.read_text())


def _overlay_script(cluster: server.Cluster) -> Path:
    """The install script the cluster's server reads at CREATE EXTENSION (its private copy)."""
    bindir, sharedir = cluster.install.bindir.resolve(), cluster.install.sharedir.resolve()
    common = Path(os.path.commonpath([bindir, sharedir]))
    return cluster.root / "install" / (sharedir / "extension").relative_to(common) / "pggit--1.0.0.sql"


@pytest.fixture(scope="module")
def private_cluster(pg_server, tmp_path_factory):
    """A cluster of this module's own, whose install script the tests may rewrite."""
    if not getattr(pg_server, "can_control", False):
        pytest.skip("needs a server this run started (not --dsn)")
    cluster = server.start_cluster(pg_server.install)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.mark.needs_control
def test_every_mutant_installs(private_cluster):
    sql = mutants.EXTENSION_SQL.read_text()
    script = _overlay_script(private_cluster)
    assert not script.is_symlink() and script.read_text() == sql
    broken = []
    try:
        for number, mutant in enumerate(mutants.MUTANTS):
            script.write_text(mutant.apply(sql))
            name = f"mutant_{number}"
            private_cluster.create_database(name)
            try:
                with private_cluster.connect(name) as conn:
                    conn.execute("CREATE EXTENSION pggit")
            except psycopg.Error as exc:
                broken.append(f"{mutant.name}: {exc.diag.message_primary}")
            finally:
                private_cluster.drop_database(name)
    finally:
        script.write_text(sql)
    assert broken == []


@pytest.mark.needs_control
def test_clusters_started_at_once_each_install_their_own_script(pg_server, tmp_path):
    """The runner runs mutants in parallel: no cluster may see another's --pggit-sql."""
    if not getattr(pg_server, "can_control", False):
        pytest.skip("needs a server this run started (not --dsn)")
    mutant = mutants.by_name()["trinity_sequence_cached"]
    plain, mutated = tmp_path / "plain.sql", tmp_path / "mutated.sql"
    plain.write_text(mutants.EXTENSION_SQL.read_text())
    mutated.write_text(mutant.apply(plain.read_text()))
    first = server.start_cluster(pg_server.install, pggit_sql=plain)
    try:
        second = server.start_cluster(pg_server.install, pggit_sql=mutated)
        try:
            caches = []
            for cluster in (first, second):
                with cluster.connect() as conn:
                    conn.execute("CREATE EXTENSION pggit")
                    caches.append(conn.execute(
                        "SELECT cache_size FROM pg_sequences WHERE sequencename = 'trinity_id_seq'").fetchone()[0])
            assert caches == [1, 50]
        finally:
            second.destroy()
    finally:
        first.destroy()


def test_hypothesis_statistics_are_read_as_numbers():
    text = """tests/x.py::test_y:

  - during generate phase (0.12 seconds):
    - Typical runtimes: ~ 0-6 ms, of which < 1ms in data generation
    - 3 passing, 1 failing, and 8 invalid test cases
    - Found 1 distinct error in this phase

  - during shrink phase (0.50 seconds):
    - Typical runtimes: ~ 1-3 ms, of which < 1ms in data generation
    - 4 passing, 9 failing, and 2 invalid test cases
    - Tried 15 shrinks of which 7 were successful

  - Stopped because nothing left to do"""
    stats = parse_hypothesis_statistics(text)
    assert stats == {
        "phases": {
            "generate": {"seconds": 0.12, "passing": 3, "failing": 1, "invalid": 8},
            "shrink": {"seconds": 0.5, "passing": 4, "failing": 9, "invalid": 2,
                       "shrinks_tried": 15, "shrinks_successful": 7},
        },
        "stopped_because": "nothing left to do",
    }

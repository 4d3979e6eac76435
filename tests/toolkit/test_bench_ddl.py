"""The DDL benchmark: a quick real run writes a result the Metrics page shows, and a pggit that records nothing is refused."""

from __future__ import annotations

import json

import pytest
from pggit_chaos import cli, server
from pggit_chaos.measure import bench_ddl, hollow, mutants
from pggit_chaos.measure.metrics import ddl_cost


def test_a_quick_run_times_every_statement_cold_and_warm_with_and_without_pggit(tmp_path):
    out = tmp_path / "bench-ddl.json"
    assert cli.main(["bench-ddl", "--sessions", "2", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    ms = result["median_ms"]
    assert result["sessions"] == 2 and result["history_rows"] == 2 * 2 * len(bench_ddl.SCRIPT)
    for database in bench_ddl.DATABASES:
        assert list(ms[database]["cold"]) == list(bench_ddl.STEPS)
        assert list(ms[database]["warm"]) == list(bench_ddl.SCRIPT)
        assert all(v > 0 for r in ms[database].values() for v in r.values())
    page = "\n".join(ddl_cost.section(result))
    for step in bench_ddl.SCRIPT:
        assert f"| `{step}` | {ms['plain']['cold'][step]:.2f} | {ms['pggit']['cold'][step]:.2f} |" in page
    assert f"pggit wrote the {result['history_rows']} history rows" in page


def test_a_pggit_that_records_nothing_is_refused_naming_the_counts(tmp_path):
    hollow_sql, _ = hollow.build(mutants.EXTENSION_SQL.read_text())
    script = tmp_path / "pggit--1.0.0.sql"
    script.write_text(hollow_sql)
    with pytest.raises(SystemExit, match=r"pggit recorded 0 history rows .* not the 10 of 1 sessions x 2 rounds x 5"):
        bench_ddl.measure(server.find_install(), 1, pggit_sql=script)


def test_no_measurement_shows_how_to_make_one():
    assert "Not measured yet (`pggit-chaos bench-ddl`)." in ddl_cost.section(None)

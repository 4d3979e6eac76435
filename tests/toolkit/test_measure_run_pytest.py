"""Which Hypothesis directory a measured pytest run gets: its own for a mutant, the checkout's for a benchmark.

A mutant's run must not replay an example that failed on another mutant;
a benchmark measures ``make`` as a developer runs it, with the checkout's
``.hypothesis`` and the constants cache in it.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest
from pggit_chaos.measure.suite_run import run_pytest

INNER = textwrap.dedent(
    """
    import os
    from pathlib import Path


    def test_report_the_hypothesis_directory():
        Path(os.environ["SEEN"]).write_text(os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY", "<unset>"))
    """
)


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "the-checkouts"])
def test_a_run_has_a_hypothesis_directory_of_its_own_only_when_fresh(tmp_path, monkeypatch, fresh):
    (tmp_path / "test_inner.py").write_text(INNER)
    seen = tmp_path / "seen.txt"
    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    argv = [sys.executable, "-m", "pytest", str(tmp_path / "test_inner.py"), "-q", "-p", "no:cacheprovider",
            "-c", os.devnull, "--rootdir", str(tmp_path)]
    run = run_pytest(argv, tmp_path, "inner", 120, env_extra={"SEEN": str(seen)}, fresh_examples=fresh)
    assert run.exitstatus == 0, run.output_tail
    expected = str(tmp_path / "inner.hypothesis") if fresh else "<unset>"
    assert seen.read_text() == expected

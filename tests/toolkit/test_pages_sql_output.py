"""A guide's SQL block must print what the page shows below it (tools/pggit_chaos/pages/sql_output.py).

The comparison is tested on its own first; then pages written to a
temporary folder run through the page collector in a pytest subprocess,
against a real PostgreSQL with pggit installed.
"""

from __future__ import annotations

import sys
import textwrap

import pytest
from pggit_chaos.pages.sql_output import PLACEHOLDERS, compare, normalize

from tests import forked_pytest

TABLE = """
 name | status | head_commit_hash
------+--------+------------------
 main | ACTIVE |
(1 row)
"""


def test_the_same_output_matches_whatever_the_column_widths_and_blank_lines():
    assert compare(TABLE, TABLE) is None
    squeezed = "\n\n name  |   status | head_commit_hash\n-+-+-\n main  |  ACTIVE |\n\n(1 row)\n"
    assert compare(squeezed, TABLE) is None
    assert normalize("------+--------+------") == normalize("-+-+-") == "---+---+---"


def test_a_different_value_row_count_or_missing_line_is_reported_at_its_page_line():
    assert compare(TABLE.replace("ACTIVE", "DELETED"), TABLE, first_line=10) == (
        13, "main | DELETED |", "main | ACTIVE |")
    assert compare(TABLE + "DO\n", TABLE, first_line=10) == (15, "DO", "(nothing)")
    assert compare(TABLE, TABLE + "DO\n", first_line=10) == (15, "(nothing)", "DO")


@pytest.mark.parametrize("name, value", [
    ("trinity-id", "TRN-20250101120000-000000000042-9f3a61c0"),
    ("timestamp", "2025-01-01 12:00:00.123456+00"),
    ("integer", "4242"),
    ("sha256", "0" * 64),
    ("text", "all 2 branch heads exist"),
])
def test_a_placeholder_stands_for_its_kind_of_value_but_never_for_null(name, value):
    expected = f" commit | ok\n--------+----\n <{name}> | t\n(1 row)\n"
    assert compare(expected, expected.replace(f"<{name}>", value)) is None
    assert compare(expected, expected.replace(f"<{name}>", "")) is not None  # NULL prints as nothing
    assert name in PLACEHOLDERS


def test_a_trinity_id_placeholder_refuses_a_custom_id_and_an_unknown_name_is_literal():
    assert compare(" <trinity-id>", " legacy-0001") is not None
    assert compare(" <uuid>", " <uuid>") is None
    assert compare(" <uuid>", " 9f3a61c0") is not None


@pytest.fixture
def run_page(tmp_path):
    """Write a page to a temporary folder and run the page collector on it; (exit code, outcomes, output)."""

    def run(markdown: str) -> tuple[int, dict, str]:
        page = tmp_path / "page.md"
        page.write_text(textwrap.dedent(markdown))
        result = forked_pytest.run(
            [sys.executable, "-m", "pytest", str(page), "-p", "pggit_chaos.pages.integration", "--markdown-docs",
             "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-rA", "--doc-results", str(tmp_path / "r.json")],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        outcomes = {}
        for line in result.stdout.splitlines():
            for word in ("PASSED", "FAILED", "ERROR"):
                if line.startswith(word + " "):
                    outcomes[line.split()[1].split("::", 1)[1]] = word
        return result.returncode, outcomes, result.stdout + result.stderr

    return run


def test_a_wrong_output_fails_naming_the_block_and_line_and_a_right_one_passes(run_page):
    code, outcomes, output = run_page(
        '''
        # Page

        ```sql
        SELECT name, status FROM pggit.branches;
        SELECT pggit.commit_changes('main', 'first');
        ```

        ```text output
         name | status
        ------+--------
         main | ACTIVE
        (1 row)

         commit_changes
        ----------------
         <trinity-id>
        (1 row)
        ```

        ```sql
        SELECT name, status FROM pggit.branches;
        ```

        ```text output
         name | status
        ------+---------
         main | DELETED
        (1 row)
        ```
        '''
    )
    assert code == 1, output
    assert outcomes["line-4::test_sql_block_runs_as_shown"] == "PASSED", output
    assert outcomes["line-21::test_sql_block_runs_as_shown"] == "FAILED", output
    assert outcomes["page::test_sql_blocks_show_their_output"] == "PASSED", output
    assert ("SQL block at page.md:21: its output differs from the ```text output block at line 25; "
            "first difference at line 28:") in output
    assert "shown: main | DELETED" in output and "real:  main | ACTIVE" in output


def test_an_output_less_block_fails_the_page_unless_it_is_setup_for_a_block_that_shows_one(run_page):
    code, outcomes, output = run_page(
        '''
        # Page

        ```sql
        SELECT 1;
        ```

        ```sql setup
        CREATE TABLE accounts (id int);
        ```

        ```sql continuation
        SELECT object_name FROM pggit.objects;
        ```

        ```text output
         object_name
        -------------
         accounts
        (1 row)
        ```

        ```sql setup
        CREATE TABLE ledger (id int);
        ```

        Prose between a block and its output detaches it.

        ```text output
        CREATE TABLE
        ```
        '''
    )
    assert code == 1, output
    assert outcomes["line-12::test_sql_block_runs_as_shown"] == "PASSED", output
    assert outcomes["line-8::test_sql_block_runs_as_shown"] == "PASSED", output
    # The block's own test fails too, for a run that leaves the page checks out (they start no server).
    assert outcomes["line-4::test_sql_block_runs_as_shown"] == "FAILED", output
    assert "SQL block at page.md:4 has no ```text output block directly below it" in output
    assert outcomes["page::test_sql_blocks_show_their_output"] == "FAILED", output
    assert "line 4: ```sql block without a ```text output block directly below it" in output
    assert "line 8:" not in output  # the setup block whose continuation shows its effect
    assert "line 23: a setup block needs a continuation block after it that shows an output" in output
    assert "line 29: a ```text output block must sit directly below the ```sql block" in output

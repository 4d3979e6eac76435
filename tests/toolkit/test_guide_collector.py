"""The guide collector turns blocks into tests, and a page that drifts from reality fails.

Each test writes a small page into a scratch folder inside docs/ (so the
project's conftest and plugins apply), runs pytest on it in a subprocess,
and reads the outcome.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from pggit_chaos.pages.evaluators.symptoms import symptom_matches

from tests import forked_pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch_page():
    """Write a page under docs/, yield a runner for it, and remove it (and its built test files) afterwards."""
    folder = REPO / "docs" / f"_scratch_{uuid.uuid4().hex[:8]}"
    folder.mkdir()

    def run(markdown: str, *extra: str) -> tuple[int, dict, str]:
        page = folder / "page.md"
        page.write_text(textwrap.dedent(markdown))
        result = forked_pytest.run(
            [sys.executable, "-m", "pytest", str(page.relative_to(REPO)), "-q", "-p", "no:cacheprovider",
             "-p", "no:xdist", "-rA", *extra],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )
        outcomes = {}
        for line in result.stdout.splitlines():
            for word in ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL"):
                if line.startswith(word + " "):
                    outcomes[line.split()[1]] = word
        return result.returncode, outcomes, result.stdout + result.stderr

    run.page = (folder / "page.md").relative_to(REPO).as_posix()
    yield run
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(REPO / "_build" / "pages" / folder.relative_to(REPO), ignore_errors=True)


def _only(outcomes: dict, fragment: str) -> str:
    hits = [v for k, v in outcomes.items() if fragment in k]
    assert len(hits) == 1, (fragment, outcomes)
    return hits[0]


def test_test_blocks_become_tests_with_markers_and_parametrize(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        ```python
        import pytest

        @pytest.mark.chaos
        @pytest.mark.concurrent
        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_numbers(sync_conn, n):
            assert sync_conn.execute("SELECT %s::int", (n,)).fetchone()[0] == n
        ```
        ''',
        "-m", "concurrent",
    )
    assert code == 0, output
    assert sum(1 for k, v in outcomes.items() if "test_numbers[" in k and v == "PASSED") == 3


def test_a_renamed_pggit_function_in_a_python_block_fails(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        ```python
        def test_commit(sync_conn):
            sync_conn.execute("SELECT pggit.commit_change('main', 'x')")
        ```
        '''
    )
    assert code == 1
    assert _only(outcomes, "test_commit") == "FAILED"
    assert "pggit.commit_change" in output and "does not exist" in output


def test_a_broken_sql_block_fails_and_a_declared_error_passes(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        ```sql
        SELECT pggit.create_branch('feature/ok');
        ```

        ```text output
         create_branch
        ---------------
                     2
        (1 row)
        ```

        ```sql error=invalid_parameter_value
        SELECT pggit.create_branch('bad..name');
        ```

        ```text output
        ERROR:  <text>
        ```

        ```sql
        SELECT pggit.create_branch('bad..name');
        ```

        ```text output
        ERROR:  <text>
        ```

        ```sql error=22023
        SELECT pggit.create_branch('fine');
        ```

        ```text output
         create_branch
        ---------------
                     2
        (1 row)
        ```
        '''
    )
    assert code == 1
    assert _only(outcomes, "line-4::") == "PASSED"
    assert _only(outcomes, "line-15::") == "PASSED"
    assert _only(outcomes, "line-23::") == "FAILED"
    assert _only(outcomes, "line-31::") == "FAILED"
    assert "should fail with 22023 but succeeded" in output


def test_continuation_sql_blocks_share_a_database(scratch_page):
    code, _, output = scratch_page(
        '''
        # Page

        ```sql setup
        CREATE TABLE accounts (id int);
        ```

        ```sql continuation
        SELECT 1 / (count(*) = 1)::int FROM pggit.objects WHERE object_name = 'accounts';
        ```

        ```text output
         ?column?
        ----------
                1
        (1 row)
        ```
        '''
    )
    assert code == 0, output


def test_an_unknown_marker_or_option_in_a_documented_command_fails(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        ```bash
        pytest tests/chaos -m "chaos and not nosuchmarker"
        pytest tests --no-such-option
        make nosuchtarget
        pip install -e ".[nosuchextra]"
        ```
        '''
    )
    assert code == 1
    assert _only(outcomes, "test_shell_commands_are_valid") == "FAILED"
    for problem in ("nosuchmarker", "--no-such-option", "nosuchtarget", "nosuchextra"):
        assert problem in output


def test_a_marker_expression_that_selects_nothing_fails(scratch_page):
    code, _, output = scratch_page(
        '''
        # Page

        ```bash
        pytest -m "soak and not soak"
        ```
        '''
    )
    assert code == 1
    assert "selects no test" in output


def test_illustrations_are_compiled_not_run(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        Illustration, not run:

        ```python illustration
        raise SystemExit("this must never run")
        ```

        ```python illustration
        def broken(:
        ```
        '''
    )
    assert code == 1
    assert _only(outcomes, "line-6::") == "PASSED"
    assert _only(outcomes, "line-10::") == "FAILED"
    assert not any("CodeFence" in k for k in outcomes), "pytest-markdown-docs must not run illustrations"


def test_a_quoted_symptom_must_match_the_real_message(scratch_page):
    page = '''
        # Page

        ## Division

        ```text symptom
        psycopg.errors.DivisionByZero: {quote}
        ```

        ```python
        import psycopg, pytest

        def test_reproduce(sync_conn, quoted_symptom):
            with pytest.raises(psycopg.Error) as err:
                sync_conn.execute("SELECT 1/0")
            quoted_symptom.assert_matches(f"{{type(err.value).__module__}}.{{type(err.value).__name__}}: {{err.value}}")
        ```
        '''
    code, _, output = scratch_page(page.format(quote="division by zero"))
    assert code == 0, output
    code, _, output = scratch_page(page.format(quote="divided by nothing"))
    assert code == 1
    assert "no longer matches the real one" in output


def test_a_symptom_without_a_reproducing_test_fails(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        ```text symptom
        something went wrong
        ```
        '''
    )
    assert code == 1
    assert _only(outcomes, "test_symptom_is_reproduced_by_a_test") == "FAILED"


def test_a_named_path_that_does_not_exist_fails(scratch_page):
    code, outcomes, output = scratch_page("# Page\n\nSee `tests/chaos/test_not_there.py`.\n")
    assert code == 1
    assert "tests/chaos/test_not_there.py" in output


def test_script_blocks_run_once_and_test_blocks_are_not_run_as_scripts(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        ```python fixture:sync_conn
        assert sync_conn.execute("SELECT 2").fetchone()[0] == 2
        ```

        ```python
        def test_x():
            pass
        ```
        '''
    )
    assert code == 0, output
    assert len([k for k in outcomes if "CodeFence" in k]) == 1
    assert len([k for k in outcomes if "test_x" in k]) == 1


def test_symptom_matching_allows_ellipsis_and_whitespace():
    assert symptom_matches("couldn't get a connection after ... sec", "couldn't get a connection after 5.00 sec")
    assert symptom_matches("a  b\nc", "a b c")
    assert not symptom_matches("timeout after ... sec", "refused")


def test_results_file_records_outcome_duration_and_version(scratch_page):
    results = REPO / "_build" / "doc-results.json"
    code, _, output = scratch_page(
        '''
        # Page

        ```sql
        SELECT pggit.generate_trinity_id();
        ```

        ```text output
         generate_trinity_id
        ---------------------
         <trinity-id>
        (1 row)
        ```
        '''
    )
    assert code == 0, output
    data = json.loads(results.read_text())
    page = data["pages"][scratch_page.page]  # this test's own page: other runs write theirs alongside
    assert page["blocks"]["4"]["outcome"] == "passed"
    assert page["sha256"]
    assert data["pg_versions"]


def test_a_failing_assert_in_a_test_block_shows_pytests_detail_at_the_page_line(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        ```python
        from pathlib import Path


        def test_lists_differ():
            numbers = [1, 2, 3]
            assert numbers == [1, 2, 4]


        def test_the_module_file_is_the_page():
            assert Path(__file__).name == "page.md"
        ```
        '''
    )
    assert code == 1
    assert _only(outcomes, "::line-4::test_lists_differ") == "FAILED"
    assert _only(outcomes, "::line-4::test_the_module_file_is_the_page") == "PASSED"
    # pytest's rewritten assert: the compared values and where they differ.
    assert "assert [1, 2, 3] == [1, 2, 4]" in output and "At index 2 diff: 3 != 4" in output
    # The traceback names the block's built file at the page's own line number (line 10 of the page).
    assert "page.md/line_4_" in output and ".py:10: AssertionError" in output


def test_an_unclosed_fence_is_an_error_naming_the_page_and_line(scratch_page):
    code, outcomes, output = scratch_page(
        '''
        # Page

        ```sql
        SELECT 1;
        ```

        ```python
        def test_never_collected():
            pass

        ## The rest of the page would be swallowed by the block above
        '''
    )
    assert code != 0
    assert f"{scratch_page.page}:8: the ``` fence opened here is never closed" in output
    assert not any("test_never_collected" in k and v == "PASSED" for k, v in outcomes.items())

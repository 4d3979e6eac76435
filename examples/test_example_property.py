"""Property-based example: pggit stores any commit message exactly as given.

A traditional test checks one message ("Initial commit"). This one states a
property and lets Hypothesis look for a counterexample among generated
messages (as many per run as the Hypothesis profile says): quotes, backslashes, emoji, combining accents, right-to-left marks,
placeholders such as ``%s``, and texts right at the 10,000-character limit.

Run it alone, with the statistics Hypothesis gathered:

    pytest examples/test_example_property.py --hypothesis-show-statistics
"""

import pytest
from hypothesis import given
from pggit_chaos.generators import commit_message, git_branch_name


@pytest.mark.chaos
@pytest.mark.property
@given(branch=git_branch_name(), message=commit_message())
def test_any_message_is_stored_exactly(sync_conn, branch, message):
    # One database serves every example Hypothesis tries, so each example
    # must hold on its own: it looks only at the commit it made.
    sync_conn.autocommit = True
    trinity_id = sync_conn.execute(
        "SELECT pggit.commit_changes(%s, %s)", (branch, message)
    ).fetchone()[0]

    stored, branch_head = sync_conn.execute(
        "SELECT c.message, b.head_commit_hash"
        "  FROM pggit.commits c JOIN pggit.branches b ON b.id = c.branch_id"
        " WHERE c.hash = %s",
        (trinity_id,),
    ).fetchone()

    # The property: byte for byte the same text, and the branch moved to it.
    assert stored == message
    assert branch_head == trinity_id

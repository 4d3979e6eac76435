"""get_version resolves names as PostgreSQL does; increment_version is a pure semantic-version step."""

from __future__ import annotations

import pytest

from pggit_chaos import nemesis
from tests.extension.helpers import (
    INVALID_PARAMETER_VALUE,
    assert_lends_no_rights,
    assert_nothing_written,
    expect_error,
    rows,
    scalar,
    snapshot,
    version,
)

# --------------------------------------------------------------------------
# get_version
# --------------------------------------------------------------------------


def test_get_version_of_a_new_table_is_1_0_0(conn):
    conn.execute("CREATE TABLE fresh (id int)")
    assert rows(conn, "SELECT * FROM pggit.get_version('fresh')") == [
        {"major": 1, "minor": 0, "patch": 0, "full_version": "1.0.0"}
    ]


def test_get_version_is_what_the_history_made_it(conn):
    conn.execute("CREATE TABLE evolving (id int)")
    conn.execute("ALTER TABLE evolving ADD COLUMN a int")
    conn.execute("ALTER TABLE evolving ADD COLUMN b int")
    conn.execute("COMMENT ON TABLE evolving IS 'patched'")
    assert version(conn, "evolving") == "1.2.1"
    conn.execute("ALTER TABLE evolving DROP COLUMN a")
    assert version(conn, "evolving") == "2.0.0"


def _same_name_in_two_schemas(conn):
    """Two tables named ``same``: first_s.same at 1.0.0, second_s.same at 1.1.0; search_path is first_s, public."""
    conn.execute("CREATE SCHEMA first_s")
    conn.execute("CREATE SCHEMA second_s")
    conn.execute("CREATE TABLE first_s.same (id int)")
    conn.execute("CREATE TABLE second_s.same (id int)")
    conn.execute("ALTER TABLE second_s.same ADD COLUMN b int")
    conn.execute("SET search_path = first_s, public")


def test_get_version_resolves_an_unqualified_name_through_search_path(conn):
    _same_name_in_two_schemas(conn)
    assert version(conn, "same") == "1.0.0"
    conn.execute("SET search_path = second_s, first_s, public")
    assert version(conn, "same") == "1.1.0"


def test_get_version_resolves_a_schema_qualified_name_whatever_the_search_path(conn):
    _same_name_in_two_schemas(conn)
    assert version(conn, "second_s.same") == "1.1.0"
    assert version(conn, "first_s.same") == "1.0.0"


def test_get_version_takes_quoted_mixed_case_names_as_postgresql_does(conn):
    conn.execute('CREATE SCHEMA "My Schema"')
    conn.execute('CREATE TABLE "My Schema"."MixedCase" (id int)')
    conn.execute('ALTER TABLE "My Schema"."MixedCase" ADD COLUMN b int')
    conn.execute("CREATE TABLE mixedcase (id int)")
    assert version(conn, '"My Schema"."MixedCase"') == "1.1.0"
    # Unquoted, the name folds to lower case: another table.
    conn.execute('SET search_path = "My Schema", public')
    assert version(conn, "MixedCase") == "1.0.0"
    assert version(conn, '"MixedCase"') == "1.1.0"


@pytest.mark.parametrize(
    "name",
    ["no_such_table", "no_such_schema.no_such_table", "public.no_such_table", '"NoSuchTable"'],
)
def test_get_version_returns_no_row_for_a_missing_table(conn, name):
    assert rows(conn, "SELECT * FROM pggit.get_version(%s)", (name,)) == []
    # Positive control: once the table exists, the same call finds it at 1.0.0.
    schema = name.rpartition(".")[0]
    if schema:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    conn.execute(f"CREATE TABLE {name} (id int)")
    assert version(conn, name) == "1.0.0"


@pytest.mark.parametrize("name", ["pg_catalog.pg_class", "pggit.branches", "information_schema.tables"])
def test_get_version_returns_no_row_for_an_untracked_system_table(conn, name):
    assert rows(conn, "SELECT * FROM pggit.get_version(%s)", (name,)) == []
    # Positive control: the same call on a table of an ordinary schema finds it.
    conn.execute("CREATE TABLE ordinary (id int)")
    assert version(conn, "public.ordinary") == "1.0.0"


def test_get_version_returns_no_row_for_a_table_made_while_tracking_was_off(conn):
    with nemesis.tracking_paused(conn):
        conn.execute("CREATE TABLE untracked (id int)")
    assert rows(conn, "SELECT * FROM pggit.get_version('untracked')") == []
    # Positive control: the same table made with tracking on has a version.
    conn.execute("CREATE TABLE tracked (id int)")
    assert version(conn, "tracked") == "1.0.0"


def test_get_version_returns_no_row_for_a_temporary_table(conn):
    conn.execute("CREATE TEMP TABLE scratch (id int)")
    assert rows(conn, "SELECT * FROM pggit.get_version('scratch')") == []
    # Positive control: an ordinary table of the same shape has a version.
    conn.execute("CREATE TABLE public.kept (id int)")
    assert version(conn, "public.kept") == "1.0.0"


def test_get_version_returns_no_row_for_a_dropped_table(conn):
    conn.execute("CREATE TABLE gone (id int)")
    # Positive control: before the drop, the same call finds it.
    assert version(conn, "gone") == "1.0.0"
    conn.execute("DROP TABLE gone")
    assert rows(conn, "SELECT * FROM pggit.get_version('gone')") == []


def test_get_version_reads_the_tables_record_not_another_kinds_of_the_same_name(conn):
    """pggit.objects keys its live records by kind as well as by name, so a record of another kind (here a
    function orders() that a superuser recorded at 5.0.0, after the table's own record) may share the table's
    schema and name. get_version('orders') names the table: it reports the table's version, which its DDL made.
    Positive control: both live records are there, the other kind's the newer one."""
    conn.execute("CREATE TABLE orders (id int)")
    conn.execute("ALTER TABLE orders ADD COLUMN total numeric")
    conn.execute("CREATE FUNCTION orders() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    conn.execute("INSERT INTO pggit.objects (object_type, schema_name, object_name, version_major, version_minor, "
                 "version_patch, is_active) VALUES ('FUNCTION', 'public', 'orders', 5, 0, 0, true)")
    live = rows(conn, "SELECT object_type FROM pggit.objects WHERE schema_name = 'public' AND object_name = 'orders' "
                      "AND is_active ORDER BY id")
    assert [r["object_type"] for r in live] == ["TABLE", "FUNCTION"]
    assert rows(conn, "SELECT * FROM pggit.get_version('orders')") == [
        {"major": 1, "minor": 1, "patch": 0, "full_version": "1.1.0"}
    ]


def test_get_version_writes_nothing(conn):
    conn.execute("CREATE TABLE t (id int)")
    before = snapshot(conn)
    # Positive control: the call finds the table (looking it up is what could have written).
    assert version(conn, "t") == "1.0.0"
    version(conn, "missing")
    assert_nothing_written(conn, before)


# --------------------------------------------------------------------------
# increment_version
# --------------------------------------------------------------------------


def increment(conn, major, minor, patch, kind):
    return rows(conn, "SELECT * FROM pggit.increment_version(%s, %s, %s, %s)", (major, minor, patch, kind))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("major", (2, 0, 0, "2.0.0")),
        ("minor", (1, 3, 0, "1.3.0")),
        ("patch", (1, 2, 4, "1.2.4")),
        ("MAJOR", (2, 0, 0, "2.0.0")),
        ("Minor", (1, 3, 0, "1.3.0")),
        ("pAtCh", (1, 2, 4, "1.2.4")),
    ],
)
def test_increment_version_steps_and_resets_case_insensitively(conn, kind, expected):
    assert increment(conn, 1, 2, 3, kind) == [dict(zip(("major", "minor", "patch", "full_version"), expected))]


def test_increment_version_from_zero(conn):
    assert increment(conn, 0, 0, 0, "patch")[0]["full_version"] == "0.0.1"
    assert increment(conn, 0, 0, 0, "minor")[0]["full_version"] == "0.1.0"
    assert increment(conn, 0, 0, 0, "major")[0]["full_version"] == "1.0.0"


def test_increment_version_laws_over_a_grid(conn):
    """major resets minor and patch, minor resets patch, patch only adds one: checked on 3 x 27 inputs."""
    found = conn.execute(
        """
        SELECT a, b, c, k, v.major, v.minor, v.patch, v.full_version
          FROM generate_series(0, 20, 10) a, generate_series(0, 20, 10) b, generate_series(0, 20, 10) c,
               unnest(ARRAY['major', 'minor', 'patch']) k,
               LATERAL pggit.increment_version(a, b, c, k) v
        """
    ).fetchall()
    model = {
        "major": lambda a, b, c: (a + 1, 0, 0),
        "minor": lambda a, b, c: (a, b + 1, 0),
        "patch": lambda a, b, c: (a, b, c + 1),
    }
    assert len(found) == 81
    for a, b, c, k, *result in found:
        step = model[k](a, b, c)
        assert tuple(result) == (*step, "%d.%d.%d" % step), (a, b, c, k)


@pytest.mark.parametrize("kind", ["build", "majr", "", " major", "patch ", "MAJOR+1"])
def test_increment_version_refuses_an_unknown_increment_type(conn, kind):
    before = snapshot(conn)
    expect_error(
        conn, "SELECT * FROM pggit.increment_version(1, 2, 3, %s)", (kind,),
        sqlstate=INVALID_PARAMETER_VALUE, names=[kind] if kind.strip() else [],
    )
    assert_nothing_written(conn, before)


def test_increment_version_refuses_a_null_increment_type(conn):
    expect_error(
        conn, "SELECT * FROM pggit.increment_version(1, 2, 3, NULL)", sqlstate=INVALID_PARAMETER_VALUE
    )


@pytest.mark.parametrize(
    ("major", "minor", "patch"),
    [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (-5, -5, -5)],
    ids=["major", "minor", "patch", "all"],
)
def test_increment_version_refuses_a_negative_input(conn, major, minor, patch):
    before = snapshot(conn)
    expect_error(
        conn, "SELECT * FROM pggit.increment_version(%s, %s, %s, 'patch')", (major, minor, patch),
        sqlstate=INVALID_PARAMETER_VALUE, names=[str(min(major, minor, patch))],
    )
    assert_nothing_written(conn, before)


def test_increment_version_is_declared_immutable(conn):
    volatility = scalar(
        conn,
        "SELECT provolatile FROM pg_proc WHERE proname = 'increment_version' "
        "AND pronamespace = 'pggit'::regnamespace",
    )
    assert volatility == "i"


def test_increment_version_runs_with_the_callers_rights(conn, connect, make_role):
    """increment_version lends no rights: a role denied a function it calls (lower, for the increment type) is
    denied it through increment_version too (it would run with the extension owner's rights if it were SECURITY
    DEFINER). Positive controls: the owner's call steps the version, and so does the role's once it holds the right."""
    role = make_role()
    assert_lends_no_rights(conn, connect(user=role), role, builtin="lower(text)",
                           probe="SELECT pg_catalog.lower('Minor')",
                           call="SELECT full_version FROM pggit.increment_version(1, 2, 3, 'Minor')",
                           answer="1.3.0")

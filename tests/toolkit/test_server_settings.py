"""The run's server settings: options before environment variables, and one clear error for a bad value."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pggit_chaos import paths
from pggit_chaos.server import ServerSettings, SettingsError

from tests import forked_pytest

REPO = paths.REPO


def test_an_option_wins_over_its_environment_variable():
    settings = ServerSettings.resolve({"pg_version": "18"}, {"PGGIT_PG_VERSION": "abc"})
    assert settings.pg_version == 18


def test_an_environment_variable_fills_an_option_not_given():
    settings = ServerSettings.resolve({"pg_version": None}, {"PGGIT_PG_VERSION": "16"})
    assert settings == ServerSettings(pg_version=16)


def test_an_empty_environment_variable_counts_as_unset():
    assert ServerSettings.resolve({}, {"PGGIT_PG_VERSION": "", "PGGIT_TEST_DSN": ""}) == ServerSettings()


def test_a_bad_version_names_the_variable_and_the_value():
    with pytest.raises(SettingsError) as err:
        ServerSettings.resolve({}, {"PGGIT_PG_VERSION": "abc"})
    assert str(err.value) == "PGGIT_PG_VERSION must be a PostgreSQL major version number, got 'abc'"


@pytest.mark.parametrize("value", ["16.2", "0", "-1", "sixteen"])
def test_a_bad_version_option_names_the_option(value):
    with pytest.raises(SettingsError, match=f"^--pg-version must be a PostgreSQL major version number, got '{value}'$"):
        ServerSettings.resolve({"pg_version": value}, {})


def test_missing_paths_are_named_with_where_they_came_from(tmp_path):
    missing = str(tmp_path / "nowhere")
    cases = [({"pg_bindir": missing}, {}, "--pg-bindir"),
             ({}, {"PGGIT_PG_BINDIR": missing}, "PGGIT_PG_BINDIR"),
             ({}, {"PG_CONFIG": missing}, "PG_CONFIG"),
             ({"pggit_sql": missing}, {}, "--pggit-sql")]
    for options, environ, source in cases:
        with pytest.raises(SettingsError) as err:
            ServerSettings.resolve(options, environ)
        assert str(err.value).startswith(f"{source} must be ")
        assert f"got {missing!r}" in str(err.value)


def test_a_malformed_dsn_is_named():
    with pytest.raises(SettingsError, match="^PGGIT_TEST_DSN must be a PostgreSQL connection string, got 'not a dsn'"):
        ServerSettings.resolve({}, {"PGGIT_TEST_DSN": "not a dsn"})


def test_with_a_dsn_the_settings_for_starting_a_server_are_not_read(tmp_path):
    """An existing server needs no binaries: a stray PG_CONFIG must not stop the run."""
    settings = ServerSettings.resolve({"dsn": "host=127.0.0.1 user=postgres"},
                                      {"PG_CONFIG": str(tmp_path / "nowhere"), "PGGIT_PG_VERSION": "abc"})
    assert settings == ServerSettings(dsn="host=127.0.0.1 user=postgres")


@pytest.mark.parametrize(("options", "environ", "message"), [
    ({"dsn": "host=db", "pggit_sql": "x.sql"}, {}, "--dsn and --pggit-sql cannot be used together"),
    ({"dsn": "host=db", "pg_version": "17"}, {}, "--dsn and --pg-version cannot be used together"),
    ({"pg_version": "17"}, {"PGGIT_TEST_DSN": "host=db"}, "PGGIT_TEST_DSN and --pg-version cannot be used together"),
    ({"dsn": "host=db", "pg_config": "/x/pg_config"}, {}, "--dsn and --pg-config cannot be used together"),
])
def test_an_option_for_starting_a_server_is_refused_with_a_dsn_naming_both(options, environ, message):
    """Silently ignored before: the run would test the DSN's pggit, not the script or version asked for."""
    with pytest.raises(SettingsError) as err:
        ServerSettings.resolve(options, environ)
    assert str(err.value).startswith(message + ": ")


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        ServerSettings().pg_version = 16  # type: ignore[misc]


def _inner_run(tmp_path, *args: str, **environ: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_x.py").write_text("def test_x(pg_server):\n    pass\n")
    # The outer run's own settings must not leak into the run under test.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PGGIT_", "PYTEST_XDIST")) and k != "PG_CONFIG"}
    env.update(PYTHONPATH=str(REPO), **environ)
    return forked_pytest.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_x.py"), "-q", "-p", "no:cacheprovider",
         "-p", "pggit_chaos.plugin.server_fixtures", "-c", os.devnull, "--rootdir", str(tmp_path), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(("args", "environ", "message"), [
    ((), {"PGGIT_PG_VERSION": "abc"}, "PGGIT_PG_VERSION must be a PostgreSQL major version number, got 'abc'"),
    (("--pg-version", "abc"), {}, "--pg-version must be a PostgreSQL major version number, got 'abc'"),
    (("--dsn", "host=127.0.0.1", "--pggit-sql", "x.sql"), {}, "--dsn and --pggit-sql cannot be used together"),
])
def test_a_bad_value_stops_the_run_with_its_message_and_no_traceback(tmp_path, args, environ, message):
    result = _inner_run(tmp_path, *args, **environ)
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert message in output
    assert "Traceback" not in output and "SettingsError" not in output, output

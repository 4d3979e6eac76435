"""The plugin's Hypothesis profiles load when Hypothesis is first imported, and only then.

A run with no property in it never imports Hypothesis (about 0.15
CPU-seconds a pytest process); a module that uses Hypothesis finds the
profile in place when its decorators run, since a test's ``@settings``
copies the profile loaded at that moment. Each case runs in a pytest of
its own, as the first import of a process is what is checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLAIN = '''
import sys


def test_nothing_imported_hypothesis():
    assert "hypothesis" not in sys.modules
'''

PROPERTY = '''
from hypothesis import given, settings, strategies as st


@settings(deadline=None)
@given(st.integers())
def test_decorated_under_the_profile(n):
    pass


def test_the_decorators_copied_the_selected_profile():
    own = test_decorated_under_the_profile._hypothesis_internal_use_settings
    smoke = settings.get_profile("smoke").max_examples
    assert smoke != settings.get_profile("default").max_examples  # else the check could not tell them apart
    assert (settings.default.max_examples, own.max_examples) == (smoke, smoke)
'''


def _run(tmp_path: Path, name: str, source: str) -> subprocess.CompletedProcess:
    (tmp_path / name).write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "pytest", name, "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-rA"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "HYPOTHESIS_PROFILE": "smoke"},  # a few examples where Hypothesis's default is 100
    )


def test_a_run_without_properties_never_imports_hypothesis(tmp_path):
    done = _run(tmp_path, "test_plain.py", PLAIN)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout + done.stderr


def test_a_module_using_hypothesis_is_decorated_under_the_selected_profile(tmp_path):
    done = _run(tmp_path, "test_property.py", PROPERTY)
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout + done.stderr

"""The chaos suite's conftest.

Markers are declared in pyproject.toml (one list, --strict-markers); fixtures
and Hypothesis profiles come from fixtures.py, registered in the root
conftest so the guides under docs/ and the examples share them.
"""

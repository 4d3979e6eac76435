"""The GitHub workflows are valid and safe, checked offline with maintained linters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def test_there_are_workflows():
    assert {w.name for w in WORKFLOWS} >= {"pr.yml", "main.yml", "weekly.yml", "docs.yml"}


def test_workflows_match_the_github_workflow_schema():
    """check-jsonschema ships GitHub's workflow schema, so this needs no network."""
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_have_no_zizmor_findings():
    """No template injection, no over-broad permissions, no unpinned actions, no persisted credentials."""
    zizmor = shutil.which("zizmor") or str(Path(sys.executable).parent / "zizmor")
    if not Path(zizmor).exists():
        pytest.skip("zizmor is not installed (it comes with the dev extra)")
    result = subprocess.run([zizmor, "--offline", str(REPO / ".github" / "workflows")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr

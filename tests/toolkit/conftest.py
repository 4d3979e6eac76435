"""Fixtures the toolkit's own tests share."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def cluster_base(monkeypatch) -> Path:
    """A base folder of the test's own for cluster directories (``PGGIT_CLUSTER_DIR``), which the server's
    account can reach (tmp_path is private): a sweep there meets only what the test made, and the sweeps of
    clusters other tests start meanwhile never see it."""
    base = Path(tempfile.mkdtemp(prefix="pggit-cluster-base-test-"))
    base.chmod(0o711)
    monkeypatch.setenv("PGGIT_CLUSTER_DIR", str(base))
    yield base
    shutil.rmtree(base, ignore_errors=True)

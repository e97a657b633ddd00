"""Shared fixtures: paths to the project and to ../shared."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"real-world corpus not found at {CORPUS}")
    return CORPUS


from dbfixtures import *  # noqa: E402, F401, F403  (db_url, session_factory on SQLite and PostgreSQL)

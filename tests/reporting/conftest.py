"""Fixtures of the reporting tests."""

from __future__ import annotations

import pytest

from dialbot.reporting.model import ReportData

from .sample import build_report


@pytest.fixture
def report() -> ReportData:
    return build_report()

"""Fixtures shared by the integration tests (the servers themselves are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.workers import CcstreamProcess


@pytest.fixture()
def procs() -> Iterator[list[CcstreamProcess]]:
    """Worker processes a test starts; stopped after it, whatever happened."""
    started: list[CcstreamProcess] = []
    yield started
    for p in started:
        p.stop(timeout=20)

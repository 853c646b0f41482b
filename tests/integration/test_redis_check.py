"""stream.stack.rundir.redis_answers, the one Redis reachability check, against a real password-protected
redis-server: the right password answers; a wrong one, none, or nothing listening does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.stack import rundir
from stream.stack.servers import RedisServer

pytestmark = pytest.mark.integration


def test_redis_answers_only_with_the_password(tmp_path: Path) -> None:
    with RedisServer(tmp_path / "redis", password="s3cret-pw") as server:
        port = server.port
        assert rundir.redis_answers(f"redis://:s3cret-pw@127.0.0.1:{port}/0")
        assert rundir.redis_answers(f"redis://:s3cret-pw@127.0.0.1:{port}/3")  # SELECT db after AUTH
        assert not rundir.redis_answers(f"redis://:wrong@127.0.0.1:{port}/0")
        assert not rundir.redis_answers(f"redis://127.0.0.1:{port}/0")  # NOAUTH
    assert not rundir.redis_answers(f"redis://:s3cret-pw@127.0.0.1:{port}/0", timeout=0.2)  # stopped

"""`ccstream up` with CCSTREAM_REDIS_URL naming a Redis that does not answer yet.

Fed: an `up` whose CCSTREAM_REDIS_URL points at a free port, then a real redis-server started on that port,
then one SessionStart hook. Expected: `up` says the Redis does not answer and starts no Redis of its own
(every part uses the configured one); once that Redis runs, the hook's event reaches session_events through
it, once.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from stream.stack.servers import RedisServer, free_port
from tests.integration.upstack import UpStack

pytestmark = pytest.mark.integration


def test_a_configured_redis_that_does_not_answer_is_used_not_replaced(tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    stack = UpStack(tmp_path, extra_env={"CCSTREAM_REDIS_URL": url})
    stack.start()
    try:
        log = stack.log_path.read_text()
        assert f"redis     {url} (yours, NOT ANSWERING yet" in log, log
        assert "redis-server" not in stack.worker_info()["children"], "up started a Redis of its own"
        with RedisServer(tmp_path / "redis", port=port):
            sid = str(uuid.uuid4())
            done = stack.hook({"session_id": sid, "hook_event_name": "SessionStart", "source": "startup",
                               "cwd": str(tmp_path), "transcript_path": str(stack.projects / "p" / f"{sid}.jsonl")})
            assert done.returncode == 0, done.stderr
            stack.wait_for(lambda: stack.scalar(
                f"SELECT count() AS n FROM session_events FINAL WHERE session_id = '{sid}'") == 1, 90,
                "the hook's event through the configured Redis")
    finally:
        assert stack.stop() == 0, stack.logs()

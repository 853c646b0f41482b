"""The run dir owner: 0600 secrets written atomically, the lock, the recorded addresses, the Redis check."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stream.config import load_settings
from stream.stack import rundir
from stream.stack.rundir import AlreadyRunning, RunDir


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_secrets_are_0600_random_and_kept(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.api_token() is None  # nothing is created unless asked
    token = run.api_token(create=True)
    assert token is not None and len(token) >= 43  # 32 random bytes, URL-safe base64
    assert _mode(run.path / rundir.API_TOKEN) == 0o600
    assert _mode(run.path) == 0o700
    assert run.api_token(create=True) == token  # kept across starts
    password = run.redis_password(create=True)
    assert password and password != token
    assert _mode(run.path / rundir.REDIS_PASSWORD) == 0o600
    assert run.rotate_api_token() != token


def test_a_loosened_secret_is_replaced(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    token = run.api_token(create=True)
    os.chmod(run.path / rundir.API_TOKEN, 0o644)
    fresh = run.api_token(create=True)
    assert fresh != token and _mode(run.path / rundir.API_TOKEN) == 0o600


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.write("x", "one")
    run.write("x", "two")
    assert run.read("x") == "two"
    assert sorted(p.name for p in run.path.iterdir()) == ["x"]
    assert _mode(run.path / "x") == 0o600


def test_login_token_is_taken_once(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    login = run.new_login_token()
    assert _mode(run.path / rundir.LOGIN_TOKEN) == 0o600
    assert run.take_login_token() == login
    assert run.take_login_token() is None


def test_lock_and_worker_url(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert not run.is_running()
    run.record_worker({"web_url": "http://127.0.0.1:1"})
    assert run.worker_url() is None  # a stale worker.json without a running `up` is ignored
    lock = run.acquire_lock()
    try:
        assert run.is_running()
        assert run.worker_url() == "http://127.0.0.1:1"
        with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
            run.acquire_lock()
        assert _mode(run.path / rundir.LOCK) == 0o600
    finally:
        lock.close()
    assert not run.is_running()
    run.clear_worker()
    assert run.worker_info() == {}


def test_redis_url_carries_the_password_but_the_file_does_not(tmp_path: Path) -> None:
    s = load_settings(env={}, data_dir=tmp_path)
    run = RunDir.of(s)
    assert rundir.resolve_redis_url(s) is None
    run.record_redis_url("redis://:hunter2@127.0.0.1:7000/0", embedded=True)
    assert "hunter2" not in (run.read(rundir.REDIS_URL) or "")
    assert rundir.resolve_redis_url(s) == "redis://127.0.0.1:7000/0"  # no password file: none added
    pw = run.redis_password(create=True)
    assert rundir.resolve_redis_url(s) == f"redis://:{pw}@127.0.0.1:7000/0"
    # a Redis of the user's keeps its own password (or none), never the embedded one's
    run.record_redis_url("redis://127.0.0.1:6380/0", embedded=False)
    assert rundir.resolve_redis_url(s) == "redis://127.0.0.1:6380/0"
    run.record_redis_url("redis://:mine@127.0.0.1:6380/0", embedded=False)
    assert rundir.resolve_redis_url(s) == "redis://:mine@127.0.0.1:6380/0"
    assert rundir.resolve_redis_url(s.with_overrides(redis_url="redis://h:1/2")) == "redis://h:1/2"


def test_url_password_helpers() -> None:
    assert rundir.strip_password("redis://u:p@h:1/0") == "redis://u@h:1/0"
    assert rundir.strip_password("redis://h:1/0") == "redis://h:1/0"
    assert rundir.with_password("redis://h:1/0", "a/b") == "redis://:a%2Fb@h:1/0"
    assert rundir.with_password("unix:///s.sock", "x") == "unix:///s.sock?password=x"


def test_redis_answers_false_when_nothing_listens() -> None:
    from stream.stack.servers import free_port

    assert not rundir.redis_answers(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    assert not rundir.redis_answers("http://127.0.0.1:1/")

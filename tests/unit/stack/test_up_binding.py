"""Binding the worker beyond loopback needs an explicit token; `up` refuses before it starts anything."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from stream.config import load_settings
from stream.stack.up import up


def test_up_refuses_a_public_bind_without_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    s = load_settings(env={}, data_dir=tmp_path, web_host="0.0.0.0", claude_roots=[tmp_path / "p"])
    assert up(s, out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert "CCSTREAM_WEB_TOKEN" in err and "TLS" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing was started or written


def test_the_worker_guard_refuses_it_too(tmp_path: Path) -> None:
    from agents.web import build_guard

    rt = SimpleNamespace(settings=load_settings(env={}, data_dir=tmp_path, web_host="10.1.2.3"))
    with pytest.raises(SystemExit, match="CCSTREAM_WEB_TOKEN"):
        build_guard(rt)  # type: ignore[arg-type]
    rt = SimpleNamespace(settings=load_settings(env={}, data_dir=tmp_path, web_host="10.1.2.3",
                                                web_token="k" * 43))
    guard = build_guard(rt)  # type: ignore[arg-type]
    assert guard.host_allowed("10.1.2.3:6066") and guard.host_allowed("localhost")
    assert not (tmp_path / "run" / "api.token").exists()  # the configured token is the one used
    rt = SimpleNamespace(settings=load_settings(env={}, data_dir=tmp_path, web_host="10.1.2.3", web_token="short"))
    with pytest.raises(SystemExit, match="128 bits"):
        build_guard(rt)  # type: ignore[arg-type]
    local = build_guard(SimpleNamespace(settings=load_settings(env={}, data_dir=tmp_path)))  # type: ignore[arg-type]
    assert (tmp_path / "run" / "api.token").exists()  # a loopback worker makes its own when `up` did not
    assert local.authorized({"Authorization": "Bearer " + (tmp_path / "run" / "api.token").read_text().strip()}, {})

"""The receiver's request rules (stream/otel/guard.py)."""

from __future__ import annotations

import gzip

import pytest

from stream.otel import guard


def test_only_the_two_otlp_encodings_are_accepted() -> None:
    assert guard.content_kind("application/x-protobuf") == guard.PROTOBUF
    assert guard.content_kind("application/json; charset=utf-8") == guard.JSON
    assert guard.content_kind("Application/JSON") == guard.JSON
    for bad in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "", None):
        with pytest.raises(guard.Refused) as exc:
            guard.content_kind(bad)
        assert exc.value.status == 415
        assert "application/x-protobuf" in exc.value.message  # says what to send instead


def test_loopback_needs_no_token_anything_else_does() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        guard.check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.5", "::"):
        with pytest.raises(ValueError, match="CCSTREAM_OTLP_TOKEN"):
            guard.check_bind(host, None)
        guard.check_bind(host, "s3cret")


def test_the_bearer_token_is_required_when_configured() -> None:
    guard.check_auth(None, None)  # no token configured: loopback, anyone local may send
    guard.check_auth("Bearer s3cret", "s3cret")
    guard.check_auth("bearer  s3cret ", "s3cret")
    for bad in (None, "", "Bearer wrong", "Basic s3cret", "s3cret", "Bearer s3cre", "Bearer s3cret2"):
        with pytest.raises(guard.Refused) as exc:
            guard.check_auth(bad, "s3cret")
        assert exc.value.status == 401
        assert "OTEL_EXPORTER_OTLP_HEADERS" in exc.value.message


def test_size_limits_hold_before_and_after_gzip() -> None:
    limit = 10_000
    guard.check_length(limit, limit)
    with pytest.raises(guard.Refused) as exc:
        guard.check_length(limit + 1, limit)
    assert exc.value.status == 413
    assert guard.inflate(b"x" * limit, None, limit) == b"x" * limit
    with pytest.raises(guard.Refused) as exc:
        guard.inflate(b"x" * (limit + 1), "identity", limit)
    assert exc.value.status == 413
    body = b'{"resourceLogs": []}'
    assert guard.inflate(gzip.compress(body), "gzip", limit) == body
    bomb = gzip.compress(b"\0" * (50 * limit))  # small on the wire, 50x the limit inflated
    assert len(bomb) < limit
    with pytest.raises(guard.Refused) as exc:
        guard.inflate(bomb, "gzip", limit)
    assert exc.value.status == 413


def test_bad_gzip_and_unknown_encodings_are_refused() -> None:
    with pytest.raises(guard.Refused) as exc:
        guard.inflate(b"not gzip at all", "gzip", 1000)
    assert exc.value.status == 400
    with pytest.raises(guard.Refused) as exc:
        guard.inflate(gzip.compress(b"x" * 500)[:-12], "gzip", 1000)
    assert exc.value.status == 400 and "truncated" in exc.value.message
    with pytest.raises(guard.Refused) as exc:
        guard.inflate(b"abc", "br", 1000)
    assert exc.value.status == 415

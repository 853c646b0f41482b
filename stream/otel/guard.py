"""The OTLP receiver's request rules, pure and small: where it may listen, who may send, what it accepts.

* Loopback by default. Bound beyond loopback it requires a bearer token (`otlp_token`), which Claude Code's
  exporter sends through ``OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <token>"``; compared in constant
  time.
* Only ``application/x-protobuf`` and ``application/json`` bodies (the two OTLP/HTTP encodings). A browser
  cannot send either cross-site without a CORS preflight, and the receiver never answers one with CORS
  headers, so a web page cannot post telemetry into the store.
* Size limits per request, on the body as sent and on the body after gzip (a small gzip bomb is refused
  before it is inflated past the limit).
"""

from __future__ import annotations

import hmac
import zlib

from stream.stack.servers import is_loopback

JSON, PROTOBUF = "json", "protobuf"


class Refused(ValueError):
    """A request the receiver refuses, with the HTTP status to answer and a message saying what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_bind(host: str, token: str | None) -> None:
    """Raise ValueError (shown to the user as one line) when binding `host` would expose the receiver
    without a token."""
    if not is_loopback(host) and not token:
        raise ValueError(f"the OTLP receiver may listen on {host} (beyond loopback) only with a bearer token: "
                         "set CCSTREAM_OTLP_TOKEN, or CCSTREAM_OTLP_HOST=127.0.0.1")


def check_auth(authorization: str | None, token: str | None) -> None:
    """With a token configured, the request must carry ``Authorization: Bearer <token>``."""
    if not token:
        return
    given = (authorization or "").strip()
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise Refused(401, "missing or wrong bearer token: set OTEL_EXPORTER_OTLP_HEADERS="
                           "\"Authorization=Bearer <token>\" to the receiver's CCSTREAM_OTLP_TOKEN")


def content_kind(content_type: str | None) -> str:
    """JSON or PROTOBUF from the Content-Type header (parameters such as charset ignored)."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime == "application/x-protobuf":
        return PROTOBUF
    if mime == "application/json":
        return JSON
    raise Refused(415, f"unsupported content type {mime or '(none)'!r}: send application/x-protobuf or "
                       "application/json (OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf or http/json)")


def check_length(content_length: int | None, limit: int) -> None:
    """Refuse early on a declared length over the limit (the body is not read at all)."""
    if content_length is not None and content_length > limit:
        raise Refused(413, f"request body of {content_length} bytes exceeds the limit of {limit} bytes "
                           "(CCSTREAM_OTLP_MAX_BODY_BYTES); export smaller batches")


def inflate(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body after its Content-Encoding (identity or gzip), never more than `limit` bytes."""
    enc = (encoding or "identity").strip().lower()
    if len(body) > limit:
        raise Refused(413, f"request body of {len(body)} bytes exceeds the limit of {limit} bytes "
                           "(CCSTREAM_OTLP_MAX_BODY_BYTES); export smaller batches")
    if enc in ("", "identity"):
        return body
    if enc != "gzip":
        raise Refused(415, f"unsupported content encoding {enc!r}: send gzip or none")
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
        if len(out) > limit or d.unconsumed_tail:
            raise Refused(413, f"request body inflates beyond the limit of {limit} bytes "
                               "(CCSTREAM_OTLP_MAX_BODY_BYTES); export smaller batches")
        out += d.flush()
    except zlib.error as exc:
        raise Refused(400, f"body is not valid gzip: {exc}") from exc
    if not d.eof:
        raise Refused(400, "body is truncated gzip")
    if len(out) > limit:
        raise Refused(413, f"request body inflates beyond the limit of {limit} bytes")
    return out

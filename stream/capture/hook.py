"""`ccstream hook`: the Claude Code hook. Stdin payload → one entry in the Redis stream, or the local spool.

Claude Code runs this as a new process for every hook event and waits for it, so it must be quick and must
never fail the session: it always exits 0 and writes nothing to stdout (SessionStart stdout would be added to
Claude's context). It talks to Redis with a minimal RESP client over a plain socket (connect and reply
timeouts of ``settings.hook_timeout``, 50 ms by default) and imports only the standard library: redis-py alone
costs more than the whole hook's budget.

Each event gets its own id (``event_id``). It reaches the stream through a Lua script that adds it only if its
id was not added before (a ``SET NX`` marker with a TTL), so a reply lost to a timeout, a spool drained twice or
a drainer killed half way never puts the same event in the stream twice. The stream is never trimmed here:
only the bridge trims, and only what its group acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from stream.capture import spool
from stream.capture.resp import Resp, RespError, encode_command
from stream.config import Settings, load_settings
from stream.stack import rundir

# KEYS[1] stream, KEYS[2] seen-marker; ARGV[1] event JSON, ARGV[2] marker TTL seconds.
# Returns the new entry id, or nil when this event id was already added.
XADD_ONCE_LUA = (
    "if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then "
    "return redis.call('XADD', KEYS[1], '*', 'event', ARGV[1]) end "
    "return false"
)
SEEN_TTL_SECONDS = 7 * 24 * 3600  # how long a repeat of an event id is recognised at the stream's door
HOOK_DRAIN_LIMIT = 1000  # spooled events one hook call sends at most (the bridge drains the rest)


class Rejected(ValueError):
    """A payload the hook cannot record as an event; the message is the reason kept in the reject file."""


# ---- pure logic -------------------------------------------------------------------------------------------


def resolve_redis_url(settings: Settings) -> str | None:
    """The configured Redis URL, else the one the embedded stack recorded in its run dir (with its password)."""
    return rundir.resolve_redis_url(settings)


def seen_key(stream_key: str, event_id: str) -> str:
    return f"{stream_key}:seen:{event_id}"


def parse_payload(raw: bytes) -> dict[str, Any]:
    """The hook JSON as a dict, or :class:`Rejected` saying what is wrong with it."""
    if not raw.strip():
        raise Rejected("empty payload on stdin")
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise Rejected(f"payload is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Rejected(f"payload is a JSON {type(obj).__name__}, not an object")
    for name in ("session_id", "hook_event_name"):
        value = obj.get(name)
        if not isinstance(value, str) or not value.strip():
            raise Rejected(f"required field {name!r} is missing or not a non-empty string")
    tp = obj.get("transcript_path")
    if tp is not None and not isinstance(tp, str):
        raise Rejected(f"transcript_path is a {type(tp).__name__}, not a string")
    return obj


def build_event(payload: dict[str, Any], *, host: str, user: str, received_at: float,
                event_id: str | None = None) -> dict[str, Any]:
    """The SessionEvent (as a dict in field order of stream.contract.session_event.SessionEvent) for a validated payload.

    Kept as a plain dict so the hook need not import dataclasses machinery; SessionEvent.decode reads it.
    """
    cwd = payload.get("cwd")
    return {
        "event_id": event_id or os.urandom(16).hex(),
        "hook_event_name": payload["hook_event_name"],
        "session_id": payload["session_id"],
        "transcript_path": payload.get("transcript_path"),
        "cwd": cwd if isinstance(cwd, str) else None,
        "host": host,
        "user": user,
        "received_at": received_at,
        "payload": payload,
        "stream_id": None,
    }


def encode_event(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def xadd_once_command(stream_key: str, event_json: str, event_id: str) -> bytes:
    return encode_command("EVAL", XADD_ONCE_LUA, 2, stream_key, seen_key(stream_key, event_id),
                          event_json, SEEN_TTL_SECONDS)


def send_events(client: Resp, stream_key: str, events: list[str]) -> list[Any]:
    """Add events (JSON strings with an event_id) to the stream once each; raises on any error reply."""
    cmds = [xadd_once_command(stream_key, e, str(json.loads(e)["event_id"])) for e in events]
    replies = client.pipeline(cmds)
    for r in replies:
        if isinstance(r, RespError):
            raise r
    return replies


# ---- the hook ------------------------------------------------------------------------------------------


def capture(raw: bytes, settings: Settings, *, received_at: float | None = None) -> str:
    """Record one hook payload. Returns "sent", "spooled" or "rejected"; never raises for Redis trouble."""
    received_at = time.time() if received_at is None else received_at
    try:
        payload = parse_payload(raw)
    except Rejected as exc:
        spool.append_reject(settings.spool_dir, str(exc), raw, received_at)
        return "rejected"
    event = build_event(payload, host=settings.host, user=settings.user, received_at=received_at)
    line = encode_event(event)
    url = resolve_redis_url(settings)
    if url is None:
        spool.append_event(settings.spool_dir, line)
        return "spooled"
    try:
        client = Resp(url, settings.hook_timeout)
    except (OSError, ValueError, RespError):
        spool.append_event(settings.spool_dir, line)
        return "spooled"
    try:
        try:
            reply = client.pipeline([xadd_once_command(settings.stream_key, line, event["event_id"])])[0]
            if isinstance(reply, RespError):
                raise reply
        except (OSError, RespError, ValueError):
            # the entry may or may not have landed; the seen-marker makes a later re-send harmless
            spool.append_event(settings.spool_dir, line)
            return "spooled"
        if spool.has_pending(settings.spool_dir):
            # what fails here is left for the next hook or the bridge
            with contextlib.suppress(OSError, RespError, ValueError):
                spool.drain(settings.spool_dir, lambda batch: send_events(client, settings.stream_key, batch),
                            limit=HOOK_DRAIN_LIMIT)
        return "sent"
    finally:
        client.close()


def _fallback_settings() -> Settings:
    """When the config cannot be read the event is still kept: spool it under the default data dir."""
    data_dir = Path(os.environ.get("CCSTREAM_DATA_DIR", str(Path.home() / ".ccstream"))).expanduser()
    return Settings(data_dir=data_dir)


HELP = """\
Record a Claude Code hook event. Claude Code runs this with the hook's JSON payload on stdin (install it with
`ccstream hooks install`). The event goes to the Redis stream (CCSTREAM_REDIS_URL, or the Redis `ccstream up`
started); when Redis does not answer within CCSTREAM_HOOK_TIMEOUT seconds it is kept in <data_dir>/spool and
sent later. Payloads that are not JSON or lack session_id/hook_event_name are kept in
<data_dir>/spool/rejects.jsonl. Always exits 0 and prints nothing, so it can never disturb a session."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:  # argparse only when asked something: Claude Code runs `ccstream hook` bare
        import argparse

        parser = argparse.ArgumentParser(prog="ccstream hook", description=HELP,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        try:
            parser.parse_known_args(args)
        except SystemExit as exc:
            return int(exc.code or 0) if exc.code in (0, None) else 0
    try:
        raw = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    except (OSError, ValueError):
        raw = b""
    try:
        try:
            settings = load_settings()
        except Exception as exc:
            settings = _fallback_settings()
            sys.stderr.write(f"ccstream hook: configuration error, using defaults: {exc}\n")
        capture(raw, settings)
    except Exception as exc:  # never fail Claude Code
        sys.stderr.write(f"ccstream hook: {type(exc).__name__}: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""OTLP/JSON bodies shaped like Claude Code's documented telemetry (code.claude.com/docs monitoring-usage):
events as logs (body `claude_code.<event>`, attribute `event.name`, the standard attributes session.id,
user.account_uuid, user.email, organization.id, terminal.type, app.version) and the metrics
claude_code.cost.usage (USD, by model) and claude_code.token.usage (by type and model), delta temporality
(Claude Code's default)."""

from __future__ import annotations

import json
from typing import Any

SERVICE = "claude-code"
VERSION = "2.0.14"
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


def _v(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _v(v)} for k, v in d.items()]


def identity(session_id: str, email: str = "ada@example.com", account: str = "acc-1",
             org: str = "org-1") -> dict[str, Any]:
    return {"session.id": session_id, "user.account_uuid": account, "user.email": email,
            "organization.id": org, "user.id": "u-hash-1", "terminal.type": "vscode", "app.version": VERSION}


def resource() -> dict[str, Any]:
    return {"attributes": attrs({"service.name": SERVICE, "service.version": VERSION, "os.type": "linux",
                                 "host.arch": "amd64"})}


def event(name: str, session_id: str, seq: int, ts_ns: int, **fields: Any) -> dict[str, Any]:
    a = {"event.name": name, "event.timestamp": "2026-01-01T00:00:00.000Z", "event.sequence": seq,
         **identity(session_id), **fields}
    return {"timeUnixNano": str(ts_ns), "observedTimeUnixNano": str(ts_ns + 1000),
            "body": {"stringValue": f"claude_code.{name}"}, "attributes": attrs(a)}


def logs_body(records: list[dict[str, Any]]) -> bytes:
    return json.dumps({"resourceLogs": [{"resource": resource(), "scopeLogs": [{
        "scope": {"name": "com.anthropic.claude_code.events", "version": VERSION},
        "logRecords": records}]}]}).encode()


def session_events(session_id: str, request_ids: list[str], t0: int = T0) -> list[dict[str, Any]]:
    """A session as Claude Code reports it: a prompt, one api_request per request id (the first one after a
    failed attempt: an api_error with attempt 1), a tool decision and its result."""
    out = [event("user_prompt", session_id, 0, t0, prompt_length=42, **{"prompt.id": "p-1"})]
    seq = 1
    for i, rid in enumerate(request_ids):
        ts = t0 + (i + 1) * 1_000_000_000
        if i == 0:
            out.append(event("api_error", session_id, seq, ts - 500_000_000, model="claude-sonnet-4-5-20250929",
                             error="Overloaded", status_code="529", duration_ms=812, attempt=1, request_id=rid))
            seq += 1
        out.append(event("api_request", session_id, seq, ts, model="claude-sonnet-4-5-20250929",
                         cost_usd=0.0123 * (i + 1), duration_ms=1500 + i, input_tokens=10 + i, output_tokens=200,
                         cache_read_tokens=3000, cache_creation_tokens=150, request_id=rid))
        seq += 1
    out.append(event("tool_decision", session_id, seq, t0 + 9_000_000_000, tool_name="Bash", decision="accept",
                     source="config"))
    out.append(event("tool_result", session_id, seq + 1, t0 + 9_500_000_000, tool_name="Bash", success="true",
                     duration_ms=33, decision="accept", source="config"))
    return out


def metrics_body(session_id: str, t0: int = T0, cost: float = 0.0369, tokens: dict[str, int] | None = None
                 ) -> bytes:
    tokens = tokens or {"input": 33, "output": 600, "cacheRead": 9000, "cacheCreation": 450}
    model = "claude-sonnet-4-5-20250929"
    ident = identity(session_id)
    cost_point = {"attributes": attrs({**ident, "model": model}), "startTimeUnixNano": str(t0),
                  "timeUnixNano": str(t0 + 60_000_000_000), "asDouble": cost}
    token_points = [{"attributes": attrs({**ident, "model": model, "type": k}), "startTimeUnixNano": str(t0),
                     "timeUnixNano": str(t0 + 60_000_000_000), "asInt": str(v)} for k, v in tokens.items()]
    return json.dumps({"resourceMetrics": [{"resource": resource(), "scopeMetrics": [{
        "scope": {"name": "com.anthropic.claude_code", "version": VERSION},
        "metrics": [
            {"name": "claude_code.cost.usage", "description": "Cost of the Claude Code session", "unit": "USD",
             "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": [cost_point]}},
            {"name": "claude_code.token.usage", "description": "Number of tokens used", "unit": "tokens",
             "sum": {"aggregationTemporality": 1, "isMonotonic": True, "dataPoints": token_points}},
        ]}]}]}).encode()

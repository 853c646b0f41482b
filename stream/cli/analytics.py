"""`ccstream sessions | show | tokens | tools | status`: the analytics commands.

Rich tables by default, ``--json`` (one JSON document) or ``--csv`` everywhere, ``--since/--until`` (UTC days,
YYYY-MM-DD or YYYYMMDD) and ``--project`` (substring of the cwd) where they make sense. Queries go through
``stream.analytics.sqlclient.run_query`` (the running worker, or the store opened directly); each ``main_*`` also takes
a ``query`` callable so tests and other tools can point it at any ClickHouse client.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from stream.analytics import queries as q
from stream.analytics.queries import Filters, Query

# ---- shared plumbing ------------------------------------------------------------------------------------


def _default_query() -> tuple[Query, Any]:
    from stream.analytics.sqlclient import run_query
    from stream.config import load_settings

    settings = load_settings()
    return (lambda sql, params=None: run_query(settings, sql, params)), settings


def _pricing(settings: Any) -> Any:
    from stream.analytics.pricing import load_pricing

    return load_pricing(getattr(settings, "data_dir", None))


def _parser(cmd: str, description: str, filters: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"ccstream {cmd}", description=description)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    if filters:
        p.add_argument("--since", type=_day, help="from this UTC day (YYYY-MM-DD or YYYYMMDD), inclusive")
        p.add_argument("--until", type=_day, help="to this UTC day, inclusive")
        p.add_argument("--project", help="only projects whose path contains this text")
    return p


def _day(text: str) -> dt.date:
    try:
        return q.parse_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD or YYYYMMDD)") from None


def _filters(args: argparse.Namespace) -> Filters:
    return Filters(since=args.since, until=args.until, project=args.project)


_CH_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$")


def jsonable(value: Any) -> Any:
    """One shape whatever the transport: ISO-8601 UTC times with 'Z', numbers as numbers, lists as lists."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and _CH_DATETIME.match(value):
        return jsonable(dt.datetime.fromisoformat(value))
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _numeric(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # JSONEachRow quotes 64-bit integers; the native client does not: make both plain numbers
    out = []
    for r in rows:
        fixed = {}
        for k, v in r.items():
            if isinstance(v, str) and re.fullmatch(r"-?\d+", v) and k not in _STRING_KEYS:
                v = int(v)
            fixed[k] = jsonable(v)
        out.append(fixed)
    return out


_STRING_KEYS = {"session_id", "session", "agent_id", "tool_use_id", "uuid", "project", "host", "user", "model",
                "slug", "git_branch", "parent_agent_id", "description", "tool_name", "day", "file_id"}


def _emit_json(obj: Any, out: IO[str]) -> None:
    json.dump(obj, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")


def _emit_csv(rows: Sequence[dict[str, Any]], out: IO[str]) -> None:
    if not rows:
        return
    w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()})


def _table(title: str, columns: Sequence[tuple[str, str, Callable[[Any], str]]], rows: Sequence[dict[str, Any]],
           out: IO[str], footer: dict[str, Any] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_footer=footer is not None)
    for key, header, fmt in columns:
        numeric = fmt in (_int, _money, _ms, _pct, _dur)
        foot = "" if footer is None or key not in footer else (
            footer[key] if isinstance(footer[key], str) else fmt(footer[key]))
        t.add_column(header, justify="right" if numeric else "left", footer=foot, overflow="fold")
    for r in rows:
        t.add_row(*(fmt(r.get(key)) for key, _, fmt in columns))
    Console(file=out, width=_width(out)).print(t)


def _width(out: IO[str]) -> int:
    """The terminal's width on a terminal; wide enough for every column when piped or captured."""
    import shutil

    isatty = getattr(out, "isatty", None)
    return shutil.get_terminal_size((200, 40)).columns if isatty is not None and isatty() else 200


def _s(v: Any) -> str:
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return "" if v is None else str(v)


def _int(v: Any) -> str:
    return "" if v is None or v == "" else f"{int(v):,}"


def _money(v: Any) -> str:
    return "" if v is None else f"${float(v):,.2f}"


def _ms(v: Any) -> str:
    return "" if v is None or v == "" else f"{float(v) / 1000:,.1f}s"


def _pct(v: Any) -> str:
    return "" if v is None else f"{float(v) * 100:.1f}%"


def _dur(v: Any) -> str:
    if v is None:
        return ""
    s = int(float(v))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _time(v: Any) -> str:
    text = str(jsonable(v) or "")
    return text[:16].replace("T", " ")


def _short(v: Any) -> str:
    return str(v or "")[:8]


def _tail(v: Any) -> str:
    parts = [p for p in str(v or "").split("/") if p]
    return "/".join(parts[-2:]) if parts else ""


def _models(v: Any) -> str:
    return ", ".join(re.sub(r"^claude-|-\d{8}$", "", m) for m in (v or []))


def _output(args: argparse.Namespace, rows: list[dict[str, Any]], render: Callable[[], None],
            out: IO[str], doc: Any = None) -> int:
    if args.json:
        _emit_json(rows if doc is None else doc, out)
    elif args.csv:
        _emit_csv(rows, out)
    else:
        render()
    return 0


def _run(fn: Callable[[], int]) -> int:
    from stream.analytics.pricing import PricingError

    try:
        return fn()
    except PricingError as exc:
        print(f"ccstream: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # query errors: ClickHouse's message, not a traceback
        if type(exc).__name__ in ("QueryError", "ChdbError", "DatabaseError", "OperationalError"):
            print(f"ccstream: query failed: {exc}", file=sys.stderr)
            return 1
        raise


# ---- sessions -------------------------------------------------------------------------------------------


def main_sessions(argv: Sequence[str] | None = None, query: Query | None = None, pricing: Any = None,
                  out: IO[str] | None = None) -> int:
    p = _parser("sessions", "Sessions with their time span, turns, models, tokens, cost, tools and subagents.")
    p.add_argument("--limit", type=int, default=None, help="at most this many (newest first)")
    args = p.parse_args(argv)
    out = out or sys.stdout

    def run() -> int:
        nonlocal query, pricing
        settings = None
        if query is None:
            query, settings = _default_query()
        pricing = pricing or _pricing(settings)
        rows = _numeric(q.sessions(query, _filters(args), pricing, args.limit))
        cols = [("session_id", "session", _short), ("started_at", "started (UTC)", _time),
                ("duration_s", "duration", _dur), ("project", "project", _tail), ("turns", "turns", _int),
                ("models", "models", _models), ("tool_calls", "tool calls", _int),
                ("tool_errors", "tool errors", _int), ("compactions", "compactions", _int),
                ("subagents", "subagents", _int), ("total_tokens", "tokens", _int), ("cost_usd", "cost", _money)]
        foot = {"session_id": f"{len(rows)} sessions",
                **{k: sum(float(r.get(k) or 0) for r in rows) for k in ("total_tokens", "cost_usd", "turns",
                                                                        "tool_calls")}}
        return _output(args, rows, lambda: _table("Sessions", cols, rows, out, foot), out)

    return _run(run)


# ---- tokens ---------------------------------------------------------------------------------------------


def main_tokens(argv: Sequence[str] | None = None, query: Query | None = None, pricing: Any = None,
                out: IO[str] | None = None) -> int:
    p = _parser("tokens", "Token usage, deduplicated per API response as ccusage 20 counts it, with a cost "
                          "estimate from the dated price table (stream/analytics/pricing.json or your override).")
    p.add_argument("--by", default="day",
                   help="day, session, model, project, host, user or agent; several with commas (default: day)")
    p.add_argument("--grouping", choices=("ccstream", "ccusage"), default="ccstream",
                   help="sessions and projects as ccstream sees them (sessionId, cwd) or as ccusage does (file path)")
    args = p.parse_args(argv)
    out = out or sys.stdout
    by = [b.strip() for b in args.by.split(",") if b.strip()]
    bad = [b for b in by if b not in q.DIMENSIONS]
    if bad or not by:
        p.error(f"--by: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(q.DIMENSIONS)}")

    def run() -> int:
        nonlocal query, pricing
        settings = None
        if query is None:
            query, settings = _default_query()
        pricing = pricing or _pricing(settings)
        filters = _filters(args)
        rows = _numeric(q.tokens(query, by, filters, pricing, args.grouping))
        totals = _numeric([q.token_totals(query, filters, pricing)])[0]
        doc = {"by": by, "grouping": args.grouping,
               "filters": {"since": jsonable(args.since), "until": jsonable(args.until), "project": args.project},
               "pricing": {"date": pricing.date, "currency": pricing.currency},
               "rows": rows, "totals": totals}
        keys = [k for k in rows[0] if k not in _TOKEN_OUT] if rows else by
        cols = [(k, k, _session_or_str if k == "session" else _s) for k in keys] + [
            ("input_tokens", "input", _int), ("output_tokens", "output", _int),
            ("cache_creation_input_tokens", "cache create", _int), ("cache_read_input_tokens", "cache read", _int),
            ("total_tokens", "total", _int), ("cost_usd", "cost", _money)]
        if "model" not in by:
            cols.insert(len(keys), ("models", "models", _models))
        title = f"Tokens by {', '.join(by)} (prices of {pricing.date})"
        return _output(args, rows, lambda: _table(title, cols, rows, out, totals), out, doc)

    return _run(run)


_TOKEN_OUT = {"responses", "input_tokens", "output_tokens", "cache_creation_input_tokens",
              "cache_read_input_tokens", "total_tokens", "cost_usd", "models"}


def _session_or_str(v: Any) -> str:
    return str(v or "")


# ---- tools ----------------------------------------------------------------------------------------------


def main_tools(argv: Sequence[str] | None = None, query: Query | None = None, out: IO[str] | None = None) -> int:
    p = _parser("tools", "Tool calls joined to their results: counts, error rates, durations.")
    p.add_argument("--limit", type=int, default=None, help="the top N tools only")
    args = p.parse_args(argv)
    out = out or sys.stdout

    def run() -> int:
        nonlocal query
        if query is None:
            query, _ = _default_query()
        rows = _numeric(q.tools(query, _filters(args), args.limit))
        cols = [("tool_name", "tool", _s), ("calls", "calls", _int), ("errors", "errors", _int),
                ("error_rate", "error rate", _pct), ("unanswered", "no result", _int),
                ("sessions", "sessions", _int), ("p50_ms", "p50", _ms), ("p95_ms", "p95", _ms),
                ("avg_ms", "mean", _ms)]
        return _output(args, rows, lambda: _table("Tools", cols, rows, out), out)

    return _run(run)


# ---- show -----------------------------------------------------------------------------------------------


def main_show(argv: Sequence[str] | None = None, query: Query | None = None, out: IO[str] | None = None) -> int:
    p = _parser("show", "Replay one session: the conversation along the parentUuid chain, subagents nested "
                        "under the Task that started them.", filters=False)
    p.add_argument("session", help="a session id, or its first characters")
    p.add_argument("--full", action="store_true", help="expand tool inputs and results, whole texts")
    p.add_argument("--raw", action="store_true", help="print the stored lines (JSONL) in conversation order")
    p.add_argument("--progress", action="store_true", help="include progress lines (hooks, bash, agents)")
    args = p.parse_args(argv)
    out = out or sys.stdout

    def run() -> int:
        nonlocal query
        from stream.analytics.replay import replay, turn_lines

        if query is None:
            query, _ = _default_query()
        ids = q.resolve_session(query, args.session)
        if not ids:
            print(f"ccstream show: no session {args.session!r}", file=sys.stderr)
            return 1
        if len(ids) > 1 and ids[0] != args.session:
            print(f"ccstream show: {args.session!r} is ambiguous: {', '.join(ids)}", file=sys.stderr)
            return 1
        session_id = ids[0]
        rows = q.session_rows(query, session_id)
        conv = replay(rows)
        walk = [(d, t) for d, t in conv.walk() if args.progress or args.raw or t.kind != "progress"]
        if args.raw:
            # every stored line: the conversation in order, then lines that are not turns (snapshots, …)
            used = {id(t.row) for _, t in walk}
            for _, t in walk:
                out.write(_raw_text(t.row.get("raw")) + "\n")
            for r in rows:
                if id(r) not in used:
                    out.write(_raw_text(r.get("raw")) + "\n")
            return 0
        flat: list[dict[str, Any]] = [{"depth": d, "uuid": t.uuid, "parent_uuid": t.parent_uuid, "agent_id": t.agent_id,
                 "kind": t.kind, "timestamp": t.timestamp, "model": t.model,
                 "text": "\n".join(turn_lines(t, full=args.full)),
                 "tool_uses": [{"id": b.tool_id, "name": b.name, **({"input": b.input} if args.full else {})}
                               for b in t.tool_uses],
                 "tool_results": [{"tool_use_id": b.tool_id, "name": b.name, "is_error": b.is_error}
                                  for b in t.tool_results]}
                for d, t in walk]
        threads = [{"agent_id": th.agent_id, "link": th.link, "tool_use_id": th.tool_use_id,
                    "subagent_type": th.subagent_type, "description": th.description}
                   for _, t in conv.walk() for th in t.children]
        if args.json:
            _emit_json({"session_id": session_id, "subagents": threads, "turns": flat}, out)
            return 0
        if args.csv:
            _emit_csv([{**f, "tool_uses": [u["name"] for u in f["tool_uses"]],
                        "tool_results": [r["tool_use_id"] for r in f["tool_results"]]} for f in flat], out)
            return 0
        _render_show(session_id, walk, conv, args.full, out)
        return 0

    return _run(run)


def _raw_text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw or "")


_STYLE = {"prompt": "bold cyan", "assistant": "white", "tool_result": "dim", "meta": "dim italic",
          "compact_boundary": "bold yellow", "compact_summary": "yellow", "api_error": "bold red",
          "system": "dim", "progress": "dim"}
_LABEL = {"prompt": "user", "assistant": "claude", "tool_result": "tool", "meta": "meta",
          "compact_boundary": "compact", "compact_summary": "summary", "api_error": "error", "system": "system",
          "progress": "progress"}


def _render_show(session_id: str, walk: list[tuple[int, Any]], conv: Any, full: bool, out: IO[str]) -> None:
    from rich.console import Console
    from rich.markup import escape

    from stream.analytics.replay import turn_lines

    console = Console(file=out, width=_width(out), highlight=False)
    console.print(f"[bold]session {session_id}[/bold]  {len(walk)} turns")
    for depth, turn in walk:
        pad = "  │ " * depth
        style = _STYLE.get(turn.kind, "white")
        label = _LABEL.get(turn.kind, turn.kind)
        when = turn.timestamp[11:19]
        lines = turn_lines(turn, full=full)
        console.print(f"{pad}[dim]{when}[/dim] [{style}]{label:>7}[/{style}] {escape(lines[0])}")
        for extra in lines[1:]:
            for sub in extra.split("\n"):
                console.print(f"{pad}                 {escape(sub)}", style=style)
        for th in turn.children:
            kind = th.subagent_type or th.link
            desc = f": {th.description}" if th.description else ""
            console.print(f"{pad}  ┌ [bold magenta]subagent {th.agent_id}[/bold magenta] ({escape(kind)}{escape(desc)})")


# ---- status ---------------------------------------------------------------------------------------------


def main_status(argv: Sequence[str] | None = None, query: Query | None = None, out: IO[str] | None = None) -> int:
    p = _parser("status", "Pipeline health: Redis stream and consumer lag, Kafka consumer lag, followed files, "
                          "dead letters, last insert.", filters=False)
    args = p.parse_args(argv)
    out = out or sys.stdout

    def run() -> int:
        nonlocal query
        settings = None
        if query is None:
            query, settings = _default_query()
        else:
            from stream.config import load_settings

            settings = load_settings()
        report: dict[str, Any] = {"store": _numeric([q.store_status(query)])[0]}
        report["followed_files"] = _followed_files(query)
        report["redis"] = _redis_status(settings)
        report["kafka"] = _kafka_status(settings)
        if args.json:
            _emit_json(report, out)
            return 0
        flat = [{"part": part, "figure": k, "value": v}
                for part, section in report.items()
                for k, v in (section.items() if isinstance(section, dict) else [("", section)])]
        if args.csv:
            _emit_csv(flat, out)
            return 0
        _table("ccstream status", [("part", "part", _s), ("figure", "figure", _s), ("value", "value", _s)],
               flat, out)
        return 0

    return _run(run)


def _followed_files(query: Query) -> Any:
    try:
        rows = query("SELECT uniqExact(file_id) AS n FROM file_checkpoints", None)
        return int(rows[0]["n"]) if rows else 0
    except Exception as exc:
        return f"unavailable ({str(exc).splitlines()[0][:80]})"


def _run_info(settings: Any) -> dict[str, Any]:
    from stream.stack.rundir import RunDir

    try:
        return RunDir.of(settings).worker_info()
    except AttributeError:
        return {}


def _redis_status(settings: Any) -> dict[str, Any]:
    from stream.stack.rundir import redis_answers, resolve_redis_url, strip_password

    url = resolve_redis_url(settings)
    if not url:
        return {"state": "not configured and `ccstream up` not running"}
    shown = strip_password(url)
    if not redis_answers(url):
        return {"url": shown, "state": "unreachable, or the password was refused"}
    try:
        import redis

        r = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
        out: dict[str, Any] = {"url": shown, "stream": settings.stream_key, "length": int(r.xlen(settings.stream_key))}
        try:
            groups = r.xinfo_groups(settings.stream_key)
        except redis.ResponseError:
            groups = []
        for g in groups:
            name = g.get("name")
            name = name.decode() if isinstance(name, bytes) else str(name)
            if name == settings.bridge_group:
                out["pending"] = int(g.get("pending") or 0)
                out["lag"] = g.get("lag")  # entries not yet delivered to the bridge (Redis 7+)
        return out
    except Exception as exc:
        return {"url": shown, "state": f"unreachable ({type(exc).__name__}: {exc})"}


def _kafka_status(settings: Any) -> dict[str, Any]:
    boot = settings.kafka_bootstrap or _run_info(settings).get("kafka_bootstrap")
    if not boot:
        return {"state": "not configured and `ccstream up` not running"}
    import asyncio

    try:
        return asyncio.run(asyncio.wait_for(_kafka_lag(settings.with_overrides(kafka_bootstrap=boot)), 10))
    except Exception as exc:
        return {"bootstrap": boot, "state": f"unreachable ({type(exc).__name__}: {exc})"}


async def _kafka_lag(settings: Any) -> dict[str, Any]:
    """Committed offsets of the Faust consumer group against the end of each topic. A plain consumer of the
    group (never subscribed, so it joins nothing) reads the offsets: Tansu does not answer aiokafka's admin
    client, while OffsetFetch works on every broker."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.contract.kafka import aiokafka_kwargs

    consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), group_id=settings.app_id, enable_auto_commit=False)
    await consumer.start()
    try:
        out: dict[str, Any] = {"bootstrap": settings.kafka_bootstrap, "group": settings.app_id}
        topics = await consumer.topics()
        for topic in (settings.topic_sessions, settings.topic_raw_events, settings.topic_dead_letters):
            parts = consumer.partitions_for_topic(topic) if topic in topics else None
            if not parts:
                out[topic] = "no such topic yet"
                continue
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            ends = await consumer.end_offsets(tps)
            lag = 0
            for tp in tps:
                done = await consumer.committed(tp)
                lag += max(ends[tp] - (done or 0), 0)
            out[f"{topic} end"] = sum(ends.values())
            out[f"{topic} lag"] = lag
        return out
    finally:
        await consumer.stop()

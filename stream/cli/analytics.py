"""`ccstream sessions | show | tokens | blocks | tools | status`: the analytics commands.

Rich tables by default, ``--json`` (one JSON document) or ``--csv`` everywhere, ``--since/--until`` (days,
YYYY-MM-DD or YYYYMMDD, in ``--timezone``: the local one by default, as ccusage does) and ``--project``
(substring of the cwd) where they make sense. Tables fit the terminal: numbers and ids are never split, the
lowest-priority columns are dropped instead and named below the table (``--wide`` keeps all;
stream/cli/table.py). An empty store says "nothing imported yet" rather than printing $0.00. Queries go through
``stream.analytics.sqlclient.run_query`` (the running worker, or the store opened directly); each ``main_*`` also takes
a ``query`` callable so tests and other tools can point it at any ClickHouse client.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from stream.analytics import queries as q
from stream.analytics.queries import Filters, Query
from stream.cli.table import Column

# ---- shared plumbing ------------------------------------------------------------------------------------


def _default_query() -> tuple[Query, Any]:
    from stream.analytics.sqlclient import run_query
    from stream.config import load_settings

    settings = load_settings()
    return (lambda sql, params=None: run_query(settings, sql, params)), settings


def _pricing(settings: Any) -> Any:
    from stream.analytics.pricing import load_pricing

    return load_pricing(getattr(settings, "data_dir", None))


def _warn_unpriced(models: Sequence[str], settings: Any, err: IO[str] | None = None) -> None:
    """One line on stderr naming models without a price, and where to add one: never a silent $0."""
    if not models:
        return
    from pathlib import Path

    from stream.analytics.pricing import PRICING_ENV, PricingError, override_path

    data_dir = getattr(settings, "data_dir", None)
    try:
        target = override_path(data_dir)
    except PricingError:
        target = None
    where = str(target or (Path(data_dir) / "pricing.json" if data_dir else f"${PRICING_ENV}"))
    names = ", ".join(sorted(set(models)))
    print(f"ccstream: no price for {names}: its tokens are counted, its cost is left out of cost_usd; add it to "
          f"{where} (same shape as stream/analytics/pricing.json: input, output, cache_write_5m, cache_write_1h, "
          "cache_read in USD per million tokens)", file=err or sys.stderr)


def _settings_or_none() -> Any:
    try:
        from stream.config import load_settings

        return load_settings()
    except Exception:  # only used to say where the override file goes
        return None


def _parser(cmd: str, description: str, filters: bool = True, order: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"ccstream {cmd}", description=description)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    p.add_argument("--wide", action="store_true",
                   help="show every column even when the terminal is too narrow (lines then wrap)")
    p.add_argument("--timezone", "-z", type=_timezone, default=None,
                   help="the timezone days and times are taken in: an IANA name such as Europe/Berlin, or UTC "
                        "(default: this machine's, as ccusage does)")
    if filters:
        p.add_argument("--since", type=_day, help="from this day (YYYY-MM-DD or YYYYMMDD), inclusive")
        p.add_argument("--until", type=_day, help="to this day, inclusive")
        p.add_argument("--project", help="only projects whose path contains this text")
    if order is not None:
        p.add_argument("--order", choices=("asc", "desc"), default=order,
                       help=f"oldest first (asc) or newest first (desc); default {order}")
    return p


def local_timezone(env: dict[str, str] | None = None, localtime: Path = Path("/etc/localtime")) -> str:
    """This machine's IANA timezone name: $TZ, the /etc/localtime link, /etc/timezone, else UTC."""
    env = dict(os.environ) if env is None else env
    for name in _tz_candidates(env, localtime):
        if name in ("UTC", "Etc/UTC"):  # the usual answer, without importing zoneinfo to check it
            return "UTC"
        if name and _valid_tz(name):
            return "UTC" if name.upper() in _UTC_NAMES else name
    return "UTC"


def _tz_candidates(env: dict[str, str], localtime: Path) -> list[str]:
    found = [env.get("TZ", "").lstrip(":")]
    try:
        target = os.readlink(localtime)
        i = target.find("zoneinfo/")
        found.append(target[i + len("zoneinfo/"):] if i >= 0 else "")
    except OSError:
        pass
    with contextlib.suppress(OSError):
        found.append((localtime.parent / "timezone").read_text().strip())
    return found


def _valid_tz(name: str) -> bool:
    import zoneinfo

    try:
        q.tz_literal(name)
        zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return False
    return True


_UTC_NAMES = {"UTC", "Z", "GMT", "ETC/UTC", "ETC/UCT", "UCT", "ETC/UNIVERSAL", "UNIVERSAL", "ETC/ZULU", "ZULU",
              "ETC/GMT", "GMT0", "ETC/GMT0", "ETC/GREENWICH", "GREENWICH"}


def _timezone(text: str) -> str:
    name = "UTC" if text.strip().upper() in _UTC_NAMES else text.strip()
    if not _valid_tz(name):
        raise argparse.ArgumentTypeError(f"unknown timezone {text!r}: use an IANA name such as Europe/Berlin, "
                                         "or UTC")
    return name


def _tz(args: argparse.Namespace) -> str:
    if args.timezone is None:
        args.timezone = local_timezone()
    return str(args.timezone)


def _day(text: str) -> dt.date:
    try:
        return q.parse_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD or YYYYMMDD)") from None


def _filters(args: argparse.Namespace) -> Filters:
    tz = _tz(args)
    # UTC is token_usage's own `day`: no conversion in the SQL
    return Filters(since=args.since, until=args.until, project=args.project,
                   timezone=None if tz == "UTC" else tz)


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
    # nested rows (a per-model breakdown) have no place in a flat file
    import csv

    rows = [{k: v for k, v in r.items() if not (isinstance(v, list) and v and isinstance(v[0], dict))}
            for r in rows]
    w = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ";".join(map(str, v)) if isinstance(v, list) else v for k, v in r.items()})


def col(key: str, header: str, fmt: Callable[[Any], str], priority: int = 0, wrap: bool = False,
        min_width: int = 12) -> Column:
    """A table column; numbers are right-aligned. ``priority``: 0 always shown, higher dropped first."""
    return Column(key, header, fmt, numeric=fmt in _NUMERIC, priority=priority, wrap=wrap, min_width=min_width)


def _table(title: str | None, columns: Sequence[Column], rows: Sequence[dict[str, Any]], out: IO[str],
           footer: dict[str, Any] | None = None, wide: bool = False, note: str = "") -> None:
    from rich.console import Console

    from stream.cli.table import render

    width = _width(out)
    table, fit = render(title, columns, rows, width, footer, wide)
    # piped or --wide: as wide as the table needs (the terminal wraps whole lines; no cell is ever split)
    console = Console(file=out, width=max(width or 0, fit.natural_width + 1) if wide or width is None else width)
    console.print(table)
    for line in (fit.note(), note):
        if line:
            console.print(line, style="dim", highlight=False)


def _width(out: IO[str]) -> int | None:
    """The terminal's width on a terminal; None (no limit) when piped or captured."""
    isatty = getattr(out, "isatty", None)
    if isatty is None or not isatty():
        return None
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (OSError, ValueError, AttributeError):
        import shutil

        return shutil.get_terminal_size((80, 24)).columns


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


def _as_datetime(v: Any) -> dt.datetime | None:
    text = str(jsonable(v) or "")
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _time_in(tz: str) -> Callable[[Any], str]:
    """Times shown in ``tz`` (JSON and CSV keep UTC with 'Z')."""
    import zoneinfo

    zone = zoneinfo.ZoneInfo(tz)

    def fmt(v: Any) -> str:
        t = _as_datetime(v)
        return "" if t is None else t.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return fmt


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _short(v: Any) -> str:
    """A session UUID's first 8 characters (what `ccstream show` takes); other names whole."""
    text = str(v or "")
    return text[:8] if _UUID.match(text) else text


def _tail(v: Any) -> str:
    parts = [p for p in str(v or "").split("/") if p]
    return "/".join(parts[-2:]) if parts else ""


def _models(v: Any) -> str:
    return ", ".join(re.sub(r"^claude-|-\d{8}$", "", m) for m in (v or []))


_NUMERIC = (_int, _money, _ms, _pct, _dur)


def _output(args: argparse.Namespace, rows: list[dict[str, Any]], render: Callable[[], None],
            out: IO[str], doc: Any = None) -> int:
    if args.json:
        _emit_json(rows if doc is None else doc, out)
    elif args.csv:
        _emit_csv(rows, out)
    else:
        render()
    return 0


NOTHING_IMPORTED = "nothing imported yet: run `ccstream up` (it imports every transcript, then follows them)"


def _nothing_imported(query: Query, args: argparse.Namespace, out: IO[str], empty: Any = None) -> bool:
    """On an empty store say so (and print the command's empty document for --json) instead of a table of
    $0.00."""
    if not q.store_is_empty(query):
        return False
    print(f"ccstream: {NOTHING_IMPORTED}", file=sys.stderr)
    if getattr(args, "json", False):
        _emit_json([] if empty is None else empty, out)
    return True


def _freshness(settings: Any, query: Query) -> str:
    """Below a table when `ccstream up` is not running: the data is as old as the last insert."""
    if settings is None:
        return ""
    from stream.stack.up import is_running

    try:
        if is_running(settings):
            return ""
        rows = query("SELECT max(ingested_at) AS t, count() AS n FROM claude_raw_traces", None)
    except Exception:  # freshness is a courtesy: never fail the command over it
        return ""
    if not rows or not int(rows[0].get("n") or 0):
        return ""
    return f"data as of the last insert, {_time(rows[0]['t'])} UTC (`ccstream up` is not running)"


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
    p = _parser("sessions", "Sessions with their time span, turns, models, tokens, cost, tools and subagents.",
                order="desc")
    p.add_argument("--limit", type=int, default=None, help="at most this many (the newest)")
    args = p.parse_args(argv)
    out = out or sys.stdout

    def run() -> int:
        nonlocal query, pricing
        settings = None
        if query is None:
            query, settings = _default_query()
        pricing = pricing or _pricing(settings)
        rows = _numeric(q.sessions(query, _filters(args), pricing, args.limit))
        if args.order == "asc":
            rows.reverse()
        if not rows and _nothing_imported(query, args, out):
            return 0
        _warn_unpriced([m for r in rows for m in (r.get("unpriced_models") or [])],
                       settings or _settings_or_none())
        tz = _tz(args)
        cols = [col("session_id", "session", _short), col("started_at", f"started ({tz})", _time_in(tz)),
                col("duration_s", "duration", _dur, 4), col("project", "project", _tail, 2, wrap=True),
                col("turns", "turns", _int, 3), col("models", "models", _models, 5, wrap=True),
                col("tool_calls", "tool calls", _int, 6), col("tool_errors", "tool errors", _int, 8),
                col("compactions", "compactions", _int, 9), col("subagents", "subagents", _int, 7),
                col("total_tokens", "tokens", _int, 1), col("cost_usd", "cost", _money)]
        if any(r.get("otel_user") for r in rows):  # Claude Code's telemetry reaches ccstream (docs/otel.md)
            cols[1:1] = [col("otel_user", "user", lambda v: str(v or ""), 4)]
            cols.append(col("cc_cost_usd", "cost (Claude Code)", _money, 6))
        foot = {"session_id": f"{len(rows)} sessions",
                **{k: sum(float(r.get(k) or 0) for r in rows) for k in ("total_tokens", "cost_usd", "turns",
                                                                        "tool_calls")}}
        return _output(args, rows, lambda: _table("Sessions", cols, rows, out, foot, args.wide,
                                                  _freshness(settings, query)), out)

    return _run(run)


# ---- tokens ---------------------------------------------------------------------------------------------


def main_tokens(argv: Sequence[str] | None = None, query: Query | None = None, pricing: Any = None,
                out: IO[str] | None = None) -> int:
    p = _parser("tokens", "Token usage, deduplicated per API response as ccusage 20 counts it, with a cost "
                          "estimate from the dated price table (stream/analytics/pricing.json or your override).",
                order="asc")
    p.add_argument("--by", default="day",
                   help="day, week, month, session, model, project, host, user or agent; several with commas "
                        "(default: day). Sessions are sorted by their last activity.")
    p.add_argument("--grouping", choices=("ccstream", "ccusage"), default="ccstream",
                   help="sessions and projects as ccstream sees them (sessionId, cwd) or as ccusage does (file path)")
    p.add_argument("--breakdown", "-b", action="store_true", help="a row per model under each row")
    p.add_argument("--start-of-week", choices=tuple(q.WEEK_MODES), default="sunday",
                   help="the first day of a week for --by week (default sunday, as ccusage)")
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
        tz = _tz(args)
        # the rows and the totals from one query: every response is deduplicated once
        found, found_totals = q.tokens_with_totals(query, by, filters, pricing, args.grouping, args.start_of_week)
        rows = _numeric(found)
        if not rows and _nothing_imported(query, args, out, {"by": by, "timezone": tz, "rows": [], "totals": {}}):
            return 0
        totals = _numeric([found_totals])[0]
        unpriced = list(totals.get("unpriced_models") or [])
        _warn_unpriced(unpriced, settings or _settings_or_none())
        if "session" in by:
            _add_activity(rows, _numeric(q.session_activity(query, filters, args.grouping)), args.grouping)
        rows = _ordered(rows, by, args.order)
        if args.breakdown and "model" not in by:
            _add_breakdown(rows, _numeric(q.tokens(query, [*by, "model"], filters, pricing, args.grouping,
                                                   args.start_of_week)), by)
        doc = {"by": by, "grouping": args.grouping, "timezone": tz, "order": args.order,
               "filters": {"since": jsonable(args.since), "until": jsonable(args.until), "project": args.project},
               "pricing": {"date": pricing.date, "currency": pricing.currency, "unpriced_models": unpriced},
               "rows": rows, "totals": totals}
        keys = [k for k in rows[0] if k not in _TOKEN_OUT] if rows else by
        cols: list[Column] = []
        for k in keys:
            if k == "session":
                cols.append(col(k, k, _short))
            elif k == "last_activity":
                cols.append(col(k, f"last activity ({tz})", _time_in(tz), 1))
            elif k == "project_path":
                if "project" not in keys:
                    cols.append(col(k, "project", _tail, 3, wrap=True))
            elif k in ("project", "model"):
                cols.append(col(k, k, _tail if k == "project" else _s, 0, wrap=True, min_width=16))
            else:
                cols.append(col(k, k, _s))
        cols += [col("input_tokens", "input", _int, 4), col("output_tokens", "output", _int, 2),
                 col("cache_creation_input_tokens", "cache create", _int, 5),
                 col("cache_read_input_tokens", "cache read", _int, 6),
                 col("total_tokens", "total", _int), col("cost_usd", "cost", _money)]
        if "model" not in by:
            cols.insert(len([c for c in cols if c.key in keys]), col("models", "models", _models, 7, wrap=True))
        title = f"Tokens by {', '.join(by)} (prices of {pricing.date}; days in {tz})"
        shown = _with_breakdown_rows(rows, keys) if args.breakdown and "model" not in by else rows
        return _output(args, rows, lambda: _table(title, cols, shown, out, totals, args.wide,
                                                  _freshness(settings, query)), out, doc)

    return _run(run)


def _add_activity(rows: list[dict[str, Any]], activity: list[dict[str, Any]], grouping: str) -> None:
    """Each session row gets its last activity and its project (the cwd of its latest response)."""
    key = (lambda r: (r.get("project"), r["session"])) if grouping == "ccusage" else (lambda r: r["session"])
    akey = ((lambda a: (a.get("project_key"), a["session"])) if grouping == "ccusage"
            else (lambda a: a["session"]))
    found = {akey(a): a for a in activity}
    for r in rows:
        a = found.get(key(r), {})
        r["last_activity"] = a.get("last_activity")
        r["project_path"] = a.get("project_path")


def _ordered(rows: list[dict[str, Any]], by: Sequence[str], order: str) -> list[dict[str, Any]]:
    """Sessions by last activity, everything else by its keys (the SQL's order); desc reverses."""
    if "session" in by:
        rows = sorted(rows, key=lambda r: (str(r.get("last_activity") or ""), str(r.get("session"))))
    return list(reversed(rows)) if order == "desc" else rows


def _add_breakdown(rows: list[dict[str, Any]], per_model: list[dict[str, Any]], by: Sequence[str]) -> None:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for m in per_model:
        if m.get("model") in ("", "<synthetic>") and not m.get("total_tokens"):
            continue  # Claude Code's own placeholder messages: no tokens, no model to speak of
        groups.setdefault(tuple(m.get(k) for k in by), []).append(
            {k: v for k, v in m.items() if k not in by and k != "models"})
    for r in rows:
        r["breakdown"] = sorted(groups.get(tuple(r.get(k) for k in by), []),
                                key=lambda m: -float(m.get("cost_usd") or 0))


def _with_breakdown_rows(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Table rows: each row, then one indented row per model under its first key column."""
    out: list[dict[str, Any]] = []
    first = keys[0] if keys else "model"
    for r in rows:
        out.append(r)
        for m in r.get("breakdown", []):
            out.append({**{k: None for k in keys}, **m, first: f"  └ {_models([m.get('model')])}",
                        "models": None})
    return out


_TOKEN_OUT = {"responses", "input_tokens", "output_tokens", "cache_creation_input_tokens",
              "cache_read_input_tokens", "total_tokens", "cost_usd", "models", "breakdown", "unpriced_models",
              "web_search_requests", "web_fetch_requests"}


def _session_or_str(v: Any) -> str:
    return str(v or "")


# ---- blocks ---------------------------------------------------------------------------------------------


def main_blocks(argv: Sequence[str] | None = None, query: Query | None = None, pricing: Any = None,
                out: IO[str] | None = None, now: dt.datetime | None = None) -> int:
    p = _parser("blocks", "Usage in 5-hour billing windows, as ccusage computes them: a window starts at the "
                          "hour of its first response and lasts 5 hours; the active one shows its burn rate "
                          "and what it will have used by its end at that rate.", order="asc")
    p.add_argument("--active", action="store_true", help="only the active window, with its projection")
    p.add_argument("--recent", action="store_true", help="only the last 3 days (and the active window)")
    p.add_argument("--live", action="store_true", help="keep refreshing the active window (Ctrl-C stops)")
    p.add_argument("--refresh", type=float, default=5.0, help="seconds between refreshes with --live (default 5)")
    p.add_argument("--gaps", action="store_true", help="also list the idle gaps between windows")
    p.add_argument("--live-count", type=int, default=0, help=argparse.SUPPRESS)  # tests: stop after N refreshes
    args = p.parse_args(argv)
    out = out or sys.stdout

    def once() -> int:
        nonlocal query, pricing
        settings = None
        if query is None:
            query, settings = _default_query()
        pricing = pricing or _pricing(settings)
        at = now or dt.datetime.now(dt.UTC)
        rows = block_rows(q.usage_entries(query, _filters(args)), pricing, at, active=args.active or args.live,
                          recent=args.recent, gaps=args.gaps)
        if args.order == "desc":
            rows.reverse()
        if not rows and not (args.active or args.live) and _nothing_imported(
                query, args, out, {"timezone": _tz(args), "now": jsonable(at), "blocks": []}):
            return 0
        if args.json:
            _emit_json({"timezone": _tz(args), "now": jsonable(at), "blocks": rows}, out)
            return 0
        if args.csv:
            _emit_csv(rows, out)
            return 0
        tz = _tz(args)
        if not rows:
            print("no active 5-hour window: nothing used in the last 5 hours", file=out)
            return 0
        cols = [col("start", f"window start ({tz})", _time_in(tz)), col("state", "state", _s, 1),
                col("models", "models", _models, 5, wrap=True), col("total_tokens", "tokens", _int),
                col("cost_usd", "cost", _money), col("tokens_per_minute", "tokens/min", _int, 2),
                col("cost_per_hour", "$/hour", _money, 3), col("projected_cost_usd", "projected", _money, 4),
                col("projected_tokens", "projected tokens", _int, 6)]
        foot = None if args.active or args.live else {
            "start": f"{sum(1 for r in rows if not r['is_gap'])} windows",
            "total_tokens": sum(int(r["total_tokens"]) for r in rows),
            "cost_usd": sum(float(r["cost_usd"]) for r in rows)}
        _table("5-hour windows", cols, rows, out, foot, args.wide, _freshness(settings, query))
        return 0

    if not args.live:
        return _run(once)
    return _run(lambda: _live(once, args.refresh, args.live_count, out))


def _live(once: Callable[[], int], refresh: float, count: int, out: IO[str]) -> int:
    """Redraw the active window every ``refresh`` seconds until Ctrl-C (or ``count`` redraws)."""
    n = 0
    tty = getattr(out, "isatty", lambda: False)()
    try:
        while True:
            if tty:
                out.write("\x1b[H\x1b[2J")  # home and clear: the window redrawn in place
            rc = once()
            out.flush()
            n += 1
            if rc or (count and n >= count):
                return rc
            time.sleep(refresh)
    except KeyboardInterrupt:
        return 0


def block_rows(entries: Sequence[dict[str, Any]], pricing: Any, now: dt.datetime, active: bool = False,
               recent: bool = False, gaps: bool = False) -> list[dict[str, Any]]:
    """token_usage rows → one dict per 5-hour window (stream/analytics/blocks.py does the windows)."""
    from stream.analytics import blocks as b

    items = []
    for e in entries:
        t = _as_datetime(e.get("timestamp"))
        if t is None:
            continue
        n = {k: int(e.get(k) or 0) for k in ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                                              "cache_read_input_tokens", "cache_creation_1h")}
        # priced per request as token_usage is in SQL: its own fast mode, long-context tier and web searches
        cost = pricing.cost(e.get("model"), n["input_tokens"], n["output_tokens"], n["cache_creation_input_tokens"],
                            n["cache_read_input_tokens"], n["cache_creation_1h"], fast=e.get("speed") == "fast",
                            web_search_requests=int(e.get("web_search_requests") or 0))
        items.append(b.Entry(t, str(e.get("model") or ""), n["input_tokens"], n["output_tokens"],
                             n["cache_creation_input_tokens"], n["cache_read_input_tokens"], float(cost or 0.0)))
    found = b.identify_blocks(items, now)
    if recent:
        found = b.recent(found, now, 3)
    if active:
        found = [x for x in found if x.is_active]
    rows: list[dict[str, Any]] = []
    for blk in found:
        if blk.is_gap and not gaps:
            continue
        rate = b.burn_rate(blk)
        proj = b.project(blk, now)
        last = blk.last_activity
        if blk.is_gap:
            state = f"idle {_dur((blk.end - blk.start).total_seconds())}"
        elif blk.is_active:
            state = f"active, {_dur((blk.end - now).total_seconds())} left"
        else:
            state = f"{_dur(((last or blk.start) - blk.start).total_seconds())} used"
        rows.append({
            "start": jsonable(blk.start), "end": jsonable(blk.end),
            "last_activity": jsonable(last) if last else None, "is_active": blk.is_active, "is_gap": blk.is_gap,
            "state": state, "entries": len(blk.entries), "models": blk.models,
            "input_tokens": blk.total("input_tokens"), "output_tokens": blk.total("output_tokens"),
            "cache_creation_input_tokens": blk.total("cache_creation_input_tokens"),
            "cache_read_input_tokens": blk.total("cache_read_input_tokens"),
            "total_tokens": blk.total_tokens, "cost_usd": round(blk.cost_usd, 6),
            "tokens_per_minute": round(rate.tokens_per_minute) if rate else None,
            "indicator_tokens_per_minute": round(rate.indicator_tokens_per_minute) if rate else None,
            "cost_per_hour": round(rate.cost_per_hour, 4) if rate else None,
            "projected_tokens": proj.total_tokens if proj else None,
            "projected_cost_usd": proj.cost_usd if proj else None,
            "remaining_minutes": proj.remaining_minutes if proj else None,
        })
    return rows


# ---- tools ----------------------------------------------------------------------------------------------


def main_tools(argv: Sequence[str] | None = None, query: Query | None = None, out: IO[str] | None = None) -> int:
    p = _parser("tools", "Tool calls joined to their results: counts, error rates, durations.")
    p.add_argument("--limit", type=int, default=None, help="the top N tools only")
    args = p.parse_args(argv)
    out = out or sys.stdout

    def run() -> int:
        nonlocal query
        settings = None
        if query is None:
            query, settings = _default_query()
        rows = _numeric(q.tools(query, _filters(args), args.limit))
        if not rows and _nothing_imported(query, args, out):
            return 0
        cols = [col("tool_name", "tool", _s), col("calls", "calls", _int), col("errors", "errors", _int, 2),
                col("error_rate", "error rate", _pct, 1), col("unanswered", "no result", _int, 5),
                col("sessions", "sessions", _int, 6), col("p50_ms", "p50", _ms, 3), col("p95_ms", "p95", _ms, 4),
                col("avg_ms", "mean", _ms, 7)]
        return _output(args, rows, lambda: _table("Tools", cols, rows, out, wide=args.wide,
                                                  note=_freshness(settings, query)), out)

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

        settings = None
        if query is None:
            query, settings = _default_query()
        ids = q.resolve_session(query, args.session)
        if not ids and q.store_is_empty(query):
            print(f"ccstream show: {NOTHING_IMPORTED}", file=sys.stderr)
            return 1
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
                 "kind": t.kind, "subtype": t.subtype, "timestamp": t.timestamp, "model": t.model,
                 "text": "\n".join(turn_lines(t, full=args.full, fallback=False)),
                 "tool_uses": [{"id": b.tool_id, "name": b.name, **({"input": b.input} if args.full else {})}
                               for b in t.tool_uses],
                 "tool_results": [{"tool_use_id": b.tool_id, "name": b.name, "is_error": b.is_error}
                                  for b in t.tool_results]}
                for d, t in walk]
        threads = [{"agent_id": th.agent_id, "link": th.link, "tool_use_id": th.tool_use_id,
                    "subagent_type": th.subagent_type, "description": th.description}
                   for _, t in conv.walk() for th in t.children]
        header = session_header(conv, rows)
        header["cost_usd"] = _session_cost(query, session_id, settings)
        if args.json:
            _emit_json({"session_id": session_id, **{k: jsonable(v) for k, v in header.items()},
                        "subagents": threads, "turns": flat}, out)
            return 0
        if args.csv:
            _emit_csv([{**f, "tool_uses": [u["name"] for u in f["tool_uses"]],
                        "tool_results": [r["tool_use_id"] for r in f["tool_results"]]} for f in flat], out)
            return 0
        _render_show(session_id, walk, conv, args.full, out, header, _tz(args))
        return 0

    return _run(run)


def session_header(conv: Any, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pure: what `show` prints above the conversation: project, branch, span, duration, models."""
    turns = [t for _, t in conv.walk()]
    project = next((str(t.obj.get("cwd")) for t in turns if t.obj.get("cwd")), "")
    branches: dict[str, None] = {}
    for t in turns:
        if t.obj.get("gitBranch"):
            branches.setdefault(str(t.obj["gitBranch"]), None)
    stamps = sorted(t.timestamp for t in turns if t.timestamp)
    started, ended = (stamps[0], stamps[-1]) if stamps else ("", "")
    duration = None
    if stamps:
        a, b = _as_datetime(started), _as_datetime(ended)
        duration = (b - a).total_seconds() if a and b else None
    models = sorted({t.model for t in turns if t.kind == "assistant" and t.model and t.model != "<synthetic>"})
    return {"project": project, "git_branches": list(branches), "started_at": started, "ended_at": ended,
            "duration_s": duration, "models": models, "turns": len(turns)}


def _session_cost(query: Query, session_id: str, settings: Any) -> float | None:
    try:
        return q.session_cost(query, session_id, _pricing(settings))
    except Exception:  # a header figure: the replay is still worth printing without it
        return None


def _raw_text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw or "")


_STYLE = {"stop_hook_summary": "dim", "prompt": "bold cyan", "assistant": "white", "tool_result": "dim", "meta": "dim italic",
          "compact_boundary": "bold yellow", "compact_summary": "yellow", "api_error": "bold red",
          "system": "dim", "progress": "dim"}
_LABEL = {"prompt": "user", "assistant": "claude", "tool_result": "tool", "meta": "meta", "stop_hook_summary": "hooks",
          "compact_boundary": "compact", "compact_summary": "summary", "api_error": "error", "system": "system",
          "progress": "progress"}


def _render_show(session_id: str, walk: list[tuple[int, Any]], conv: Any, full: bool, out: IO[str],
                 header: dict[str, Any] | None = None, tz: str = "UTC") -> None:
    import zoneinfo

    from rich.console import Console
    from rich.markup import escape

    from stream.analytics.replay import turn_lines

    zone = zoneinfo.ZoneInfo(tz)
    console = Console(file=out, width=_width(out) or 200, highlight=False)
    console.print(f"[bold]session {session_id}[/bold]  {len(walk)} turns")
    if header:
        branch = ", ".join(header.get("git_branches") or []) or "?"
        cost = header.get("cost_usd")
        console.print(f"  project {escape(header.get('project') or '?')}  branch {escape(branch)}")
        console.print(f"  {_time_in(tz)(header.get('started_at'))} → {_time_in(tz)(header.get('ended_at'))} "
                      f"({tz}), {_dur(header.get('duration_s')) or '?'}  models {_models(header.get('models'))}"
                      f"  cost {_money(cost) if cost is not None else '?'}")
    day = ""
    for depth, turn in walk:
        pad = "  │ " * depth
        when_t = _as_datetime(turn.timestamp)
        local = when_t.astimezone(zone) if when_t else None
        if local is not None and local.date().isoformat() != day:
            day = local.date().isoformat()
            console.print(f"[bold]── {day} ──[/bold]")
        key = "stop_hook_summary" if turn.subtype == "stop_hook_summary" else turn.kind
        style = _STYLE.get(key, "white")
        label = _LABEL.get(key, turn.kind)
        when = local.strftime("%H:%M:%S") if local else turn.timestamp[11:19]
        # a turn with no text (a whitespace-only block) says so rather than repeating its kind
        lines = turn_lines(turn, full=full, fallback=False) or ["(no text)"]
        console.print(f"{pad}[dim]{when}[/dim] [{style}]{label:>7}[/{style}] {escape(lines[0])}")
        for extra in lines[1:]:
            for sub in extra.split("\n"):
                console.print(f"{pad}                 {escape(sub)}", style=style)
        for th in turn.children:
            kind = th.subagent_type or th.link
            desc = f": {th.description}" if th.description else ""
            console.print(f"{pad}  ┌ [bold magenta]subagent {th.agent_id}[/bold magenta] ({escape(kind)}{escape(desc)})")


# ---- status ---------------------------------------------------------------------------------------------


def main_status(argv: Sequence[str] | None = None, query: Query | None = None, out: IO[str] | None = None,
                pricing: Any = None) -> int:
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
        store = report["store"]
        if not store.get("rows"):  # max() of nothing is 1970-01-01 to ClickHouse
            store["last_insert"] = store["last_event"] = "never"
        report["import"] = _import_state(settings, query)
        report["pricing"] = _pricing_status(query, pricing or _pricing(settings), settings)
        report["followed_files"] = _followed_files(query)
        report["recent_dead_letters"] = _recent_dead_letters(query)
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
        _table("ccstream status", [col("part", "part", _s), col("figure", "figure", _s),
                                   col("value", "value", _s, wrap=True, min_width=30)], flat, out, wide=args.wide)
        return 0

    return _run(run)


def _import_state(settings: Any, query: Query) -> dict[str, Any]:
    """Whether `up` runs, and what is left to import: this host's transcripts on disk against the store's
    file checkpoints."""
    from stream.stack.progress import backlog
    from stream.stack.up import is_running

    out: dict[str, Any] = {}
    try:
        running = is_running(settings)
    except Exception:
        running = False
    out["up"] = "running" if running else "not running: the data is as of the last insert"
    on_disk: dict[str, int] = {}
    for root in getattr(settings, "claude_roots", []):
        try:
            for path in Path(root).rglob("*.jsonl"):
                try:
                    on_disk[str(path)] = path.stat().st_size
                except OSError:
                    continue
        except OSError:
            continue
    try:
        rows = query("SELECT file_path, max(end_offset) AS end_offset FROM file_checkpoints "
                     "WHERE host = {h:String} GROUP BY file_path", {"h": settings.host})
    except Exception as exc:
        out["state"] = f"unavailable ({str(exc).splitlines()[0][:80]})"
        return out
    b = backlog(on_disk, {str(r["file_path"]): int(r["end_offset"]) for r in rows})
    out.update({"state": b.text(), "files_behind": b.files, "bytes_behind": b.bytes})
    return out


def _recent_dead_letters(query: Query, n: int = 5) -> Any:
    """The latest dead letters (when, why, where), so a bad line shows up here as soon as it is stored."""
    try:
        rows = query("SELECT detected_at, reason, file_path, line_no FROM dead_letters FINAL "
                     f"ORDER BY ingested_at DESC, detected_at DESC LIMIT {int(n)}", None)
    except Exception as exc:
        return f"unavailable ({str(exc).splitlines()[0][:80]})"
    if not rows:
        return "none"
    return {f"{_time(r['detected_at'])} UTC": f"{r['reason']} at {_tail(r['file_path'])}:{r['line_no']}"
            for r in _numeric(rows)}


def _pricing_status(query: Query, pricing: Any, settings: Any) -> dict[str, Any]:
    """The price table in force and the stored models it has no price for (named, with where to add one)."""
    out: dict[str, Any] = {"date": pricing.date, "files": list(pricing.origins)}
    try:
        out["unpriced_models"] = q.unpriced_models(query, pricing)
    except Exception as exc:  # an older store without token_usage: say so rather than fail the command
        out["unpriced_models"] = f"unavailable ({str(exc).splitlines()[0][:80]})"
        return out
    _warn_unpriced(out["unpriced_models"], settings)
    return out


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
    """Committed offsets of each consumer group of the stack against the end of each topic it reads (the
    sink's and the edge's of a split `up`: stream/stack/recycle.py consumed_topics). A plain consumer per
    group (never subscribed, so it joins nothing) reads the offsets: Tansu does not answer aiokafka's admin
    client, while OffsetFetch works on every broker."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.contract.kafka import aiokafka_kwargs
    from stream.stack.recycle import consumed_topics

    groups = consumed_topics(settings)
    # topics every stack has: say so when one is missing; the others (live lanes, OTLP, a split's own)
    # exist only on some stacks and are left out until they do
    expected = (settings.topic_sessions, settings.topic_raw_events, settings.topic_dead_letters)
    out: dict[str, Any] = {"bootstrap": settings.kafka_bootstrap, "groups": ", ".join(groups)}
    ends: dict[Any, int] = {}
    for group, topics in groups.items():
        consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            existing = await consumer.topics()
            for topic in topics:
                parts = consumer.partitions_for_topic(topic) if topic in existing else None
                if not parts:
                    if topic in expected:
                        out[topic] = "no such topic yet"
                    continue
                tps = [TopicPartition(topic, p) for p in sorted(parts)]
                if not all(tp in ends for tp in tps):
                    ends.update(await consumer.end_offsets(tps))
                lag = 0
                for tp in tps:
                    done = await consumer.committed(tp)
                    lag += max(ends[tp] - (done or 0), 0)
                out[f"{topic} end"] = sum(ends[tp] for tp in tps)
                out[f"{topic} lag ({group})"] = lag
        finally:
            await consumer.stop()
    return out

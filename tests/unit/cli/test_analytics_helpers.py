"""Pure parts of the analytics commands: timezones, ordering, breakdown, blocks rows, the show header."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pytest

from stream.analytics import queries as q
from stream.analytics.pricing import load_pricing
from stream.analytics.replay import hook_summary, replay, turn_lines
from stream.cli import analytics as cli


def test_local_timezone_sources(tmp_path: Path) -> None:
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/Europe/Berlin")
    assert cli.local_timezone({"TZ": "America/New_York"}, link) == "America/New_York"
    assert cli.local_timezone({"TZ": ":Asia/Tokyo"}, link) == "Asia/Tokyo"
    assert cli.local_timezone({}, link) == "Europe/Berlin"
    assert cli.local_timezone({"TZ": "Not/AZone"}, tmp_path / "missing") == "UTC"
    (tmp_path / "timezone").write_text("Australia/Sydney\n")
    assert cli.local_timezone({}, tmp_path / "missing") == "Australia/Sydney"
    utc = tmp_path / "utc" / "localtime"
    utc.parent.mkdir()
    utc.symlink_to("/usr/share/zoneinfo/Etc/UTC")
    assert cli.local_timezone({}, utc) == "UTC"  # one spelling of UTC: no conversion in the SQL


def test_timezone_option() -> None:
    assert cli._timezone("utc") == "UTC" and cli._timezone("Europe/Paris") == "Europe/Paris"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown timezone"):
        cli._timezone("Mars/Olympus")
    with pytest.raises(ValueError):
        q.tz_literal("UTC'); DROP TABLE x; --")


def test_timezone_reaches_the_sql_as_a_constant() -> None:
    pricing = load_pricing(env={})
    f = q.Filters(since=dt.date(2026, 2, 1), timezone="Europe/Berlin")
    sql = q.tokens_sql(["day"], f, pricing)
    assert "toDate(timestamp, 'Europe/Berlin') AS k_day" in sql
    assert "toDate(timestamp, 'Europe/Berlin') >= {since:Date}" in sql
    week = q.tokens_sql(["week"], q.Filters(), pricing, week_start="monday")
    assert "toStartOfWeek(day, 1) AS k_week" in week
    assert "formatDateTime(day, '%Y-%m') AS k_month" in q.tokens_sql(["month"], q.Filters(), pricing)
    # UTC is the stored day itself
    assert "toDate(day) >= {since:Date}" in q.tokens_sql(["day"], q.Filters(since=dt.date(2026, 2, 1)), pricing)


def test_order_sessions_by_last_activity() -> None:
    rows = [{"session": "b", "last_activity": "2026-02-12T10:00:00.000Z"},
            {"session": "a", "last_activity": "2026-02-13T09:00:00.000Z"},
            {"session": "c", "last_activity": "2026-02-11T23:00:00.000Z"}]
    assert [r["session"] for r in cli._ordered(rows, ["session"], "asc")] == ["c", "b", "a"]
    assert [r["session"] for r in cli._ordered(rows, ["session"], "desc")] == ["a", "b", "c"]
    days = [{"day": "2026-02-11"}, {"day": "2026-02-12"}]
    assert cli._ordered(days, ["day"], "desc") == days[::-1]


def test_breakdown_nests_models_under_rows() -> None:
    rows = [{"day": "2026-02-12", "cost_usd": 3.0}, {"day": "2026-02-13", "cost_usd": 1.0}]
    per_model = [{"day": "2026-02-12", "model": "claude-opus-4-6", "cost_usd": 2.5, "total_tokens": 10},
                 {"day": "2026-02-12", "model": "claude-haiku-4-5", "cost_usd": 0.5, "total_tokens": 5},
                 {"day": "2026-02-12", "model": "<synthetic>", "cost_usd": 0.0, "total_tokens": 0},
                 {"day": "2026-02-13", "model": "claude-opus-4-6", "cost_usd": 1.0, "total_tokens": 3}]
    cli._add_breakdown(rows, per_model, ["day"])
    assert [m["model"] for m in rows[0]["breakdown"]] == ["claude-opus-4-6", "claude-haiku-4-5"]
    assert "day" not in rows[0]["breakdown"][0]
    table = cli._with_breakdown_rows(rows, ["day"])
    assert [r["day"] for r in table] == ["2026-02-12", "  └ opus-4-6", "  └ haiku-4-5", "2026-02-13", "  └ opus-4-6"]


def test_block_rows_from_usage_rows() -> None:
    pricing = load_pricing(env={})
    base = dt.datetime(2026, 2, 12, 14, 20, tzinfo=dt.UTC)
    entries = [{"timestamp": (base + dt.timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S.000"),
                "model": "claude-opus-4-6", "input_tokens": 10, "output_tokens": 100,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1000, "cache_creation_1h": 0}
               for m in (0, 30, 60, 600)]
    now = base + dt.timedelta(minutes=620)
    rows = cli.block_rows(entries, pricing, now, gaps=True)
    assert [(r["start"], r["is_gap"], r["is_active"], r["entries"]) for r in rows] == [
        ("2026-02-12T14:00:00.000Z", False, False, 3), ("2026-02-12T20:20:00.000Z", True, False, 0),
        ("2026-02-13T00:00:00.000Z", False, True, 1)]
    first = rows[0]
    assert first["total_tokens"] == 3 * 1110 and first["tokens_per_minute"] == round(3330 / 60)
    one = pricing.cost("claude-opus-4-6", 10, 100, 0, 1000, 0)
    assert first["cost_usd"] == pytest.approx(3 * one, abs=1e-6)
    assert rows[2]["state"].startswith("active, ") and rows[2]["projected_cost_usd"] is None  # one entry: no rate
    assert [r["is_active"] for r in cli.block_rows(entries, pricing, now, active=True)] == [True]
    assert all(not r["is_gap"] for r in cli.block_rows(entries, pricing, now))


def _line(**kw: object) -> dict[str, object]:
    return {"raw": json.dumps(kw), "file_path": "f", "byte_offset": len(json.dumps(kw))}


def test_show_header_hook_summary_and_no_invented_text() -> None:
    rows = [
        _line(uuid="u1", parentUuid=None, type="user", cwd="/p/app", gitBranch="main",
              timestamp="2026-02-12T23:50:00.000Z", message={"role": "user", "content": "hi"}),
        _line(uuid="a1", parentUuid="u1", type="assistant", timestamp="2026-02-13T00:10:00.000Z",
              message={"model": "claude-opus-4-6", "content": [{"type": "text", "text": "  \n "}]}),
        _line(uuid="s1", parentUuid="a1", type="system", subtype="stop_hook_summary", hookCount=2,
              hookInfos=[{"command": "a.sh"}, {"command": "b.sh"}], hookErrors=["x"], preventedContinuation=True,
              stopReason="tests failed", timestamp="2026-02-13T00:10:01.000Z"),
    ]
    conv = replay(rows)
    header = cli.session_header(conv, rows)
    assert header == {"project": "/p/app", "git_branches": ["main"], "started_at": "2026-02-12T23:50:00.000Z",
                      "ended_at": "2026-02-13T00:10:01.000Z", "duration_s": 1201.0, "models": ["claude-opus-4-6"],
                      "turns": 3}
    turns = [t for _, t in conv.walk()]
    assert turn_lines(turns[1], fallback=False) == [] and turn_lines(turns[1]) == ["assistant"]
    assert hook_summary(turns[2].obj) == "stop hooks: 2 ran, 1 failed, stopped the turn: tests failed (a.sh; b.sh)"
    assert turn_lines(turns[2]) == [hook_summary(turns[2].obj)]


def test_show_renders_dates_when_the_day_changes() -> None:
    import io

    rows = [_line(uuid="u1", parentUuid=None, type="user", timestamp="2026-02-12T23:50:00.000Z",
                  message={"role": "user", "content": "hi"}),
            _line(uuid="u2", parentUuid="u1", type="user", timestamp="2026-02-13T00:10:00.000Z",
                  message={"role": "user", "content": "again"})]
    conv = replay(rows)
    walk = list(conv.walk())
    out = io.StringIO()
    cli._render_show("s", walk, conv, False, out, cli.session_header(conv, rows), "UTC")
    text = out.getvalue()
    assert text.index("── 2026-02-12 ──") < text.index("23:50:00") < text.index("── 2026-02-13 ──") < \
        text.index("00:10:00")
    out = io.StringIO()
    cli._render_show("s", walk, conv, False, out, None, "Asia/Tokyo")  # +9: both on the 13th
    assert out.getvalue().count("── 2026-02-13 ──") == 1 and "08:50:00" in out.getvalue()


def test_short_only_shortens_uuids() -> None:
    assert cli._short("4d5611e5-241a-462a-8d15-5122611a9569") == "4d5611e5"
    assert cli._short("agent-af1ff21") == "agent-af1ff21" and cli._short(None) == ""

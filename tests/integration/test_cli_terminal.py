"""The real `ccstream` process over the fixture corpus: tables in a pty of 80 and 120 columns, errors as one
line, `sql`'s formats, `db status --json`, an empty store.

Fed: all 63 corpus files stored by a child process into a chDB data dir of this module's own (chDB allows
one data path per process, and the test process keeps its own); every command then runs as its own
`python -m stream.cli` process, in a pseudo-terminal where the width matters.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
LOAD = """
import sys
from pathlib import Path
from stream.store.client import connect
from stream.store.schema import MIGRATIONS, migrate
from tests.integration.test_analytics import load
ch = connect("chdb://" + sys.argv[1])
migrate(ch, MIGRATIONS)
print(load(ch, Path(sys.argv[2])))
# one bad line, as the sink stores it: `status` lists it
ch.command("INSERT INTO dead_letters (host, file_path, file_id, incarnation, byte_offset, line_no, length, "
           "reason, sample, detected_at, ingested_at) VALUES ('h', '/r/projects/p/s.jsonl', 'f', 0, 10, 3, 5, "
           "'invalid_json', '{', '2026-02-12 10:00:00.000', now64(3))")
ch.close()
"""


def _env(data_dir: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CCSTREAM_") and k not in ("COLUMNS", "LINES", "TZ", "CLAUDE_CONFIG_DIR")}
    env.update({"CCSTREAM_DATA_DIR": str(data_dir), "HOME": str(home), "TZ": "UTC",
                "PYTHONPATH": str(REPO), "CLAUDE_CONFIG_DIR": str(home / ".claude")})
    return env


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> dict[str, str]:
    base = tmp_path_factory.mktemp("cli")
    env = _env(base / "data", base / "home")
    (base / "home").mkdir()
    r = subprocess.run([sys.executable, "-c", LOAD, str(base / "data" / "clickhouse"), str(corpus)], env=env,
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "18918"
    return env


def ccstream(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def in_pty(env: dict[str, str], cols: int, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run ccstream with a terminal of ``cols`` columns on stdin/stdout/stderr; (exit status, screen text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, cols, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "stream.cli", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, cwd=REPO, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        rc = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "")
    return rc, text


def _fits(text: str, cols: int) -> None:
    longest = max(text.splitlines(), key=len)
    assert len(longest) <= cols, longest


@pytest.mark.parametrize("cols", [80, 120])
def test_sessions_fit_the_terminal_without_splitting_numbers(store: dict[str, str], cols: int) -> None:
    doc = json.loads(ccstream(store, "sessions", "--json", "--limit", "12").stdout)
    rc, text = in_pty(store, cols, "sessions", "--limit", "12")
    assert rc == 0, text
    _fits(text, cols)
    for r in doc:
        row = next(line for line in text.splitlines() if r["session_id"][:8] in line)
        # the figures of each session sit whole on its own line
        assert f"{r['total_tokens']:,}" in row and f"${r['cost_usd']:,.2f}" in row, row
    assert "hidden to fit:" in text and "(--wide shows all)" in text
    hidden = text.split("hidden to fit: ")[1].split(" (--wide")[0].replace("\n", " ")
    for name in hidden.split(", "):
        assert f" {name} " not in text.split("\n", 3)[2]  # a hidden column has no header
    assert "12 sessions" in text
    if cols == 80:
        assert "tool errors" in hidden and "compactions" in hidden


def test_wide_shows_every_column(store: dict[str, str]) -> None:
    rc, text = in_pty(store, 80, "sessions", "--limit", "3", "--wide")
    assert rc == 0
    for header in ("project", "models", "tool calls", "tool errors", "compactions", "subagents", "tokens", "cost"):
        assert header in text
    assert "hidden to fit" not in text
    assert "10,146,389" in text  # c010174c's tokens, whole even in lines wider than the terminal


def test_tokens_by_session_sorted_by_last_activity(store: dict[str, str]) -> None:
    doc = json.loads(ccstream(store, "tokens", "--by", "session", "--json", "--since", "20260212").stdout)
    rows = doc["rows"]
    stamps = [r["last_activity"] for r in rows]
    assert stamps == sorted(stamps) and all(r["project_path"] for r in rows)
    assert doc["timezone"] == "UTC" and doc["order"] == "asc"
    rc, text = in_pty(store, 80, "tokens", "--by", "session", "--since", "20260212")
    assert rc == 0
    _fits(text, 80)
    order = [r["session"][:8] for r in rows]
    positions = [text.index(s) for s in order]
    assert positions == sorted(positions)
    for r in rows:
        assert f"{r['total_tokens']:,}" in text and f"${r['cost_usd']:,.2f}" in text
    desc = json.loads(ccstream(store, "tokens", "--by", "session", "--json", "--since", "20260212",
                               "--order", "desc").stdout)
    assert [r["session"] for r in desc["rows"]] == [r["session"] for r in rows][::-1]


def test_tokens_by_week_month_timezone_breakdown(store: dict[str, str]) -> None:
    month = json.loads(ccstream(store, "tokens", "--by", "month", "--json").stdout)
    assert [r["month"] for r in month["rows"]] == ["2025-06", "2025-08", "2026-01", "2026-02"]
    assert sum(r["output_tokens"] for r in month["rows"]) == 453_920  # ccusage 20.0.24 daily, tests/fixtures/ccusage/daily.json
    week = json.loads(ccstream(store, "tokens", "--by", "week", "--json", "--start-of-week", "monday").stdout)
    assert all(dt_.weekday() == 0 for dt_ in (__import__("datetime").date.fromisoformat(r["week"])
                                               for r in week["rows"]))
    assert sum(r["output_tokens"] for r in week["rows"]) == 453_920  # ccusage 20.0.24 daily, tests/fixtures/ccusage/daily.json
    utc = json.loads(ccstream(store, "tokens", "--by", "day", "--json", "--timezone", "UTC").stdout)
    tokyo = json.loads(ccstream(store, "tokens", "--by", "day", "--json", "--timezone", "Asia/Tokyo").stdout)
    assert sum(r["output_tokens"] for r in tokyo["rows"]) == sum(r["output_tokens"] for r in utc["rows"])
    assert [r["day"] for r in tokyo["rows"]] != [r["day"] for r in utc["rows"]]  # days move with the zone
    bd = json.loads(ccstream(store, "tokens", "--by", "day", "--json", "--breakdown", "--since", "20260212",
                             "--until", "20260212").stdout)
    (day,) = bd["rows"]
    assert sum(m["output_tokens"] for m in day["breakdown"]) == day["output_tokens"] == 114_688
    rc, text = in_pty(store, 80, "tokens", "--breakdown", "--since", "20260212", "--until", "20260212")
    assert rc == 0 and "└ opus-4-6" in text


def test_blocks(store: dict[str, str]) -> None:
    doc = json.loads(ccstream(store, "blocks", "--json").stdout)
    blocks = doc["blocks"]
    assert blocks and not any(b["is_active"] for b in blocks)  # the corpus is from the past
    assert sum(b["output_tokens"] for b in blocks) == 453_920  # ccusage 20.0.24 daily, tests/fixtures/ccusage/daily.json
    for b in blocks:
        start = b["start"]
        assert start.endswith(":00:00.000Z")  # floored to the hour
    starts = [b["start"] for b in blocks]
    assert starts == sorted(starts)
    rc, text = in_pty(store, 80, "blocks", "--since", "20260212")
    assert rc == 0 and "5-hour windows" in text
    _fits(text, 80)
    live_rc, live = in_pty(store, 80, "blocks", "--live", "--live-count", "2", "--refresh", "0.1")
    assert live_rc == 0 and live.count("no active 5-hour window") == 2


def test_show_header_and_days(store: dict[str, str]) -> None:
    rc, text = in_pty(store, 80, "show", "4d5611e5")
    assert rc == 0
    head = text.split("── 2026-02-12 ──")[0]
    assert "project /home/USER/projects/spotter-worktrees/spotter-dov" in head and "branch spotter-dov" in head
    assert "5h01m" in head and "opus-4-6, sonnet-4-5" in head and "$10.11" in head
    assert "stop hooks: 4 ran" in text
    doc = json.loads(ccstream(store, "show", "4d5611e5", "--json").stdout)
    assert doc["project"].endswith("spotter-dov") and doc["git_branches"] == ["spotter-dov"]
    assert doc["cost_usd"] == pytest.approx(10.113695550000003, abs=1e-5)
    assert not any(t["text"] == t["kind"] for t in doc["turns"] if t["kind"] == "assistant")


def test_user_mistakes_are_one_line(store: dict[str, str], tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    env = {**store, "CCSTREAM_DATA_DIR": str(afile)}
    r = ccstream(env, "sessions")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "is not a directory; set CCSTREAM_DATA_DIR" in r.stderr
    env = {**store, "CCSTREAM_SINK_BATCH_SECONDS": "soon"}
    r = ccstream(env, "tokens")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "CCSTREAM_SINK_BATCH_SECONDS" in r.stderr
    r = ccstream(store, "edge")
    assert r.returncode == 1 and "needs a Kafka cluster" in r.stderr and "Traceback" not in r.stderr
    r = ccstream(store, "tokns")
    assert r.returncode == 2 and "did you mean `ccstream tokens`" in r.stderr
    r = ccstream(store, "sql", "SELEC 1", "--debug")
    assert r.returncode == 1 and "Traceback" not in r.stderr  # ClickHouse's message is what helps here
    r = ccstream({**store, "CCSTREAM_DATA_DIR": str(afile)}, "--debug", "sessions")
    assert r.returncode == 1 and "Traceback" in r.stderr and "UserError" in r.stderr


def test_sql_formats(store: dict[str, str]) -> None:
    q = "SELECT type, count() AS n FROM claude_raw_traces FINAL GROUP BY type ORDER BY type"
    own = ccstream(store, "sql", q + " FORMAT JSON")
    assert own.returncode == 0, own.stderr
    doc = json.loads(own.stdout)
    assert {r["type"] for r in doc["data"]} >= {"assistant", "user"}
    one = json.loads(ccstream(store, "sql", q, "--format", "json").stdout)
    assert isinstance(one, list) and [r["type"] for r in one] == [r["type"] for r in doc["data"]]
    lines = ccstream(store, "sql", q, "--format", "ndjson").stdout.splitlines()
    assert [json.loads(x)["type"] for x in lines] == [r["type"] for r in one]
    csv_ = ccstream(store, "sql", q + " FORMAT CSVWithNames;")
    assert csv_.stdout.splitlines()[0] == '"type","n"'
    clash = ccstream(store, "sql", q + " FORMAT JSON", "--format", "csv")
    assert clash.returncode == 2 and "keep one" in clash.stderr


def test_status_lists_recent_dead_letters_and_freshness(store: dict[str, str]) -> None:
    status = json.loads(ccstream(store, "status", "--json").stdout)
    assert status["store"]["dead_letters"] == 1 and status["store"]["rows"] == 18_918
    assert status["recent_dead_letters"] == {"2026-02-12 10:00 UTC": "invalid_json at p/s.jsonl:3"}
    assert status["import"]["up"].startswith("not running")
    rc, text = in_pty(store, 80, "tools", "--limit", "3")
    assert rc == 0 and "data as of the last insert" in text and "`ccstream up` is not running" in text


def test_db_status_json_after_the_subcommand(store: dict[str, str]) -> None:
    after = ccstream(store, "db", "status", "--json")
    before = ccstream(store, "db", "--json", "status")
    assert after.returncode == 0, after.stderr
    rows = json.loads(after.stdout)
    assert rows == json.loads(before.stdout) and all(r["applied"] for r in rows)


def test_empty_store(tmp_path: Path) -> None:
    env = _env(tmp_path / "data", tmp_path / "home")
    r = ccstream(env, "sessions")
    assert r.returncode == 0 and r.stdout == ""
    assert r.stderr == "ccstream: nothing imported yet: run `ccstream up` (it imports every transcript, then " \
                       "follows them)\n"
    r = ccstream(env, "tokens", "--json")
    assert json.loads(r.stdout)["rows"] == [] and "nothing imported yet" in r.stderr
    assert json.loads(ccstream(env, "sessions", "--json").stdout) == []
    assert json.loads(ccstream(env, "blocks", "--json").stdout)["blocks"] == []
    status = json.loads(ccstream(env, "status", "--json").stdout)
    assert status["store"]["last_insert"] == "never" and status["store"]["rows"] == 0
    assert status["import"]["up"].startswith("not running")

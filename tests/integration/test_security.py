"""The serving surface of a real `ccstream up`, attacked over real HTTP and from a real browser (issue 17).

Every attack tries to make chDB write a file (``INSERT INTO FUNCTION file(...)``) and to change the store
(``CREATE TABLE``); the tests then assert that no file exists and the store holds exactly what it held.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import ipaddress
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stream.stack.rundir import RunDir
from tests.integration.upstack import REPO, UpStack

pytestmark = pytest.mark.integration

SQL_MAX_SECONDS = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpStack]:
    s = UpStack(tmp_path_factory.mktemp("security"), {"CCSTREAM_SQL_MAX_SECONDS": str(SQL_MAX_SECONDS)})
    s.start()
    try:
        yield s
    finally:
        s.stop()


def _port(stack: UpStack, which: str = "web_url") -> int:
    """The sink's port (web_url: SQL, dashboard, status), or the edge's (edge_url: the drain)."""
    return int(str(stack.worker_info()[which]).rsplit(":", 1)[1])


def _token(stack: UpStack) -> str:
    token = RunDir(stack.data_dir / "run").api_token()
    assert token
    return token


def request(stack: UpStack, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, which: str = "web_url") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", _port(stack, which), timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def sql_body(sql: str, write: bool = False) -> bytes:
    return json.dumps({"sql": sql, "format": "JSONEachRow", "write": write}).encode()


def tables(stack: UpStack) -> list[str]:
    return [r["name"] for r in stack.query("SELECT name FROM system.tables WHERE database = currentDatabase() "
                                           "ORDER BY name")]


def attacks(target: Path) -> list[str]:
    return [f"INSERT INTO FUNCTION file('{target}', 'LineAsString') SELECT 'pwned'",
            f"SELECT * FROM file('{target.parent / 'nothing'}', 'LineAsString')",
            "CREATE TABLE pwned_table (x UInt8) ENGINE = MergeTree ORDER BY x",
            "SELECT line FROM file('/etc/hostname', 'LineAsString')"]


def test_secret_files_are_0600(stack: UpStack) -> None:
    run = stack.data_dir / "run"
    for name in ("api.token", "redis.password", "redis.url", "worker.json", "up.lock"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert len(_token(stack)) >= 43
    # the password never appears in a world-readable place: not in the recorded URL, not on a command line
    password = (run / "redis.password").read_text().strip()
    assert password not in (run / "redis.url").read_text()
    assert password not in (run / "worker.json").read_text()
    for pid in RunDir(run).worker_info()["children"].values():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert password not in cmdline and _token(stack) not in cmdline


def listening(pid: int) -> list[str]:
    """The local addresses `pid` listens on (TCP, v4 and v6), from /proc: its socket inodes, then the
    LISTEN rows (state 0A) of /proc/net/tcp{,6} that own them."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    out = []
    for table in ("tcp", "tcp6"):
        for row in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] != "0A" or cols[9] not in inodes:
                continue
            host_hex, port_hex = cols[1].split(":")
            raw = bytes.fromhex(host_hex)
            # /proc prints each 32-bit word in host (little-endian) order
            addr = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            out.append(f"{ipaddress.ip_address(addr)}:{int(port_hex, 16)}")
    return out


def test_every_port_of_the_stack_listens_on_loopback_only(stack: UpStack) -> None:
    """Fed: the running split stack. Expected: each of its processes (Redis, Tansu, bridge, sink, edge) that
    listens does so on 127.0.0.1 or ::1 only, and the two workers' web ports are among them."""
    children = RunDir(stack.data_dir / "run").worker_info()["children"]
    seen = {name: listening(pid) for name, pid in children.items()}
    assert all(ipaddress.ip_address(a.rsplit(":", 1)[0]).is_loopback for addrs in seen.values() for a in addrs), seen
    assert f"127.0.0.1:{_port(stack)}" in seen["sink"] and f"127.0.0.1:{_port(stack, 'edge_url')}" in seen["edge"]
    assert seen["redis-server"] and seen["tansu"], seen


def test_tokenless_requests_get_nothing_and_write_nothing(stack: UpStack, tmp_path: Path) -> None:
    before = tables(stack)
    target = tmp_path / "pwned.txt"
    hostname = Path("/etc/hostname").read_text().strip()
    for sql in attacks(target):
        cases = [
            # a page on another origin, no-cors: text/plain needs no preflight
            ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403),
            # any local process, plain JSON, no Origin, no token
            ({"Content-Type": "application/json"}, 401),
            # DNS rebinding: the browser sends the attacker's name as Host
            ({"Host": f"attacker.example:{_port(stack)}", "Content-Type": "application/json"}, 403),
            # a same-site page on another port of 127.0.0.1
            ({"Origin": "http://127.0.0.1:1", "Content-Type": "application/json"}, 403),
            # a wrong token
            ({"Content-Type": "application/json", "Authorization": "Bearer " + "x" * 43}, 401),
        ]
        for headers, status in cases:
            got, resp_headers, body = request(stack, "POST", "/ccstream/sql/", sql_body(sql, write=True), headers)
            assert got == status, (headers, got, body)
            assert not any(h.startswith("access-control-") for h in resp_headers), resp_headers
            assert b"pwned" not in body and hostname.encode() not in body
    for which in ("web_url", "edge_url"):  # the sink's port and the edge's: one guard on both
        for path in ("/ccstream/status/", "/ccstream/debug/tasks/", "/router/", "/graph/", "/stats/", "/"):
            got, _, body = request(stack, "GET", path, which=which)
            assert got == 401, (which, path, got, body)
    got, _, body = request(stack, "GET", "/ccstream/health/")
    assert got == 200 and json.loads(body) == {"ok": True}  # open, and says nothing about the data
    assert not target.exists()
    assert tables(stack) == before


def test_with_the_token_the_api_still_refuses_files_urls_and_writes(stack: UpStack, tmp_path: Path) -> None:
    auth = {"Content-Type": "application/json", "Authorization": f"Bearer {_token(stack)}"}
    before = tables(stack)
    target = tmp_path / "pwned.txt"
    for sql in [*attacks(target)[:2], attacks(target)[3], "SELECT * FROM url('http://127.0.0.1:1/', 'LineAsString')",
                f"SELECT file('{Path('/etc/hostname')}')", f"SELECT 1 INTO OUTFILE '{target}'",
                "SELECT 1; DROP TABLE claude_raw_traces"]:
        for write in (False, True):
            got, _, body = request(stack, "POST", "/ccstream/sql/", sql_body(sql, write), auth)
            assert got == 400, (sql, write, body)
    # the output format is appended to the statement: it must not carry SQL of its own
    injected = json.dumps({"sql": "SELECT 1", "format": "TSV; SELECT file('/etc/hostname')"}).encode()
    got, _, body = request(stack, "POST", "/ccstream/sql/", injected, auth)
    assert got == 400 and Path("/etc/hostname").read_text().strip().encode() not in body
    disk = tmp_path / "disk"
    got, _, body = request(stack, "POST", "/ccstream/sql/", sql_body(
        "CREATE TABLE pwned_disk (x String) ENGINE = MergeTree ORDER BY x "
        f"SETTINGS disk = disk(type = local, path = '{disk}/')", write=True), auth)
    assert got == 400 and not disk.exists()
    got, _, body = request(stack, "POST", "/ccstream/sql/", sql_body("DROP TABLE claude_raw_traces"), auth)
    assert got == 400 and b"--write" in body
    got, _, body = request(stack, "POST", "/ccstream/sql/", sql_body("SELECT 1 AS one SETTINGS readonly = 0"), auth)
    assert got == 400
    got, _, body = request(stack, "POST", "/ccstream/sql/", sql_body("SELECT 1 AS one"), auth)
    assert got == 200 and json.loads(body) == {"one": 1}
    assert not target.exists()
    assert tables(stack) == before


def _cli(stack: UpStack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stream.cli", "sql", *args], env=stack.env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_ccstream_sql_is_read_only_unless_write(stack: UpStack) -> None:
    ok = _cli(stack, "-f", "json", "SELECT count() AS n FROM claude_raw_traces FINAL")
    assert ok.returncode == 0 and "n" in json.loads(ok.stdout)[0], ok.stderr  # --format json: one array
    denied = _cli(stack, "CREATE TABLE scratch (x UInt8) ENGINE = MergeTree ORDER BY x")
    assert denied.returncode == 1 and "--write" in denied.stderr and "Traceback" not in denied.stderr
    assert "scratch" not in tables(stack)
    assert _cli(stack, "--write", "CREATE TABLE scratch (x UInt8) ENGINE = MergeTree ORDER BY x").returncode == 0
    assert _cli(stack, "INSERT INTO scratch SELECT 1").returncode == 1
    done = _cli(stack, "--write", "INSERT INTO scratch SELECT * FROM values('x UInt8', 1, 2)")
    assert done.returncode == 0, done.stderr
    assert stack.query("SELECT sum(x) AS s FROM scratch") == [{"s": 3}]
    assert _cli(stack, "DROP TABLE scratch").returncode == 1
    assert _cli(stack, "--write", "DROP TABLE scratch").returncode == 0
    assert "scratch" not in tables(stack)
    help_text = _cli(stack, "--help").stdout
    assert "--write" in help_text and "file()" in help_text


def test_the_one_time_login_url_becomes_a_strict_cookie(stack: UpStack) -> None:
    log = stack.log_path.read_text()
    url = next(w for line in log.splitlines() if "dashboard" in line for w in line.split() if "login=" in w)
    path = url.split(str(_port(stack)), 1)[1]
    got, headers, _ = request(stack, "GET", path)
    assert got == 303 and headers["location"] == "/dashboard/"  # the one-time link lands on the dashboard
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": cookie.split(";")[0]}
    got, _, body = request(stack, "GET", "/ccstream/status/", headers=jar)
    assert got == 200 and "followed_files" in json.loads(body)
    assert request(stack, "GET", path)[0] == 401  # spent
    # the cookie alone is not enough for a state-changing request from another origin
    got, _, _ = request(stack, "POST", "/ccstream/sql/", sql_body("SELECT 1"),
                        {**jar, "Origin": "http://127.0.0.1:1", "Content-Type": "application/json"})
    assert got == 403


def test_redis_needs_the_password_and_the_hook_has_it(stack: UpStack) -> None:
    url = (stack.data_dir / "run" / "redis.url").read_text().strip()
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(b"*5\r\n$4\r\nXADD\r\n$17\r\nccstream:sessions\r\n$1\r\n*\r\n$5\r\nevent\r\n$1\r\nx\r\n")
        assert s.recv(64).startswith(b"-NOAUTH")  # a fake hook event from another local user is refused
    with socket.create_connection((host, int(port)), timeout=2) as s:
        s.sendall(b"*2\r\n$4\r\nAUTH\r\n$5\r\nguess\r\n")
        assert s.recv(64).startswith(b"-WRONGPASS")
    session_id = str(uuid.uuid4())
    done = stack.hook({"session_id": session_id, "transcript_path": "/nonexistent.jsonl", "cwd": "/tmp",
                       "hook_event_name": "SessionStart", "source": "startup"})
    assert done.returncode == 0 and done.stdout == b""
    stack.wait_for(lambda: stack.query(
        "SELECT hook_event_name FROM session_events FINAL WHERE session_id = {sid:String}", {"sid": session_id})
        == [{"hook_event_name": "SessionStart"}], 30, "the hook event through the password-protected Redis")
    assert not list((stack.data_dir / "spool").glob("*.jsonl")) or all(
        session_id not in p.read_text() for p in (stack.data_dir / "spool").glob("*.jsonl"))


def _status(stack: UpStack) -> dict[str, Any]:
    got, _, body = request(stack, "GET", "/ccstream/status/", headers={"Authorization": f"Bearer {_token(stack)}"})
    assert got == 200
    return dict(json.loads(body))


def test_a_long_query_is_cut_while_ingest_goes_on(stack: UpStack) -> None:
    auth = {"Content-Type": "application/json", "Authorization": f"Bearer {_token(stack)}"}
    project = stack.projects / "-tmp-security"
    project.mkdir(exist_ok=True)
    time.sleep(1.0)  # the new folder is watched before the test's line is written
    result: dict[str, Any] = {}

    def long_query() -> None:
        t0 = time.monotonic()
        result["reply"] = request(stack, "POST", "/ccstream/sql/",
                                  sql_body("SELECT count() FROM numbers(100000000000000)"), auth)
        result["seconds"] = time.monotonic() - t0

    inserted = _status(stack)["rows_inserted"]
    runner = threading.Thread(target=long_query)
    runner.start()
    time.sleep(0.3)
    session_id = str(uuid.uuid4())
    line = {"type": "user", "uuid": str(uuid.uuid4()), "parentUuid": None, "sessionId": session_id,
            "timestamp": "2026-12-03T10:00:00.000Z", "cwd": "/tmp/security", "version": "2.1.42",
            "message": {"role": "user", "content": "during a long query"}}
    t0 = time.monotonic()
    (project / f"{session_id}.jsonl").write_text(json.dumps(line) + "\n")
    # the sink inserts the line while the long query still runs (counters of the worker: no SQL needed)
    stack.wait_for(lambda: _status(stack)["rows_inserted"] > inserted or "reply" in result,
                   SQL_MAX_SECONDS + 5, "the insert of the line written during a long query")
    landed = time.monotonic() - t0
    assert "reply" not in result, "the line was inserted only after the long query ended"
    # and other queries are answered meanwhile: the long one holds no client but its own
    t1 = time.monotonic()
    assert stack.query("SELECT count() AS n FROM claude_raw_traces FINAL WHERE session_id = {sid:String}",
                       {"sid": session_id}) == [{"n": 1}]
    answered = time.monotonic() - t1
    assert "reply" not in result
    runner.join(60)
    status, _, body = result["reply"]
    assert status == 400 and b"TIMEOUT_EXCEEDED" in body, body
    assert SQL_MAX_SECONDS - 1 < result["seconds"] < SQL_MAX_SECONDS + 10
    print(f"inserted {landed:.2f}s after it was written, queried in {answered:.2f}s, both during a query cut "
          f"after {result['seconds']:.2f}s")


class _AttackerPage(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_page_on_another_origin_in_a_real_browser_cannot_write(stack: UpStack, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (dev extras)")
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("/usr/bin/chromium is missing: `make deps` installs Debian's chromium")
    before = tables(stack)
    target = tmp_path / "browser-pwned.txt"
    worker = f"http://127.0.0.1:{_port(stack)}/ccstream/sql/"
    script = "".join(
        f"fetch({json.dumps(w)}, {{method: 'POST', mode: 'no-cors', body: {json.dumps(body)}, "
        f"headers: {{'Content-Type': 'text/plain'}}}}).then(() => log('sent'), e => log('error ' + e));"
        for w in (worker, worker.replace("127.0.0.1", "localhost"))
        for body in (json.dumps({"sql": s, "write": True}) for s in attacks(target)))
    _AttackerPage.page = (
        "<!doctype html><body><pre id=out></pre><script>"
        "function log(m) { document.getElementById('out').textContent += m + '\\n'; }"
        f"{script}</script>").encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
                sent = 2 * len(attacks(target))
                page.wait_for_function(
                    f"document.getElementById('out').textContent.split('\\n').filter(Boolean).length >= {sent}",
                    timeout=30000)
                out = page.inner_text("#out")
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert out.count("sent") == 2 * len(attacks(target))  # the requests did go out
    time.sleep(0.5)
    assert not target.exists()
    assert tables(stack) == before


def test_the_drain_needs_the_token_and_stops_history_until_resumed(stack: UpStack, tmp_path: Path) -> None:
    """The drain is the edge worker's (it has the tailer), behind the same guard as the sink's API; the
    sink's status shows it (the split stack's one status)."""
    body = json.dumps({"draining": True}).encode()
    for headers, status in [({"Content-Type": "application/json"}, 401),
                            ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403)]:
        got, _, answer = request(stack, "POST", "/ccstream/drain/", body, headers, which="edge_url")
        assert got == status, (headers, got, answer)
    auth = {"Authorization": f"Bearer {_token(stack)}", "Content-Type": "application/json"}
    assert request(stack, "POST", "/ccstream/drain/", b'{"draining": "yes"}', auth, which="edge_url")[0] == 400
    assert request(stack, "POST", "/ccstream/drain/", body, auth)[0] == 404  # the sink has no tailer
    got, _, answer = request(stack, "POST", "/ccstream/drain/", body, auth, which="edge_url")
    assert got == 200 and json.loads(answer) == {"draining": True}
    try:
        # fed while draining: a folder moved in (history, stream/tail/inotify.py) with one line
        session = "5e55a0d2-0000-4000-8000-00000000d1a1"
        staging = tmp_path / "-tmp-drained"
        staging.mkdir()
        line = {"type": "user", "uuid": "5e55a0d2-0000-4000-8000-00000000d1a2", "parentUuid": None,
                "sessionId": session, "timestamp": "2026-12-04T10:00:00.000Z", "cwd": "/tmp/drained",
                "version": "2.1.42", "message": {"role": "user", "content": "drained"}}
        (staging / f"{session}.jsonl").write_text(json.dumps(line) + "\n")
        staging.rename(stack.projects / staging.name)
        rows = f"SELECT count() AS n FROM claude_raw_traces WHERE session_id = '{session}'"
        time.sleep(8)  # more than two scans (CCSTREAM_SCAN_INTERVAL=3) and the request's round trip
        assert stack.scalar(rows) == 0  # nothing read while history is stopped
        assert json.loads(request(stack, "GET", "/ccstream/status/", headers=auth)[2])["draining"] is True
    finally:
        got, _, answer = request(stack, "POST", "/ccstream/drain/", json.dumps({"draining": False}).encode(), auth,
                                 which="edge_url")
    assert got == 200 and json.loads(answer) == {"draining": False}
    stack.wait_for(lambda: stack.scalar(rows) == 1, 60, "the drained file, read by the next scan")

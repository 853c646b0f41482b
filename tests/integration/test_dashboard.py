"""The dashboard in a real browser (Playwright driving Debian's chromium) against `ccstream up` on the corpus.

Checked: every figure on the overview equals `ccstream tokens --json` / `sessions --json` (run as the CLI,
through the same worker) for the whole range and for a narrowed one; a session with subagents shows them
nested under their Task; the model filter and a column sort work by clicking; a line appended to a live
session appears on its page within 2 s without a reload. Screenshots of each page go to
test-artifacts/dashboard/ (git-ignored).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.upstack import REPO, UpStack

pytestmark = pytest.mark.integration

EXPECTED_ROWS = 18_918
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TOKEN_FIELDS = ("responses", "input_tokens", "output_tokens", "cache_creation_input_tokens",
                "cache_read_input_tokens", "total_tokens", "cost_usd")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[UpStack]:
    s = UpStack(tmp_path_factory.mktemp("dashboard"))
    s.copy_corpus(corpus)
    s.start()
    s.wait_for(lambda: s.scalar("SELECT count() AS n FROM claude_raw_traces FINAL") >= EXPECTED_ROWS, 240,
               f"{EXPECTED_ROWS} rows")
    yield s
    assert s.stop() == 0, s.logs()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `apt-get install chromium` (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _login_url(stack: UpStack) -> str:
    """The one-time link `ccstream up` printed (it trades itself for the session cookie, once)."""
    return next(w for line in stack.log_path.read_text().splitlines() if line.strip().startswith("dashboard")
                for w in line.split() if "login=" in w)


@pytest.fixture(scope="module")
def session_cookie(stack: UpStack) -> dict[str, str]:
    """The owner's browser session: the printed link followed once, as a person would, without the redirect."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    try:
        urllib.request.build_opener(NoRedirect).open(_login_url(stack), timeout=10)
        raise AssertionError("the login link did not redirect")
    except urllib.error.HTTPError as exc:
        assert exc.code == 303 and exc.headers["Location"] == "/dashboard/"
        name, _, value = exc.headers["Set-Cookie"].split(";")[0].partition("=")
    return {"name": name, "value": value, "url": stack.worker_info()["web_url"]}


@pytest.fixture()
def page(browser: Any, stack: UpStack, session_cookie: dict[str, str]) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    ctx.add_cookies([session_cookie])
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    outside: list[str] = []
    base = stack.worker_info()["web_url"]
    pg.on("request", lambda req: None if req.url.startswith(base) else outside.append(req.url))
    yield pg
    ctx.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
    assert outside == [], f"the page loaded something from elsewhere: {outside}"


def _url(stack: UpStack, fragment: str = "") -> str:
    from agents.dashboard import dashboard_url

    return dashboard_url(stack.worker_info()["web_url"]) + fragment


def _cli(stack: UpStack, *args: str) -> Any:
    done = subprocess.run([sys.executable, "-m", "stream.cli", *args, "--json"], env=stack.env, cwd=REPO,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def _shot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _wait_rendered(pg: Any, view: str, after: str = "0") -> None:
    pg.wait_for_function("([v, t]) => document.body.dataset.view === v && "
                         "Number(document.body.dataset.rendered || 0) > Number(t)", arg=[view, after], timeout=60_000)
    assert pg.locator("[data-error]").count() == 0, pg.locator("[data-error]").all_inner_texts()


def _rendered_at(pg: Any) -> str:
    return str(pg.evaluate("document.body.dataset.rendered || '0'"))


def _figure(pg: Any, fig: str) -> str:
    return str(pg.locator(f'[data-fig="{fig}"]').first.get_attribute("data-value"))


def _table(pg: Any, name: str) -> dict[str, dict[str, str]]:
    """data-key → {column: data-value} of a table on the page."""
    return pg.evaluate("""name => Object.fromEntries([...document.querySelectorAll(
        `table[data-table="${name}"] tbody tr`)].map(tr => [tr.dataset.key, Object.fromEntries(
        [...tr.querySelectorAll('td')].map(td => [td.dataset.fig, td.dataset.value]))]))""", name)


def _same(page_value: str, cli_value: Any) -> bool:
    if cli_value is None:
        return page_value == ""
    return float(page_value) == float(cli_value)


def _check_overview_against_cli(pg: Any, stack: UpStack, cli_range: list[str]) -> int:
    """Every figure of the overview against the CLI for the same range; returns how many were compared."""
    compared = 0
    totals = _cli(stack, "tokens", *cli_range)["totals"]
    for k in TOKEN_FIELDS:
        assert _same(_figure(pg, f"totals.{k}"), totals[k]), (k, _figure(pg, f"totals.{k}"), totals[k])
        compared += 1
    assert pg.locator('[data-fig="totals.cost_usd"]').inner_text() == f"${float(totals['cost_usd']):,.2f}"
    side = totals["input_tokens"] + totals["cache_creation_input_tokens"] + totals["cache_read_input_tokens"]
    assert float(_figure(pg, "cache_read_share")) == pytest.approx(totals["cache_read_input_tokens"] / side,
                                                                  abs=1e-6)
    for name, by, keys in (("by_model", "model", ["model"]), ("by_project", "project", ["project"]),
                           ("by_host_user", "host,user", ["host", "user"])):
        rows = _cli(stack, "tokens", "--by", by, *cli_range)["rows"]
        shown = _table(pg, name)
        assert set(shown) == {"|".join(str(r[k]) for k in keys) for r in rows}, name
        for r in rows:
            cells = shown["|".join(str(r[k]) for k in keys)]
            for k in TOKEN_FIELDS:
                if k in cells:
                    assert _same(cells[k], r[k]), (name, r, k, cells[k])
                    compared += 1
    # the chart: one bar segment per (day, model) with usage, each of the CLI's cost
    rows = _cli(stack, "tokens", "--by", "day,model", *cli_range)["rows"]
    bars = pg.evaluate("""[...document.querySelectorAll('svg[data-chart="by_day_model"] rect')].map(
        r => [r.dataset.day, r.dataset.model, r.dataset.value])""")
    assert {(d, m): float(v) for d, m, v in bars} == {(r["day"], r["model"]): float(r["cost_usd"])
                                                       for r in rows if float(r["cost_usd"])}
    compared += len(bars)
    sessions = _cli(stack, "sessions", *cli_range)
    assert int(_figure(pg, "sessions.count")) == len(sessions)
    assert int(_figure(pg, "sessions.with_tool_errors")) == sum(1 for s in sessions if s["tool_errors"] > 0)
    assert int(_figure(pg, "sessions.tool_errors")) == sum(s["tool_errors"] for s in sessions)
    return compared + 3


def test_up_prints_the_dashboard_url(stack: UpStack) -> None:
    assert _login_url(stack).startswith(stack.worker_info()["web_url"] + "/ccstream/?login=")


def test_without_the_token_the_page_and_its_endpoints_give_nothing(browser: Any, stack: UpStack) -> None:
    """Fed: a browser with no session cookie, and plain requests without a token. Out: 401 and no figure."""
    import urllib.error
    import urllib.request

    ctx = browser.new_context()
    pg = ctx.new_page()
    try:
        resp = pg.goto(_url(stack, "#/overview"))
        assert resp is not None and resp.status == 401
        assert "$" not in pg.content() and "tokens" not in pg.content()
        _shot(pg, "no-token")
    finally:
        ctx.close()
    base = stack.worker_info()["web_url"]
    for path in ("/dashboard/", "/dashboard/api/overview", "/dashboard/api/sessions", "/dashboard/api/version",
                 "/dashboard/openapi.json", "/dashboard/static/app.js"):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            try:
                with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10) as r:
                    raise AssertionError(f"{path} answered {r.status} without the token")
            except urllib.error.HTTPError as exc:
                assert exc.code == 401, (path, exc.code)
                assert b"cost" not in exc.read()


def test_overview_figures_equal_the_cli(page: Any, stack: UpStack) -> None:
    page.goto(_url(stack, "#/overview"))
    _wait_rendered(page, "overview")
    assert _check_overview_against_cli(page, stack, []) > 100
    assert page.locator('[data-fig="pipeline.state"]').inner_text() == "caught up"
    assert _figure(page, "pipeline.dead_letters") == "0"
    assert int(_figure(page, "pipeline.rows")) == EXPECTED_ROWS
    _shot(page, "overview")

    # a narrower range, chosen on the page itself: the range bar's inputs, then a project
    days = sorted({r["day"] for r in _cli(stack, "tokens", "--by", "day")["rows"]})
    since, until = days[len(days) // 4], days[3 * len(days) // 4]
    before = _rendered_at(page)
    page.fill("#since", since)
    page.dispatch_event("#since", "change")
    page.fill("#until", until)
    page.dispatch_event("#until", "change")
    page.wait_for_function("u => location.hash.includes('until=' + u)", arg=until)
    _wait_rendered(page, "overview", before)
    # the last render is the one with both dates: wait for it to settle
    page.wait_for_function("u => document.querySelector('h2').textContent.includes(u)", arg=until)
    assert _check_overview_against_cli(page, stack, ["--since", since, "--until", until]) > 20

    before = _rendered_at(page)
    page.fill("#project", "entireio")
    page.dispatch_event("#project", "change")
    page.wait_for_function("() => document.querySelector('h2').textContent.includes('entireio')")
    _check_overview_against_cli(page, stack, ["--since", since, "--until", until, "--project", "entireio"])
    _shot(page, "overview-range")


def _session_rows(pg: Any) -> list[dict[str, str]]:
    return list(_table(pg, "sessions").values())


def test_sessions_filter_and_sort_by_clicking(page: Any, stack: UpStack) -> None:
    page.goto(_url(stack, "#/sessions"))
    _wait_rendered(page, "sessions")
    everything = _cli(stack, "sessions")
    assert page.locator('table[data-table="sessions"] tbody tr').count() == len(everything)

    # sort by cost, descending, then ascending, by clicking its header
    page.click('th[data-sort="cost_usd"]')
    costs = [float(r["cost_usd"] or 0) for r in _session_rows(page)]
    assert costs == sorted(costs, reverse=True) and costs[0] > costs[-1]
    page.click('th[data-sort="cost_usd"]')
    costs = [float(r["cost_usd"] or 0) for r in _session_rows(page)]
    assert costs == sorted(costs)
    page.click('th[data-sort="turns"]')
    turns = [int(r["turns"]) for r in _session_rows(page)]
    assert turns == sorted(turns, reverse=True)
    _shot(page, "sessions")

    # filter by a model used by some sessions, not all
    models = sorted({m for s in everything for m in s["models"]})
    model = next(m for m in models if 0 < sum(1 for s in everything if m in s["models"]) < len(everything))
    before = _rendered_at(page)
    page.select_option('select[data-filter="model"]', model)
    _wait_rendered(page, "sessions", before)
    shown = {k for k in _table(page, "sessions")}
    assert shown == {s["session_id"] for s in everything if any(model in m for m in s["models"])}
    # the sort chosen before still holds after the filter
    turns = [int(r["turns"]) for r in _session_rows(page)]
    assert turns == sorted(turns, reverse=True)
    _shot(page, "sessions-filtered")


def test_session_page_nests_subagents_under_their_task(page: Any, stack: UpStack) -> None:
    row = stack.query("SELECT session_id, agent_id, tool_use_id FROM subagents WHERE link = 'task' AND has_file "
                      "ORDER BY lines DESC, agent_id LIMIT 1")[0]
    page.goto(_url(stack, "#/sessions"))
    _wait_rendered(page, "sessions")
    before = _rendered_at(page)
    page.click(f'table[data-table="sessions"] tr[data-key="{row["session_id"]}"]')
    _wait_rendered(page, "session", before)
    agent = row["agent_id"]
    head = page.locator(f'.subagent-head[data-subagent="{agent}"]')
    assert head.count() == 1
    order = page.evaluate("""agent => {
        const all = [...document.querySelectorAll('[data-panel="replay"] > *')];
        const head = all.findIndex(e => e.dataset.subagent === agent);
        const turns = all.map((e, i) => [i, e]).filter(([, e]) => e.classList.contains('turn') && e.dataset.agent === agent);
        return {head, headDepth: Number(all[head].dataset.depth), first: turns.length ? turns[0][0] : -1,
                depths: [...new Set(turns.map(([, e]) => Number(e.dataset.depth)))],
                task: all.slice(0, head).reverse().find(e => e.classList.contains('turn'))
                         .querySelector('[data-tool-use]') !== null};
    }""", agent)
    assert order["first"] == order["head"] + 1, order  # the subagent's turns follow its header at once
    assert order["depths"] == [order["headDepth"] + 1], order  # one level deeper than the turn with its Task
    assert order["task"], order  # the header sits under a turn that made a tool call (the Task)
    cli = _cli(stack, "show", row["session_id"])
    assert page.locator('[data-panel="replay"] .turn').count() == len(cli["turns"])
    summary = next(s for s in _cli(stack, "sessions") if s["session_id"] == row["session_id"])
    assert _same(_figure(page, "session.cost_usd"), summary["cost_usd"])
    assert int(_figure(page, "session.subagents")) == summary["subagents"]
    assert page.locator('svg[data-chart="cost_over_time"] path').count() == 1
    _shot(page, "session")


def test_tools_page(page: Any, stack: UpStack) -> None:
    page.goto(_url(stack, "#/tools"))
    _wait_rendered(page, "tools")
    tools = _cli(stack, "tools")
    shown = _table(page, "tools")
    assert set(shown) == {t["tool_name"] for t in tools}
    for t in tools:
        assert int(shown[t["tool_name"]]["calls"]) == t["calls"]
        assert int(shown[t["tool_name"]]["errors"]) == t["errors"]
    failing = _table(page, "failing")
    assert failing, "the corpus has failing tool calls"
    first = page.locator('table[data-table="failing"] tbody tr').first
    session_id = stack.query("SELECT session_id FROM tool_calls WHERE tool_use_id = {t:String}",
                             {"t": first.get_attribute("data-key")})[0]["session_id"]
    _shot(page, "tools")
    before = _rendered_at(page)
    first.click()
    _wait_rendered(page, "session", before)
    assert page.locator("h2 code").first.inner_text() == session_id


def test_a_line_appended_to_a_live_session_appears_within_2s(page: Any, stack: UpStack) -> None:
    session_id = str(uuid.uuid4())
    project = stack.projects / "-tmp-live-dashboard"
    project.mkdir(exist_ok=True)
    transcript = project / f"{session_id}.jsonl"

    def line(text: str, parent: str | None) -> tuple[str, bytes]:
        u = str(uuid.uuid4())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        obj = {"type": "user", "uuid": u, "parentUuid": parent, "sessionId": session_id, "timestamp": stamp,
               "cwd": "/tmp/live-dashboard", "version": "2.1.42", "message": {"role": "user", "content": text}}
        return u, json.dumps(obj).encode() + b"\n"

    first, data = line("the first prompt", None)
    transcript.write_bytes(data)
    assert stack.hook({"session_id": session_id, "transcript_path": str(transcript), "cwd": "/tmp/live-dashboard",
                       "hook_event_name": "SessionStart", "source": "startup"}).returncode == 0
    stack.wait_for(lambda: bool(stack.query("SELECT 1 AS x FROM claude_raw_traces WHERE session_id = {s:String}",
                                            {"s": session_id})), 30, "the first line")
    page.goto(_url(stack, f"#/session/{session_id}"))
    _wait_rendered(page, "session")
    assert page.locator("text=the first prompt").count() == 1
    page.evaluate("window.__same_document = true")

    marker = f"appended while watching {uuid.uuid4().hex[:8]}"
    second, data = line(marker, first)
    wall = time.time()
    with transcript.open("ab") as fh:
        fh.write(data)
    t0 = time.monotonic()
    page.locator(f"text={marker}").wait_for(timeout=10_000)
    elapsed = time.monotonic() - t0
    assert page.evaluate("window.__same_document === true"), "the page was reloaded"
    _shot(page, "session-live")
    # how much of it was the pipeline (append → row inserted) and how much the page (poll, fetch, draw)
    stored = stack.query("SELECT toUnixTimestamp64Milli(ingested_at) AS ms FROM claude_raw_traces "
                         "WHERE uuid = {u:String}", {"u": second})[0]["ms"]
    ingest = int(stored) / 1000 - wall
    print(f"appended line visible after {elapsed:.2f}s (inserted after {ingest:.2f}s)")
    assert elapsed < 2.0, f"the appended line took {elapsed:.2f}s to appear (inserted after {ingest:.2f}s)"


def _authed(stack: UpStack, url: str) -> urllib.request.Request:
    """A request with the owner's token (`<data_dir>/run/api.token`), as another tool would send it."""
    token = (stack.data_dir / "run" / "api.token").read_text().strip()
    return urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})


def test_openapi_document_lists_every_endpoint(stack: UpStack) -> None:
    base = stack.worker_info()["web_url"]
    with urllib.request.urlopen(_authed(stack, base + "/dashboard"), timeout=30) as resp:  # redirected to the page
        assert resp.url == base + "/dashboard/" and b"static/app.js" in resp.read()
    with urllib.request.urlopen(_authed(stack, base + "/dashboard/openapi.json"), timeout=30) as resp:
        doc = json.loads(resp.read())
    assert doc["openapi"].startswith("3.")
    for path in doc["paths"]:
        concrete = path.replace("{session_id}", "no-such-session")
        try:
            with urllib.request.urlopen(_authed(stack, base + concrete), timeout=60) as resp:
                assert resp.status == 200
                json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # the one path given an unknown id says so
            assert exc.code == 404 and "no-such-session" in concrete, (path, exc.code)


def test_a_bad_range_is_a_one_line_error(stack: UpStack) -> None:
    base = stack.worker_info()["web_url"]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(_authed(stack, base + "/dashboard/api/overview?since=last-week"), timeout=30)
    assert err.value.code == 400
    assert json.loads(err.value.read()) == {"error": "since='last-week' is not a day (YYYY-MM-DD or YYYYMMDD)"}
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(_authed(stack, base + "/dashboard/static/..%2Fapp.py"), timeout=30)
    assert err.value.code == 404


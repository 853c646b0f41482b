"""The worker's request checks, decided without a web server."""

from __future__ import annotations

import pytest

from agents.web_guard import COOKIE, Guard, host_name
from stream.stack.servers import is_loopback

TOKEN = "t" * 43
HOST = "127.0.0.1:6066"


def guard(login: str | None = None, hosts: tuple[str, ...] = ()) -> Guard:
    return Guard(TOKEN, hosts, login_token=login)


def test_host_names() -> None:
    assert host_name("127.0.0.1:6066") == "127.0.0.1"
    assert host_name("[::1]:6066") == "::1"
    assert host_name("LocalHost.") == "localhost"
    assert host_name("a:b") is None and host_name("[::1") is None and host_name("") is None
    g = guard(hosts=("box.internal",))
    for ok in ("127.0.0.1", "localhost:1", "[::1]:2", "box.internal:6066"):
        assert g.host_allowed(ok), ok
    for bad in ("attacker.example", "127.0.0.1.nip.io", "localhost.attacker.example", None, "0.0.0.0:6066"):
        assert not g.host_allowed(bad), bad


def test_rebinding_host_refused_even_with_the_token() -> None:
    r = guard().check("GET", "/ccstream/status/", {"Host": "attacker.example:6066",
                                                  "Authorization": f"Bearer {TOKEN}"}, {})
    assert r is not None and r.status == 403


def test_token_required_and_compared_exactly() -> None:
    g = guard()
    base = {"Host": HOST}
    assert g.check("GET", "/ccstream/status/", base, {}).status == 401  # type: ignore[union-attr]
    wrong = {**base, "Authorization": "Bearer " + "t" * 42 + "u"}
    assert g.check("GET", "/ccstream/status/", wrong, {}).status == 401  # type: ignore[union-attr]
    assert g.check("GET", "/ccstream/status/", {**base, "Authorization": f"bearer {TOKEN}"}, {}) is None
    assert g.check("GET", "/router/", {**base, "Authorization": f"Basic {TOKEN}"}, {}).status == 401  # type: ignore[union-attr]
    assert g.check("GET", "/ccstream/health/", base, {}) is None  # the open health check


def test_state_changing_needs_same_origin_and_json() -> None:
    g = guard()
    auth = {"Host": HOST, "Authorization": f"Bearer {TOKEN}"}
    ok = {**auth, "Content-Type": "application/json; charset=utf-8"}
    assert g.check("POST", "/ccstream/sql/", ok, {}) is None  # a CLI sends no Origin
    assert g.check("POST", "/ccstream/sql/", {**ok, "Origin": "http://127.0.0.1:6066"}, {}) is None
    for origin in ("http://evil.example", "http://127.0.0.1:9999", "null", "http://localhost:6066", "file://"):
        r = g.check("POST", "/ccstream/sql/", {**ok, "Origin": origin}, {})
        assert r is not None and r.status == 403, origin
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None):
        headers = {**auth, **({"Content-Type": ctype} if ctype else {})}
        r = g.check("POST", "/ccstream/sql/", headers, {})
        assert r is not None and r.status == 415, ctype
    # the no-cors attack: no token, foreign Origin, text/plain: refused before anything runs
    r = g.check("POST", "/ccstream/sql/", {"Host": HOST, "Origin": "http://evil.example",
                                           "Content-Type": "text/plain"}, {})
    assert r is not None and r.status in (401, 403, 415)
    r = g.check("POST", "/ccstream/sql/", {"Host": HOST, "Content-Type": "application/json"}, {})
    assert r is not None and r.status == 401


def test_one_time_login_becomes_a_strict_httponly_cookie() -> None:
    g = guard(login="L" * 43)
    assert g.check("GET", "/ccstream/", {"Host": HOST}, {}) is None  # the exchange checks its own token
    assert g.exchange_login("wrong") is None
    cookie = g.exchange_login("L" * 43)
    assert cookie is not None
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    assert g.exchange_login("L" * 43) is None  # spent
    value = cookie.split(";")[0].split("=", 1)[1]
    assert g.check("GET", "/ccstream/status/", {"Host": HOST}, {COOKIE: value}) is None
    assert g.check("GET", "/ccstream/status/", {"Host": HOST}, {COOKIE: value[:-1] + "0"}).status == 401  # type: ignore[union-attr]
    assert g.check("GET", "/ccstream/", {"Host": HOST}, {}).status == 401  # type: ignore[union-attr]
    # rotating the token ends the sessions made from it
    assert Guard("r" * 43).session_value() != value


def test_short_tokens_refused() -> None:
    with pytest.raises(ValueError):
        Guard("short")


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")
    assert is_loopback("127.0.0.2") and is_loopback("[::1]")
    assert not is_loopback("127.example.com"), "a name is not an address because of how it starts"

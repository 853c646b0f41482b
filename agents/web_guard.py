"""Request checks of the worker's web server: Host allow-list, Origin, content type, the owner's token.

Pure (no web framework): `Guard.check` takes a method, a path, headers and cookies and answers with a
`Refusal` or None, so the worker's middleware, the future dashboard and the unit tests share one decision.

* Host: only 127.0.0.1, localhost, [::1] and the names configured (a DNS-rebinding page sends its own name).
* State-changing requests (POST, PUT, PATCH, DELETE): an Origin, when sent, must be this very origin, and
  the body must be ``application/json`` (a cross-origin page can send ``text/plain`` without a preflight).
* Every path but the health check needs ``Authorization: Bearer <token>`` or the session cookie that the
  one-time login URL is exchanged for (HttpOnly, SameSite=Strict). Compared in constant time.

No CORS headers are ever added: another origin's script cannot read an answer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
COOKIE = "ccstream_session"
COOKIE_PATH = "/"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/ccstream/health/", "/ccstream/health"})  # says nothing about the data
LOGIN_PATHS = frozenset({"/ccstream/", "/ccstream"})


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


def host_name(host_header: str | None) -> str | None:
    """The name of a Host header without its port, lower case ('[::1]:6066' → '::1'); None if malformed."""
    if not host_header:
        return None
    value = host_header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        rest = value[end + 1:]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return value[1:end]
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    name = name.rstrip(".")
    return name or None


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """The decisions for one worker: its token, its allowed host names, its one-time login token."""

    def __init__(self, token: str, allowed_hosts: Iterable[str] = (), login_token: str | None = None) -> None:
        if len(token) < 22:  # 128 bits as URL-safe base64
            raise ValueError("the web token must carry at least 128 bits (22+ URL-safe characters)")
        self._token = token
        self._login = login_token
        self.allowed_hosts = LOOPBACK_HOSTS | {h for h in (host_name(a) for a in allowed_hosts) if h}

    # ---- pieces ------------------------------------------------------------------------------------------
    def host_allowed(self, host_header: str | None) -> bool:
        name = host_name(host_header)
        return name is not None and name in self.allowed_hosts

    def origin_allowed(self, origin: str | None, host_header: str | None) -> bool:
        """No Origin (a CLI) is fine; otherwise it must be this server's own origin."""
        if origin is None:
            return True
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or not host_header:
            return False  # "null" (sandboxed frames, file://) included
        return parts.netloc.lower() == host_header.strip().lower() and self.host_allowed(parts.netloc)

    def session_value(self) -> str:
        """The cookie value: derived from the token, so rotating the token ends every session."""
        return hmac.new(self._token.encode(), b"ccstream-session-v1", hashlib.sha256).hexdigest()

    def authorized(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> bool:
        auth = _header(headers, "Authorization") or ""
        scheme, _, presented = auth.partition(" ")
        if scheme.lower() == "bearer" and presented.strip():
            return _same(presented.strip(), self._token)
        cookie = cookies.get(COOKIE)
        return bool(cookie) and _same(str(cookie), self.session_value())

    # ---- the decision ------------------------------------------------------------------------------------
    def check(self, method: str, path: str, headers: Mapping[str, str],
              cookies: Mapping[str, str]) -> Refusal | None:
        host = _header(headers, "Host")
        if not self.host_allowed(host):
            return Refusal(403, "unknown Host; add the name to CCSTREAM_WEB_ALLOWED_HOSTS if it is yours")
        if method.upper() in STATE_CHANGING:
            if not self.origin_allowed(_header(headers, "Origin"), host):
                return Refusal(403, "cross-origin request refused")
            if _media_type(_header(headers, "Content-Type")) != "application/json":
                return Refusal(415, "only application/json request bodies are accepted")
        if path in OPEN_PATHS:
            return None
        if path in LOGIN_PATHS and method.upper() == "GET" and self._login is not None:
            return None  # the login exchange checks its own token (see `exchange_login`)
        if not self.authorized(headers, cookies):
            return Refusal(401, "missing or wrong token: send 'Authorization: Bearer <token>' with the token "
                                "from <data_dir>/run/api.token, or open the URL `ccstream up` printed")
        return None

    def exchange_login(self, presented: str | None) -> str | None:
        """The Set-Cookie value when `presented` is the one-time login token (which is then spent)."""
        login = self._login
        if login is None or not presented or not _same(presented, login):
            return None
        self._login = None
        return self.set_cookie()

    def set_cookie(self) -> str:
        return f"{COOKIE}={self.session_value()}; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict"

    @property
    def login_pending(self) -> bool:
        return self._login is not None



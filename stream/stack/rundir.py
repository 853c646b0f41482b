"""The run dir (`<data_dir>/run`): the one owner of the files `ccstream up` shares with the other processes.

Files, all written atomically (temp file + rename) with mode 0600 in a 0700 directory:

* ``up.lock``        held (flock) by the running `up`; its text says which pid.
* ``redis.url``      the Redis the hook, the bridge and `status` use (without its password).
* ``redis.password`` the password of the Redis `up` starts (``requirepass``); generated once per data dir.
* ``api.token``      the worker API's bearer token; generated once per data dir, rotated by deleting it.
* ``login.token``    a one-time token for the browser URL `up` prints; the worker takes it at start.
* ``worker.json``    where the running worker answers (web URL, pids, Kafka bootstrap).

Also the one Redis reachability check (`redis_answers`), used by `up`, the bridge and `status`.

Standard library only: the hook imports this module on every Claude Code event.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

LOCK = "up.lock"
REDIS_URL = "redis.url"
REDIS_PASSWORD = "redis.password"
API_TOKEN = "api.token"
LOGIN_TOKEN = "login.token"
WORKER = "worker.json"

TOKEN_BYTES = 32  # 256 bits of randomness per secret (the issue asks for at least 128)


class AlreadyRunning(RuntimeError):
    """Another `up` holds the data dir."""


def new_secret() -> str:
    import secrets  # here: importing it costs ~14 ms of every CLI command's start

    return secrets.token_urlsafe(TOKEN_BYTES)


class RunDir:
    """The run dir of one data dir."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def of(cls, settings: Any) -> RunDir:
        return cls(Path(settings.run_dir))

    # ---- files ----------------------------------------------------------------------------------------
    def ensure(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # a run dir made by an older version may be 0755
            os.chmod(self.path, 0o700)

    def write(self, name: str, text: str) -> Path:
        """Replace a file atomically; the new content is 0600 from its first byte."""
        self.ensure()
        target = self.path / name
        import secrets

        tmp = self.path / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return target

    def read(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text().strip() or None
        except (OSError, UnicodeDecodeError):
            return None

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / name).unlink()

    def mode(self, name: str) -> int:
        return stat.S_IMODE((self.path / name).stat().st_mode)

    # ---- secrets ----------------------------------------------------------------------------------------
    def _secret(self, name: str, create: bool) -> str | None:
        value = self.read(name)
        if value is not None:
            with contextlib.suppress(OSError):
                if self.mode(name) & 0o077:  # someone loosened it: the secret may have leaked, make a new one
                    value = None
        if value is None and create:
            value = new_secret()
            self.write(name, value + "\n")
        return value

    def api_token(self, create: bool = False) -> str | None:
        """The worker API's token (None when there is none yet and `create` is False)."""
        return self._secret(API_TOKEN, create)

    def rotate_api_token(self) -> str:
        value = new_secret()
        self.write(API_TOKEN, value + "\n")
        return value

    def redis_password(self, create: bool = False) -> str | None:
        return self._secret(REDIS_PASSWORD, create)

    def new_login_token(self) -> str:
        value = new_secret()
        self.write(LOGIN_TOKEN, value + "\n")
        return value

    def take_login_token(self) -> str | None:
        """The one-time browser token, removed from disk as it is read (the worker keeps it in memory)."""
        value = self.read(LOGIN_TOKEN)
        self.remove(LOGIN_TOKEN)
        return value

    # ---- Redis ------------------------------------------------------------------------------------------
    def record_redis_url(self, url: str, *, embedded: bool) -> None:
        """The Redis the hook and the bridge use. The embedded one's password stays in `redis.password`;
        a Redis of the user's (CCSTREAM_REDIS_URL) is recorded as given, its own password included."""
        if embedded:
            self.write(REDIS_URL, strip_password(url) + "\nembedded\n")
        else:
            self.write(REDIS_URL, url + "\n")

    def redis_url(self) -> str | None:
        """The recorded Redis URL, with the run dir's password for the embedded Redis (ready for redis-py
        and the hook)."""
        text = self.read(REDIS_URL)
        if text is None:
            return None
        url, _, marker = text.partition("\n")
        password = self.redis_password() if marker.strip() == "embedded" else None
        return with_password(url, password) if password and not urlsplit(url).password else url

    # ---- the worker ------------------------------------------------------------------------------------
    def record_worker(self, info: dict[str, Any]) -> None:
        self.write(WORKER, json.dumps(info) + "\n")

    def worker_info(self) -> dict[str, Any]:
        text = self.read(WORKER)
        if text is None:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            return {}
        return dict(value) if isinstance(value, dict) else {}

    def clear_worker(self) -> None:
        self.remove(WORKER)

    def worker_url(self) -> str | None:
        """The running worker's web URL, when an `up` holds this data dir."""
        url = self.worker_info().get("web_url")
        if not url or not self.is_running():
            return None
        return str(url)

    # ---- the lock -------------------------------------------------------------------------------------
    def acquire_lock(self) -> IO[str]:
        self.ensure()
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fh = os.fdopen(fd, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise AlreadyRunning(holder) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}\n")
        fh.flush()
        return fh

    def is_running(self) -> bool:
        """True when an `up` holds the data dir (and so owns the chDB store)."""
        path = self.path / LOCK
        try:
            fh = path.open("r")
        except OSError:
            return False
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
            return False


# ---- Redis URLs and the one reachability check -------------------------------------------------------------


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        sep = "&" if parts.query else ""
        return f"unix://{parts.path}?{parts.query}{sep}password={quote(password, safe='')}"
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    user = quote(unquote(parts.username), safe="") if parts.username else ""
    netloc = f"{user}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def strip_password(url: str) -> str:
    """The URL without its password (for files and messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host + (f":{parts.port}" if parts.port else "")))


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    """True when the Redis at `url` accepts our credentials and answers PING: the one reachability check (`up`,
    the bridge, `status`, `hooks status`), over the hook's own client (stdlib, no redis-py)."""
    from stream.capture.resp import Resp, RespError

    try:
        with Resp(url, timeout) as client:
            return client.call("PING") == "PONG"
    except (OSError, ValueError, RespError):
        return False


def resolve_redis_url(settings: Any) -> str | None:
    """The configured Redis URL, else the one `up` recorded (with the run dir's password)."""
    if settings.redis_url:
        return str(settings.redis_url)
    return RunDir.of(settings).redis_url()

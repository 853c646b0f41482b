"""A minimal Redis client over a plain socket (RESP2), standard library only: the hook's (it must start in
milliseconds: redis-py alone costs more than its whole budget) and the one Redis reachability check
(`stream.stack.rundir.redis_answers`). URLs: redis://, rediss://, unix:// with a password and a db."""

from __future__ import annotations

import socket
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit


class RespError(Exception):
    """An error reply from Redis."""


def encode_command(*args: str | bytes | int) -> bytes:
    """One Redis command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Resp:
    """Just enough of a Redis client for the hook: connect with a timeout, pipeline commands, read replies."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        self.timeout = timeout
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parts.path)
        elif parts.scheme in ("redis", "rediss"):
            sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if parts.scheme == "rediss":
                import ssl  # only TLS users pay for it

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        else:
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r} (redis://, rediss://, unix://)")
        self.sock = sock
        self.reader = sock.makefile("rb")
        setup: list[bytes] = []
        password = unquote(parts.password) if parts.password else None
        if parts.scheme == "unix":  # unix:///path?password=... (the form redis-py reads too)
            for kv in parts.query.split("&"):
                k, _, v = kv.partition("=")
                if k == "password":
                    password = unquote(v)
        if password:
            user = unquote(parts.username) if parts.username else None
            auth = ("AUTH", user, password) if user else ("AUTH", password)
            setup.append(encode_command(*auth))
        db = parts.path.lstrip("/") if parts.scheme != "unix" else ""
        if parts.query:
            for kv in parts.query.split("&"):
                k, _, v = kv.partition("=")
                if k == "db":
                    db = v
        if db and db != "0":
            setup.append(encode_command("SELECT", db))
        for reply in self.pipeline(setup):
            if isinstance(reply, RespError):
                raise reply

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()

    def __enter__(self) -> Resp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pipeline(self, commands: list[bytes]) -> list[Any]:
        """Send encoded commands in one write, read one reply each (error replies come back as RespError)."""
        if not commands:
            return []
        self.sock.sendall(b"".join(commands))
        return [self._read() for _ in commands]

    def call(self, *args: str | bytes | int) -> Any:
        reply = self.pipeline([encode_command(*args)])[0]
        if isinstance(reply, RespError):
            raise reply
        return reply

    def _read(self) -> Any:
        return read_reply(self.reader)


def read_reply(reader: BinaryIO) -> Any:
    """One RESP reply from a buffered reader; an error reply is returned (not raised) as RespError."""
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed by Redis")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("connection closed by Redis")
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(reader) for _ in range(n)]
    if kind == b"_":  # RESP3 null, in case a proxy speaks it
        return None
    raise ConnectionError(f"unexpected reply from Redis: {line[:40]!r}")

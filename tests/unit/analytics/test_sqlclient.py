"""The CLI's HTTP to the worker (`post_json`): one POST per connection, answers read by Content-Length, chunked
or to the close, errors carried as the worker states them; against a real local HTTP server."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from stream.analytics.sqlclient import HttpError, _parse_response, post_json


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Handler.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        answer = json.dumps({"got": json.loads(body)}).encode()
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (answer[:5], answer[5:]):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/refused":
            self.send_response(400)
            data = json.dumps({"error": "Code: 62. Syntax error"}).encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    Handler.seen = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_a_post_and_its_answer(server: str) -> None:
    big = {"sql": "SELECT 1 -- é" + "x" * 200_000}  # larger than one recv
    status, body = post_json(server, "/ccstream/sql/", json.dumps(big).encode(), {"Authorization": "Bearer t0k"}, 5)
    assert status == 200 and json.loads(body) == {"got": big}
    seen = Handler.seen[0]
    assert seen["path"] == "/ccstream/sql/"
    assert seen["headers"]["Authorization"] == "Bearer t0k"
    assert seen["headers"]["Host"] == server.removeprefix("http://")  # the worker's guard checks the Host
    assert seen["headers"]["Content-Type"] == "application/json"


def test_chunked_and_error_answers(server: str) -> None:
    status, body = post_json(server, "/chunked", b'{"a": [1, 2]}', {}, 5)
    assert status == 200 and json.loads(body) == {"got": {"a": [1, 2]}}
    status, body = post_json(server, "/refused", b"{}", {}, 5)
    assert status == 400 and json.loads(body) == {"error": "Code: 62. Syntax error"}


def test_what_is_not_http_is_an_error() -> None:
    with pytest.raises(HttpError):
        _parse_response(b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(HttpError):
        _parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    with pytest.raises(HttpError):
        _parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc")
    assert _parse_response(b"HTTP/1.1 204 No Content\r\n\r\n") == (204, b"")
    with pytest.raises(HttpError):
        post_json("https://127.0.0.1:1", "/", b"", {}, 1)
    with pytest.raises(HttpError):
        post_json("http://127.0.0.1:1", "/", b"", {"Authorization": "Bearer x\r\nX-Evil: 1"}, 1)


def test_nobody_listening_is_an_os_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with pytest.raises(OSError):
            post_json(f"http://127.0.0.1:{port}", "/", b"{}", {}, 2)

"""Run real ccstream worker processes (`ccstream worker|edge|sink|bridge`) against test servers."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from stream.stack.servers import ManagedProcess, free_port, port_open

REPO = Path(__file__).resolve().parents[2]


class CcstreamProcess(ManagedProcess):
    """`python -m stream.cli <command>` with CCSTREAM_* settings from `settings` (names without the prefix).

    Workers are ready when their web server answers; other commands when they run."""

    def __init__(self, command: str, data_dir: Path, settings: dict[str, str], *, web: bool = True) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCSTREAM_")}
        self.web_port = free_port() if web else None
        # no OTLP receiver unless a test asks for one: 4318 is one port for the whole machine
        env.update({"CCSTREAM_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", "CCSTREAM_OTLP_PORT": "0"})
        if self.web_port:
            env["CCSTREAM_WEB_PORT"] = str(self.web_port)
        env.update({f"CCSTREAM_{k.upper()}": v for k, v in settings.items()})
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        super().__init__([sys.executable, "-m", "stream.cli", command], data_dir / f"{command}.log", env=env,
                         cwd=REPO)
        self.name = f"ccstream {command}"

    def ready(self) -> bool:
        if self.web_port is None:
            return self.alive()
        return port_open("127.0.0.1", self.web_port) and self._status_ok()

    def _status_ok(self) -> bool:
        try:
            self.status()
            return True
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def auth(self) -> dict[str, str]:
        """The worker's token (it writes <data_dir>/run/api.token at start): every endpoint but health needs it."""
        from stream.stack.rundir import RunDir

        token = RunDir(self.data_dir / "run").api_token()
        if token is None:
            raise OSError("the worker has not written its API token yet")
        return {"Authorization": f"Bearer {token}"}

    def status(self) -> dict[str, Any]:
        req = urllib.request.Request(self.url + "/ccstream/status/", headers=self.auth())
        with urllib.request.urlopen(req, timeout=10) as r:
            return dict(json.loads(r.read()))

    def query(self, sql: str, parameters: dict[str, Any] | None = None, *, write: bool = True) -> list[dict[str, Any]]:
        """SQL through this worker's store (sink role only). The tests act as the owner with `--write`
        (OPTIMIZE, ALTER); test_security.py covers the read-only default."""
        body = json.dumps({"sql": sql, "format": "JSONEachRow", "parameters": parameters or {},
                           "write": write}).encode()
        req = urllib.request.Request(self.url + "/ccstream/sql/", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **self.auth()})
        with urllib.request.urlopen(req, timeout=60) as r:
            return [json.loads(line) for line in r.read().splitlines() if line.strip()]

    def wait_until(self, cond: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"{self.name} exited while waiting for {what}:\n{self.tail_log(40)}")
            try:
                if cond():
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last}):\n{self.tail_log(40)}")

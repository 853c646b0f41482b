"""Drive a real `ccstream up` (Redis, Tansu, bridge, Faust worker, chDB) as a subprocess for tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.analytics.sqlclient import QueryError, run_query
from stream.config import load_settings
from stream.stack.servers import free_port

REPO = Path(__file__).resolve().parents[2]


class UpStack:
    """`ccstream up` in a data dir of its own, following `claude_dir/projects`."""

    def __init__(self, base: Path, extra_env: dict[str, str] | None = None) -> None:
        self.base = base
        self.data_dir = base / "ccstream"
        self.claude_dir = base / "claude"
        self.projects = self.claude_dir / "projects"
        self.projects.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update({
            "CCSTREAM_DATA_DIR": str(self.data_dir),
            "CLAUDE_CONFIG_DIR": str(self.claude_dir),
            "CCSTREAM_WEB_PORT": str(free_port()),
            "CCSTREAM_PARTIAL_LINE_QUIET": "1.0",
            "CCSTREAM_SCAN_INTERVAL": "3",
            "CCSTREAM_HOST": "test-host",
            "CCSTREAM_OTLP_PORT": "0",  # 4318 is one port for the whole machine; a test that wants it sets one
            "PYTHONUNBUFFERED": "1",
        })
        self.env.pop("CCSTREAM_REDIS_URL", None)
        self.env.pop("CCSTREAM_KAFKA_BOOTSTRAP", None)
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = base / "up.log"

    @property
    def settings(self) -> Any:
        return load_settings(env=self.env)

    def copy_corpus(self, corpus: Path) -> None:
        # copy2 keeps the old mtimes: unterminated last lines count as quiet at once
        shutil.copytree(corpus, self.projects, dirs_exist_ok=True)

    def start(self, timeout: float = 120.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "stream.cli", "up"], env=self.env, cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        # a split stack records its sink first (the edge reads its checkpoints there), then both
        self.wait_for(lambda: (self.data_dir / "run" / "worker.json").exists()
                      and ("edge_pid" in self.worker_info() or "worker" in self.worker_info().get("children", {})),
                      timeout, "worker.json")
        self.wait_for(self._answers, timeout, "the worker's SQL endpoint")

    def _answers(self) -> bool:
        try:
            self.query("SELECT 1 AS one")
            return True
        except QueryError:
            return False

    def worker_info(self) -> dict[str, Any]:
        return dict(json.loads((self.data_dir / "run" / "worker.json").read_text()))

    def status(self) -> dict[str, Any]:
        """The worker's /ccstream/status/ counters, with the owner's token."""
        from stream.stack.rundir import RunDir

        token = RunDir(self.data_dir / "run").api_token()
        req = urllib.request.Request(self.worker_info()["web_url"] + "/ccstream/status/",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return dict(json.loads(r.read()))

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return run_query(self.settings, sql, parameters)

    def scalar(self, sql: str) -> Any:
        rows = self.query(sql)
        return next(iter(rows[0].values()))

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str, every: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"ccstream up exited ({self.proc.returncode}) while waiting for {what}:\n"
                                     + self.logs())
            try:
                if cond():
                    return
            except QueryError:
                pass
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n" + self.logs())

    def logs(self, lines: int = 60) -> str:
        out = []
        for p in [self.log_path, *sorted((self.data_dir / "logs").glob("*.log"))]:
            if p.exists():
                text = p.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {p.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("ccstream up did not stop within 60s of Ctrl-C\n" + self.logs()) from None

    def hook(self, payload: dict[str, Any]) -> subprocess.CompletedProcess[bytes]:
        """Run `ccstream hook` exactly as Claude Code does: a new process, the payload on stdin."""
        return subprocess.run([sys.executable, "-m", "stream.cli", "hook"], input=json.dumps(payload).encode(),
                              env=self.env, cwd=REPO, capture_output=True, timeout=30)

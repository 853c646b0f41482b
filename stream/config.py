"""Typed settings in one place: defaults that run the embedded stack, a TOML file, then CCSTREAM_* env.

Precedence (last wins): built-in defaults < config file (``$CCSTREAM_CONFIG`` or ``<data_dir>/config.toml``)
< environment variables ``CCSTREAM_<FIELD>`` (upper case). Lists in the environment are comma separated.
Secrets (Kafka SASL password, ClickHouse DSN with a password) come from the environment or the file, never
from the command line.

This module imports only the standard library: the hook imports it on every Claude Code event.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "CCSTREAM_"


def default_claude_roots() -> list[Path]:
    """The `projects/` folders Claude Code writes to: CLAUDE_CONFIG_DIR (comma list) or ~/.claude."""
    raw = os.environ.get("CLAUDE_CONFIG_DIR", "")
    bases = [Path(p).expanduser() for p in raw.split(",") if p.strip()] or [Path.home() / ".claude"]
    return [b / "projects" for b in bases]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return str(os.getuid())


@dataclass
class Settings:
    # where ccstream keeps its state: Redis data, Faust tables, chDB store, spool, run files
    data_dir: Path = field(default_factory=lambda: Path.home() / ".ccstream")
    # the Claude Code `projects/` folders to follow; the tailer reads nothing outside them
    claude_roots: list[Path] = field(default_factory=default_claude_roots)
    # identity stamped on every row so a team's data stays attributable
    host: str = field(default_factory=socket.gethostname)
    user: str = field(default_factory=_os_user)

    # Redis: None means "the embedded stack starts one" (or the hook uses the address `up` recorded)
    redis_url: str | None = None
    stream_key: str = "ccstream:sessions"
    bridge_group: str = "ccstream-bridge"
    # with an in-memory broker: acknowledged hook events kept this long and delivered again to a fresh broker
    bridge_replay_seconds: float = 900.0
    hook_timeout: float = 0.05  # seconds for connect and write: the hook never makes Claude Code wait

    # Kafka: None means "the embedded stack starts Tansu on loopback"
    kafka_bootstrap: str | None = None
    kafka_security_protocol: str = "PLAINTEXT"  # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    kafka_sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    topic_prefix: str = "ccstream"
    topic_partitions: int = 4
    # True where the broker keeps nothing across restarts (embedded Tansu): clear Faust state at start
    # and take file cursors from what ClickHouse already holds.
    broker_is_ephemeral: bool = False
    # the embedded broker keeps every message in memory (stream/stack/recycle.py): once it has grown this
    # much since the stack started and the worker has committed all it holds, `up` restarts the stack to
    # let it go; 0: never
    broker_recycle_mb: int = 256
    broker_recycle_check_seconds: float = 30.0

    # ClickHouse: None means chDB in <data_dir>/clickhouse
    clickhouse_dsn: str | None = None

    # Faust worker
    app_id: str = "ccstream"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # the worker API's bearer token; None: the one generated in <data_dir>/run/api.token. Required (set
    # explicitly) to bind beyond loopback. A secret: environment or config file only.
    web_token: str | None = None
    # Host header names the worker answers besides 127.0.0.1, localhost and [::1] (DNS-rebinding defence)
    web_allowed_hosts: list[str] = field(default_factory=list)
    # limits of one query through the worker's SQL API, so that one query cannot stall ingest
    sql_max_seconds: float = 60.0
    sql_max_result_rows: int = 5_000_000
    sql_max_result_bytes: int = 1024 * 1024 * 1024
    roles: list[str] = field(default_factory=lambda: ["edge", "sink"])
    # `ccstream up` runs the edge role and the sink role as two worker processes (two GILs: the backfill
    # is CPU-bound on one, docs/benchmarks.md); False: one worker with both roles
    up_split: bool = True
    # the local broker's fetch wait (agents/fetch_wait.py): Tansu answers a fetch only when its wait ends, so
    # it is short while anything moves and long after `fetch_idle_after` quiet seconds (idle CPU)
    fetch_wait_ms: int = 50
    fetch_idle_wait_ms: int = 1500
    fetch_idle_after: float = 30.0

    # tailer
    poll_interval: float = 1.0  # seconds between stat checks of followed files (inotify also wakes it)
    scan_interval: float = 30.0  # seconds between scans of the roots for new or changed files
    use_inotify: bool = True
    partial_line_quiet: float = 5.0  # an unterminated last line is taken after the file is quiet this long
    max_line_bytes: int = 16 * 1024 * 1024  # longer lines go to the dead letters
    read_chunk_bytes: int = 1024 * 1024  # bytes read from a file per step
    idle_session_timeout: float = 6 * 3600.0  # a session quiet this long leaves memory
    # history requests (scans, adopts, continues) handled at once; live ones have their own topic and agent
    tail_concurrency: int = 8
    # beside a sink in one worker: history waits while this many produced lines are not inserted yet, so
    # the sink's queue stays short and a live session's lines are not queued behind the backfill
    tail_sink_lag_records: int = 20_000
    redaction: bool = True
    # extra regexes (str) for the edge redactor; a named group `secret` limits what is replaced
    redaction_patterns: list[str] = field(default_factory=list)

    # sink
    sink_batch_messages: int = 200  # Kafka messages (chunks of lines) per insert at most
    # and bytes of chunks per insert at most: what bounds the sink's memory (a batch is held several times
    # over while it is extracted and inserted) and lets a batch go without waiting out sink_batch_seconds
    sink_batch_bytes: int = 24 * 1024 * 1024
    sink_batch_seconds: float = 0.5
    sink_retry_max_seconds: float = 30.0
    # a batch is split by file into this many inserts that run at once, each on its own connection: one
    # insert extracts and writes on one core inside ClickHouse (docs/benchmarks.md, sink throughput)
    sink_insert_threads: int = 2
    # where a chunk's lines become claude_raw_traces columns: "python" (stream/store/extract.py, in the sink's
    # insert threads) or "clickhouse" (the raw_chunks view, stream/store/extraction.py). Python is the
    # default: chDB re-analyses the view's SELECT on every insert, a fixed cost that dominates a backfill
    # (docs/benchmarks.md, sink extraction). The rows are the same either way (tests/integration/
    # test_extraction_sql.py).
    sink_extraction: str = "python"

    # OTLP/HTTP receiver for Claude Code's own telemetry (edge role; docs/otel.md): 0 turns it off
    otlp_port: int = 4318
    otlp_host: str = "127.0.0.1"  # beyond loopback only with otlp_token
    otlp_token: str | None = None  # bearer token the exporter must send (OTEL_EXPORTER_OTLP_HEADERS)
    otlp_max_body_bytes: int = 8 * 1024 * 1024  # per request, before and after gzip

    config_file: Path | None = None

    # ---- derived -------------------------------------------------------------------------------
    @property
    def topic_sessions(self) -> str:
        return f"{self.topic_prefix}.sessions"

    @property
    def topic_raw_events(self) -> str:
        return f"{self.topic_prefix}.raw-events"

    @property
    def topic_raw_live(self) -> str:
        # the embedded stack's own (one stack per local broker): the edge and the sink of a split `up` have
        # app ids of their own and must still meet here
        return f"{self.topic_prefix}.raw-live"

    @property
    def topic_raw_inserted(self) -> str:
        """What the sink of a split `up` inserted, for its edge (stream/contract/insert_notice.py)."""
        return f"{self.topic_prefix}.raw-inserted"

    @property
    def edge_app_id(self) -> str:
        """The Faust app id of a split `up`'s edge worker: a consumer group and tables of its own."""
        return f"{self.app_id}-edge"

    @property
    def both_roles(self) -> bool:
        return {"edge", "sink"} <= set(self.roles)

    @property
    def live_lane(self) -> bool:
        """raw-live and the lanes (stream/tail/raw_lane.py) exist on a local broker where the tailer and the
        sink are one stack: one worker with both roles, or the edge and the sink workers of a split `up`."""
        return self.broker_is_ephemeral and (self.both_roles or self.up_split)

    @property
    def sink_apart(self) -> bool:
        """The tailer's sink is another process of the stack: it reports its inserts on raw-inserted."""
        return self.live_lane and not self.both_roles

    @property
    def topic_dead_letters(self) -> str:
        return f"{self.topic_prefix}.dead-letters"

    @property
    def topic_otel(self) -> str:
        return f"{self.topic_prefix}.otel"

    @property
    def topic_tail_requests(self) -> str:
        # edge-local work queue: one per edge app so edges never share file state
        return f"{self.topic_prefix}.{self.app_id}.tail-requests"

    @property
    def topic_tail_live(self) -> str:
        # edge-local: reads asked for by live sessions (hooks, inotify, the poll), never behind history
        return f"{self.topic_prefix}.{self.app_id}.tail-live"

    @property
    def effective_clickhouse_dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.data_dir / 'clickhouse'}"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def faust_dir(self) -> Path:
        return self.data_dir / "faust"

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _convert(value: Any, annotation: str) -> Any:
    """Turn a string (env) or TOML value into the field's declared type."""
    ann = annotation.replace(" ", "")
    if value is None:
        return None
    if ann.startswith("list[Path]"):
        items = value.split(",") if isinstance(value, str) else list(value)
        return [Path(str(i).strip()).expanduser() for i in items if str(i).strip()]
    if ann.startswith("list[str]"):
        items = value.split(",") if isinstance(value, str) else list(value)
        return [str(i).strip() for i in items if str(i).strip()]
    if isinstance(value, str) and value == "" and "None" in ann:
        return None
    if ann.startswith("Path"):
        return Path(str(value)).expanduser()
    if ann.startswith("bool"):
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("1", "true", "yes", "on")
    if ann.startswith("int"):
        return int(value)
    if ann.startswith("float"):
        return float(value)
    return str(value)


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which and what to do."""


SINK_EXTRACTIONS = ("python", "clickhouse")


def _validate(settings: Settings) -> Settings:
    """Settings whose values are a closed set: refused at load with the choices, not deep in the worker."""
    if settings.sink_extraction not in SINK_EXTRACTIONS:
        raise ConfigError(f"sink_extraction={settings.sink_extraction!r}: use one of {', '.join(SINK_EXTRACTIONS)} "
                          f"(CCSTREAM_SINK_EXTRACTION or sink_extraction in the config file)")
    return settings


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Defaults, then the config file, then CCSTREAM_* environment, then explicit overrides."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    annotations = {f.name: str(f.type) for f in fields(Settings)}

    data_dir = Path(env.get(f"{ENV_PREFIX}DATA_DIR", str(Path.home() / ".ccstream"))).expanduser()
    config_file = Path(env[f"{ENV_PREFIX}CONFIG"]).expanduser() if f"{ENV_PREFIX}CONFIG" in env else None
    candidate = config_file or data_dir / "config.toml"
    if candidate.is_file():
        import tomllib  # here, not at the top: every CLI command loads settings, few have a config file

        try:
            with candidate.open("rb") as fh:
                file_values = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {candidate}: {exc}") from exc
        for key, raw in file_values.items():
            if key not in annotations:
                raise ConfigError(f"unknown setting {key!r} in {candidate}; known: {', '.join(sorted(annotations))}")
            values[key] = _convert(raw, annotations[key])
        values["config_file"] = candidate

    for name, ann in annotations.items():
        key = ENV_PREFIX + name.upper()
        if key in env:
            try:
                values[name] = _convert(env[key], ann)
            except ValueError as exc:
                raise ConfigError(f"{key}={env[key]!r} is not a valid {ann}") from exc
    values.update(overrides)
    return _validate(Settings(**values))

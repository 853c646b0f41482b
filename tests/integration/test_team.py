"""A team deployment on one real broker (Tansu): workstations run `ccstream edge`, the centre runs `ccstream sink`.

Two edges are simulated by separate host ids, users, data dirs, Claude roots, Redis databases and Faust app
ids (`ccstream-edge-<host>`); sinks share one app id. Every edge runs its bridge in process, so a hook event
goes hook → the edge's Redis → the edge's bridge → Kafka → the sink.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stream.stack.servers import RedisServer, TansuBroker
from stream.stack.worker import parse_assignments
from tests.integration.corpus import count_objects
from tests.integration.workers import REPO, CcstreamProcess

pytestmark = pytest.mark.integration

CORPUS_OBJECTS = 18_918


def split_corpus(corpus: Path, roots: list[Path]) -> list[dict[str, int]]:
    """Copy the corpus's project folders round-robin into `roots`; per root: copied path → objects."""
    expected: list[dict[str, int]] = [{} for _ in roots]
    for i, project in enumerate(sorted(p for p in corpus.iterdir() if p.is_dir())):
        k = i % len(roots)
        shutil.copytree(project, roots[k] / project.name)
        for f in (roots[k] / project.name).rglob("*.jsonl"):
            expected[k][str(f)] = count_objects(f)
    return expected


def wait_for(cond: Callable[[], bool], timeout: float, what: str, procs: list[CcstreamProcess]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                raise AssertionError(f"{p.name} exited while waiting for {what}:\n{p.tail_log(40)}")
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name}\n{p.tail_log(25)}" for p in procs)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def scalar(proc: CcstreamProcess, sql: str, params: dict[str, Any] | None = None) -> int:
    return int(proc.query(sql, params)[0]["n"])


def hook(data_dir: Path, redis_url: str, host: str, user: str, payload: dict[str, Any]) -> None:
    """Run the real `ccstream hook` as Claude Code would: payload on stdin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCSTREAM_")}
    env.update(CCSTREAM_DATA_DIR=str(data_dir), CCSTREAM_REDIS_URL=redis_url, CCSTREAM_HOST=host,
               CCSTREAM_USER=user, CCSTREAM_HOOK_TIMEOUT="2")
    done = subprocess.run([sys.executable, "-m", "stream.cli", "hook"], input=json.dumps(payload).encode(),
                          env=env, cwd=REPO, capture_output=True, timeout=30)
    assert done.returncode == 0 and done.stdout == b"", done.stderr


def transcript_line(session_id: str, text: str) -> bytes:
    obj = {"type": "user", "uuid": str(uuid.uuid4()), "parentUuid": None, "sessionId": session_id,
           "timestamp": "2026-11-24T10:00:00.000Z", "cwd": "/tmp/team", "version": "2.1.42",
           "message": {"role": "user", "content": text}}
    return json.dumps(obj).encode() + b"\n"


@pytest.fixture()
def prefix() -> str:
    return f"team-{uuid.uuid4().hex[:8]}"


def test_two_edges_and_one_sink_every_line_once_by_host_and_edges_independent(
        tmp_path: Path, tansu: TansuBroker, redis_server: RedisServer, corpus: Path, prefix: str,
        procs: list[CcstreamProcess]) -> None:
    """Fed: the corpus split by project folder between the roots of two edges (hosts ws-alpha/alice and
    ws-beta/bob), a SessionStart hook on each edge for a new transcript, then, with ws-alpha stopped, lines
    appended on both. Expected: every object of both roots once in the sink's store, attributed to its own
    host and user, file for file; both hook events reached the sink through each edge's own Redis database
    and in-process bridge; after ws-alpha stopped, ws-beta's new lines still arrive and ws-alpha's do not."""
    hosts = [("ws-alpha", "alice", f"{redis_server.url[:-2]}/1"), ("ws-beta", "bob", f"{redis_server.url[:-2]}/2")]
    roots = [tmp_path / h / "projects" for h, _, _ in hosts]
    for r in roots:
        r.mkdir(parents=True)
    expected = split_corpus(corpus, roots)
    assert sum(len(e) for e in expected) == 63
    assert sum(sum(e.values()) for e in expected) == CORPUS_OBJECTS

    common = {"kafka_bootstrap": tansu.bootstrap, "broker_is_ephemeral": "1", "topic_prefix": prefix}
    sink = CcstreamProcess("sink", tmp_path / "central", {
        **common, "app_id": f"ccstream-sink-{prefix}", "clickhouse_dsn": f"chdb://{tmp_path / 'central' / 'ch'}"})
    edges = [CcstreamProcess("edge", tmp_path / h, {
        **common, "app_id": f"ccstream-edge-{h}", "host": h, "user": u, "claude_roots": str(root),
        "redis_url": url}) for (h, u, url), root in zip(hosts, roots, strict=True)]
    for p in (sink, *edges):
        p.start()
        procs.append(p)
    for p in (sink, *edges):
        p.wait_ready(120)
    everyone = [sink, *edges]

    t0 = time.monotonic()
    wait_for(lambda: scalar(sink, "SELECT count() AS n FROM claude_raw_traces FINAL") >= CORPUS_OBJECTS,
             300, f"{CORPUS_OBJECTS} rows", everyone)
    ingest_s = time.monotonic() - t0
    time.sleep(2)  # anything extra would show up now
    got = {(r["host"], r["user"], r["file_path"]): int(r["n"]) for r in sink.query(
        "SELECT host, user, file_path, count() AS n FROM claude_raw_traces FINAL GROUP BY host, user, file_path")}
    want = {(h, u, path): n for (h, u, _), exp in zip(hosts, expected, strict=True) for path, n in exp.items()}
    assert got == want
    assert scalar(sink, "SELECT count() - uniqExact(file_id, incarnation, byte_offset) AS n "
                        "FROM claude_raw_traces FINAL") == 0
    assert scalar(sink, "SELECT count() AS n FROM dead_letters FINAL") == 0
    # a team edge keeps no ClickHouse of its own (no DSN configured): only the sink has a store
    assert [h for h, _, _ in hosts if (tmp_path / h / "clickhouse").exists()] == []
    print(f"\ntwo edges → one sink: {CORPUS_OBJECTS} rows in {ingest_s:.1f}s")

    # hook → each edge's own Redis db → its in-process bridge → Kafka → the sink
    live: dict[str, tuple[Path, str]] = {}
    for (h, u, url), root in zip(hosts, roots, strict=True):
        sid = str(uuid.uuid4())
        path = root / "-tmp-team" / f"{sid}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(transcript_line(sid, f"{h} first"))
        hook(tmp_path / f"hook-{h}", url, h, u, {"session_id": sid, "transcript_path": str(path),
                                                 "cwd": "/tmp/team", "hook_event_name": "SessionStart",
                                                 "source": "startup"})
        live[h] = (path, sid)

    def session_hosts() -> dict[str, str]:
        rows = sink.query("SELECT session_id, host FROM session_events FINAL WHERE session_id IN {ids:Array(String)}",
                          {"ids": [sid for _, sid in live.values()]})
        return {r["session_id"]: r["host"] for r in rows}

    wait_for(lambda: session_hosts() == {sid: h for h, (_, sid) in live.items()}, 60, "both hook events",
             everyone)
    wait_for(lambda: scalar(sink, "SELECT count() AS n FROM claude_raw_traces FINAL") == CORPUS_OBJECTS + 2,
             60, "the first line of both live sessions", everyone)

    # ws-alpha stops; ws-beta and the sink go on
    alpha, beta = edges
    alpha.stop(timeout=30)
    assert alpha.proc is not None and alpha.proc.returncode is not None
    for h, (path, sid) in live.items():
        with path.open("ab") as fh:
            fh.write(transcript_line(sid, f"{h} after alpha stopped"))

    def per_host() -> dict[str, int]:
        rows = sink.query("SELECT host, count() AS n FROM claude_raw_traces FINAL "
                          "WHERE session_id IN {ids:Array(String)} GROUP BY host",
                          {"ids": [sid for _, sid in live.values()]})
        return {r["host"]: int(r["n"]) for r in rows}

    wait_for(lambda: per_host().get("ws-beta") == 2, 60, "ws-beta's line appended after ws-alpha stopped",
             [sink, beta])
    time.sleep(3)  # ws-alpha's appended line must not arrive: nobody else reads its root
    assert per_host() == {"ws-alpha": 1, "ws-beta": 2}
    assert beta.alive() and sink.alive()
    assert beta.status()["host"] == "ws-beta"


def test_a_second_sink_joins_partitions_split_nothing_lost(
        tmp_path: Path, tansu: TansuBroker, corpus: Path, prefix: str, procs: list[CcstreamProcess]) -> None:
    """Fed: the whole corpus on one edge, read in 64 KiB steps and sunk in batches of 4 chunks so the ingest
    stretches; a first sink starts alone, a second sink with the same app id joins mid-ingest.

    chDB lets one process own a store and no ClickHouse server runs here, so each sink writes its own chDB
    store. Expected: after the rebalance the two sinks' last logged assignments of the raw topic are disjoint
    and together cover its 4 partitions; both stores received rows; the union of both stores, deduplicated by
    identity (file_id, incarnation, byte_offset), is every object of the corpus exactly once (nothing lost).
    Rows delivered to both across the rebalance (inserted by the first sink but not yet committed when its
    partitions were revoked) are counted and printed: in a shared ClickHouse server they would merge
    (ReplacingMergeTree on the identity, dedup tokens for a re-delivered batch)."""
    root = tmp_path / "edge" / "projects"
    root.mkdir(parents=True)
    expected = split_corpus(corpus, [root])[0]
    assert sum(expected.values()) == CORPUS_OBJECTS
    common = {"kafka_bootstrap": tansu.bootstrap, "broker_is_ephemeral": "1", "topic_prefix": prefix}
    edge = CcstreamProcess("edge", tmp_path / "edge", {
        **common, "app_id": "ccstream-edge-solo", "host": "solo", "claude_roots": str(root),
        "read_chunk_bytes": "65536"})
    sinks = [CcstreamProcess("sink", tmp_path / f"sink{i}", {
        **common, "app_id": f"ccstream-sink-{prefix}", "sink_batch_messages": "4",
        "clickhouse_dsn": f"chdb://{tmp_path / f'sink{i}' / 'ch'}"}) for i in (1, 2)]
    first, second = sinks
    for p in (first, edge):
        p.start()
        procs.append(p)
    first.wait_ready(120)
    edge.wait_ready(120)
    wait_for(lambda: scalar(first, "SELECT count() AS n FROM claude_raw_traces") > 1500, 120, "the first rows",
             [first, edge])
    before_join = scalar(first, "SELECT count() AS n FROM claude_raw_traces FINAL")
    second.start()
    procs.append(second)
    second.wait_ready(120)

    raw_topic = f"{prefix}.raw-events"

    def split() -> tuple[list[int], list[int]] | None:
        a = [x.get(raw_topic, []) for x in parse_assignments(first.log_path.read_text(errors="replace"))]
        b = [x.get(raw_topic, []) for x in parse_assignments(second.log_path.read_text(errors="replace"))]
        return (a[-1], b[-1]) if a and b and a[-1] and b[-1] else None

    wait_for(lambda: split() is not None, 90, "both sinks assigned raw-topic partitions", [first, second, edge])

    def identities(p: CcstreamProcess) -> list[tuple[str, int, int]]:
        return [(r["file_id"], int(r["incarnation"]), int(r["byte_offset"])) for r in p.query(
            "SELECT file_id, incarnation, byte_offset FROM claude_raw_traces FINAL")]

    wait_for(lambda: len(set(identities(first)) | set(identities(second))) >= CORPUS_OBJECTS, 300,
             "the union of both stores to hold the corpus", [first, second, edge])
    time.sleep(2)
    a_ids, b_ids = identities(first), identities(second)
    parts = split()
    assert parts is not None
    a_parts, b_parts = parts
    assert not set(a_parts) & set(b_parts), (a_parts, b_parts)
    assert sorted(a_parts + b_parts) == [0, 1, 2, 3]
    # each store holds each identity at most once (FINAL), and both together hold every object once
    assert len(a_ids) == len(set(a_ids)) and len(b_ids) == len(set(b_ids))
    union = set(a_ids) | set(b_ids)
    assert len(union) == CORPUS_OBJECTS
    per_file = {r["file_path"]: int(r["n"]) for r in first.query(
        "SELECT file_path, count() AS n FROM claude_raw_traces FINAL GROUP BY file_path")}
    for r in second.query("SELECT file_path, uniqExact(file_id, incarnation, byte_offset) AS n "
                          "FROM claude_raw_traces FINAL GROUP BY file_path"):
        per_file[r["file_path"]] = per_file.get(r["file_path"], 0) + int(r["n"])
    both = len(set(a_ids) & set(b_ids))
    assert len(b_ids) > 0, "the second sink received nothing: the test proves no split"
    assert sum(per_file.values()) == CORPUS_OBJECTS + both
    assert set(per_file) == set(expected)
    print(f"\nsecond sink joined at {before_join} rows; partitions {a_parts} / {b_parts}; rows "
          f"{len(a_ids)} + {len(b_ids)}; delivered to both across the rebalance: {both}")

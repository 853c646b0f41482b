"""The whole pipeline on the embedded stack, started for real with `ccstream up`.

Fed: a copy of tests/fixtures/claude-code/projects (63 files, 18,915 physical lines, 3 of them holding
two glued objects, 32 files without a trailing newline). Expected: 18,918 rows in claude_raw_traces FINAL,
file for file, and no dead letters; lines appended after a SessionStart hook become queryable; a worker
killed with SIGKILL mid-ingest and a restarted `up` still give exactly 18,918 rows, no identity twice.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.corpus import count_objects
from tests.integration.upstack import UpStack

pytestmark = pytest.mark.integration

EXPECTED_ROWS = 18_918


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Iterator[UpStack]:
    s = UpStack(tmp_path_factory.mktemp("pipeline"))
    s.copy_corpus(corpus)
    s.start()
    children = s.worker_info()["children"]
    yield s
    assert s.stop() == 0, s.logs()
    # Ctrl-C stopped every child: none is left behind
    alive = {name: pid for name, pid in children.items() if _alive(pid)}
    assert alive == {}, f"children left running after Ctrl-C: {alive}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (not yet reaped) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_second_up_on_the_same_data_dir_refuses(stack: UpStack) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "stream.cli", "up"], env=stack.env, capture_output=True,
                          timeout=60)
    assert done.returncode == 1
    assert b"already running" in done.stderr


def test_corpus_ingested_row_for_row(stack: UpStack, corpus: Path) -> None:
    files = sorted(p for p in corpus.rglob("*.jsonl"))
    assert len(files) == 63
    expected = {str(stack.projects / p.relative_to(corpus)): count_objects(p) for p in files}
    assert sum(expected.values()) == EXPECTED_ROWS

    stack.wait_for(lambda: stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL") >= EXPECTED_ROWS,
                   240, f"{EXPECTED_ROWS} rows")
    time.sleep(2)  # anything extra would show up now
    assert stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL") == EXPECTED_ROWS
    per_file = {r["file_path"]: int(r["n"]) for r in stack.query(
        "SELECT file_path, count() AS n FROM claude_raw_traces FINAL GROUP BY file_path")}
    assert per_file == expected
    dupes = stack.scalar("SELECT count() - uniqExact(file_id, incarnation, byte_offset) AS d "
                         "FROM claude_raw_traces FINAL")
    assert dupes == 0
    assert stack.scalar("SELECT count() AS n FROM dead_letters FINAL") == 0
    # the glued objects became rows of their own, on the same physical line
    glued = stack.query("SELECT file_id, line_no, count() AS n FROM claude_raw_traces FINAL "
                        "GROUP BY file_id, line_no HAVING n > 1")
    assert len(glued) == 3 and all(int(r["n"]) == 2 for r in glued)
    # every row is attributed to this edge's host
    assert stack.query("SELECT DISTINCT host FROM claude_raw_traces") == [{"host": "test-host"}]


def test_up_says_when_the_history_is_imported(stack: UpStack, corpus: Path) -> None:
    """Fed: the 63 corpus files. `up` (stdout not a terminal: plain lines) says once that it caught up, with the
    rows (18,918, counted apart from ccstream), the sessions the store holds and the 63 files."""
    files = len(list(corpus.rglob("*.jsonl")))
    stack.wait_for(lambda: "caught up:" in stack.log_path.read_text(), 120, "the caught-up line")
    line = next(ln for ln in stack.log_path.read_text().splitlines() if ln.startswith("caught up:"))
    sessions = stack.scalar("SELECT uniqExact(session_id) AS n FROM claude_raw_traces FINAL")
    assert line.startswith(f"caught up: {EXPECTED_ROWS:,} rows, {sessions:,} sessions, {files:,} files in "), line
    assert stack.log_path.read_text().count("caught up:") == 1


def test_lines_appended_after_session_start_become_queryable(stack: UpStack) -> None:
    session_id = str(uuid.uuid4())
    project = stack.projects / "-tmp-live-project"
    project.mkdir(exist_ok=True)
    transcript = project / f"{session_id}.jsonl"

    def line(i: int) -> tuple[str, bytes]:
        u = str(uuid.uuid4())
        obj = {"type": "user", "uuid": u, "parentUuid": None, "sessionId": session_id,
               "timestamp": f"2026-11-24T10:00:0{i}.000Z", "cwd": "/tmp/live-project", "version": "2.1.42",
               "message": {"role": "user", "content": f"line {i}"}}
        return u, json.dumps(obj).encode() + b"\n"

    first_uuid, first = line(0)
    transcript.write_bytes(first)
    done = stack.hook({"session_id": session_id, "transcript_path": str(transcript), "cwd": "/tmp/live-project",
                       "hook_event_name": "SessionStart", "source": "startup"})
    assert done.returncode == 0 and done.stdout == b"", done.stderr
    appended = []
    with transcript.open("ab") as fh:
        for i in range(1, 4):
            u, data = line(i)
            fh.write(data)
            fh.flush()
            appended.append(u)
            time.sleep(0.2)
    want = {first_uuid, *appended}
    stack.wait_for(lambda: {r["uuid"] for r in stack.query(
        "SELECT uuid FROM claude_raw_traces FINAL WHERE session_id = {sid:String}", {"sid": session_id})} == want,
        30, "the appended lines")
    rows = stack.query("SELECT line_no, type, project FROM claude_raw_traces FINAL "
                       "WHERE session_id = {sid:String} ORDER BY line_no", {"sid": session_id})
    assert rows == [{"line_no": i, "type": "user", "project": "/tmp/live-project"} for i in range(1, 5)]
    # the hook event itself reached ClickHouse through Redis, the bridge and Kafka
    stack.wait_for(lambda: stack.query(
        "SELECT hook_event_name FROM session_events FINAL WHERE session_id = {sid:String}", {"sid": session_id})
        == [{"hook_event_name": "SessionStart"}], 30, "the SessionStart event")


def assert_every_row_once_after_the_restart(stack: UpStack) -> None:
    """The corpus in ClickHouse exactly once after a kill and a restart: every row, each identity once, no
    dead letter (a settled count: two seconds more change nothing)."""
    stack.wait_for(lambda: stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL") >= EXPECTED_ROWS,
                   240, f"{EXPECTED_ROWS} rows after the restart")
    time.sleep(2)
    assert stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL") == EXPECTED_ROWS
    assert stack.scalar("SELECT uniqExact(file_id, incarnation, byte_offset) AS n "
                        "FROM claude_raw_traces FINAL") == EXPECTED_ROWS
    assert stack.scalar("SELECT count() AS n FROM dead_letters FINAL") == 0


def test_worker_killed_mid_ingest_then_restarted_loses_and_repeats_nothing(
        tmp_path: Path, corpus: Path) -> None:
    # small reads and small insert batches stretch the ingest over many inserts, so the kill lands mid-way
    stack = UpStack(tmp_path, {"CCSTREAM_READ_CHUNK_BYTES": "65536", "CCSTREAM_SINK_BATCH_MESSAGES": "4"})
    stack.copy_corpus(corpus)
    stack.start()
    try:
        stack.wait_for(lambda: stack.scalar("SELECT count() AS n FROM claude_raw_traces") > 2000, 120,
                       "the first rows")
        partial = stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL")
        os.kill(stack.worker_info()["pid"], signal.SIGKILL)
    finally:
        stack.stop()
    assert partial < EXPECTED_ROWS, "the ingest finished before the kill: the test proves nothing"

    stack.start()
    try:
        assert_every_row_once_after_the_restart(stack)
    finally:
        assert stack.stop() == 0, stack.logs()


def test_the_edge_worker_killed_mid_ingest_up_restarts_the_stack_and_every_row_lands_once(
        tmp_path: Path, corpus: Path) -> None:
    """Fed: the corpus into a split `up` (edge and sink workers), the edge SIGKILLed mid-ingest, `up` left to
    itself. Expected: `up` says the edge exited and restarts the stack; the new edge reads its checkpoints
    through the new sink, and every object lands once (no dead letter), with the edge's status merged into
    the sink's."""
    stack = UpStack(tmp_path, {"CCSTREAM_READ_CHUNK_BYTES": "65536", "CCSTREAM_SINK_BATCH_MESSAGES": "4"})
    stack.copy_corpus(corpus)
    stack.start()
    try:
        first = stack.worker_info()
        assert set(first["children"]) >= {"sink", "edge", "bridge"} and first["edge_url"] != first["web_url"]
        stack.wait_for(lambda: stack.scalar("SELECT count() AS n FROM claude_raw_traces") > 2000, 120,
                       "the first rows")
        partial = stack.scalar("SELECT count() AS n FROM claude_raw_traces FINAL")
        os.kill(first["edge_pid"], signal.SIGKILL)
        assert partial < EXPECTED_ROWS, "the ingest finished before the kill: the test proves nothing"
        stack.wait_for(lambda: "edge exited unexpectedly" in stack.log_path.read_text(errors="replace"), 60,
                       "up to see the edge gone")

        def new_edge() -> bool:
            try:
                return stack.worker_info().get("edge_pid") not in (None, first["edge_pid"])
            except (OSError, ValueError):  # worker.json is cleared while the stack restarts
                return False

        stack.wait_for(new_edge, 120, "a new edge")
        assert_every_row_once_after_the_restart(stack)
        status = stack.status()
        # one view of the two workers: the tailer's figures come from the edge (the sink has none of its own)
        assert status["roles"] == ["edge", "sink"] and "edge" not in status and status["rows_inserted"] > 0
        assert status["followed_files"] + len(status["lagging_files"]) + status["records_produced"] > 0
    finally:
        assert stack.stop() == 0, stack.logs()


def test_secrets_are_redacted_before_a_line_leaves_the_edge(stack: UpStack) -> None:
    """Fed: a transcript line whose tool output printed an .env file with an Anthropic key and a database URL
    with a password. Expected: the Kafka message and the stored raw line carry markers instead of the
    secrets, the row counts its redactions, and the line is still valid JSON."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    from stream.contract.raw_chunk import RawChunk

    key = "sk-ant-api03-" + "A1b2C3d4E5f6G7h8I9j0" * 4 + "-xYz0AA"
    password = "hunter2-very-secret"
    session_id = str(uuid.uuid4())
    project = stack.projects / "-tmp-secret-project"
    project.mkdir(exist_ok=True)
    env_text = f"ANTHROPIC_API_KEY={key}\nDATABASE_URL=postgres://app:{password}@db.internal:5432/app\n"
    obj = {"type": "user", "uuid": str(uuid.uuid4()), "sessionId": session_id, "parentUuid": None,
           "timestamp": "2026-11-24T11:00:00.000Z", "cwd": "/tmp/secret-project",
           "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01abc",
                                                    "content": env_text}]},
           "toolUseResult": {"stdout": env_text, "stderr": ""}}
    (project / f"{session_id}.jsonl").write_bytes(json.dumps(obj).encode() + b"\n")

    stack.wait_for(lambda: len(stack.query("SELECT 1 FROM claude_raw_traces FINAL WHERE session_id = {s:String}",
                                           {"s": session_id})) == 1, 30, "the secret line")
    row = stack.query("SELECT raw, redactions FROM claude_raw_traces FINAL WHERE session_id = {s:String}",
                      {"s": session_id})[0]
    assert key not in row["raw"] and password not in row["raw"]
    assert int(row["redactions"]) >= 4  # the key and the password, each in two places
    stored = json.loads(row["raw"])
    assert stored["toolUseResult"]["stdout"] == ("ANTHROPIC_API_KEY=[REDACTED:anthropic-key]\n"
                                                 "DATABASE_URL=postgres://app:[REDACTED:url-password]"
                                                 "@db.internal:5432/app\n")

    async def kafka_values() -> list[bytes]:
        bootstrap = stack.worker_info()["kafka_bootstrap"]
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            # the line was written live: it may have taken the live lane (raw-live) instead of raw-events
            names = ("ccstream.raw-events", stack.settings.topic_raw_live)
            tps = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or set()]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            values: list[bytes] = []
            for _ in range(20):
                batch = await consumer.getmany(timeout_ms=300)
                if not batch:
                    break
                values.extend(m.value for msgs in batch.values() for m in msgs)
            return values
        finally:
            await consumer.stop()

    chunks = [RawChunk.decode(v) for v in asyncio.run(kafka_values())]
    ours = [r.raw for c in chunks if c.session_id == session_id for r in c.records()]
    assert len(ours) == 1
    assert key.encode() not in ours[0] and password.encode() not in ours[0]

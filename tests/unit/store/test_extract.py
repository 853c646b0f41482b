"""extract_row over the real corpus: every object of every file, and column spot checks against the file content.

The corpus is split here with a plain raw_decode loop per physical line (the tailer's framing is tested on its
own); expected values below were read off the files by hand.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stream.contract.identity import file_id_for
from stream.contract.raw_chunk import RawChunk, Record
from stream.store.extract import MODELLED_TYPES, RAW_TRACES_COLUMNS, extract_row, parse_timestamp, to_millis

INGESTED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INGESTED_MS = 1772366400000


def split_records(data: bytes) -> list[Record]:
    """Every JSON object of a transcript with its byte offset and 1-based physical line."""
    dec = json.JSONDecoder()
    out: list[Record] = []
    offset = 0
    for line_no, line in enumerate(data.split(b"\n"), 1):
        text = line.decode()
        i = 0
        while i < len(text):
            _, j = dec.raw_decode(text, i)
            start = offset + len(text[:i].encode())
            out.append(Record(start, line_no, text[i:j].encode()))
            i = j
        offset += len(line) + 1
    return out


def consecutive_records(lines: list[bytes]) -> tuple[list[Record], int]:
    """Records of `lines` written one per line from offset 0, and the file's end offset."""
    records, off = [], 0
    for n, raw in enumerate(lines, 1):
        records.append(Record(off, n, raw))
        off += len(raw) + 1
    return records, off


def chunk_for(corpus: Path, path: Path, records: list[Record]) -> RawChunk:
    rel = path.relative_to(corpus)
    agent = path.stem[len("agent-"):] if path.stem.startswith("agent-") else None
    session = rel.parts[-3] if "subagents" in rel.parts else path.stem
    return RawChunk.from_records(host="h1", user="u1", path=str(path), file_id=file_id_for("h1", str(path)), incarnation=2,
                    fingerprint="fp", session_id=session, agent_id=agent, records=records,
                    end_offset=path.stat().st_size, end_line=len(records))


def row_at(corpus: Path, rel: str, offset: int) -> dict[str, Any]:
    path = corpus / rel
    records = split_records(path.read_bytes())
    rec = next(r for r in records if r.offset == offset)
    row = extract_row(rec.raw, chunk_for(corpus, path, records), rec, INGESTED)
    assert len(row) == len(RAW_TRACES_COLUMNS)
    return dict(zip(RAW_TRACES_COLUMNS, row, strict=True))


def ms(iso: str) -> int:
    return to_millis(datetime.fromisoformat(iso))


def test_every_object_of_the_corpus_extracts(corpus: Path) -> None:
    files = sorted(corpus.rglob("*.jsonl"))
    assert len(files) == 63
    total = 0
    types: dict[str, int] = {}
    for path in files:
        records = split_records(path.read_bytes())
        chunk = chunk_for(corpus, path, records)
        for rec in records:
            row = dict(zip(RAW_TRACES_COLUMNS, extract_row(rec.raw, chunk, rec, INGESTED), strict=True))
            obj = json.loads(rec.raw)
            total += 1
            types[row["type"]] = types.get(row["type"], 0) + 1
            # identity and what every row must carry
            assert (row["file_id"], row["incarnation"], row["byte_offset"], row["line_no"]) == (
                chunk.file_id, 2, rec.offset, rec.line_no)
            assert row["raw"] == rec.raw and row["ingested_at"] == INGESTED_MS
            assert row["session_id"] == (obj.get("sessionId") or chunk.session_id)
            assert row["type"] == obj["type"]
            assert isinstance(row["timestamp"], int)
            if "timestamp" in obj:
                assert row["timestamp"] == ms(obj["timestamp"]) and row["missing_fields"].count("timestamp") == 0
            else:
                assert "timestamp" in row["missing_fields"]
    assert total == 18_918
    # counted independently with a raw_decode loop over the files
    assert types == {"progress": 9530, "assistant": 5489, "user": 3183, "file-history-snapshot": 391,
                     "system": 262, "summary": 17, "queue-operation": 44, "pr-link": 2}


def test_assistant_line_tokens_model_ids_and_tool_use(corpus: Path) -> None:
    r = row_at(corpus, "entireio__cli/062a8bdd-4322-4ffa-bc38-3e8b8bfb5a56.jsonl", 2495)
    assert r["type"] == "assistant" and r["line_no"] == 6
    assert r["session_id"] == "062a8bdd-4322-4ffa-bc38-3e8b8bfb5a56"
    assert r["model"] == "claude-opus-4-5-20251101"
    assert r["message_id"] == "msg_01D5ScS337dkWDd9cFbKZLWN"
    assert r["request_id"] == "req_011CXk9jiFLSw7Vwsd9RNThW"
    assert r["stop_reason"] == ""  # null in the file
    assert (r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"],
            r["cache_read_input_tokens"], r["cache_creation_5m"], r["cache_creation_1h"]) == (
        2, 1, 25415, 16496, 0, 25415)
    assert r["tool_use_ids"] == ["toolu_0141uEQLi7zbWiWRLzanxa4j"] and r["tool_use_names"] == ["Skill"]
    assert r["tool_result_ids"] == [] and r["tool_result_is_error"] == []
    assert r["uuid"] == "46e15040-4c20-41c6-a916-e07ab7b46a4b"
    assert r["parent_uuid"] == "6faf6804-065d-4759-ac9c-2448fff7bc23"
    assert r["timestamp"] == ms("2026-02-02T23:59:53.818Z") and r["timestamp_missing"] == 0
    assert r["version"] == "2.1.29" and r["git_branch"] == "alex/mark-sessions-as-closed"
    assert r["project"] == "/Users/alex/workspace/cli/.worktrees/1"
    assert r["is_sidechain"] == 0 and r["agent_id"] == "" and r["missing_fields"] == []


def test_assistant_line_with_thinking_text_and_tool_use_blocks(corpus: Path) -> None:
    r = row_at(corpus, "entireio__cli/b00b80af-879f-4265-b95b-48db0938673c.jsonl", 35832)
    assert r["tool_use_ids"] == ["toolu_01R78cUVibXKEpweNMowKs7A"] and r["tool_use_names"] == ["Grep"]
    assert r["stop_reason"] == "tool_use"
    assert (r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"],
            r["cache_creation_5m"]) == (10, 205, 136913, 136913)


def test_synthetic_api_error_line(corpus: Path) -> None:
    r = row_at(corpus, "entireio__cli/b00b80af-879f-4265-b95b-48db0938673c.jsonl", 27121)
    assert r["is_api_error"] == 1 and r["model"] == "<synthetic>"
    assert r["message_id"] == "6b56ec04-fc32-434a-bad5-1bf41fd6bf69" and r["request_id"] == ""
    assert (r["input_tokens"], r["output_tokens"], r["cache_read_input_tokens"]) == (0, 0, 0)


def test_tool_result_error_and_string_tool_use_result_in_1_0_31(corpus: Path) -> None:
    r = row_at(corpus, "amac0__ClaudeStatus/example2.jsonl", 47531)
    assert r["type"] == "user" and r["line_no"] == 45
    assert r["tool_result_ids"] == ["toolu_01VLaF5HsJEZUV6u78saR4ZX"] and r["tool_result_is_error"] == [1]
    assert r["result_agent_id"] == ""  # toolUseResult is a plain string here
    assert r["version"] == "1.0.31" and r["git_branch"] == "" and r["slug"] == ""
    r = row_at(corpus, "amac0__ClaudeStatus/example.jsonl", 7864)
    assert r["tool_result_ids"] == ["toolu_01DonJFvJakYCSuwQ199c6qT"] and r["tool_result_is_error"] == [0]


def test_1_0_31_first_line_without_git_branch(corpus: Path) -> None:
    r = row_at(corpus, "amac0__ClaudeStatus/example.jsonl", 0)
    assert (r["type"], r["line_no"], r["parent_uuid"], r["git_branch"]) == ("user", 1, "", "")
    assert r["session_id"] == "2fc9b73b-2bd2-497c-a77b-3a272bf84e1f"
    assert r["uuid"] == "820483f4-674f-48e2-b30a-246f9d6306b1"
    assert r["timestamp"] == ms("2025-06-29T12:47:02.125Z")
    assert r["missing_fields"] == [] and r["tool_result_ids"] == []


def test_task_result_carries_the_subagent_id(corpus: Path) -> None:
    r = row_at(corpus, "entireio__cli/0790ea37-90df-4d30-8fdf-0bfe301b8f3e.jsonl", 6226)
    assert r["result_agent_id"] == "ab94da7"
    assert r["tool_result_ids"] == ["toolu_01LY1C3Ff95ZoB66GNRDUWH1"] and r["tool_result_is_error"] == [0]
    assert r["input_tokens"] == 0  # toolUseResult.usage summarises the subagent: never counted here


def test_agent_progress_line(corpus: Path) -> None:
    r = row_at(corpus, "entireio__cli/3b1b6293-65e1-4c3e-9f95-d530143332f2.jsonl", 381146)
    assert (r["type"], r["progress_type"], r["progress_agent_id"]) == ("progress", "agent_progress", "a1f7e5b")
    assert r["uuid"] == "c6ee763d-614f-44bd-8065-98c242ea9a62" and r["model"] == ""


def test_subagent_echo_carries_the_echoed_response(corpus: Path) -> None:
    """An agent_progress line echoing a subagent's assistant message: the message columns are the echoed
    response's (data.message.message, data.message.requestId), echo_timestamp its time; the line keeps its own
    type, timestamp (sort key) and session, and its blocks are not the parent's tool calls."""
    r = row_at(corpus, "entireio__cli/3b1b6293-65e1-4c3e-9f95-d530143332f2.jsonl", 385216)
    assert (r["type"], r["line_no"], r["progress_type"], r["progress_agent_id"]) == (
        "progress", 190, "agent_progress", "a1f7e5b")
    assert (r["message_id"], r["request_id"], r["model"]) == (
        "msg_017Xsxqum5RDQZPkhKdBJRuG", "req_011CXWw4HLMeBuFSdkjDt2vM", "claude-opus-4-5-20251101")
    assert (r["input_tokens"], r["output_tokens"], r["cache_creation_input_tokens"], r["cache_read_input_tokens"],
            r["cache_creation_5m"], r["cache_creation_1h"], r["service_tier"]) == (3, 4, 27498, 0, 27498, 0,
                                                                                   "standard")
    assert r["timestamp"] == ms("2026-01-27T00:25:55.274Z")
    assert r["echo_timestamp"] == ms("2026-01-27T00:25:55.253Z")
    assert r["session_id"] == "3b1b6293-65e1-4c3e-9f95-d530143332f2" and r["tool_use_ids"] == []


def test_usage_details_of_current_claude_code(corpus: Path) -> None:
    r = row_at(corpus, "entireio__cli/acdd84ab-e724-42c8-925d-420b2a4f1861.jsonl", 277402)
    assert (r["type"], r["web_search_requests"], r["web_fetch_requests"], r["service_tier"], r["speed"],
            r["inference_geo"], r["echo_timestamp"]) == ("assistant", 0, 0, "standard", "standard", "", 0)
    assert (r["cache_creation_input_tokens"], r["cache_creation_5m"], r["cache_creation_1h"]) == (1191, 0, 1191)
    r = _one(b'{"type":"assistant","message":{"id":"m","usage":{"cache_creation_input_tokens":0,'
             b'"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":2000},'
             b'"server_tool_use":{"web_search_requests":3,"web_fetch_requests":"2"},"service_tier":"priority",'
             b'"speed":"fast","inference_geo":"us"}}}')
    # the raw table keeps what the line says (flat 0); token_usage falls back to the nested split
    assert (r["cache_creation_input_tokens"], r["cache_creation_5m"], r["cache_creation_1h"]) == (0, 100, 2000)
    assert (r["web_search_requests"], r["web_fetch_requests"], r["service_tier"], r["speed"], r["inference_geo"]) == (
        3, 2, "priority", "fast", "us")


def test_only_echoes_of_assistant_messages_fill_the_message_columns() -> None:
    inner = b'"requestId":"r","timestamp":"2026-01-01T00:00:00Z","message":{"id":"m","usage":{"input_tokens":9}}'
    user = _one(b'{"type":"progress","data":{"type":"agent_progress","agentId":"a","message":{"type":"user",'
                + inner + b'}}}')
    other = _one(b'{"type":"progress","data":{"type":"hook_progress","message":{"type":"assistant",' + inner + b'}}}')
    not_progress = _one(b'{"type":"user","data":{"type":"agent_progress","message":{"type":"assistant",'
                        + inner + b'}}}')
    for r in (user, other, not_progress):
        assert (r["message_id"], r["request_id"], r["input_tokens"], r["echo_timestamp"]) == ("", "", 0, 0)
    echo = _one(b'{"type":"progress","requestId":"outer","data":{"type":"agent_progress","agentId":"a",'
                b'"message":{"type":"assistant",' + inner + b'}}}')
    assert (echo["message_id"], echo["request_id"], echo["input_tokens"], echo["echo_timestamp"]) == (
        "m", "r", 9, 1767225600000)


def test_modelled_types_are_the_ones_extraction_interprets() -> None:
    assert MODELLED_TYPES == ("user", "assistant", "system", "progress", "file-history-snapshot", "queue-operation")


def test_compact_boundary_and_compact_summary(corpus: Path) -> None:
    rel = "entireio__cli/062a8bdd-4322-4ffa-bc38-3e8b8bfb5a56.jsonl"
    b = row_at(corpus, rel, 1848944)
    assert (b["type"], b["subtype"], b["parent_uuid"]) == ("system", "compact_boundary", "")
    assert b["logical_parent_uuid"] == "49e49ba0-be0c-4ab6-9167-3b84801e9116"
    assert b["slug"] == "humble-fluttering-metcalfe" and b["is_meta"] == 0
    s = row_at(corpus, rel, 1849512)
    assert (s["type"], s["is_compact_summary"], s["line_no"]) == ("user", 1, 577)
    assert s["parent_uuid"] == "66f8e299-4fbb-4285-abdc-c95f71224e72"


def test_summary_line_has_no_timestamp_and_takes_the_files_session(corpus: Path) -> None:
    r = row_at(corpus, "entireio__cli/0790ea37-90df-4d30-8fdf-0bfe301b8f3e.jsonl", 0)
    assert r["type"] == "summary" and r["uuid"] == ""
    assert r["timestamp"] == 0 and r["timestamp_missing"] == 1
    assert r["missing_fields"] == ["sessionId", "timestamp"]
    assert r["session_id"] == "0790ea37-90df-4d30-8fdf-0bfe301b8f3e"


def test_file_history_snapshot_takes_the_snapshot_time(corpus: Path) -> None:
    r = row_at(corpus, "entireio__cli/062a8bdd-4322-4ffa-bc38-3e8b8bfb5a56.jsonl", 0)
    assert r["type"] == "file-history-snapshot"
    assert r["timestamp"] == ms("2026-02-02T23:59:50.533Z") and r["timestamp_missing"] == 0
    assert r["missing_fields"] == ["sessionId", "timestamp"]
    assert r["session_id"] == "062a8bdd-4322-4ffa-bc38-3e8b8bfb5a56" and r["message_id"] == ""


def test_glued_objects_are_two_rows_on_one_line(corpus: Path) -> None:
    rel = "entireio__cli/130d7b7e-5801-4345-9bd6-f32fd9b8429b.jsonl"
    a = row_at(corpus, rel, 403953)
    s = row_at(corpus, rel, 403953 + 1007)
    assert (a["type"], a["line_no"], a["output_tokens"], a["cache_read_input_tokens"]) == (
        "assistant", 128, 67, 78296)
    assert a["uuid"] == "3252495b-f5ee-4004-9370-21c6d432eb59"
    assert (s["type"], s["line_no"], s["timestamp_missing"]) == ("summary", 128, 1)


def test_subagent_file_line(corpus: Path) -> None:
    r = row_at(corpus, "marot__spotter/258c7280-ae70-4798-800f-63464d01a85d/subagents/agent-a881341.jsonl", 0)
    assert (r["is_sidechain"], r["agent_id"], r["session_id"]) == (
        1, "a881341", "258c7280-ae70-4798-800f-63464d01a85d")
    assert r["parent_uuid"] == "" and r["git_branch"] == "spotter-gqc"


def _one(raw: bytes, **chunk_kw: Any) -> dict[str, Any]:
    rec = Record(10, 3, raw)
    chunk = RawChunk.from_records(host="h", user="u", path="/p/s.jsonl", file_id="f", incarnation=0, fingerprint="x",
                     session_id=chunk_kw.get("session_id", "file-session"), agent_id=chunk_kw.get("agent_id"),
                     records=[rec], end_offset=100, end_line=3)
    return dict(zip(RAW_TRACES_COLUMNS, extract_row(raw, chunk, rec, INGESTED, redactions=2), strict=True))


def test_unknown_type_and_odd_shapes_are_tolerated() -> None:
    r = _one(b'{"type":"custom-title","customTitle":"x","sessionId":"s9"}')
    assert (r["type"], r["session_id"], r["timestamp"], r["missing_fields"]) == (
        "custom-title", "s9", 0, ["timestamp"])
    assert r["redactions"] == 2
    # usage with nulls and strings, content a string, a list holding non-dicts, bad timestamp
    r = _one(b'{"type":"assistant","timestamp":"not a time","message":{"id":"m","content":["x",3,'
             b'{"type":"tool_use"}],"usage":{"input_tokens":null,"output_tokens":"12","cache_read_input_tokens":-4,'
             b'"cache_creation":null}}}')
    assert (r["input_tokens"], r["output_tokens"], r["cache_read_input_tokens"], r["cache_creation_5m"]) == (
        0, 12, 0, 0)
    assert r["tool_use_ids"] == [""] and r["tool_use_names"] == [""]
    assert r["missing_fields"] == ["sessionId", "timestamp"] and r["timestamp_missing"] == 1
    r = _one(b'{"type":"user","message":{"content":"hello"},"toolUseResult":[1,2],"timestamp":"2026-01-01T00:00:00Z"}')
    assert (r["result_agent_id"], r["tool_result_ids"], r["timestamp"]) == ("", [], 1767225600000)


def test_missing_type_and_non_object_lines() -> None:
    r = _one(b'{"sessionId":"s1","timestamp":"2026-01-01T00:00:00.000Z"}', agent_id="a1")
    assert (r["type"], r["missing_fields"], r["agent_id"]) == ("", ["type"], "a1")
    r = _one(b"[1,2]")
    assert (r["type"], r["session_id"], r["raw"]) == ("", "file-session", b"[1,2]")
    assert r["missing_fields"] == ["json", "type", "sessionId", "timestamp"]


def test_the_same_line_always_gives_the_same_row_apart_from_ingested_at() -> None:
    raw = b'{"type":"summary","summary":"t","leafUuid":"x"}'
    a, b = _one(raw), _one(raw)
    assert a == b
    assert (a["session_id"], a["timestamp"]) == ("file-session", 0)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-01-06T18:02:36.763Z", 1767722556763),
    ("2026-01-06T18:02:36Z", 1767722556000),
    ("2026-01-06T19:02:36.763+01:00", 1767722556763),
    ("2026-01-06T18:02:36.763", 1767722556763),  # no zone: UTC, never the local zone
    ("", None), ("yesterday", None), (None, None), (12, None),
])
def test_parse_timestamp(text: Any, expected: int | None) -> None:
    assert parse_timestamp(text) == expected

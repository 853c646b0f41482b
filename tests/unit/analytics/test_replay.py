"""Conversation reconstruction from stored rows, checked against the fixture files themselves."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from stream.analytics.replay import Conversation, replay, turn_lines

SPOTTER = "marot__spotter"
SESSION = "4d5611e5-241a-462a-8d15-5122611a9569"  # main file + a Task subagent + a compaction agent


def file_rows(path: Path, agent_id: str = "") -> list[dict[str, Any]]:
    """Rows as the store holds them: one per JSON object, with file, byte offset, agent id and raw bytes."""
    rows: list[dict[str, Any]] = []
    dec = json.JSONDecoder()
    offset = 0
    for line in path.read_bytes().split(b"\n"):
        text = line.decode()
        i = 0
        while i < len(text):
            _, j = dec.raw_decode(text, i)
            start = offset + len(text[:i].encode())
            rows.append({"file_path": str(path), "byte_offset": start, "agent_id": agent_id,
                         "raw": text[i:j]})
            i = j
        offset += len(line) + 1
    return rows


def uuids_in_file(path: Path) -> list[str]:
    return [json.loads(r["raw"])["uuid"] for r in file_rows(path) if json.loads(r["raw"]).get("uuid")]


def test_subagent_and_compaction_are_nested_in_file_order(corpus: Path) -> None:
    main = corpus / SPOTTER / f"{SESSION}.jsonl"
    sub = corpus / SPOTTER / SESSION / "subagents" / "agent-a2898e3.jsonl"
    compact = corpus / SPOTTER / SESSION / "subagents" / "agent-acompact-e1f845.jsonl"
    rows = file_rows(main) + file_rows(sub, "a2898e3") + file_rows(compact, "acompact-e1f845")
    random.Random(7).shuffle(rows)  # the order must come from the chain and the offsets, not the input

    conv = replay(rows)

    # main thread: every line with a uuid, in file order (1,512 lines less 14 snapshots and 1 queue-operation)
    assert [t.agent_id for t in conv.threads] == [""]
    main_turns = conv.threads[0].turns
    assert [t.uuid for t in main_turns] == uuids_in_file(main)
    assert len(main_turns) == 1497

    # the Explore subagent hangs under the assistant line (file line 44) holding Task toolu_017pLRuPHYTX5t99EnLyV53m
    task_turn = next(t for t in main_turns if t.children and t.children[0].agent_id == "a2898e3")
    assert [b.tool_id for b in task_turn.tool_uses] == ["toolu_017pLRuPHYTX5t99EnLyV53m"]
    assert task_turn.uuid == json.loads(main.read_text().split("\n")[43])["uuid"]
    explore = task_turn.children[0]
    assert (explore.link, explore.tool_use_id, explore.subagent_type) == (
        "task", "toolu_017pLRuPHYTX5t99EnLyV53m", "Explore")
    assert [t.uuid for t in explore.turns] == uuids_in_file(sub)
    assert len(explore.turns) == 144

    # the compaction agent hangs under the compact_boundary (file line 754), followed by the summary
    boundary = next(t for t in main_turns if t.kind == "compact_boundary")
    assert boundary.uuid == "dd3cc2e6-a191-4331-a0f0-2473e6d7692d"
    assert [(c.agent_id, c.link) for c in boundary.children] == [("acompact-e1f845", "compaction")]
    assert [t.uuid for t in boundary.children[0].turns] == uuids_in_file(compact)

    # the walk: subagent turns right after the turn that started them, one level deeper
    walk = list(conv.walk())
    assert len(walk) == 1497 + 144 + 5
    i = next(k for k, (_, t) in enumerate(walk) if t is task_turn)
    assert [d for d, _ in walk[i: i + 146]] == [0] + [1] * 144 + [0]
    assert walk[i + 145][1].uuid == main_turns[main_turns.index(task_turn) + 1].uuid
    j = next(k for k, (_, t) in enumerate(walk) if t is boundary)
    assert [(d, t.kind) for d, t in walk[j: j + 7]] == [
        (0, "compact_boundary"), (1, "meta"), (1, "meta"), (1, "meta"), (1, "prompt"), (1, "assistant"),
        (0, "compact_summary")]
    assert [d for d, _ in walk].count(1) == 149


def test_replayed_history_across_two_files_is_kept_once(corpus: Path) -> None:
    # 1.0.31: example.jsonl is the first 39 lines of example2.jsonl (session 2fc9b73b…), same uuids
    a = file_rows(corpus / "amac0__ClaudeStatus" / "example.jsonl")
    b = file_rows(corpus / "amac0__ClaudeStatus" / "example2.jsonl")
    first = [r for r in b if json.loads(r["raw"])["sessionId"].startswith("2fc9b73b")]
    conv = replay(a + first)
    turns = conv.threads[0].turns
    assert len(turns) == 216
    assert [t.uuid for t in turns] == [json.loads(r["raw"])["uuid"] for r in first]
    # the copies kept are example.jsonl's (its lines were written first)
    assert {t.row["file_path"] for t in turns[:39]} == {str(corpus / "amac0__ClaudeStatus" / "example.jsonl")}


def _row(uuid: str, parent: str | None, agent: str = "", offset: int = 0, **extra: Any) -> dict[str, Any]:
    obj = {"type": "user", "uuid": uuid, "parentUuid": parent, "timestamp": f"2026-01-01T00:00:{offset:02d}Z",
           "message": {"role": "user", "content": uuid}, **extra}
    return {"file_path": f"f-{agent}", "byte_offset": offset, "agent_id": agent, "raw": json.dumps(obj)}


def test_branches_follow_parents_then_file_position() -> None:
    # a → b → c, and a rewind: d branches from a after c was written
    rows = [_row("d", "a", offset=30), _row("c", "b", offset=20), _row("a", None, offset=0), _row("b", "a", offset=10)]
    assert [t.uuid for t in replay(rows).threads[0].turns] == ["a", "b", "c", "d"]


def test_progress_link_and_orphans() -> None:
    task = {"type": "assistant", "uuid": "t", "parentUuid": None, "timestamp": "2026-01-01T00:00:01Z",
            "message": {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "Task", "input": {"subagent_type": "Plan"}}]}}
    progress = {"type": "progress", "uuid": "p", "parentUuid": "t", "timestamp": "2026-01-01T00:00:02Z",
                "parentToolUseID": "toolu_1", "data": {"type": "agent_progress", "agentId": "a1"}}
    rows = [
        {"file_path": "main", "byte_offset": 0, "agent_id": "", "raw": json.dumps(task)},
        {"file_path": "main", "byte_offset": 100, "agent_id": "", "raw": json.dumps(progress)},
        _row("s1", None, "a1", 0), _row("s2", "s1", "a1", 5),  # still running: only progress links it
        _row("o1", "missing", "zz", 0),  # a subagent whose parent is nowhere
    ]
    conv: Conversation = replay(rows)
    assert [(t.agent_id, t.link) for t in conv.threads] == [("", "main"), ("zz", "orphan")]
    assert [(d, t.uuid) for d, t in conv.walk()] == [(0, "t"), (1, "s1"), (1, "s2"), (0, "p"), (0, "o1")]
    plan = conv.thread("a1")
    assert plan is not None and (plan.link, plan.subagent_type) == ("task", "Plan")


def test_rows_without_uuid_or_json_are_not_turns() -> None:
    rows = [{"raw": '{"type":"file-history-snapshot","messageId":"m"}'}, {"raw": "not json"}, {"raw": None},
            _row("a", None)]
    assert [t.uuid for t in replay(rows).threads[0].turns] == ["a"]


def test_turn_lines_collapse_tool_calls_unless_full(corpus: Path) -> None:
    rows = file_rows(corpus / SPOTTER / f"{SESSION}.jsonl")
    turns = {t.uuid: t for t in replay(rows).threads[0].turns}
    lines = [json.loads(r["raw"]) for r in rows]
    use = turns[lines[9]["uuid"]]  # assistant Bash tool_use
    result = turns[lines[17]["uuid"]]  # its tool_result
    assert [b.name for b in use.tool_uses] == ["Bash"]
    collapsed = turn_lines(use)
    assert len(collapsed) == 1 and collapsed[0].startswith("→ Bash(")
    assert "\n" in turn_lines(use, full=True)[0]  # the whole input, pretty-printed
    assert result.kind == "tool_result" and result.tool_results[0].name == "Bash"
    assert turn_lines(result)[0].startswith(("← ✓ Bash (", "← ✗ Bash ("))
    full = turn_lines(result, full=True)[0]
    assert full.split("\n", 1)[1] == result.tool_results[0].text

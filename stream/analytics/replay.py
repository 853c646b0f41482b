"""Pure: stored transcript rows of one session → the conversation as an ordered tree.

Order. Within a file every line's ``parentUuid`` points to an earlier line (checked over the whole corpus),
so the order along the parentUuid chain is a topological order of the parent tree with ties broken by file
position; that is what :func:`replay` computes, which also gives a sensible order for rows that arrive
shuffled, and for a main thread whose history spans two files (1.0.x resumes replayed lines: the same
``uuid`` twice, kept once). ``compact_boundary`` lines have no parent but a ``logicalParentUuid``, used in
its place.

Nesting. Each subagent file is its own thread (``agentId``). A thread hangs under the turn that started it:
1. the parent's ``Task`` tool_use whose tool_result carries ``toolUseResult.agentId`` (or, while the task
   still runs, whose ``agent_progress`` lines name the agent);
2. a compaction agent (``acompact-…``) under the first ``compact_boundary`` written after it finished;
3. otherwise under the line its first ``parentUuid`` points to, in any thread;
4. otherwise it stays at the top level (an orphan, e.g. a subagent file whose main file is missing).

Lines without a uuid (file-history-snapshot, summary, queue-operation, pr-link) are not conversation turns;
``ccstream show --raw`` still prints them from the store.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Block:
    kind: str  # text | thinking | tool_use | tool_result | image | other
    text: str = ""
    tool_id: str = ""  # tool_use.id, or tool_result.tool_use_id
    name: str = ""  # tool name (tool_use; on tool_result filled from its tool_use)
    input: Any = None
    is_error: bool = False


@dataclass(slots=True)
class Turn:
    """One transcript line that takes part in the conversation."""

    uuid: str
    parent_uuid: str | None
    type: str
    subtype: str
    kind: str  # prompt | meta | tool_result | assistant | api_error | compact_boundary | compact_summary |
    #            system | progress | other
    timestamp: str
    agent_id: str
    is_sidechain: bool
    model: str
    blocks: list[Block]
    obj: dict[str, Any]  # the parsed line
    row: Mapping[str, Any]  # the stored row it came from
    position: tuple[Any, ...]  # (file's first timestamp, file, byte offset, input index)
    children: list[Thread] = field(default_factory=list)  # subagent threads started at this turn

    @property
    def tool_uses(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "tool_use"]

    @property
    def tool_results(self) -> list[Block]:
        return [b for b in self.blocks if b.kind == "tool_result"]


@dataclass(slots=True)
class Thread:
    agent_id: str  # "" for the main conversation
    turns: list[Turn]
    link: str = "main"  # main | task | compaction | parent_uuid | orphan
    tool_use_id: str = ""  # the Task tool_use that started it (link == "task")
    subagent_type: str = ""
    description: str = ""


@dataclass(slots=True)
class Conversation:
    threads: list[Thread]  # top level: the main thread first, then threads nothing adopted

    def walk(self) -> Iterator[tuple[int, Turn]]:
        """Depth-first: each subagent thread right after the turn that started it, one level deeper."""
        seen: set[int] = set()
        for thread in self.threads:
            yield from _walk(thread, 0, seen)

    def thread(self, agent_id: str) -> Thread | None:
        for _, turn in self.walk():
            for child in turn.children:
                if child.agent_id == agent_id:
                    return child
        return next((t for t in self.threads if t.agent_id == agent_id), None)


def _walk(thread: Thread, depth: int, seen: set[int]) -> Iterator[tuple[int, Turn]]:
    if id(thread) in seen:  # two agents naming each other as parent: print each once
        return
    seen.add(id(thread))
    for turn in thread.turns:
        yield depth, turn
        for child in turn.children:
            yield from _walk(child, depth + 1, seen)


# ---- parsing one line ------------------------------------------------------------------------------


def _parse(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw).decode("utf-8", "replace")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _content_text(content: Any) -> str:
    """tool_result content (string or list of blocks) as text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for c in content:
            if isinstance(c, Mapping):
                if c.get("type") == "text":
                    parts.append(str(c.get("text") or ""))
                elif c.get("type") == "image":
                    parts.append("[image]")
            elif isinstance(c, str):
                parts.append(c)
        return "\n".join(parts)
    return "" if content is None else str(content)


def blocks_of(obj: Mapping[str, Any]) -> list[Block]:
    msg = obj.get("message")
    if obj.get("type") == "system":
        return [Block("text", text=str(obj.get("content") or ""))]
    if not isinstance(msg, Mapping):
        return []
    content = msg.get("content")
    if isinstance(content, str):
        return [Block("text", text=content)]
    out: list[Block] = []
    for b in content if isinstance(content, list) else []:
        if not isinstance(b, Mapping):
            continue
        kind = str(b.get("type") or "other")
        if kind == "text":
            out.append(Block("text", text=str(b.get("text") or "")))
        elif kind == "thinking":
            out.append(Block("thinking", text=str(b.get("thinking") or "")))
        elif kind == "tool_use":
            out.append(Block("tool_use", tool_id=str(b.get("id") or ""), name=str(b.get("name") or ""),
                             input=b.get("input")))
        elif kind == "tool_result":
            out.append(Block("tool_result", tool_id=str(b.get("tool_use_id") or ""),
                             text=_content_text(b.get("content")), is_error=bool(b.get("is_error"))))
        elif kind == "image":
            out.append(Block("image", text="[image]"))
        else:
            out.append(Block("other", text=kind))
    return out


def classify(obj: Mapping[str, Any], blocks: list[Block]) -> str:
    t = obj.get("type")
    if t == "user":
        if obj.get("isCompactSummary"):
            return "compact_summary"
        if any(b.kind == "tool_result" for b in blocks):
            return "tool_result"
        return "meta" if obj.get("isMeta") else "prompt"
    if t == "assistant":
        return "api_error" if obj.get("isApiErrorMessage") else "assistant"
    if t == "system":
        return "compact_boundary" if obj.get("subtype") in ("compact_boundary", "microcompact_boundary") else "system"
    if t == "progress":
        return "progress"
    return "other"


# ---- the tree ----------------------------------------------------------------------------------------


def _str(v: Any) -> str:
    return "" if v is None else str(v)


def replay(rows: Iterable[Mapping[str, Any]]) -> Conversation:
    """Rows of one session (any order; each with ``raw`` and, ideally, file_path/file_id, byte_offset and
    agent_id) → the conversation."""
    parsed: list[tuple[Mapping[str, Any], dict[str, Any], int]] = []
    file_first_ts: dict[str, str] = {}
    for index, row in enumerate(rows):
        obj = _parse(row.get("raw"))
        if obj is None or not obj.get("uuid"):
            continue
        fkey = _str(row.get("file_path") or row.get("file_id"))
        ts = _str(obj.get("timestamp"))
        if fkey not in file_first_ts or (ts and ts < file_first_ts[fkey]):
            file_first_ts[fkey] = ts
        parsed.append((row, obj, index))

    turns: dict[str, Turn] = {}
    for row, obj, index in parsed:
        fkey = _str(row.get("file_path") or row.get("file_id"))
        offset = row.get("byte_offset")
        position = (file_first_ts.get(fkey, ""), fkey, int(offset) if offset is not None else -1, index)
        blocks = blocks_of(obj)
        msg = obj.get("message") if isinstance(obj.get("message"), Mapping) else {}
        turn = Turn(
            uuid=str(obj["uuid"]),
            parent_uuid=obj.get("parentUuid") or obj.get("logicalParentUuid") or None,
            type=_str(obj.get("type")),
            subtype=_str(obj.get("subtype")),
            kind=classify(obj, blocks),
            timestamp=_str(obj.get("timestamp")),
            agent_id=_str(row.get("agent_id") or obj.get("agentId")),
            is_sidechain=bool(obj.get("isSidechain")),
            model=_str(msg.get("model") if isinstance(msg, Mapping) else ""),
            blocks=blocks,
            obj=obj,
            row=row,
            position=position,
        )
        # the same line replayed into a second file (1.0.x resume) is one turn: keep the earliest copy
        seen = turns.get(turn.uuid)
        if seen is None or position < seen.position:
            turns[turn.uuid] = turn

    by_agent: dict[str, list[Turn]] = {}
    for turn in turns.values():
        by_agent.setdefault(turn.agent_id, []).append(turn)
    threads = {agent: Thread(agent, _order(ts)) for agent, ts in by_agent.items()}

    # tool names on results, for display
    names = {b.tool_id: b.name for t in turns.values() for b in t.tool_uses}
    for t in turns.values():
        for b in t.tool_results:
            b.name = names.get(b.tool_id, "")

    _nest(threads, turns)
    main = threads.get("")
    top = [main] if main is not None else []
    top += sorted((t for a, t in threads.items() if a and t.link == "orphan"),
                  key=lambda t: t.turns[0].position if t.turns else ())
    return Conversation(top)


def _order(turns: list[Turn]) -> list[Turn]:
    """Parents before children, ties (siblings, roots) by file position."""
    present = {t.uuid for t in turns}
    children: dict[str, list[Turn]] = {}
    ready: list[tuple[tuple[Any, ...], str, Turn]] = []
    for t in turns:
        if t.parent_uuid and t.parent_uuid in present and t.parent_uuid != t.uuid:
            children.setdefault(t.parent_uuid, []).append(t)
        else:
            ready.append((t.position, t.uuid, t))
    heapq.heapify(ready)
    out: list[Turn] = []
    while ready:
        _, _, t = heapq.heappop(ready)
        out.append(t)
        for c in children.pop(t.uuid, ()):
            heapq.heappush(ready, (c.position, c.uuid, c))
    if len(out) < len(turns):  # a parent cycle (never seen): keep the rest in file order rather than lose it
        done = {t.uuid for t in out}
        out += sorted((t for t in turns if t.uuid not in done), key=lambda t: t.position)
    return out


def _nest(threads: dict[str, Thread], turns: dict[str, Turn]) -> None:
    # agent → the tool_use id of the Task that started it
    started_by: dict[str, str] = {}
    progress_link: dict[str, str] = {}
    for t in turns.values():
        tur = t.obj.get("toolUseResult")
        if isinstance(tur, Mapping) and tur.get("agentId"):
            results = t.tool_results
            if results:
                started_by.setdefault(str(tur["agentId"]), results[0].tool_id)
        data = t.obj.get("data")
        if (
            t.kind == "progress"
            and isinstance(data, Mapping)
            and data.get("type") == "agent_progress"
            and data.get("agentId")
            and t.obj.get("parentToolUseID")
        ):
            progress_link.setdefault(str(data["agentId"]), str(t.obj["parentToolUseID"]))
    uses: dict[str, tuple[Turn, Block]] = {}
    for t in turns.values():
        for b in t.tool_uses:
            uses.setdefault(b.tool_id, (t, b))
    boundaries = sorted(
        (t for t in threads[""].turns if t.subtype == "compact_boundary") if "" in threads else [],
        key=lambda t: t.timestamp,
    )

    for agent, thread in sorted(threads.items()):
        if not agent or not thread.turns:
            continue
        tool_use_id = started_by.get(agent) or progress_link.get(agent)
        if tool_use_id and tool_use_id in uses:
            turn, block = uses[tool_use_id]
            if turn.agent_id != agent:
                thread.link, thread.tool_use_id = "task", tool_use_id
                if isinstance(block.input, Mapping):
                    thread.subagent_type = _str(block.input.get("subagent_type"))
                    thread.description = _str(block.input.get("description"))
                turn.children.append(thread)
                continue
        if agent.startswith("acompact"):
            last = max(t.timestamp for t in thread.turns)
            boundary = next((b for b in boundaries if b.timestamp >= last), None)
            if boundary is not None:
                thread.link = "compaction"
                boundary.children.append(thread)
                continue
        anchor = turns.get(thread.turns[0].parent_uuid or "")
        if anchor is not None and anchor.agent_id != agent:
            thread.link = "parent_uuid"
            anchor.children.append(thread)
            continue
        thread.link = "orphan"


# ---- text for display ---------------------------------------------------------------------------------


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def tool_summary(block: Block, width: int = 100) -> str:
    """`Bash(ls -la)`-style one-liner for a tool_use."""
    arg = ""
    if isinstance(block.input, Mapping):
        for key in ("command", "file_path", "pattern", "path", "url", "query", "description", "prompt",
                    "subject", "skill"):
            if block.input.get(key):
                arg = str(block.input[key])
                break
        else:
            arg = json.dumps(block.input, ensure_ascii=False) if block.input else ""
    return f"{block.name}({_one_line(arg, width)})"


def hook_summary(obj: Mapping[str, Any]) -> str:
    """A ``stop_hook_summary`` system line as what it is: which Stop hooks ran and how they ended."""
    raw_infos = obj.get("hookInfos")
    infos: list[Any] = raw_infos if isinstance(raw_infos, list) else []
    commands = [str(i.get("command")) for i in infos if isinstance(i, Mapping) and i.get("command")]
    count = obj.get("hookCount") if isinstance(obj.get("hookCount"), int) else len(commands)
    errors = obj.get("hookErrors") if isinstance(obj.get("hookErrors"), list) else []
    text = f"stop hooks: {count} ran" + (f", {len(errors)} failed" if errors else "")
    if obj.get("preventedContinuation"):
        text += f", stopped the turn: {obj.get('stopReason') or 'no reason given'}"
    if commands:
        text += " (" + "; ".join(_one_line(c, 60) for c in commands) + ")"
    return text


def turn_lines(turn: Turn, full: bool = False, width: int = 160, fallback: bool = True) -> list[str]:
    """What `ccstream show` prints for a turn: collapsed tool calls unless ``full``. A turn with nothing to
    show (a whitespace-only text block) gives ``[turn.kind]`` for display, or ``[]`` when not ``fallback``
    (``--json`` invents no text)."""
    out: list[str] = []
    if turn.subtype == "stop_hook_summary":
        return [hook_summary(turn.obj)]
    if turn.kind == "compact_boundary":
        meta = turn.obj.get("compactMetadata") or turn.obj.get("microcompactMetadata") or {}
        pre = meta.get("preTokens") if isinstance(meta, Mapping) else None
        trig = meta.get("trigger") if isinstance(meta, Mapping) else None
        return [f"── {turn.subtype} ({trig or '?'}, {pre or '?'} tokens before) ──"]
    if turn.kind == "progress":
        data = turn.obj.get("data")
        if not isinstance(data, Mapping):
            data = {}
        return [f"{data.get('type', 'progress')} {data.get('hookName') or data.get('agentId') or ''}".strip()]
    for b in turn.blocks:
        if b.kind in ("text", "thinking"):
            if not b.text.strip():
                continue
            text = b.text if full else _one_line(b.text, width)
            out.append(f"[thinking] {text}" if b.kind == "thinking" else text)
        elif b.kind == "tool_use":
            if full:
                out.append(f"→ {b.name} {json.dumps(b.input, ensure_ascii=False, indent=2)}")
            else:
                out.append(f"→ {tool_summary(b, width)}")
        elif b.kind == "tool_result":
            mark = "✗" if b.is_error else "✓"
            if full:
                out.append(f"← {mark} {b.name}\n{b.text}")
            else:
                n = b.text.count("\n") + 1 if b.text else 0
                out.append(f"← {mark} {b.name} ({n} lines) {_one_line(b.text, width // 2)}")
        elif b.text.strip():
            out.append(b.text)
    return out or ([turn.kind] if fallback else [])

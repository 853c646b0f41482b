"""The sessions agent: hook events from ``ccstream.sessions`` → the ``sessions`` table → tail requests.

SessionStart (any source) makes the tailer follow the transcript and the session's subagent files at once;
SessionEnd asks for a final read (an unterminated last line is taken if it parses) after which the files
leave memory. Hooks are triggers only: scans of the roots find everything a hook never announced.
A payload whose transcript_path is outside the Claude roots is refused and recorded, never read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import faust
from faust.streams import current_event

from agents.runtime import Runtime
from agents.tailer import Tailer
from stream.contract.dead_letter import DeadLetter
from stream.contract.identity import file_id_for
from stream.contract.session_event import SessionEvent
from stream.contract.tail_request import RequestReason
from stream.tail.discovery import confine, subagent_files

log = logging.getLogger("ccstream.sessions")

# hook events that say "this session's files may have news"
FOLLOW_EVENTS = {"SessionStart", "SubagentStop", "Stop", "PreCompact", "PostCompact", "UserPromptSubmit"}
SWEEP_EVERY = 60.0  # seconds between sweeps of idle entries (done from agent context, on an event's arrival)


def idle_keys(entries: Iterable[tuple[Any, Any]], partition: int, now: float, idle_seconds: float) -> list[Any]:
    """Keys of entries of `partition` whose last hook event is older than `idle_seconds`: sessions that
    never sent SessionEnd (killed terminal, crash). Only the current event's partition is swept, so the
    delete's changelog tombstone lands in the partition that holds the entry."""
    out = []
    for key, state in entries:
        if not isinstance(state, dict) or state.get("partition") != partition:
            continue
        last = state.get("last_event_at")
        if isinstance(last, (int, float)) and now - last > idle_seconds:
            out.append(key)
    return out


def register(app: faust.App, rt: Runtime, tailer: Tailer) -> Any:
    """The sessions agent and its table (returned: the status page counts its entries); hook events become
    requests to `tailer`."""
    s = rt.settings
    topic = rt.topics.sessions
    table = app.Table("sessions", default=None, partitions=s.topic_partitions,
                      schema=faust.Schema(key_serializer="json", value_serializer="json"))
    last_sweep = [time.monotonic()]

    def sweep(partition: int) -> None:
        now_m = time.monotonic()
        if now_m - last_sweep[0] < SWEEP_EVERY:
            return
        last_sweep[0] = now_m
        for key in idle_keys(list(table.items()), partition, time.time(), s.idle_session_timeout):
            log.info("session %s idle for over %.0fs: its entry leaves the table", key, s.idle_session_timeout)
            del table[key]

    async def refuse(ev: SessionEvent, path: str) -> None:
        rt.stats.refused_paths += 1
        log.warning("session %s: refused transcript_path %r (not a regular file under %s)",
                    ev.session_id, path, [str(r) for r in s.claude_roots])
        fid = file_id_for(s.host, path)
        letter = DeadLetter(host=s.host, path=path, file_id=fid, incarnation=0, offset=0, line_no=0,
                            length=0, reason="refused_path", sample=ev.encode()[:4096],
                            detected_at=time.time())
        await tailer.dead_letters.send(key=fid.encode(), value=letter.encode())

    @app.agent(topic, name="ccstream.sessions")
    async def track(stream: Any) -> None:
        async for value in stream:
            try:
                ev = SessionEvent.decode(value)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("undecodable session event dropped from tracking (%s): %r", exc, value[:200])
                continue
            if ev.host and ev.host != s.host:
                continue  # another workstation's session: its own edge follows it
            event = current_event()
            partition = event.message.partition if event is not None else -1
            sweep(partition)
            key = ev.session_id
            state: dict[str, Any] = dict(table.get(key) or {})
            state["partition"] = partition
            name = ev.hook_event_name
            state.setdefault("session_id", ev.session_id)
            state.setdefault("started_at", ev.received_at)
            state.update(host=ev.host, user=ev.user, last_event=name, last_event_at=ev.received_at)
            if ev.cwd:
                state["cwd"] = ev.cwd
            if name == "SessionStart":
                state["source"] = ev.payload.get("source")
                state.pop("ended_at", None)
            if name == "SessionEnd":
                state["ended_at"] = ev.received_at
                state["reason"] = ev.payload.get("reason")
            path = ev.transcript_path
            final = name == "SessionEnd"
            if isinstance(path, str) and path and (name in FOLLOW_EVENTS or final):
                real = confine(path, tailer.roots)
                if real is None:
                    await refuse(ev, path)
                else:
                    state["transcript_path"] = str(real)
                    await tailer.request(str(real), session_id=ev.session_id, final=final,
                                         reason=RequestReason.HOOK, hook_event=name)
                    for sub in subagent_files(real):
                        await tailer.request(str(sub), session_id=ev.session_id, final=final,
                                             reason=RequestReason.HOOK, hook_event=name)
            agent_path = ev.payload.get("agent_transcript_path")
            if isinstance(agent_path, str) and agent_path:
                real_agent = confine(agent_path, tailer.roots)
                if real_agent is None:
                    await refuse(ev, agent_path)
                else:
                    await tailer.request(str(real_agent), session_id=ev.session_id, reason=RequestReason.HOOK,
                                         hook_event=name)
            if final:
                # ended sessions leave the table (bounded state); ClickHouse keeps their history
                if key in table:
                    del table[key]
            else:
                table[key] = state

    return table

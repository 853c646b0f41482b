"""Where transcripts are: scanning the Claude Code roots, naming a file's session and agent, finding a
session's subagent files in both layouts, and confining paths to the roots.

Layouts (docs/transcript-format.md §1, §6)::

    <root>/<encoded-cwd>/<sessionId>.jsonl                               main session
    <root>/<encoded-cwd>/agent-<agentId>.jsonl                           subagent, legacy flat layout (2.0.x)
    <root>/<encoded-cwd>/<sessionId>/subagents/agent-<agentId>.jsonl     subagent, 2.1.2+ (incl. acompact-*)

Subagent files may exist before the parent mentions them (the original monitor's race, issue 3) and may
have no parent at all (orphans): a scan finds every ``*.jsonl`` regardless, so none is missed.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

AGENT_PREFIX = "agent-"
FIRST_LINE_LIMIT = 1024 * 1024  # bytes read to find a flat agent file's sessionId
_SESSION_ID = re.compile(rb'"sessionId"\s*:\s*"([^"\\]+)"')


def _real_roots(roots: list[Path]) -> list[Path]:
    return [Path(os.path.realpath(r)) for r in roots]


def confine(path: str | Path, roots: list[Path]) -> Path | None:
    """The resolved real path of `path` if it is a regular file under one of `roots`, else None.

    Refuses ``..`` components outright (a hook payload has no reason to carry them) and any symlink that
    leads outside the roots; the roots themselves may be symlinks.
    """
    p = Path(path)
    if ".." in p.parts:
        return None
    real = Path(os.path.realpath(p))
    if not any(real.is_relative_to(r) for r in _real_roots(roots)):
        return None
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            return None
    except OSError:
        return None
    return real


def iter_transcripts(roots: list[Path]) -> Iterator[Path]:
    """Every ``*.jsonl`` regular file under the roots (all layouts, compaction agents, orphans), as real
    paths, each once, in sorted order per root. Symlinked directories are not entered; a symlinked file is
    yielded (as its target) only if it stays under a root."""
    seen: set[Path] = set()
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.endswith(".jsonl"):
                    continue
                real = confine(Path(dirpath) / name, roots)
                if real is not None and real not in seen:
                    seen.add(real)
                    yield real


def agent_id_of(path: Path) -> str | None:
    """`<id>` of ``agent-<id>.jsonl`` (including ``acompact-…``), else None."""
    if path.suffix == ".jsonl" and path.name.startswith(AGENT_PREFIX) and len(path.stem) > len(AGENT_PREFIX):
        return path.stem[len(AGENT_PREFIX):]
    return None


def session_and_agent(path: Path) -> tuple[str, str | None]:
    """(session id, agent id) from the file's place alone.

    Main file: its stem. ``<session>/subagents/agent-<id>.jsonl``: the folder name. Flat
    ``agent-<id>.jsonl``: ``""`` (only the lines' own ``sessionId`` tells).
    """
    agent = agent_id_of(path)
    if agent is None:
        return path.stem, None
    if path.parent.name == "subagents":
        return path.parent.parent.name, agent
    return "", agent


def first_line_session_id(path: Path) -> str | None:
    """The ``sessionId`` of a file's first line (None if unreadable or absent)."""
    try:
        with open(path, "rb") as f:
            head = f.read(FIRST_LINE_LIMIT)
    except OSError:
        return None
    line = head.split(b"\n", 1)[0]
    try:
        obj = json.loads(line)
    except ValueError:
        # a first line longer than the limit, or glued objects: the field is near the start anyway
        m = _SESSION_ID.search(line)
        return m.group(1).decode("utf-8", "replace") if m else None
    sid = obj.get("sessionId") if isinstance(obj, dict) else None
    return sid if isinstance(sid, str) else None


def subagent_files(transcript_path: Path) -> list[Path]:
    """The agent files of the session whose main file is `transcript_path`, in both layouts: everything in
    ``<session>/subagents/``, plus flat ``agent-*.jsonl`` siblings whose first line names this session."""
    session_id = transcript_path.stem
    folder = transcript_path.parent
    found: list[Path] = []
    sub = folder / session_id / "subagents"
    if sub.is_dir():
        found.extend(p for p in sorted(sub.glob("agent-*.jsonl")) if p.is_file())
    for p in sorted(folder.glob("agent-*.jsonl")):
        if p.is_file() and first_line_session_id(p) == session_id:
            found.append(p)
    return found

"""A heavy user's ~/.claude/projects, built deterministically from the fixture corpus (issue 13's shape).

Each copy of the corpus is a replay with fresh identities: every id Claude Code writes (session ids, uuids,
message ids, request ids, tool_use ids, agent ids) is rewritten by a keyed hash of (copy, original), in the
lines and in the file and folder names, and timestamps move by `copy` days, so no two copies share a row
identity, a `(message.id, requestId)` group or a day. Copies are spread over project folders named after the
originals (`<project>-c<k % folders>`). A few long sessions are made by concatenating main-session files of
one copy under one session id (the shape of one session that ran for weeks).

Pure apart from writing the files; the same arguments give the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Anthropic message / request / tool_use ids, and subagent ids in file names and "agentId" values
PREFIXED = re.compile(rb"\b(msg|req|toolu|srvtoolu)_([0-9A-Za-z]{8,40})\b")
AGENT = re.compile(rb'("agentId"\s*:\s*")([0-9A-Za-z_.-]{1,128})(")')
TIMESTAMP = re.compile(rb'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?)Z"')
ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Shape:
    copies: int = 24  # x 44 MB of fixtures ~ 1.07 GB
    folders: int = 7  # project folders per original project (6 originals -> 42, plus the long sessions' one)
    long_sessions: int = 3
    long_session_bytes: int = 300 * 1024 * 1024  # the largest one; the others a third of it


def _digest(key: bytes, value: bytes) -> bytes:
    return hashlib.blake2b(value, key=key, digest_size=16).digest()


def fresh_uuid(key: bytes, value: bytes) -> bytes:
    h = _digest(key, value).hex().encode()
    return b"-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:32]))


def fresh_token(key: bytes, value: bytes) -> bytes:
    """Same length and alphabet as `value` (so ids keep their look), different for every key."""
    d = _digest(key, value) * (len(value) // 16 + 1)
    return bytes(ALNUM[b % len(ALNUM)] for b in d[:len(value)])


def rewrite(data: bytes, key: bytes, shift: timedelta) -> bytes:
    """One copy's bytes: ids rewritten under `key`, timestamps moved by `shift`."""
    data = UUID.sub(lambda m: fresh_uuid(key, m.group(0)), data)
    data = PREFIXED.sub(lambda m: m.group(1) + b"_" + fresh_token(key, m.group(2)), data)
    data = AGENT.sub(lambda m: m.group(1) + fresh_token(key, m.group(2)) + m.group(3), data)

    def move(m: re.Match[bytes]) -> bytes:
        text = m.group(1).decode()
        base, _, frac = text.partition(".")
        t = datetime.fromisoformat(base) + shift
        return b'"' + t.strftime("%Y-%m-%dT%H:%M:%S").encode() + (b"." + frac.encode() if frac else b"") + b'Z"'

    return TIMESTAMP.sub(move, data)


def rewrite_name(name: str, key: bytes) -> str:
    raw = name.encode()
    raw = UUID.sub(lambda m: fresh_uuid(key, m.group(0)), raw)
    if raw.startswith(b"agent-"):
        stem, dot, ext = raw[6:].partition(b".")
        raw = b"agent-" + fresh_token(key, stem) + dot + ext
    return raw.decode()


def _files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*.jsonl") if p.is_file())


def copy_paths(corpus: Path, dest: Path, k: int, shape: Shape) -> Iterator[tuple[Path, Path]]:
    """(fixture file, where copy k of it goes)."""
    key = f"copy-{k}".encode()
    for src in _files(corpus):
        rel = src.relative_to(corpus)
        project = f"{rel.parts[0]}-c{k % shape.folders}"
        parts = [rewrite_name(p, key) for p in rel.parts[1:]]
        yield src, dest.joinpath(project, *parts)


def _main_files(corpus: Path) -> list[Path]:
    """Main-session files (not subagents), largest first."""
    mains = [p for p in _files(corpus) if not p.name.startswith("agent-") and "subagents" not in p.parts]
    return sorted(mains, key=lambda p: (-p.stat().st_size, str(p)))


def build(corpus: Path, dest: Path, shape: Shape = Shape()) -> dict[str, int]:
    """Write the corpus under `dest` (a projects/ folder); returns files, bytes and objects written."""
    files = written = 0
    for k in range(shape.copies):
        key = f"copy-{k}".encode()
        shift = timedelta(days=k)
        for src, out in copy_paths(corpus, dest, k, shape):
            out.parent.mkdir(parents=True, exist_ok=True)
            data = rewrite(src.read_bytes(), key, shift)
            out.write_bytes(data)
            files += 1
            written += len(data)
    mains = _main_files(corpus)
    for j in range(shape.long_sessions):
        target = shape.long_session_bytes if j == 0 else shape.long_session_bytes // 3
        session = fresh_uuid(f"long-{j}".encode(), b"session").decode()
        out = dest / "long-running" / f"{session}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        r = 0
        with out.open("wb") as fh:
            while size < target:
                src = mains[r % len(mains)]
                key = f"long-{j}-{r}".encode()
                data = rewrite(src.read_bytes(), key, timedelta(days=shape.copies + r % 30))
                # one session id across the whole file, as one long session has
                data = re.sub(rb'("sessionId"\s*:\s*")[0-9a-f-]{36}(")', rb"\g<1>" + session.encode() + rb"\g<2>",
                              data)
                if not data.endswith(b"\n"):
                    data += b"\n"  # a concatenated file never glues two files' lines together
                fh.write(data)
                size += len(data)
                r += 1
        files += 1
        written += size
    return {"files": files, "bytes": written}

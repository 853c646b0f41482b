"""A heavy user's ~/.claude/projects, built deterministically from the fixture corpus (issue 13's shape).

Each copy of the corpus is a replay with fresh identities: every id Claude Code writes (session ids, uuids,
message ids, request ids, tool_use ids, agent ids) is rewritten by a keyed hash of (copy, original), in the
lines and in the file and folder names, and timestamps move by `copy` days, so no two copies share a row
identity, a `(message.id, requestId)` group or a day. Copies are spread over project folders named after the
originals (`<project>-c<k % folders>`). A copy keeps a keyed prefix of each file (between `min_fraction` and
all of its lines, at most `file_cap_bytes`), so the copies differ in size the way a real history's sessions
do and the median file is near the issue's 110 KB. A few long sessions are made by concatenating
main-session files under one session id (the shape of one session that ran for weeks).

Issue 13's shape, the default: 51 copies, 3,216 files in 43 folders, ~1.07 GB, ~425k objects, the largest
file 300 MB and two of 50 MB.

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
    copies: int = 51  # of the 63 fixture files, each cut to a keyed prefix: ~670 MB
    folders: int = 7  # project folders per original project (6 originals -> 42, plus the long sessions' one)
    long_sessions: int = 3
    long_session_bytes: int = 300 * 1024 * 1024  # the largest one; the others a sixth of it
    min_fraction: float = 0.3  # a copy keeps at least this fraction of a file's lines (1.0: whole files)
    file_cap_bytes: int | None = 512 * 1024  # and at most this many bytes of it (None: no cap)

    @property
    def tag(self) -> str:
        """Names the shape (a benchmark's cache folder): different shapes never share one."""
        return "-".join(str(v) for v in (self.copies, self.folders, self.long_sessions, self.long_session_bytes,
                                         self.min_fraction, self.file_cap_bytes or 0))

    def other_long_session_bytes(self) -> int:
        return self.long_session_bytes // 6


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
    """The name under copy `key`: its ids rewritten; a name with no id (`short.jsonl`) gets a keyed suffix,
    since copies that share a project folder would otherwise overwrite each other's file."""
    raw = name.encode()
    if raw.startswith(b"agent-"):
        stem, dot, ext = raw[6:].partition(b".")
        return (b"agent-" + fresh_token(key, stem) + dot + ext).decode()
    if UUID.search(raw):
        return UUID.sub(lambda m: fresh_uuid(key, m.group(0)), raw).decode()
    stem, dot, ext = raw.rpartition(b".") if b"." in raw else (raw, b"", b"")
    return (stem + b"-" + fresh_token(key, b"name:" + stem)[:8] + dot + ext).decode()


def prefix(data: bytes, key: bytes, shape: Shape) -> bytes:
    """A keyed prefix of whole lines: a fraction in [min_fraction, 1] of them, at most file_cap_bytes (but
    never less than the first line)."""
    lines = data.splitlines(keepends=True)
    if not lines or shape.min_fraction >= 1.0 and shape.file_cap_bytes is None:
        return data
    u = int.from_bytes(_digest(b"fraction", key)[:8], "big") / 2**64
    fraction = shape.min_fraction + (1.0 - shape.min_fraction) * u
    keep = max(1, round(len(lines) * fraction))
    out = b"".join(lines[:keep])
    cap = shape.file_cap_bytes
    if cap is not None and len(out) > cap:
        size = n = 0
        for n, line in enumerate(lines[:keep], start=1):
            size += len(line)
            if size > cap:
                n = max(1, n - 1)
                break
        out = b"".join(lines[:n])
    return out


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
            data = rewrite(prefix(src.read_bytes(), key + src.relative_to(corpus).as_posix().encode(), shape), key, shift)
            out.write_bytes(data)
            files += 1
            written += len(data)
    mains = _main_files(corpus)
    for j in range(shape.long_sessions):
        target = shape.long_session_bytes if j == 0 else shape.other_long_session_bytes()
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

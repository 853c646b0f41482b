"""benchmarks.corpus_shape: copies of the corpus with fresh identities, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.corpus_shape import UUID, Shape, build, prefix, rewrite
from tests.conftest import CORPUS


def _objects(root: Path) -> list[dict[str, object]]:
    out = []
    for p in sorted(root.rglob("*.jsonl")):
        for line in p.read_bytes().splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
    return out


def test_copies_share_no_identity_and_keep_every_line(tmp_path: Path) -> None:
    shape = Shape(copies=2, folders=2, long_sessions=1, long_session_bytes=2 * 1024 * 1024, min_fraction=1.0,
                  file_cap_bytes=None)
    stats = build(CORPUS, tmp_path / "projects", shape)
    src_files = sorted(CORPUS.rglob("*.jsonl"))
    assert stats["files"] == 2 * len(src_files) + 1
    copy0 = [p for p in (tmp_path / "projects").rglob("*.jsonl") if "-c0" in p.parts[-2] or "-c0" in str(p)]
    assert copy0, "copy 0 is in folders named <project>-c0"
    lines_src = sum(len(p.read_bytes().splitlines()) for p in src_files)
    lines_out = sum(len(p.read_bytes().splitlines()) for p in (tmp_path / "projects").rglob("*.jsonl")
                    if "long-running" not in p.parts)
    assert lines_out == 2 * lines_src
    by_copy: dict[str, set[bytes]] = {"c0": set(), "c1": set()}
    for p in (tmp_path / "projects").rglob("*.jsonl"):
        tag = next((t for t in by_copy if f"-{t}" in str(p.relative_to(tmp_path))), None)
        if tag:
            by_copy[tag].update(UUID.findall(p.read_bytes()))
    assert by_copy["c0"] and not (by_copy["c0"] & by_copy["c1"]), "no uuid appears in two copies"
    long_file = next((tmp_path / "projects" / "long-running").glob("*.jsonl"))
    sessions = {o.get("sessionId") for o in _objects(long_file.parent) if o.get("sessionId")}
    assert sessions == {long_file.stem}, "a long session holds one session id"
    assert long_file.stat().st_size >= 2 * 1024 * 1024


def test_rewrite_is_deterministic_and_moves_timestamps() -> None:
    from datetime import timedelta

    line = (b'{"sessionId":"c45af7b1-cb7c-4e51-93db-8cbb250a877a","message":{"id":"msg_012yp674BDbdduJCYtTe3GMH"},'
            b'"requestId":"req_011CWZ","agentId":"af1ff21","timestamp":"2026-01-02T19:18:31.028Z"}')
    a = rewrite(line, b"k", timedelta(days=3))
    assert a == rewrite(line, b"k", timedelta(days=3))
    assert a != rewrite(line, b"other", timedelta(days=3))
    obj = json.loads(a)
    assert obj["timestamp"] == "2026-01-05T19:18:31.028Z"
    assert obj["sessionId"] != "c45af7b1-cb7c-4e51-93db-8cbb250a877a" and len(obj["sessionId"]) == 36
    assert obj["message"]["id"].startswith("msg_") and obj["message"]["id"] != "msg_012yp674BDbdduJCYtTe3GMH"
    assert obj["agentId"] != "af1ff21" and len(obj["agentId"]) == 7


def test_copies_sharing_a_folder_overwrite_nothing(tmp_path: Path) -> None:
    """Copies 0 and 2 share folders (k % folders): a name without an id (short.jsonl) still gets one file per
    copy."""
    shape = Shape(copies=3, folders=2, long_sessions=0, min_fraction=1.0, file_cap_bytes=None)
    stats = build(CORPUS, tmp_path / "projects", shape)
    written = list((tmp_path / "projects").rglob("*.jsonl"))
    assert stats["files"] == 3 * len(list(CORPUS.rglob("*.jsonl"))) == len(written)


def test_prefix_keeps_whole_lines_between_the_fraction_and_the_cap() -> None:
    data = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * 90) for i in range(1000))  # ~100 KB
    lines = data.splitlines(keepends=True)
    free = Shape(min_fraction=0.3, file_cap_bytes=None)
    cuts = [prefix(data, f"k{i}".encode(), free) for i in range(50)]
    assert all(data.startswith(c) and c.endswith(b"\n") for c in cuts)
    assert all(0.3 * len(lines) - 1 <= len(c.splitlines()) <= len(lines) for c in cuts)
    assert len({len(c) for c in cuts}) > 10, "the fraction varies with the key"
    assert prefix(data, b"k1", free) == cuts[1], "the same key gives the same cut"
    capped = prefix(data, b"k1", Shape(min_fraction=1.0, file_cap_bytes=10_000))
    assert len(capped) <= 10_000 and data.startswith(capped) and len(capped) > 9_000
    one_long = b"y" * 50_000 + b"\n" + b"z\n"
    assert prefix(one_long, b"k", Shape(min_fraction=1.0, file_cap_bytes=1_000)) == b"y" * 50_000 + b"\n"
    assert prefix(data, b"k", Shape(min_fraction=1.0, file_cap_bytes=None)) == data

"""stream.tail.discovery: scanning roots, session/agent names, subagent files in both layouts, confinement."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stream.tail.discovery import confine, iter_transcripts, session_and_agent, subagent_files

S1 = "11111111-aaaa-4bbb-8ccc-000000000001"
S2 = "22222222-aaaa-4bbb-8ccc-000000000002"
S3 = "33333333-aaaa-4bbb-8ccc-000000000003"


def line(**fields: object) -> bytes:
    return json.dumps(fields).encode() + b"\n"


def make_tree(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A root with both subagent layouts, a compaction agent, an orphan, a foreign flat agent, noise and
    symlinks; plus a folder outside the root."""
    root = tmp_path / "claude" / "projects"
    proj = root / "-home-u-proj"
    sub1 = proj / S1 / "subagents"
    sub1.mkdir(parents=True)
    (proj / f"{S1}.jsonl").write_bytes(line(type="user", sessionId=S1))
    (sub1 / "agent-a1.jsonl").write_bytes(line(type="user", sessionId=S1, agentId="a1", isSidechain=True))
    (sub1 / "agent-acompact-ff01.jsonl").write_bytes(line(type="user", sessionId=S1, agentId="acompact-ff01"))
    (sub1 / "agent-a1.meta.json").write_text('{"agentType":"Explore"}')
    (proj / f"{S2}.jsonl").write_bytes(line(type="user", sessionId=S2))
    (proj / "agent-b1.jsonl").write_bytes(line(parentUuid=None, isSidechain=True, sessionId=S2, agentId="b1"))
    (proj / "agent-b2.jsonl").write_bytes(line(isSidechain=True, sessionId=S3, agentId="b2"))
    orphan = proj / "99999999-0000-0000-0000-000000000009" / "subagents"
    orphan.mkdir(parents=True)
    (orphan / "agent-c9.jsonl").write_bytes(line(type="user", sessionId="9999", agentId="c9"))
    (proj / "notes.txt").write_text("not a transcript")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_bytes(line(type="user"))
    (proj / "escape.jsonl").symlink_to(outside / "secret.jsonl")
    (proj / "alias.jsonl").symlink_to(proj / f"{S2}.jsonl")
    (proj / "outdir").symlink_to(outside, target_is_directory=True)
    return root, proj, outside


def test_scan_finds_every_layout_once_and_nothing_outside(tmp_path: Path) -> None:
    root, proj, _ = make_tree(tmp_path)
    found = list(iter_transcripts([root]))
    real = Path(os.path.realpath(proj))
    assert sorted(found) == sorted([
        real / f"{S1}.jsonl",
        real / S1 / "subagents" / "agent-a1.jsonl",
        real / S1 / "subagents" / "agent-acompact-ff01.jsonl",
        real / f"{S2}.jsonl",  # once, though alias.jsonl also points at it
        real / "agent-b1.jsonl",
        real / "agent-b2.jsonl",
        real / "99999999-0000-0000-0000-000000000009" / "subagents" / "agent-c9.jsonl",  # orphan
    ])
    assert len(found) == len(set(found))


def test_scan_of_the_corpus_finds_all_63_files(corpus: Path) -> None:
    assert len(list(iter_transcripts([corpus]))) == 63


def test_session_and_agent_from_the_path() -> None:
    proj = Path("/r/-home-u-proj")
    assert session_and_agent(proj / f"{S1}.jsonl") == (S1, None)
    assert session_and_agent(proj / S1 / "subagents" / "agent-a1.jsonl") == (S1, "a1")
    assert session_and_agent(proj / S1 / "subagents" / "agent-acompact-ff01.jsonl") == (S1, "acompact-ff01")
    assert session_and_agent(proj / "agent-b1.jsonl") == ("", "b1")  # flat layout: the lines tell
    assert session_and_agent(proj / "example2.jsonl") == ("example2", None)
    assert session_and_agent(proj / "agent-.jsonl") == ("agent-", None)


def test_agent_files_that_exist_before_the_session_is_followed_are_found(tmp_path: Path) -> None:
    # issue 3 of the original plan: the agent file is there before the parent's toolUseResult names it
    root, proj, _ = make_tree(tmp_path)
    assert subagent_files(proj / f"{S1}.jsonl") == [
        proj / S1 / "subagents" / "agent-a1.jsonl",
        proj / S1 / "subagents" / "agent-acompact-ff01.jsonl",
    ]
    # legacy flat layout: only siblings whose first line names this session
    assert subagent_files(proj / f"{S2}.jsonl") == [proj / "agent-b1.jsonl"]
    assert subagent_files(proj / f"{S3}.jsonl") == [proj / "agent-b2.jsonl"]
    assert subagent_files(proj / "none.jsonl") == []


def test_flat_agent_with_huge_first_line_still_matches(tmp_path: Path) -> None:
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / f"{S1}.jsonl").write_bytes(line(sessionId=S1))
    big = b'{"parentUuid":null,"sessionId":"' + S1.encode() + b'","message":"' + b"x" * (2 << 20) + b'"}\n'
    (proj / "agent-big.jsonl").write_bytes(big)
    (proj / "agent-empty.jsonl").write_bytes(b"")
    (proj / "agent-junk.jsonl").write_bytes(b"\xff\xfe junk\n")
    assert subagent_files(proj / f"{S1}.jsonl") == [proj / "agent-big.jsonl"]


def test_subagent_files_of_the_corpus(corpus: Path) -> None:
    spotter = corpus / "marot__spotter"
    parent = spotter / "fa812bfe-b295-4cca-9c2f-fdf01028cb46.jsonl"
    assert [p.name for p in subagent_files(parent)] == [
        "agent-a93ccab.jsonl", "agent-aa84377.jsonl", "agent-acompact-70d8e7.jsonl"]
    # the legacy flat agent names its parent session in its lines
    flat = corpus / "oneryalcin__fasthooks" / "agent-af1ff21.jsonl"
    sid = json.loads(flat.read_bytes().split(b"\n", 1)[0])["sessionId"]
    assert flat in subagent_files(flat.parent / f"{sid}.jsonl")


def test_confine(tmp_path: Path) -> None:
    root, proj, outside = make_tree(tmp_path)
    real = Path(os.path.realpath(proj))
    main = proj / f"{S1}.jsonl"
    assert confine(main, [root]) == real / f"{S1}.jsonl"
    assert confine(str(main), [root]) == real / f"{S1}.jsonl"
    assert confine(proj / "alias.jsonl", [root]) == real / f"{S2}.jsonl"  # symlink staying inside
    assert confine(proj / "escape.jsonl", [root]) is None  # symlink leaving the root
    assert confine(proj / "outdir" / "secret.jsonl", [root]) is None
    assert confine(outside / "secret.jsonl", [root]) is None
    assert confine(f"{proj}/../-home-u-proj/{S1}.jsonl", [root]) is None  # no ..
    assert confine(proj / "missing.jsonl", [root]) is None
    assert confine(proj / S1, [root]) is None  # a directory
    assert confine("/etc/passwd", [root]) is None
    assert confine(outside / "secret.jsonl", [root, outside]) == Path(os.path.realpath(outside / "secret.jsonl"))
    # a root reached through a symlink (e.g. ~/.claude -> /data/claude)
    link_root = tmp_path / "linked-root"
    link_root.symlink_to(root, target_is_directory=True)
    assert confine(link_root / "-home-u-proj" / f"{S1}.jsonl", [link_root]) == real / f"{S1}.jsonl"
    # a sibling folder sharing the root's name as a prefix is not under it
    evil = tmp_path / "claude" / "projects-evil"
    evil.mkdir()
    (evil / "x.jsonl").write_bytes(b"{}\n")
    assert confine(evil / "x.jsonl", [root]) is None

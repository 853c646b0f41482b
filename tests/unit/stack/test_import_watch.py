"""stream/stack/import_watch.py: what `up` counts on disk for its progress."""

from __future__ import annotations

from pathlib import Path

from stream.stack.import_watch import sizes_on_disk


def test_sizes_on_disk_counts_every_transcript_once_and_enters_no_symlinked_folder(tmp_path: Path) -> None:
    """Fed: a root with a project folder (a main file, a subagent file, a note), a symlink to a folder
    outside, and a root that does not exist. Expected: the two transcripts with their sizes, nothing else."""
    root = tmp_path / "projects"
    sub = root / "-home-u-p" / "s1" / "subagents"
    sub.mkdir(parents=True)
    (root / "-home-u-p" / "s1.jsonl").write_bytes(b"x" * 10)
    (sub / "agent-a1.jsonl").write_bytes(b"y" * 7)
    (root / "-home-u-p" / "notes.txt").write_text("not a transcript")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "o.jsonl").write_bytes(b"z")
    (root / "linked").symlink_to(outside, target_is_directory=True)
    assert sizes_on_disk([root, tmp_path / "missing"]) == {
        str(root / "-home-u-p" / "s1.jsonl"): 10, str(sub / "agent-a1.jsonl"): 7}

"""Counts over transcripts computed independently of ccstream's framing, for tests to compare against."""

from __future__ import annotations

import json
from pathlib import Path


def count_objects(path: Path) -> int:
    """Objects in a transcript: every physical line (the unterminated last one too) decoded with a
    raw_decode loop, so two glued objects count as two."""
    dec = json.JSONDecoder()
    n = 0
    for line in path.read_bytes().split(b"\n"):
        text = line.decode().strip()
        pos = 0
        while pos < len(text):
            _, pos = dec.raw_decode(text, pos)
            n += 1
            while pos < len(text) and text[pos].isspace():
                pos += 1
    return n

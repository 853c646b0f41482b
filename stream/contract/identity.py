"""A transcript file's identity across the pipeline: the same on every restart, distinct across hosts."""

from __future__ import annotations

import hashlib


def file_id_for(host: str, path: str) -> str:
    """Stable id of a transcript path on a host: the same on every restart, distinct across hosts."""
    return hashlib.sha1(f"{host}\0{path}".encode()).hexdigest()[:16]

"""The embedded store's allocator (stream/store/client.py, CHDB_MALLOC_CONF): memory a query freed goes back
to the system within about a second, so a sink's RSS follows its current batch. Each case runs in a fresh
Python (jemalloc reads its configuration once, when chDB loads). Fed: a uniqExact over 10M strings (~300 MB
of hash table). Out: the process's RSS before, right after, and 3 s after."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, os, sys, time
from stream.store.client import connect
def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) // 1024
ch = connect('chdb://' + sys.argv[1])
before = rss()
ch.query_rows('SELECT uniqExact(toString(number)) FROM numbers(10000000)')
after = rss()
time.sleep(3)
print(json.dumps({'before': before, 'after': after, 'later': rss(), 'conf': os.environ.get('JE_MALLOC_CONF')}))
"""


def probe(tmp_path: Path, conf: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "JE_MALLOC_CONF"}
    if conf is not None:
        env["JE_MALLOC_CONF"] = conf
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "store")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_freed_memory_goes_back_to_the_system_within_seconds(tmp_path: Path) -> None:
    from stream.store.client import CHDB_MALLOC_CONF

    r = probe(tmp_path, None)
    assert r["conf"] == CHDB_MALLOC_CONF
    before, after, later = int(r["before"]), int(r["after"]), int(r["later"])  # type: ignore[call-overload]
    assert after - before > 150, f"the query should have grown the heap: {r}"
    assert later - before < (after - before) // 4, f"the freed memory was kept: {r}"


def test_the_users_own_allocator_settings_win(tmp_path: Path) -> None:
    """Their value is kept as it is: with a 10 s decay, most of the memory is still held 3 s later."""
    r = probe(tmp_path, "dirty_decay_ms:10000")
    assert r["conf"] == "dirty_decay_ms:10000"
    before, after, later = int(r["before"]), int(r["after"]), int(r["later"])  # type: ignore[call-overload]
    assert later - before > (after - before) // 2, f"a 10 s decay should still hold most of it: {r}"

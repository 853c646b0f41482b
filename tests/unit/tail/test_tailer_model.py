"""Model-based test of the tailer core (read_step over a real file) against a simple reference model.

Hypothesis draws random histories of file operations — append whole lines, partial lines, glued objects,
garbage (not JSON, not UTF-8, junk after an object), too-long lines, blank lines; truncate to an earlier
line boundary; delete (and later recreate by writing); delete + recreate; rename away + create — with
reads ("drains": read_step until it says no more) interleaved at random, sometimes final or quiet so that
unterminated tails are taken.

The model knows every byte it wrote and what it is, so after every drain it can say exactly which records
(offset, line number, bytes) and bad lines the current incarnation must have produced so far: all objects
of complete lines, plus the objects of the unterminated line that a final/quiet drain could take whole.
Checked after every drain:

* the records emitted under the cursor's incarnation are exactly the model's, in order (nothing lost,
  nothing repeated, identities right), and so are the bad lines (each garbage line reported once);
* the cursor's offset and line number are where the model says;
* the incarnation changes only after a destructive operation;
* over the whole history, no (incarnation, offset) identity is ever emitted twice;
* a drain always ends.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.tail.cursor import Cursor
from stream.tail.filereader import read_step

MAX_LINE = 300  # bytes: "long" lines exceed it, every other line stays well below it
QUIET = 500.0

KINDS = ["obj", "obj", "obj", "glued", "junk_after", "garbage", "nonutf8", "long", "blank"]


@dataclass
class Seg:
    start: int  # offset within the line
    data: bytes
    kind: str  # obj | junk | garbage | nonutf8 | long | blank


@dataclass
class Line:
    segs: list[Seg]
    data: bytes = b""  # the whole line, newline included
    written: int = 0  # bytes of it in the file
    taken: int = 0  # bytes of it the tailer has taken as an unterminated tail (object boundary)

    def __post_init__(self) -> None:
        self.data = b"".join(s.data for s in self.segs) + b"\n"

    def obj_ends(self) -> list[int]:
        return [s.start + len(s.data) for s in self.segs if s.kind == "obj"]


@dataclass
class Model:
    lines: list[Line] = field(default_factory=list)  # complete lines of the current file
    plan: Line | None = None  # the unterminated line being written
    exists: bool = True
    serial: int = 0

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def obj(self, pad: int) -> bytes:
        n = self.next_serial()
        text = ["é", "日本", "ascii", "\u00fc\u00df"][n % 4]
        return json.dumps({"n": n, "t": text, "pad": "x" * pad}, ensure_ascii=False,
                          separators=(",", ":")).encode()

    def new_plan(self, kind: str, pad: int) -> Line:
        segs: list[Seg] = []

        def add(data: bytes, k: str) -> None:
            segs.append(Seg(sum(len(s.data) for s in segs), data, k))

        if kind == "obj":
            add(self.obj(pad), "obj")
        elif kind == "glued":
            for _ in range(2 + pad % 2):
                add(self.obj(pad % 20), "obj")
        elif kind == "junk_after":
            add(self.obj(pad % 30), "obj")
            add(b"@junk-%d" % self.next_serial(), "junk")
        elif kind == "garbage":
            add(b"#garbage %d {" % self.next_serial(), "garbage")
        elif kind == "nonutf8":
            add(b"\xff\xfe bytes %d" % self.next_serial(), "nonutf8")
        elif kind == "long":
            add(json.dumps({"n": self.next_serial(), "pad": "L" * (MAX_LINE + pad * 3)}).encode(), "long")
        else:
            add(b" " * (1 + pad % 3), "blank")
        return Line(segs)

    def line_start(self, index: int) -> int:
        return sum(len(ln.data) for ln in self.lines[:index])

    def expected(self) -> tuple[list[tuple[int, int, bytes]], list[tuple[int, int, int, str]], int, int]:
        """Records (offset, line_no, raw), bad lines (offset, line_no, length, reason), cursor offset and
        line number that the current incarnation must show after a drain."""
        recs: list[tuple[int, int, bytes]] = []
        bad: list[tuple[int, int, int, str]] = []
        base = 0
        for i, ln in enumerate(self.lines, 1):
            for s in ln.segs:
                if s.kind == "obj":
                    recs.append((base + s.start, i, s.data))
                elif s.kind == "junk":
                    bad.append((base + s.start, i, len(s.data), "not_json"))
                elif s.kind in ("garbage", "nonutf8", "long"):
                    reason = {"garbage": "not_json", "nonutf8": "not_utf8", "long": "too_long"}[s.kind]
                    bad.append((base + s.start, i, len(s.data), reason))
            base += len(ln.data)
        offset, line_no = base, len(self.lines)
        if self.plan is not None and self.plan.taken:
            line_no += 1
            offset += self.plan.taken
            for s in self.plan.segs:
                if s.kind == "obj" and s.start + len(s.data) <= self.plan.taken:
                    recs.append((base + s.start, line_no, s.data))
        return recs, bad, offset, line_no

    def tail_taken_by_drain(self) -> None:
        """A final/quiet drain takes the unterminated tail iff everything written beyond what was taken
        ends exactly at an object's end (no partial object, no junk)."""
        p = self.plan
        if p is not None and p.written > p.taken and p.written in p.obj_ends():
            p.taken = p.written


write_op = st.tuples(st.just("write"), st.sampled_from(KINDS), st.integers(0, 200),
                     st.sampled_from(["all", "all", "boundary", "cut"]), st.floats(0.05, 0.95))
ops = st.one_of(
    *[write_op] * 8,
    *[st.tuples(st.just("drain"), st.sampled_from(["plain", "plain", "final", "quiet"]))] * 3,
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.sampled_from(["delete", "recreate", "rename"])),
)

def run_history(folder: Path, history: list[tuple], read_bytes: int) -> dict[str, int]:
    """Play `history` on a file in `folder`, draining at each "drain" and checking against the model.
    Returns counts of what was exercised."""
    stats = dict.fromkeys(["ops", "drains", "steps", "records", "bad", "new_incarnations", "tails"], 0)
    path = folder / "session.jsonl"
    path.write_bytes(b"")
    m = Model()
    cursor: Cursor | None = None
    emitted: dict[int, list[tuple[int, int, bytes]]] = {}
    emitted_bad: dict[int, list[tuple[int, int, int, str]]] = {}
    identities: set[tuple[int, int]] = set()
    destructive = False
    last_inc: int | None = None
    history = [*history, ("drain", "final")]  # always end with a check

    for op in history:
        stats["ops"] += 1
        kind = op[0]
        if kind == "write":
            _, line_kind, pad, how, frac = op
            if m.plan is None:
                m.plan = m.new_plan(line_kind, pad)
            p = m.plan
            if how == "all":
                upto = len(p.data)
            elif how == "boundary":
                upto = next((e for e in p.obj_ends() if e > p.written), len(p.data))
            else:
                upto = p.written + max(1, int((len(p.data) - p.written) * frac))
            with open(path, "ab") as f:
                f.write(p.data[p.written:upto])
            p.written = upto
            m.exists = True
            if p.written == len(p.data):
                m.lines.append(p)
                m.plan = None
        elif kind == "truncate":
            keep = int(op[1] * len(m.lines))
            if m.exists:
                os.truncate(path, m.line_start(keep))
                m.lines, m.plan = m.lines[:keep], None
                destructive = True
        elif kind in ("delete", "recreate", "rename"):
            if m.exists:
                if kind == "rename":
                    path.rename(folder / f"away-{m.next_serial()}.jsonl")
                else:
                    path.unlink()
            if kind != "delete":
                path.write_bytes(b"")
            m.lines, m.plan, m.exists = [], None, kind != "delete"
            destructive = True
        else:  # drain
            mode = op[1]
            stats["drains"] += 1
            for _ in range(100_000):
                now = time.time() + (2 * QUIET if mode == "quiet" else 0.0)
                res = read_step(str(path), cursor, final=mode == "final", now=now, quiet_seconds=QUIET,
                                max_line_bytes=MAX_LINE, read_bytes=read_bytes)
                stats["steps"] += 1
                if res.cursor is None:
                    assert res.missing and not m.exists, res
                    break
                assert res.error is None
                cursor = res.cursor
                inc = cursor.incarnation
                for r in res.records:
                    ident = (inc, r.offset)
                    assert ident not in identities, f"identity {ident} emitted twice"
                    identities.add(ident)
                emitted.setdefault(inc, []).extend((r.offset, r.line_no, r.raw) for r in res.records)
                emitted_bad.setdefault(inc, []).extend((b.offset, b.line_no, b.length, b.reason) for b in res.bad)
                stats["records"] += len(res.records)
                stats["bad"] += len(res.bad)
                if not res.more:
                    break
            else:
                raise AssertionError("a drain never ended")
            if not m.exists:
                continue
            assert cursor is not None
            if mode != "plain":
                before = m.plan.taken if m.plan else 0
                m.tail_taken_by_drain()
                stats["tails"] += bool(m.plan and m.plan.taken > before)
            exp_recs, exp_bad, exp_offset, exp_line = m.expected()
            inc = cursor.incarnation
            if last_inc is not None and inc != last_inc:
                assert destructive, f"incarnation {last_inc} -> {inc} without a truncation or recreation"
                stats["new_incarnations"] += 1
            assert emitted.get(inc, []) == exp_recs
            assert emitted_bad.get(inc, []) == exp_bad
            assert (cursor.offset, cursor.line_no) == (exp_offset, exp_line)
            last_inc, destructive = inc, False
    return stats


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(history=st.lists(ops, min_size=5, max_size=80), read_bytes=st.sampled_from([16, 64, 1000, 1 << 16]))
def test_read_step_matches_the_reference_model(tmp_path: Path, history: list[tuple], read_bytes: int) -> None:
    run_history(Path(tempfile.mkdtemp(dir=tmp_path)), history, read_bytes)


def random_history(rng: random.Random, n: int) -> list[tuple]:
    """The same operation mix as the hypothesis strategy, drawn from a seeded generator."""
    out: list[tuple] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.68:
            out.append(("write", rng.choice(KINDS), rng.randint(0, 200),
                        rng.choice(["all", "all", "boundary", "cut"]), rng.uniform(0.05, 0.95)))
        elif r < 0.92:
            out.append(("drain", rng.choice(["plain", "plain", "final", "quiet"])))
        elif r < 0.96:
            out.append(("truncate", rng.random()))
        else:
            out.append((rng.choice(["delete", "recreate", "rename"]),))
    return out


def test_long_seeded_histories_cover_every_case(tmp_path: Path) -> None:
    # one long history per read size, so the counts below are known to be reached (not left to chance)
    totals: dict[str, int] = {}
    for i, read_bytes in enumerate([16, 64, 1000, 1 << 16]):
        folder = tmp_path / f"h{i}"
        folder.mkdir()
        stats = run_history(folder, random_history(random.Random(i), 1500), read_bytes)
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + v
    # measured with these seeds: 1,465 drains, 1,794 records, 1,082 bad lines, 303 new incarnations, 80 tails
    assert totals["ops"] >= 6_000 and totals["drains"] >= 1_400, totals
    assert totals["records"] >= 1_500 and totals["bad"] >= 800, totals
    assert totals["new_incarnations"] >= 250 and totals["tails"] >= 60, totals

"""stream/cli/table.py: which columns fit, and rich never splitting a number at the widths chosen."""

from __future__ import annotations

import io
import re

from rich.console import Console

from stream.cli.table import EDGE, PER_COLUMN, Column, fit, needed_width, render, total_width


def _int(v: object) -> str:
    return f"{int(str(v)):,}"


def _money(v: object) -> str:
    return f"${float(str(v)):,.2f}"


COLUMNS = [
    Column("session", "session", str, priority=0),
    Column("project", "project", str, priority=4, wrap=True, min_width=10),
    Column("turns", "turns", _int, numeric=True, priority=2),
    Column("tool_errors", "tool errors", _int, numeric=True, priority=8),
    Column("tokens", "tokens", _int, numeric=True, priority=1),
    Column("cost", "cost", _money, numeric=True, priority=0),
]
ROWS = [
    {"session": "c010174c", "project": "projects/spotter-worktrees/spotter-dov", "turns": 7, "tool_errors": 7,
     "tokens": 10_146_389, "cost": 10.42},
    {"session": "acdd84ab", "project": "Repositories/cli", "turns": 3, "tool_errors": 0, "tokens": 464_031,
     "cost": 0.61},
]


def _cells() -> dict[str, list[str]]:
    return {c.key: [c.fmt(r[c.key]) for r in ROWS] for c in COLUMNS}


def test_widths_follow_rich_default_box() -> None:
    assert total_width([3, 5]) == EDGE + 3 + PER_COLUMN + 5 + PER_COLUMN == 15
    assert total_width([]) == 0
    # a no-wrap column is as wide as its widest cell or its whole header
    assert needed_width(COLUMNS[3], ["7", "0"]) == len("tool errors")
    assert needed_width(COLUMNS[4], ["10,146,389"], footer="12,000,000,000") == len("12,000,000,000")
    # a wrapping column may shrink to its min_width, never below its text when that is shorter
    assert needed_width(COLUMNS[1], ["projects/spotter-worktrees/spotter-dov"]) == 10
    assert needed_width(COLUMNS[1], ["cli"]) == len("project")


def test_everything_fits_when_wide_enough_or_unlimited() -> None:
    for width in (None, 200):
        f = fit(COLUMNS, _cells(), width)
        assert [c.key for c in f.columns] == [c.key for c in COLUMNS] and f.dropped == [] and f.note() == ""


def test_lowest_priority_dropped_first_until_it_fits() -> None:
    cells = _cells()
    full = fit(COLUMNS, cells, None).width
    f = fit(COLUMNS, cells, full - 1)
    assert [c.key for c in f.dropped] == ["tool_errors"]
    assert f.width <= full - 1
    assert f.note() == "hidden to fit: tool errors (--wide shows all)"
    tiny = fit(COLUMNS, cells, 20)
    # priority 0 is never dropped, even when the rest still does not fit
    assert [c.key for c in tiny.columns] == ["session", "cost"]
    assert [c.key for c in tiny.dropped] == ["project", "turns", "tool_errors", "tokens"]


def test_wide_keeps_every_column() -> None:
    f = fit(COLUMNS, _cells(), 30, wide=True)
    assert f.dropped == [] and f.width > 30


def test_rendered_table_never_splits_a_number() -> None:
    for width in (40, 60, 80, 120):
        table, f = render("Sessions", COLUMNS, ROWS, width, footer={"session": "2 sessions", "tokens": 10_610_420})
        out = io.StringIO()
        Console(file=out, width=width, color_system=None).print(table)
        text = out.getvalue()
        assert max(len(line) for line in text.splitlines()) <= width
        for c in f.columns:
            if c.numeric:
                for r in ROWS:
                    assert c.fmt(r[c.key]) in text, (width, c.key)
        if any(c.key == "tokens" for c in f.columns):
            assert "10,610,420" in text
        # no cell of a numeric column is cut: every digit group in the text belongs to a whole number
        for frag in re.findall(r"[\d,.$]+", text):
            assert not frag.endswith(","), (width, frag)

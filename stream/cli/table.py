"""Pure: which columns of a table fit a terminal, and the table itself as a rich renderable.

Numbers, money, times and ids are never wrapped: a cell split mid-number (`10,146,` / `389`) is worse than
a missing column. When the columns do not fit, the lowest-priority ones are dropped, as ccusage's compact
mode does, and the caller says which; ``wide`` keeps them all (the terminal then wraps whole lines, rich
never splits a cell). Only free-text columns (``wrap=True``: a project path, a list of models) may fold,
down to ``min_width``.

Width arithmetic follows rich's default table: every column takes its content plus 2 of padding and 1 of
border, plus 1 for the table's left edge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# rich's default box: "│ a │ b │" → 1 + Σ(width + 3)
EDGE = 1
PER_COLUMN = 3


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    header: str
    fmt: Callable[[Any], str] = str
    numeric: bool = False  # right-aligned
    priority: int = 0  # 0: always shown; higher numbers are dropped first
    wrap: bool = False  # free text that may fold onto several lines
    min_width: int = 10  # narrowest a wrapping column is allowed to get


@dataclass(frozen=True, slots=True)
class Fit:
    columns: list[Column]  # kept, in their original order
    dropped: list[Column]  # dropped, in their original order
    widths: dict[str, int]  # column key -> width it needs (its narrowest for wrapping columns)
    width: int  # the table's narrowest total width with the kept columns
    natural_width: int = 0  # its total width with no cell wrapped at all

    def note(self) -> str:
        """One line for below the table, or '' when nothing was dropped."""
        if not self.dropped:
            return ""
        names = ", ".join(c.header for c in self.dropped)
        return f"hidden to fit: {names} (--wide shows all)"


def _display_len(text: str) -> int:
    from rich.cells import cell_len

    return max((cell_len(line) for line in text.split("\n")), default=0)


def needed_width(column: Column, cells: Sequence[str], footer: str = "") -> int:
    """The narrowest a column can be without splitting a cell or its header (a wrapping column: its
    ``min_width``, or less when all its text is shorter)."""
    natural = natural_width(column, cells, footer)
    if not column.wrap:
        return natural  # rich does not wrap the header of a no_wrap column either
    return max(min(natural, column.min_width), 1)


def natural_width(column: Column, cells: Sequence[str], footer: str = "") -> int:
    """The width of the column's longest cell, footer or header, unwrapped."""
    return max([_display_len(c) for c in cells] + [_display_len(footer), _display_len(column.header)])


def total_width(widths: Sequence[int]) -> int:
    return EDGE + sum(w + PER_COLUMN for w in widths) if widths else 0


def fit(columns: Sequence[Column], cells: Mapping[str, Sequence[str]], width: int | None,
        footer: Mapping[str, str] | None = None, wide: bool = False) -> Fit:
    """Keep as many columns as fit ``width`` (None: no limit), dropping the highest ``priority`` first
    (the rightmost among equals); priority 0 is never dropped."""
    footer = footer or {}
    widths = {c.key: needed_width(c, cells.get(c.key, ()), footer.get(c.key, "")) for c in columns}
    kept = list(columns)
    if width is not None and not wide:
        candidates = sorted((c for c in columns if c.priority > 0),
                            key=lambda c: (-c.priority, -columns.index(c)))
        for victim in candidates:
            if total_width([widths[c.key] for c in kept]) <= width:
                break
            kept.remove(victim)
    dropped = [c for c in columns if c not in kept]
    natural = [natural_width(c, cells.get(c.key, ()), footer.get(c.key, "")) for c in kept]
    return Fit(kept, dropped, widths, total_width([widths[c.key] for c in kept]), total_width(natural))


def render(title: str | None, columns: Sequence[Column], rows: Sequence[Mapping[str, Any]], width: int | None,
           footer: Mapping[str, Any] | None = None, wide: bool = False) -> tuple[Any, Fit]:
    """A rich Table of the columns that fit, and the fit (for the note). Footer values are formatted with
    their column's ``fmt`` unless they are already text."""
    from rich.table import Table

    cells = {c.key: [c.fmt(r.get(c.key)) for r in rows] for c in columns}
    foot: dict[str, str] = {}
    if footer is not None:
        for c in columns:
            if c.key in footer:
                v = footer[c.key]
                foot[c.key] = v if isinstance(v, str) else c.fmt(v)
    result = fit(columns, cells, width, foot, wide)
    t = Table(title=title, show_footer=footer is not None)
    for c in result.columns:
        need = result.widths[c.key]
        t.add_column(c.header, justify="right" if c.numeric else "left", footer=foot.get(c.key, ""),
                     no_wrap=not c.wrap, overflow="fold" if c.wrap else "ellipsis",
                     min_width=need)
    for i in range(len(rows)):
        t.add_row(*(cells[c.key][i] for c in result.columns))
    return t, result

"""Tables that fit the terminal: every `list` / `show` table of the CLI is built here.

Rich alone squeezes an over-wide table by wrapping every column, dates and headers
included (`runs list` in 80 columns put each date on two lines and cut the column names).
Here the columns say how they may give way instead: an id is cut in the middle (its
random tail is what tells runs apart), a name at the end, free text wraps; headers,
statuses, numbers and dates never change. ``width=None`` (``--wide``) keeps every column
whole, however wide that makes the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

__all__ = ["Cell", "Column", "fitted", "middle"]

Cell = str | Text
Give = Literal["middle", "end", "wrap"]

#: A column cut to fit keeps at least this many cells (or its header's width, if wider).
MIN_CUT = 8
_GAP = 3  # between columns: padding (0, 1) on each side of a blank rule


@dataclass(frozen=True)
class Column:
    """One column: `give` says how its values shrink when the table is too wide (None:
    never), `wide`: shown only with ``--wide``."""

    header: str
    give: Give | None = None
    wide: bool = False
    justify: Literal["left", "right"] = "left"


def middle(text: str, width: int) -> str:
    """`text` in `width` cells, cut in the middle: ``cli-sum-4f…a9c1e2``."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def _width(cell: Cell) -> int:
    plain = cell.plain if isinstance(cell, Text) else cell
    return max((cell_len(line) for line in plain.splitlines()), default=0)


def _cut(cell: Cell, width: int, give: Give) -> Cell:
    if _width(cell) <= width or give == "wrap":
        return cell
    if give == "middle":
        plain = cell.plain if isinstance(cell, Text) else cell
        cut = middle(plain, width)
        return Text(cut, style=cell.style) if isinstance(cell, Text) else cut
    text = cell.copy() if isinstance(cell, Text) else Text(cell)
    text.truncate(width, overflow="ellipsis")
    return text


def _budget(columns: Sequence[Column], natural: list[int], width: int) -> list[int]:
    """Each column's width: natural, then the ones that may give way cut, widest first,
    until the table fits (or none can give more)."""
    widths = list(natural)
    excess = sum(widths) + _GAP * (len(widths) - 1) - width
    while excess > 0:
        candidates = [
            i
            for i, c in enumerate(columns)
            if c.give and widths[i] > max(MIN_CUT, cell_len(c.header))
        ]
        if not candidates:
            break
        i = max(candidates, key=lambda i: widths[i])
        floor = max(MIN_CUT, cell_len(columns[i].header))
        others = sorted((widths[j] for j in candidates if j != i), reverse=True)
        # Cut to the next widest candidate first, so the cuts are shared.
        target = max(floor, widths[i] - excess, others[0] if others else floor)
        if target >= widths[i]:
            target = widths[i] - 1
        excess -= widths[i] - target
        widths[i] = target
    return widths


def fitted(
    columns: Sequence[Column],
    rows: Iterable[Sequence[Cell]],
    *,
    width: int | None,
    title: str | None = None,
) -> Table:
    """A table of `rows` (one cell per column, ``wide`` ones included) that fits in
    `width` cells — or, with ``width=None``, shows every column and every value whole."""
    rows = [list(r) for r in rows]
    keep = [i for i, c in enumerate(columns) if width is None or not c.wide]
    shown = [columns[i] for i in keep]
    cells = [[r[i] for i in keep] for r in rows]
    natural = [
        max([cell_len(c.header), *(_width(row[n]) for row in cells)]) for n, c in enumerate(shown)
    ]
    widths = natural if width is None else _budget(shown, natural, width)
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        title=title,
        title_justify="left",
        collapse_padding=False,
    )
    for n, c in enumerate(shown):
        cut = widths[n] < natural[n]
        table.add_column(
            c.header,
            justify=c.justify,
            no_wrap=c.give != "wrap",
            width=widths[n] if cut else None,
            min_width=cell_len(c.header),
            overflow="fold",
        )
    for row in cells:
        table.add_row(
            *(
                _cut(cell, widths[n], shown[n].give or "end") if widths[n] < natural[n] else cell
                for n, cell in enumerate(row)
            )
        )
    return table

"""Fitting a dialog's table to its width: the journal (J) and the namespaces (N) list namespace names, whose
lab and container forms are longer than the room a narrow terminal leaves, and a DataTable's auto-sized column
pushes the columns after it off the right edge (to scroll to, unseen) rather than cut its own cells."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from rich.text import Text
from textual.widgets import DataTable

NETNS_MIN: Final = 12  # cttop-…router: both ends of a lab's namespace name
# A name's shortest cut ('c…'), where the columns it shares the width with need more than NETNS_MIN leaves.
NETNS_LEAST: Final = 2


def table_width(table: DataTable[Any], rows: int) -> int:
    """What the columns of ``table`` share, holding ``rows`` rows: its width, less the vertical scrollbar where
    the rows and the header overflow its height."""
    scrolls = rows + 1 > table.size.height
    return table.size.width - (table.styles.scrollbar_size_vertical if scrolls else 0)


def columns_width(table: DataTable[Any], titles: Sequence[str], rows: Sequence[Sequence[Text]]) -> int:
    """How wide the columns ``titles`` (the first of each row's cells) are drawn, each as wide as its widest cell,
    with its padding."""
    return sum(max([len(title), *(row[i].cell_len for row in rows)]) + 2 * table.cell_padding
               for i, title in enumerate(titles))


def fix_width(table: DataTable[Any], index: int, rows: Sequence[Sequence[Text]]) -> None:
    """Size column ``index`` to its widest cell in ``rows`` (or its title) now, to be drawn so at once. A column
    sized by the DataTable itself narrows never, and widens to its new cells only when idle, after a resize may
    have drawn (and cached) their lines cut to the old width: names cut to their title's width at 120 columns."""
    column = table.ordered_columns[index]
    column.auto_width = False
    column.width = max([column.label.cell_len, *(row[index].cell_len for row in rows)])


def shrink(natural: dict[str, int], least: dict[str, int], total: int) -> dict[str, int]:
    """The columns' widths (``natural``: each its widest cell) cut to sum to ``total`` where each column's
    ``least`` allows: the widest gives up a cell first, so each keeps as much of its text as the others."""
    widths = dict(natural)
    while sum(widths.values()) > total:
        widest = max((c for c in widths if widths[c] > least[c]), key=widths.__getitem__, default=None)
        if widest is None:
            break
        widths[widest] -= 1
    return widths

"""Ranking rows by owner the way the package does it a chunk at a time (cttop.owners.owners.Tally), in one call."""

from __future__ import annotations

from collections.abc import Iterable

from cttop.model import Row
from cttop.owners.owners import Owners, Tally
from cttop.table.aggregates import GroupRow


def owners_top(owners: Owners, rows: Iterable[Row], key: str = "process", n: int = 10,
               by: str = "entries") -> list[GroupRow]:
    """The ``n`` heaviest processes or containers over ``rows``, as FlowTable.top reports groups."""
    t = Tally(owners, key)
    t.add(rows)
    return t.top(n, by)

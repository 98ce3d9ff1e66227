"""The heaviest panel's ranking: which groups hold the most entries, bytes or packets, or create the most flows now.

Why a module of its own: what is ranked depends on more than the table. Owner groups
(process, container) are ranked from the owners' index, no more often than affordable
(owner_rank); new flows a second come from the rate keeper; bytes and packets need
accounting. When what was asked for cannot be ranked, the ranking says what it fell
back to, so the panel's title never claims an order it does not show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cttop.owners.groups import OWNER_GROUPS
from cttop.table.aggregates import GroupRow
from cttop.table.groups import GROUPS
from cttop.table.rates import top_new, with_rates

if TYPE_CHECKING:  # `cttop snapshot` reads RANK_BY and group_title here: not the owners' host map with them
    from cttop.live.owner_rank import OwnerRanking
    from cttop.live.rate_keeper import RateKeeper
    from cttop.table.store import FlowTable

TOP_N: Final = 10
GROUP_ORDER: Final = ("src", "dst", "dport", "src-dport", "pair", "mark", "zone")
TOP_BY: Final = ("entries", "bytes", "packets")
RANK_BY: Final = TOP_BY + ("new-rate",)  # new flows a second: not for the owner groups (no key per event)


@dataclass(frozen=True)
class Ranked:
    top: tuple[GroupRow, ...]
    by: str  # what it is ranked by: what was asked for, or entries where that has nothing to rank
    total: float  # of everything ranked, for the shares


def rank(table: FlowTable, group: str, by: str, rates: RateKeeper, owners: OwnerRanking | None, now: float,
         *, live: bool) -> Ranked:
    """The heaviest TOP_N groups of ``table``; before the table is live, nothing, but new flows are counted
    by the group from now on (the rate keeper needs to know what to count before it has a rate)."""
    owned = group in OWNER_GROUPS
    if by == "new-rate" and owned:
        by = "entries"  # owners are looked up per dump, not per event
    rates.count_new_by(group if by == "new-rate" else None, now)
    if not live:
        return Ranked((), by, 0)
    _track_only(table, group)
    if by in ("bytes", "packets") and not table.counted:
        by = "entries"  # no counters to rank by
    if owners is not None:
        owners.owners.refresh_if_due()
    if by == "new-rate":
        assert rates.new_flows is not None
        new = rates.new_flows[1].rates()
        table.track(group)
        top = tuple(top_new(new, table.agg, group, TOP_N))
        total: float = sum(new.values())
    else:
        if owned:
            assert owners is not None
            top = owners.top(table, group, by, TOP_N)
        else:
            top = tuple(table.top(group, TOP_N, by))
        total = {"entries": len(table), "bytes": table.agg.bytes, "packets": table.agg.packets}[by]
    if rates.flow_rates and not owned:
        top = tuple(with_rates(top, rates.by_group(group, table)))
    return Ranked(top, by, total)


def _track_only(table: FlowTable, group: str) -> None:
    """Keep totals for the shown group only: each tracked key costs time on every event."""
    groups = table.agg.groups
    for name in [n for n in groups if n != group]:
        del groups[name]


def group_title(name: str) -> str:
    """What the heaviest panel calls a group key."""
    return name if name in OWNER_GROUPS else GROUPS[name].title

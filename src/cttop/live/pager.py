"""A bounded view's flow list: the first flows in the list's order, read from the kernel, not from a table.

A bounded view (--max-flows, table.tally) holds no flow records, so its list comes from a
dump of its own: narrowed by the kernel where the filter allows (CTA_FILTER), matched here
where it does not, and cut to the first ``limit`` in the sort order as it streams in, so no
more than about twice that many records are ever held. It runs on the indexer's thread, with
a socket of its own, and is read again as often as the list would be re-indexed.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from typing import Final

from cttop.errors import CttopError
from cttop.filter import OwnerSource, compile_filter
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.live.index import SORTS, ViewSpec
from cttop.live.snapshot import filtered_dump
from cttop.table.packing import pack

PAGE_MAX: Final = 50_000  # the most flows a bounded list holds, whatever --max-flows is: a page is for reading


@dataclass(frozen=True)
class Page:
    records: list[bytes]  # the first matching flows in the view's order (unsorted: the index sorts them)
    matched: int  # how many flows matched in the kernel's table
    listed: int  # how many the dump listed (the kernel's filter narrows this)
    read_at: float  # when the dump began (wall clock, as the live source's)


class Pager:
    """Reads pages for one namespace; use from one thread (the indexer's)."""

    def __init__(self, spec: NetnsSpec, limit: int) -> None:
        self.spec = spec
        self.limit = min(limit, PAGE_MAX)
        self._ct: Ctnetlink | None = None

    def read(self, view: ViewSpec, owners: OwnerSource | None,
             cancelled: Callable[[], bool] = lambda: False) -> Page | None:
        """The page for ``view``; None if ``cancelled()`` turned true on the way."""
        if self._ct is None:
            self._ct = Ctnetlink(self.spec)
        flt = compile_filter(view.filter, owners)
        sort = SORTS[view.sort]
        # Rate sorts need two dumps' counters, which a bounded view does not hold: the dump's order then.
        key = None if sort.rate is not None else sort.key
        best = heapq.nlargest if sort.descending != view.reverse else heapq.nsmallest
        started = time.time()
        limit, seen = self.limit, int(started)
        kept: list[bytes] = []
        matched = listed = 0
        # Closed when left early: the dump's rest is then read and dropped (Ctnetlink.dump_chunks), so the
        # socket's next reply is its own.
        try:
            with closing(filtered_dump(self._ct, flt)) as chunks:
                for n, rows in chunks:
                    if cancelled():
                        return None
                    listed += n
                    matched += len(rows)
                    if key is None:
                        kept += [pack(r, seen) for r in rows[:limit - len(kept)]]
                    else:
                        kept += [pack(r, seen) for r in rows]
                        if len(kept) >= 2 * limit:
                            kept = best(limit, kept, key=key)
        except CttopError:
            self.close()  # a socket left mid-dump: the next page opens a fresh one
            raise
        return Page(kept if key is None else best(limit, kept, key=key), matched, listed, started)

    def close(self) -> None:
        if self._ct is not None:
            self._ct.close()
            self._ct = None

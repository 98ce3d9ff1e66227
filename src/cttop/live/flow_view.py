"""The flow list's view as the UI set it (filter, sort, cursor, pause), and when the table is indexed for it.

Why a module of its own: the flow list is indexed on the indexer's thread from a snapshot
of the table's records; deciding when a new index is worth building (the view changed,
the table or an owner filter's owners changed, no sooner than every other build time)
and what a paused list keeps showing is state the collector's frame timing does not need.
The UI writes the view from its thread, the collector schedules from its own: a lock
guards the fields both touch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Final

from cttop.filter import compile_filter
from cttop.live.index import SORTS, ViewSpec, position
from cttop.live.indexer import Indexer, IndexJob
from cttop.live.pager import Pager
from cttop.owners.owners import Owners
from cttop.table.rates import FlowRate
from cttop.table.store import FlowTable

# A table that keeps changing is indexed again no sooner than this many times the last build took: sorting
# 262,144 flows takes about half a second, and a churning table (the box in trouble) would otherwise keep a
# core half busy re-sorting a list whose count and panels are current anyway (they come from the table). A
# change of view (filter, sort, pause) is indexed at once.
REBUILD_SPACING: Final = 5
# A bounded view's list is a dump of its own (live.pager), of millions of flows: read again no sooner than this
# many times the last read took, and PAGE_MIN seconds, unless the view changed.
PAGE_SPACING: Final = 20
PAGE_MIN: Final = 10.0


class FlowView:
    """What the flow list asks for, and the schedule of the indexes built for it."""

    def __init__(self, indexer: Indexer, owners: Owners | None, view: ViewSpec | None,
                 pager: Pager | None = None) -> None:
        self.indexer = indexer
        self.owners = owners
        self.pager = pager  # where a bounded table's list is read from
        self._lock = threading.Lock()
        # Written by the UI thread under the lock.
        self._view = view if view is not None else ViewSpec()
        self._dirty = True
        self._owned = False  # the view's filter asks who owns flows: an owners refresh changes the list
        self._anchor: int | None = None
        self._paused = False
        self._frozen: tuple[int, Sequence[bytes]] | None = None  # generation and records the paused view shows
        # The collector's: the table generation (and owners refresh, for an owner filter) the last index was
        # built from, and when the next may be.
        self._indexed: tuple[int, float | None] = (-1, None)
        self._next = 0.0

    def set_view(self, spec: ViewSpec) -> None:
        """Ask for a new flow index; raises FilterError (from the caller's thread) for bad text."""
        owned = compile_filter(spec.filter, self.owners).uses_owners
        if spec.sort not in SORTS:
            raise KeyError(spec.sort)
        with self._lock:
            self._view, self._dirty, self._owned = spec, True, owned

    def set_anchor(self, flow_id: int | None) -> None:
        """The flow under the cursor: the next index says where it moved to."""
        self._anchor = flow_id

    def set_paused(self, paused: bool) -> int | None:
        """Freeze (or thaw) the flow list's snapshot; returns the frozen snapshot's generation."""
        with self._lock:
            self._paused = paused
            last = self.indexer.last
            self._frozen = (last[0].generation, last[1]) if paused and last is not None else None
            if not paused:
                self._dirty = True  # catch the list up with the live table at once
            return self._frozen[0] if self._frozen is not None else None

    def paged(self, key: int) -> bytes | None:
        """A bounded table's flow from the list's last page (the only records such a view holds)."""
        last = self.indexer.last
        if last is None:
            return None
        at = position(last[1], key)
        return None if at is None else last[1][at]

    def touch(self) -> None:
        """Index again at once: what the list leaves out changed."""
        with self._lock:
            self._dirty = True

    def schedule(self, table: FlowTable, interval: float, rates: dict[int, FlowRate]) -> None:
        """Hand the indexer a job if the list needs one now (``rates``: bytes and packets a second by flow)."""
        busy = self.indexer.busy
        with self._lock:
            dirty, spec, paused, frozen = self._dirty, self._view, self._paused, self._frozen
            # A view changed while a build runs: that build is cancelled and the new one waits for it to stop
            # (a tick, EVENT_WAIT) before it takes its copy of the table. Taken now, it would be a third copy
            # beside the list's and the running build's: ~90 bytes a flow each from the compiled store.
            self._dirty = dirty and busy
            owned = self._owned
        if dirty and busy:
            self.indexer.cancel()
            return
        gen = table.generation
        built_from = (gen, self.owners.index.at if owned and self.owners is not None else None)
        records: Sequence[bytes]
        page = self.pager if table.bounded else None  # a bounded table's list is read from the kernel
        if dirty and paused and frozen is not None:
            gen, records = frozen
            page = None  # the frozen page itself, not a new one
        elif dirty:
            records = table.records()
        elif paused or built_from == self._indexed or self.indexer.busy or time.monotonic() < self._next:
            return
        else:
            records = table.records()
        if not paused:
            self._indexed = built_from
        self.indexer.submit(IndexJob(records, gen, spec, self._anchor, rates, page))
        last = self.indexer.last
        took = last[0].seconds if last else 0.0
        self._next = time.monotonic() + (max(interval, REBUILD_SPACING * took) if page is None
                                         else max(PAGE_MIN, PAGE_SPACING * took))

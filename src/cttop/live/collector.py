"""The collector: a worker thread that owns the source and the flow table and hands the app snapshots.

Start-up subscribes to events *before* the first dump, so an entry created while
the dump runs is seen either in the dump or as an event queued behind it. After
that, events are applied in batches as they arrive; once per interval a
:class:`Frame` is built and handed over. Dumps fill a fresh table that replaces
the old one when complete, so no frame shows a half table; frames keep their
interval while a long dump is read, from the last table with the events that keep
coming applied to it (and kept for the fresh table, after the dump).

The table must agree with the kernel, because a table that silently drifts from it
is worse than none. Every frame takes the kernel's count (CT_GET_STATS, on a socket
of its own) right after applying the events queued up to that instant, and compares;
lost events (ENOBUFS) trigger a resync at once, counted and shown, and dump_schedule
says when a lasting drift is resynced and when periodic dumps refresh what events
never carry.

Over ``max_flows`` flows (--max-flows) the table each dump fills is a table.tally.FlowTally:
every flow counted, none held, and the flow list read from the kernel a page at a time
(live.pager); the view moves back once the table is BOUND_SLACK under the line.

This module keeps the thread and the order of things, and composes the parts that have
state of their own: dump_schedule (when to dump), heaviest (the heaviest panel's ranking),
frame_builder (the kernel's readings, history and rates, and the Frame),
owner_rank (for a live namespace, who owns the flows and the ranking by them, so
``process`` and ``container`` can be group keys), rate_keeper (new flows a second by
group, bytes and packets a second by flow and group), flow_view (the flow list's view and
when it is indexed) and seeking (a replay's seeks, asked for through :meth:`Collector.seek`).

The UI talks to the collector only through the ``set_*`` methods and ``seek``
(thread-safe) and receives snapshots through the two callbacks, which run on
this thread and must only hand the object over (Textual's ``post_message`` is
safe for that).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

from cttop import config
from cttop.errors import CttopError
from cttop.filter import compile_filter
from cttop.kernel import sysctl
from cttop.kernel.ctnetlink import NEEDS_CAP, KernelError, sum_cpus
from cttop.kernel.events import EventBatch
from cttop.kernel.perms import CAP_NET_ADMIN, has_caps
from cttop.live.dump_schedule import DumpSchedule
from cttop.live.eventlog import EventLog
from cttop.live.flow_view import FlowView
from cttop.live.frame import FAILED, LIMITED, LIVE, LOADING, Frame
from cttop.live.frame_builder import FrameBuilder
from cttop.live.heaviest import GROUP_ORDER, RANK_BY, rank
from cttop.live.index import FlowIndex, ViewSpec
from cttop.live.indexer import Indexer
from cttop.live.owner_rank import OwnerRanking
from cttop.live.pager import Pager
from cttop.live.rate_keeper import RateKeeper
from cttop.live.resolve import Resolver
from cttop.live.seeking import Seeks
from cttop.model import Row
from cttop.owners.groups import OWNER_GROUPS
from cttop.sources.live import Source
from cttop.table.groups import GROUPS, GroupDef
from cttop.table.packing import unpack
from cttop.table.store import FlowTable, Own
from cttop.table.tally import FlowTally

BOUND_SLACK: Final = 0.1  # a bounded table is held in full again only once it is this far under the max
# Rows packed into the table at a time; a dump is never held whole as rows. Rows cost ~600 bytes each while
# they wait: 50,000 at a time kept ~30 MB more at the peak of a million-flow load (and after it, in the
# allocator's arenas); under ~8,000 the RSS stops falling, and the calls a batch pays start to show.
LOAD_CHUNK: Final = 8_192
LOAD_REPORT_EVERY: Final = 0.25  # seconds between progress frames while the first dump arrives
# How often events are read while a dump is: not a chunk at a time (a million flows come in ~7,000 chunks, and their
# empty reads were ~0.25 s of the first frame under a profiler), yet far within what the event socket's buffer holds
# in a flood.
DUMP_CATCH_UP: Final = 0.02
EVENT_WAIT: Final = 0.05  # longest wait for events, so settings and stop are noticed quickly


class Collector:
    def __init__(self, source: Source, *, on_frame: Callable[[Frame], None],
                 on_index: Callable[[FlowIndex], None], interval: float = config.DEFAULT_INTERVAL,
                 group: str = config.DEFAULT_GROUP, view: ViewSpec | None = None, max_flows: int | None = None) -> None:
        self.source = source
        # Who owns the flows: only a live namespace has processes to ask.
        self._ranking = OwnerRanking(source.spec) if source.spec is not None else None
        self.owners = self._ranking.owners if self._ranking is not None else None
        self.group_order: tuple[str, ...] = GROUP_ORDER + (OWNER_GROUPS if self.owners is not None else ())
        if group not in GROUPS and group not in self.group_order:
            raise KeyError(group)
        self._seeks = Seeks(source)
        self._frames = FrameBuilder(source)
        self.table = FlowTable(track=[group])
        self._on_frame = on_frame
        self.indexer = Indexer(on_index, self.owners)
        # Over max_flows the table is held bounded and the list paged from the kernel; a recording's table is
        # the recording's, held whole by the replay already.
        self._max_flows = max_flows if source.spec is not None else None
        pager = Pager(source.spec, max_flows) if source.spec is not None and max_flows is not None else None
        self._flows = FlowView(self.indexer, self.owners, view, pager)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._reread = threading.Event()  # this app changed the table (a delete, a flush): read it again
        self._stop = threading.Event()
        # Settings, written by the UI thread under the lock.
        self._interval = interval
        self._group = group
        self._top_by = "entries"
        # Worker state.
        self._phase = LOADING
        self._note = "connecting"
        self._rates = RateKeeper()
        # The event screen's log, kept only while it is open; and cttop's own DNS lookups, hidden from the
        # flow list and the log (set by set_resolver, for a view of the resolver's own namespace only).
        self._log: EventLog | None = None
        self._hide: Own | None = None
        self._lost = 0
        self._dumping = False  # a dump is being read into a fresh table: events read meanwhile are its too
        # The events read while a dump is (with when), for the fresh table; and whether any were lost.
        self._queued: list[tuple[float, EventBatch]] = []
        self._lost_in_dump = False
        self._drop_resynced = False  # resynced for a drop whose place in the stream (batch.lost) is still to come
        # A kernel's event socket overflows if left unread during a long dump; a recording does not.
        self._read_during_dumps = source.events_overflow
        self._bad = 0
        self._schedule = DumpSchedule()
        self._last_post = 0.0
        self._thread = threading.Thread(target=self._run, name="cttop-collector", daemon=True)

    # --- the UI's side -------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the worker to finish and wait a little; a dump in progress is not waited for."""
        self._stop.set()
        self._wake.set()
        self.indexer.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.indexer.join(timeout)
        if not self._thread.is_alive():
            self.source.close()
        if self._flows.pager is not None and not self.indexer.alive:
            self._flows.pager.close()

    @property
    def interval(self) -> float:
        return self._interval

    def set_interval(self, seconds: float) -> None:
        with self._lock:
            self._interval = seconds
        self._wake.set()

    def reread(self) -> None:
        """The table was just changed from here (flows deleted or flushed): read it again before the next frame.

        Flows made before anyone listened carry no event cache (nf_conntrack_events=2), so their deletion sends no
        DESTROY: without this, a deleted flow stayed in the list until the next refresh, up to ten minutes for a
        table at rest, after the toast said the kernel had deleted it.
        """
        self._reread.set()
        self._wake.set()

    def set_group(self, group: str, by: str) -> None:
        if (group not in GROUPS and group not in self.group_order) or by not in RANK_BY:
            raise KeyError(f"{group}/{by}")
        with self._lock:
            self._group, self._top_by = group, by
        self._wake.set()

    def set_view(self, spec: ViewSpec) -> None:
        """Ask for a new flow index; raises FilterError (from the caller's thread) for bad text."""
        self._flows.set_view(spec)

    def set_event_log(self, on: bool) -> None:
        """Keep the event screen's log (from now on), or drop it."""
        with self._lock:
            if not on:
                self._log = None
            elif self._log is None:
                self._log = EventLog()
        self._wake.set()  # a frame with the log (or without it) at once

    def set_event_filter(self, text: str) -> None:
        """The event log's filter; raises FilterError (from the caller's thread) for bad text."""
        flt = compile_filter(text, self.owners)
        with self._lock:
            if self._log is not None:
                self._log.set_filter(flt)
        self._wake.set()  # a frame with what it finds at once

    def set_event_until(self, appended: int | None) -> None:
        """The event screen paused where ``appended`` entries were in its log (None: resumed): its views hold
        those only, so a filter typed meanwhile filters what the paused screen shows."""
        with self._lock:
            if self._log is not None:
                self._log.set_until(appended)

    def set_resolver(self, resolver: Resolver | None) -> None:
        """Hide the resolver's own lookups, when this view watches the namespace its queries are made in."""
        spec = self.source.spec
        own = resolver is not None and spec is not None and spec.inode() == resolver.netns
        with self._lock:
            self._hide = (resolver.own_flow, resolver.own_record) if own and resolver is not None else None
        self._flows.touch()
        self._wake.set()

    def set_anchor(self, flow_id: int | None) -> None:
        """The flow under the cursor: the next index says where it moved to."""
        self._flows.set_anchor(flow_id)

    def set_paused(self, paused: bool) -> int | None:
        """Freeze (or thaw) the flow list's snapshot; returns the frozen snapshot's generation."""
        return self._flows.set_paused(paused)

    def seek(self, seconds: float) -> None:
        """Move a replay to ``seconds`` from its start (clamped by the replay); done by the worker."""
        self._seeks.ask(seconds)
        self._wake.set()

    @property
    def seeking(self) -> float | None:
        """Where a seek not yet carried out is going, if one is."""
        return self._seeks.pending

    def flow(self, flow_id: int) -> Row | None:
        """The current row for a flow (dict reads are atomic, so safe from the UI thread)."""
        table = self.table
        if table.bounded:
            rec = self._flows.paged(flow_id)
            return None if rec is None else unpack(rec)
        return table.get(flow_id)

    def record(self, flow_id: int) -> bytes | None:
        """The current packed record for a flow, with when it was read (packing.record_meta): the table's, or
        a bounded table's list page's."""
        table = self.table
        return self._flows.paged(flow_id) if table.bounded else table.record(flow_id)

    # --- the worker ----------------------------------------------------------------------

    def _run(self) -> None:
        self.indexer.start()
        try:
            self._seeks.take_startup()
            if self._connect():
                self._load(first=True)
                self._catch_up()
                self._phase, self._note = LIVE, ""
            # The first live frame before the flow list's first index: the frame's owners refresh (a walk
            # of /proc, each syscall giving up the GIL) behind the index's sort of every flow took ~1 s at 1M.
            self._post()
            if self._phase == LIVE:
                self._schedule_index()
            while not self._stop.is_set():
                self._tick()
        except CttopError as e:
            self._fail(str(e))
        except Exception as e:  # a bug must show on screen, not kill the view silently
            self._fail(f"internal error: {type(e).__name__}: {e}")

    def _connect(self) -> bool:
        """Subscribe to events (before any dump). False when permission is missing."""
        self._post()
        try:
            self.source.subscribe()
            self.source.stats()
        except KernelError as e:
            if e.permission or not has_caps(CAP_NET_ADMIN):
                self._phase, self._note = LIMITED, NEEDS_CAP
                return False
            raise
        return True

    def _fail(self, why: str) -> None:
        self._phase, self._note = FAILED, why
        self._post()

    def _tick(self) -> None:
        """Events until the next frame is due (an interval after the last one), then the frame.

        A due dump (periodic, or a drift confirmed) is read first, right after the last frame, so it
        overlaps the wait and the next frame still comes on time; a seek is carried out at once,
        before the frame.
        """
        if self._phase == LIVE:
            self._reload_if_due()
        while not self._stop.is_set() and not self._wake.is_set():
            left = self._last_post + self._interval - time.monotonic()
            if left <= 0:
                break
            if self._phase == LIMITED:
                self._wake.wait(min(left, EVENT_WAIT))
                continue
            self._apply(self.source.events(min(left, EVENT_WAIT)))
            self._schedule_index()
        self._wake.clear()
        if self._stop.is_set():
            return
        if self._phase == LIVE and self._seeks.take():
            self._frames.restart_clock()  # the clock jumped
            self._rates.forget()
            self._resync("seeking")
            self._catch_up()
        self._post()
        self._schedule_index()

    def _reload_if_due(self) -> None:
        table = self.table
        if self._reread.is_set():
            self._reread.clear()
            self._resync("reading the table after the change", after_change=True)
        elif self._schedule.refresh_due():
            self._load(first=False)
        elif self._bounded_for(self._frames.count) != table.bounded:
            self._resync(f"over {self._max_flows:,} flows, counting them without holding them" if not table.bounded
                         else f"under {self._max_flows:,} flows again, holding every flow")
        elif table.needs_dump:
            self._resync("reading the table to count the new group")
        elif self._drifted():
            self._schedule.resyncing()
            self._resync("the table drifted from the kernel's count, resyncing")
        else:
            return
        self._catch_up()

    def _resync(self, why: str, after_change: bool = False) -> None:
        """A dump replacing a table known to be wrong; ``why`` is the note frames show meanwhile; ``after_change``:
        see FrameBuilder.dumped."""
        self._note = why
        self._load(first=False, after_change=after_change)
        self._note = ""

    def _apply(self, batch: EventBatch) -> None:
        """Apply a batch of events; lost ones mean a resync, and the events that queued up behind it.

        While a dump is read the batch goes to the last table (for the frames meanwhile) and is kept
        for the fresh one; a loss then is dealt with once the dump is in.
        """
        self.table.set_own(self._hide)  # set by the UI's thread; the table is this thread's to change
        while True:
            now = self.source.now()
            if batch.events:
                self.table.apply_events(batch.events, now)
                self._schedule.touched()
            self._bad += batch.bad
            if self._events_on():
                self._rates.events(now, batch.events)
            self._log_events(batch)
            if self._dumping:
                self._queued.append((now, batch))
                return
            if not batch.dropped and (not batch.lost or self._drop_resynced):
                if batch.lost:  # where the drop the last resync was for shows: nothing to redo
                    self._drop_resynced = False
                return
            self._drop_resynced = batch.dropped and not batch.lost
            self._lost += 1
            self._resync("events lost, resyncing")
            batch = self._next_batch()

    def _catch_up(self) -> None:
        """Apply the events queued up to now (say, while a dump was read), so what follows is current.

        Replaying events from before the dump is harmless: a NEW or UPDATE rewrites
        the entry with an older state that the next event corrects, and a DESTROY of
        an entry the dump no longer had is a no-op.
        """
        self._apply(self._next_batch())

    def _next_batch(self) -> EventBatch:
        """The events queued now; or, right after a dump during which events were dropped, that drop (a resync
        trigger: the queued batches were logged with their gaps as they came)."""
        if self._lost_in_dump:
            self._lost_in_dump = False
            return EventBatch(dropped=True)
        return self.source.events(0.0)

    def _log_events(self, batch: EventBatch) -> None:
        log, hide = self._log, self._hide
        if log is not None and (batch.events or batch.lost):
            log.add(batch, self.source.now(), hide[0] if hide is not None else None)

    def _events_on(self) -> bool:
        """Whether the kernel sends events here (nf_conntrack_events is not 0): else new flows are counted
        from dumps."""
        return self._frames.sysctls.get("nf_conntrack_events") != "0"

    def _load(self, first: bool, after_change: bool = False) -> None:
        """Read a full dump into a fresh table and swap it in (start-up, resync, periodic refresh); ``after_change``:
        see FrameBuilder.dumped.

        Frames keep their interval while the dump is read: the last table, the kernel's count of the
        moment, and during a resync the note saying so.
        """
        t0 = time.monotonic()
        count = self._count_now()
        known = f"{count:,}" if count is not None else "the"
        if first:
            self._note = f"reading {known} flows from the kernel"
            self._post()
        track = list(self.table.agg.groups)
        fresh = (FlowTally(track, own=self._hide, expect=count or 0, owners=self._owner_group())
                 if self._bounded_for(count) else FlowTable(track, own=self._hide, expect=count or 0))
        last_report = time.monotonic()
        batch: list[Row] = []
        # When the batch's first row was read: its timeouts count down from then.
        read_at = started = self.source.now()
        # Read straight into the held table where it can be (no row a flow: ~1 µs a flow less), else as rows.
        hold = fresh.loading()
        dump_held = getattr(self.source, "dump_held", None)
        if hold is not None and dump_held is not None:
            hold.seen = int(read_at)
            chunks: Iterator[list[Row] | None] = dump_held(hold.counts, hold)
        else:
            hold, chunks = None, self.source.dump_chunks()
        self._dumping = True
        try:
            caught_up = time.monotonic()
            for chunk in chunks:
                if self._read_during_dumps and time.monotonic() - caught_up >= DUMP_CATCH_UP:
                    # Seconds for a big table under load: left unread, the event socket overflows (ENOBUFS)
                    # and forces yet another dump.
                    self._catch_up()
                    caught_up = time.monotonic()
                if hold is not None:
                    hold.seen = int(self.source.now())  # the next chunk's
                elif chunk is not None:
                    batch += chunk
                    if len(batch) >= LOAD_CHUNK:
                        fresh.extend(batch, read_at)
                        batch, read_at = [], self.source.now()
                if first and time.monotonic() - last_report >= LOAD_REPORT_EVERY:
                    last_report = time.monotonic()
                    self._note = f"loaded {len(fresh):,} of {known} flows"
                    self._post()
                elif not first and time.monotonic() - self._last_post >= self._interval:
                    self._post()
        finally:
            self._dumping = False
        if hold is not None:
            hold.done()
        else:
            fresh.extend(batch, read_at)
        queued, self._queued = self._queued, []
        for at, b in queued:  # after the dump, as if they had queued up behind it
            if b.events:
                fresh.apply_events(b.events, at)
        # A gap showing during the dump is a drop's reported before it began, which the dump covers.
        self._lost_in_dump = any(b.dropped for _, b in queued)
        old = self.table
        fresh.created, fresh.destroyed = old.created, old.destroyed  # the queued ones counted once, in old
        fresh.generation = old.generation + 1
        now = self.source.now()
        if not first:
            since = self._schedule.refreshed
            self._rates.dumped(old, fresh, now - since if since is not None else None, now, self._events_on())
        self.table = fresh
        self._frames.dumped(fresh, started, after_change)  # it lists the live entries: the forecast counts from it
        counted = bool(fresh.counted) or not self._events_on()
        self._schedule.dumped(now, time.monotonic() - t0, counted, None if counted else self._rest(now))
        if any(b.events for _, b in queued):
            self._schedule.touched()  # flows whose countdowns the dump did not read

    def _rest(self, now: float) -> float | None:
        """How long a table no event touches may go unread (DumpSchedule.dumped): with accounting off, until
        the first countdown the dump read runs out. None with accounting on (or unknown): counters move with
        no event to say so."""
        if sysctl.as_int(self._frames.sysctls.get("nf_conntrack_acct")) != 0:
            return None
        first_end = self._frames.first_end()
        return math.inf if first_end is None else first_end - now

    def _drifted(self) -> bool:
        """Whether the table has disagreed with the kernel's count for more than one refresh: off on the
        last frame, and still off now (a resync now, and the next frame does not show it off again)."""
        if not self._schedule.drift_check_due():
            return False
        self._reconcile()
        return self._schedule.drifted()

    def _owner_group(self) -> GroupDef | None:
        """The owner group shown (process or container), for a bounded table to count as its dump is read."""
        with self._lock:
            group = self._group
        if self._ranking is None or group not in OWNER_GROUPS:
            return None
        return self._ranking.owners.group_defs()[group]

    def _count_now(self) -> int | None:
        try:
            return self.source.stats().count
        except CttopError:
            return None

    def _bounded_for(self, count: int | None) -> bool:
        """Whether a table of ``count`` flows is held bounded: over max_flows, and once bounded until it is
        BOUND_SLACK under, so a table at the line is not read again and again."""
        most = self._max_flows
        if most is None or count is None:
            return False
        return count > (most * (1 - BOUND_SLACK) if self.table.bounded else most)

    def _schedule_index(self) -> None:
        self._flows.schedule(self.table, self._interval, self._rates.flow_rates)

    # --- frames --------------------------------------------------------------------------

    def _post(self) -> None:
        self._last_post = time.monotonic()
        self._on_frame(self._frame())

    def _frame(self) -> Frame:
        now = self.source.now()
        if self._phase != FAILED:
            self._read_counts(now)
        table = self.table
        with self._lock:
            group, by, interval = self._group, self._top_by, self._interval
        rates = self._rates
        ranked = rank(table, group, by, rates, self._ranking, now, live=self._phase == LIVE)
        counting = rates.new_flows
        return self._frames.build(
            now, table, phase=self._phase, note=self._note, interval=interval, group=group, by=ranked.by,
            top=ranked.top, lost=self._lost, bad=self._bad, refreshed=self._schedule.refreshed,
            ranked_total=ranked.total,
            new_rate_seconds=counting[1].seconds if counting is not None else 0.0,
            new_rate_source=("events" if self._events_on() else "dumps") if counting is not None else None,
            flow_rates=rates.flow_rates, bounded=self._max_flows if table.bounded else None,
            event_log=log.view(now) if (log := self._log) is not None else None)

    def _read_counts(self, now: float) -> None:
        """Count, max and the pressure counters from the kernel; /proc when ctnetlink is refused."""
        frames, src = self._frames, self.source
        frames.read_sysctls(now, always=self._phase == LIMITED)
        if self._phase == LIMITED:
            frames.read_proc(now)
            return
        try:
            if self._phase == LIVE and (self._read_during_dumps or not self._dumping):
                self._reconcile()
            else:  # connecting, or a recording's dump is being read
                frames.take_stats(src.stats())
            totals = sum_cpus(src.stats_cpu())
        except KernelError:
            if self._phase == LIVE:
                raise
            return  # still connecting: the refusal is dealt with by _connect
        frames.set_pressure(now, totals, "ctnetlink")

    def _reconcile(self) -> None:
        """The kernel's count, between two catch-ups: the table's size before and after brackets the
        moment of the count. (Catching up a big batch takes a while, and flows keep coming meanwhile:
        only a count outside the bracket is drift.)"""
        self._catch_up()
        before = self.table.held
        stats = self.source.stats()
        self._catch_up()
        self._frames.take_stats(stats)
        # A dump under way is about to replace the table. A recording's table is what was recorded: its
        # stats samples lag its dumps and events, and redumping it gives the same rows, so it never drifts.
        if not self._dumping and self.source.live:
            self._schedule.reading(before, self.table.held, stats.count)

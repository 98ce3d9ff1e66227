"""The collector on a fixed source: start-up order, events, loss and resync, drift, no permission, failure."""

from __future__ import annotations

import errno
import math
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import cttop.live.collector as collector_module
from cttop.kernel.ctnetlink import NEEDS_CAP, KernelError, Stats
from cttop.kernel.events import EventBatch
from cttop.live import dump_schedule
from cttop.live.collector import Collector
from cttop.live.dump_schedule import DRIFT_SLACK, Drift
from cttop.live.frame import FAILED, LIMITED, LIVE, Frame
from cttop.live.index import FlowIndex, ViewSpec
from cttop.model import EV_DESTROY, EV_NEW, Row
from cttop.table.packing import flow_key, unpack
from cttop.table.store import FlowTable
from tests.ui.fixed_source import FixedSource, busy_rows, fixed_rows, row, v4

CAP = 10.0


class Recorder:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.indexes: list[FlowIndex] = []
        self.cv = threading.Condition()

    def frame(self, f: Frame) -> None:
        with self.cv:
            self.frames.append(f)
            self.cv.notify_all()

    def index(self, i: FlowIndex) -> None:
        with self.cv:
            self.indexes.append(i)
            self.cv.notify_all()

    def until(self, cond: Callable[[], bool], what: str) -> None:
        with self.cv:
            if not self.cv.wait_for(cond, CAP):
                raise AssertionError(f"gave up waiting for {what}")


class LoggingSource(FixedSource):
    def __init__(self, rows: list[Row] | None = None) -> None:
        super().__init__(rows)
        self.calls: list[str] = []

    def subscribe(self) -> None:
        self.calls.append("subscribe")
        super().subscribe()

    def dump(self) -> list[Row]:
        self.calls.append("dump")
        return super().dump()


@pytest.fixture
def rec() -> Iterator[Recorder]:
    yield Recorder()


def run(source: FixedSource, rec: Recorder, **kw: object) -> Collector:
    c = Collector(source, on_frame=rec.frame, on_index=rec.index, interval=0.05, **kw)  # type: ignore[arg-type]
    c.start()
    return c


def test_subscribes_before_the_first_dump_and_shows_the_table(rec: Recorder) -> None:
    src = LoggingSource()
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames) and rec.indexes, "live")
    finally:
        c.stop()
    assert src.calls[:2] == ["subscribe", "dump"]
    live = next(f for f in rec.frames if f.phase == LIVE)
    assert live.flows == len(src.rows) == live.count
    assert {unpack(r)[0] for r in rec.indexes[-1].records} == {r[0] for r in src.rows}
    assert src.closed


def test_a_dump_is_packed_in_batches_into_the_same_table(rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector_module, "LOAD_CHUNK", 30)  # 300 rows in 7-row chunks: ten batches and a rest
    src = FixedSource(busy_rows(300))
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        whole = FlowTable(track=list(c.table.agg.groups))
        whole.extend(src.rows, src.now())  # the fixed clock: every batch was read at the same second
        assert sorted(c.table.records()) == sorted(whole.records())
        assert (c.table.by_state, c.table.evictable, c.table.agg.groups) == (
            whole.by_state, whole.evictable, whole.agg.groups)
    finally:
        c.stop()


def test_events_change_the_table(rec: Recorder) -> None:
    src = FixedSource()
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        new = row(5000, 17, v4("10.9.9.9"), v4("10.8.8.8"), 1000, 53)
        src.rows.append(new)
        src.push([(EV_NEW, new)])
        rec.until(lambda: rec.frames[-1].flows == 26, "the new flow")
        gone = src.rows.pop(0)
        src.push([(EV_DESTROY, gone)])
        rec.until(lambda: rec.frames[-1].flows == 25, "the destroyed flow")
        assert c.flow(flow_key(gone)) is None and c.flow(flow_key(new)) == new
    finally:
        c.stop()


def resynced_after(src: FixedSource, rec: Recorder, lose: Callable[[], None]) -> int:
    """Once live, the kernel moves on to 10 flows while ``lose`` makes events go missing: only a dump can tell.
    Waits for the resync it counts, and returns the dumps read before it."""
    rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
    dumps = src.dumps
    src.rows = src.rows[:10]
    lose()
    rec.until(lambda: rec.frames[-1].lost == 1 and rec.frames[-1].flows == 10, "the resync")
    assert src.dumps == dumps + 1
    return dumps


def test_lost_events_resync_with_a_dump_and_are_counted(rec: Recorder) -> None:
    src = FixedSource()
    c = run(src, rec)
    try:
        resynced_after(src, rec, src.lose)
    finally:
        c.stop()


def test_a_drop_resyncs_at_once_and_its_place_in_the_stream_later_does_not_again(rec: Recorder) -> None:
    """ENOBUFS comes before the events queued ahead of the drop (kernel.events): the table is wrong from then,
    so the resync is not put off until the queue is read; when the gap's place shows, nothing is redone."""
    src = FixedSource()
    c = run(src, rec)
    try:
        # The drop is reported; the queue ahead is still unread.
        dumps = resynced_after(src, rec, lambda: src._events.put(EventBatch(dropped=True)))
        src._events.put(EventBatch(lost=True, lost_at=[0]))  # the queue ran dry: the gap shows here
        src.push([])
        rec.until(lambda: src._events.empty(), "both read")
        time.sleep(0.3)  # frames at 0.05 s: a second resync would have come by now
        assert src.dumps == dumps + 1 and rec.frames[-1].lost == 1
    finally:
        c.stop()


def test_drift_from_the_kernel_count_triggers_a_resync(rec: Recorder) -> None:
    src = FixedSource(fixed_rows() * 1)
    src.rows = [row(7000 + i, 17, v4("10.1.1.1"), v4("10.2.2.2"), 1000 + i, 53) for i in range(100)]
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE and f.flows == 100 for f in rec.frames), "live")
        del src.rows[50:]  # flows that ended without events (created before anyone listened)
        rec.until(lambda: rec.frames[-1].flows == 50, "the drift resync")
        assert rec.frames[-1].lost == 0
    finally:
        c.stop()


def test_a_table_over_the_kernel_count_is_shown_on_one_frame_at_most(rec: Recorder) -> None:
    src = FixedSource([row(7000 + i, 17, v4("10.1.1.1"), v4("10.2.2.2"), 1000 + i, 53) for i in range(100)])
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE and f.flows == 100 for f in rec.frames), "live")
        dumps = src.dumps
        with rec.cv:
            before = len(rec.frames)
            del src.rows[60:]  # ended without events: gone from the kernel's count, not from the table
        rec.until(lambda: rec.frames[-1].flows == 60, "the resync")
        after = rec.frames[before:]
    finally:
        c.stop()
    off = [f for f in after if f.flows != f.count]
    assert len(off) <= 1 and all(f.flows == 100 and f.count == 60 for f in off)
    assert src.dumps == dumps + 1 and after[-1].lost == 0


def test_a_table_under_the_kernel_count_by_more_than_a_share_resyncs(rec: Recorder) -> None:
    flows = [row(7000 + i, 17, v4("10.1.1.1"), v4("10.2.2.2"), 1000 + i, 53) for i in range(300)]
    src = FixedSource(flows[:200])
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE and f.flows == 200 for f in rec.frames), "live")
        src.rows += flows[200:]  # began without events (events off)
        rec.until(lambda: rec.frames[-1].flows == 300, "the resync")
    finally:
        c.stop()


class Churning(FixedSource):
    """A full table under churn: every dump holds GHOSTS entries the kernel's count no longer has (evicted while
    it was read, with no DESTROY: they carried no event cache), and a dump takes DUMP_SECONDS."""

    GHOSTS = 50
    DUMP_SECONDS = 0.05

    def __init__(self, rows: list[Row]) -> None:
        super().__init__(rows)
        self.dumped_at: list[float] = []

    def dump(self) -> list[Row]:
        time.sleep(self.DUMP_SECONDS)
        self.dumped_at.append(time.monotonic())
        return super().dump()

    def stats(self) -> Stats:
        return Stats(len(self.rows) - self.GHOSTS, self.maximum)


def test_resyncs_that_leave_the_table_drifting_back_off(rec: Recorder) -> None:
    src = Churning([row(7000 + i, 17, v4("10.1.1.1"), v4("10.2.2.2"), 1000 + i, 53) for i in range(200)])
    c = run(src, rec)
    try:
        rec.until(lambda: len(src.dumped_at) >= 7, "seven dumps")  # the start-up one and six resyncs
    finally:
        c.stop()
    gaps = [b - a for a, b in zip(src.dumped_at[1:], src.dumped_at[2:])]
    # Spaced by DRIFT_DUTY times a dump's cost, doubling after each resync that changed nothing (a frame or two
    # of detection on top): the last gap is about eight times the first, where without the back-off they are
    # alike (seen: 0.25 s each). Three times leaves room for a loaded machine stretching the first gap.
    assert gaps[-1] > 3 * gaps[0], gaps


def test_drift_needs_more_than_a_few_flows_in_flight() -> None:
    assert Drift().after(100, 100, 100 - DRIFT_SLACK) == Drift()  # DESTROYs of the instant before the count
    assert Drift().after(100, 100, 100 - DRIFT_SLACK - 1) == Drift(1, 1)
    assert Drift(1, 1).after(100, 100, 50) == Drift(1, 2)
    assert Drift(1, 2).after(50, 50, 100) == Drift(-1, 1)  # the other way starts over
    assert Drift().after(100, 100, 100 + DRIFT_SLACK) == Drift()
    assert Drift().after(100, 100, 100 + DRIFT_SLACK + 1) == Drift(-1, 1)
    assert Drift().after(99_000, 99_000, 100_000) == Drift()  # under by 1% of a big table: tolerated
    assert Drift().after(98_999, 98_999, 100_000) == Drift(-1, 1)


def test_a_count_between_the_table_before_and_after_it_is_no_drift() -> None:
    """A catch-up under load takes a while and flows keep coming: the count falls between the sizes."""
    assert Drift().after(50_000, 60_000, 55_000) == Drift()
    assert Drift().after(60_000, 50_000, 55_000) == Drift()  # a burst of expiries
    assert Drift().after(50_000, 60_000, 70_000) == Drift(-1, 1)
    assert Drift().after(50_000, 60_000, 40_000) == Drift(1, 1)


class CatchUpOnly(FixedSource):
    """Events reach the collector only through its catch-up before the kernel's count (timeout 0)."""

    def events(self, timeout: float) -> EventBatch:
        return super().events(0.0) if timeout == 0.0 else EventBatch()


def test_events_taken_in_a_catch_up_are_applied_once(rec: Recorder) -> None:
    src = CatchUpOnly()
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        new = [row(5000 + i, 17, v4("10.9.9.9"), v4("10.8.8.8"), 1000 + i, 53) for i in range(5)]
        src.rows += new
        src.push([(EV_NEW, r) for r in new])
        rec.until(lambda: rec.frames[-1].flows == 30, "the new flows")
        src.push([(EV_DESTROY, new[0])])
        rec.until(lambda: rec.frames[-1].flows == 29, "the destroyed flow")
    finally:
        c.stop()
    assert (c.table.created, c.table.destroyed) == (5, 1)


class SlowDump(FixedSource):
    """A dump that takes a while, as a big table's does; ``dumping`` says when one is being read."""

    def __init__(self) -> None:
        super().__init__(busy_rows(400))
        self.dumping = False

    def dump_chunks(self) -> Iterator[list[Row]]:
        self.dumping = True
        try:
            for chunk in super().dump_chunks():
                time.sleep(0.005)
                yield chunk
        finally:
            self.dumping = False


def test_frames_keep_coming_while_a_dump_is_read(rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    src = SlowDump()
    seen_dumping: list[Frame] = []

    def frame(f: Frame) -> None:
        if src.dumping and f.phase == LIVE:
            seen_dumping.append(f)
        rec.frame(f)

    c = Collector(src, on_frame=frame, on_index=rec.index, interval=0.05)
    c.start()
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        src.rows = src.rows[:300]
        src.lose()  # a resync: the dump takes ~0.3 s, six intervals
        rec.until(lambda: rec.frames[-1].flows == 300, "the resync")
    finally:
        c.stop()
    assert seen_dumping, "no frame while the dump was read"
    # The last whole table is shown, with the kernel's count read fresh.
    assert all(f.flows == 400 and f.count == 300 and f.note == "events lost, resyncing" for f in seen_dumping)


class NoPermission(FixedSource):
    def subscribe(self) -> None:
        raise KernelError("conntrack events: cannot subscribe: Operation not permitted", errno.EPERM)

    def stats(self) -> Stats:
        raise KernelError("conntrack stats: kernel said Operation not permitted", errno.EPERM)


def test_without_permission_fill_comes_from_proc_sys(rec: Recorder) -> None:
    src = NoPermission()
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIMITED for f in rec.frames), "the limited phase")
    finally:
        c.stop()
    f = rec.frames[-1]
    assert f.note == NEEDS_CAP
    assert (f.count, f.maximum, f.buckets) == (25, 262144, 65536)
    assert f.flows == 0 and f.pressure == () and f.states == ()


class Vanishing(FixedSource):
    """The namespace disappears under the collector (the lab was torn down)."""

    def __init__(self) -> None:
        super().__init__()
        self.gone = False

    def stats(self) -> Stats:
        if self.gone:
            raise KernelError("conntrack stats: No such file or directory", errno.ENOENT)
        return super().stats()


def test_a_broken_source_is_reported_not_fatal(rec: Recorder) -> None:
    src = Vanishing()
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        src.gone = True
        rec.until(lambda: rec.frames[-1].phase == FAILED, "the failure")
    finally:
        c.stop()
    assert "No such file" in rec.frames[-1].note
    assert rec.frames[-1].flows == 25  # the last known table stays on screen


def test_paused_view_changes_reuse_the_frozen_snapshot(rec: Recorder) -> None:
    src = FixedSource()
    c = run(src, rec)
    try:
        rec.until(lambda: rec.indexes and any(f.phase == LIVE for f in rec.frames), "live")
        frozen_gen = rec.indexes[-1].generation
        c.set_paused(True)
        new = row(6000, 17, v4("10.9.9.9"), v4("10.8.8.8"), 1000, 53)
        src.rows.append(new)
        src.push([(EV_NEW, new)])
        rec.until(lambda: rec.frames[-1].flows == 26, "the event applied underneath")
        c.set_view(ViewSpec("udp", "timeout"))
        rec.until(lambda: rec.indexes[-1].spec.filter == "udp", "the paused re-sort")
        assert 6000 not in {unpack(r)[0] for r in rec.indexes[-1].records}
        assert rec.indexes[-1].generation == frozen_gen
        c.set_paused(False)
        rec.until(lambda: 6000 in {unpack(r)[0] for r in rec.indexes[-1].records}, "catching up on resume")
    finally:
        c.stop()


def test_group_and_ranking_follow_the_settings(rec: Recorder) -> None:
    src = FixedSource()
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        c.set_group("dport", "bytes")
        rec.until(lambda: rec.frames[-1].group == "dport" and rec.frames[-1].top_by == "bytes", "the new group")
    finally:
        c.stop()
    top = rec.frames[-1].top
    assert top[0].text == "tcp/5432"  # 9.6 MB over two flows beats 443's many small ones
    assert [g.bytes for g in top] == sorted((g.bytes for g in top), reverse=True)


def test_cycling_the_group_keeps_the_fill_history(rec: Recorder) -> None:
    """`g` pressed round and round: the fill history (and the forecast fitted to it) goes on, never restarts."""
    src = FixedSource()
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        for group in c.group_order * 2:
            src.clock += 1.0  # a second a press: each frame after it is a sample of its own
            c.set_group(group, "entries")
            rec.until(lambda: rec.frames[-1].group == group, f"group {group}")
    finally:
        c.stop()
    lengths = [len(f.history) for f in rec.frames if f.phase == LIVE]
    # One sample more after each change of group (the first is to the group already shown), none ever lost.
    assert lengths == sorted(lengths) and lengths[-1] >= 2 * len(c.group_order)


def test_interval_setting_is_used() -> None:
    rec = Recorder()
    c = Collector(FixedSource(), on_frame=rec.frame, on_index=rec.index, interval=30.0)
    c.start()
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        n = len(rec.frames)
        c.set_interval(0.05)
        rec.until(lambda: len(rec.frames) > n + 3 and rec.frames[-1].interval == 0.05, "faster frames")
    finally:
        c.stop()


def test_the_schedule_spaces_dumps_by_their_cost_and_resyncs_only_a_lasting_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(dump_schedule.time, "monotonic", lambda: clock[0])
    s = dump_schedule.DumpSchedule()
    assert s.refresh_due() and not s.drift_check_due()  # nothing read yet
    s.dumped(5.0, cost=1.0, counted=False)  # a second's dump that brings no counters: 1 % of the time
    clock[0] += dump_schedule.REFRESH_DUTY_UNCOUNTED - 0.5
    assert not s.refresh_due()
    clock[0] += 1
    assert s.refresh_due() and s.refreshed == 5.0
    s.dumped(6.0, cost=1.0, counted=True)
    clock[0] += dump_schedule.REFRESH_DUTY + 0.5
    assert s.refresh_due()
    s.reading(100, 100, 50)  # one reading off: not yet
    assert s.drift_check_due() and not s.drifted()
    s.reading(100, 100, 50)
    assert s.drifted()
    s.reading(100, 100, 100)  # it agrees again
    assert not s.drift_check_due() and not s.drifted()


def test_a_table_at_rest_is_read_again_when_its_first_countdown_runs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(dump_schedule.time, "monotonic", lambda: clock[0])
    duty = dump_schedule.REFRESH_DUTY_UNCOUNTED
    s = dump_schedule.DumpSchedule()
    s.dumped(5.0, cost=1.0, counted=False, rest=300.0)
    clock[0] += duty + 1
    assert not s.refresh_due()  # the duty's time: but nothing it holds has run out, and no event came
    clock[0] = 1000.0 + 300.0 + 0.5
    assert s.refresh_due()
    s.dumped(6.0, cost=1.0, counted=False, rest=1e6)  # days of countdown: REFRESH_REST_MAX at most
    clock[0] += dump_schedule.REFRESH_REST_MAX - 1
    assert not s.refresh_due()
    clock[0] += 2
    assert s.refresh_due()
    s.dumped(7.0, cost=1.0, counted=False, rest=math.inf)  # an empty table: the same
    clock[0] += dump_schedule.REFRESH_REST_MAX + 1
    assert s.refresh_due()
    s.dumped(8.0, cost=1.0, counted=False, rest=1e6)
    s.touched()  # an event: the duty's time again
    clock[0] += duty + 1
    assert s.refresh_due()
    s.dumped(9.0, cost=1.0, counted=True)  # counters to refresh
    clock[0] += dump_schedule.REFRESH_DUTY + 1
    assert s.refresh_due()
    s.dumped(10.0, cost=1.0, counted=False, rest=1e6)
    s.reading(40, 40, 39)  # one flow fewer in the kernel, no event said so: under the drift's slack, not at rest
    assert not s.drifted()
    clock[0] += duty + 1
    assert s.refresh_due()


@pytest.mark.parametrize("acct", ["0", "1"])
def test_a_collector_leaves_a_table_at_rest_unread_until_an_event_comes(
        rec: Recorder, monkeypatch: pytest.MonkeyPatch, acct: str) -> None:
    """Refreshes a hundredth of a second apart by the duty; with accounting off, none while the table rests
    (its countdowns are an hour long), one soon after an event touches it. With accounting on, the counters
    move with no event to say so: the duty's refreshes, at rest or not."""
    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 0.01)
    src = FixedSource([row(i, 6, v4("10.0.0.1"), v4("10.0.0.2"), 1000 + i, 443, pstate=3, timeout=3600)
                       for i in range(1, 30)])
    values = src.sysctls() | {"nf_conntrack_acct": acct}
    monkeypatch.setattr(src, "sysctls", lambda: dict(values))
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        if acct == "1":
            rec.until(lambda: src.dumps >= 3, "refreshes by the duty")
            return
        time.sleep(1.0)
        assert src.dumps == 1
        new = row(5000, 17, v4("10.9.9.9"), v4("10.8.8.8"), 1000, 53, timeout=30)
        src.rows.append(new)
        src.push([(EV_NEW, new)])
        rec.until(lambda: src.dumps >= 2, "a refresh after the event")
    finally:
        c.stop()


def test_a_table_at_rest_that_lost_a_flow_without_an_event_is_read_again(
        rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow made before anyone listened ends with no DESTROY (nf_conntrack_events=2): one fewer in the kernel's
    count, under the drift's slack, still ends the rest, and the duty's refresh takes the flow out."""
    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 0.01)
    src = FixedSource([row(i, 6, v4("10.0.0.1"), v4("10.0.0.2"), 1000 + i, 443, pstate=3, timeout=3600)
                       for i in range(1, 30)])
    values = src.sysctls() | {"nf_conntrack_acct": "0"}
    monkeypatch.setattr(src, "sysctls", lambda: dict(values))
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        time.sleep(0.5)
        assert src.dumps == 1  # at rest
        src.rows.pop()
        rec.until(lambda: src.dumps >= 2 and rec.frames[-1].flows == 28, "a refresh without the gone flow")
    finally:
        c.stop()


def test_reread_reads_the_table_again_before_the_next_frame(rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the app deletes flows: no refresh would be due for an hour, the list must lose them now."""
    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 3600.0)
    src = FixedSource()
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        n = len(src.rows)
        del src.rows[:3]  # deleted with no event, as flows made before anyone listened are
        c.reread()
        rec.until(lambda: src.dumps >= 2 and rec.frames[-1].flows == n - 3, "the table read again")
    finally:
        c.stop()


def test_a_second_drop_while_the_resync_is_read_is_resynced_too(rec: Recorder) -> None:
    """A drop reported while the resync for an earlier one is read leaves the fresh table wrong again: it
    gets a resync of its own once the dump is in (the first drop's gap showing later must not swallow it)."""
    src = SlowDump()
    src.events_overflow = True  # read events while dumps are read, as the kernel's socket must be
    c = run(src, rec)
    try:
        rec.until(lambda: any(f.phase == LIVE for f in rec.frames), "live")
        src._events.put(EventBatch(dropped=True))
        rec.until(lambda: src.dumping, "the resync's dump")
        src.rows = src.rows[:200]  # the kernel moved on during the dump, and the events of it were dropped
        src._events.put(EventBatch(dropped=True))
        # as a loss (counted, and at once), not left for the drift check to find frames later
        rec.until(lambda: rec.frames[-1].lost == 2 and rec.frames[-1].flows == 200, "a resync for the second drop")
    finally:
        c.stop()

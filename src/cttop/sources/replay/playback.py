"""A recording played back as a :class:`cttop.sources.live.Source`, with a play clock.

The replay keeps the table as it stood at its cursor, so ``dump()`` answers like the kernel would have at that
moment, and ``events()`` hands out what was recorded between the cursor and the play clock. Dumps and events are
not kept in memory: playback streams them from the segment it is in, a dump decoded chunk by chunk into its table
and events a slice at a time; a seek restarts from the keyframe at the start of the segment holding the target.
A seek (or a recorded event loss) makes the next ``events()`` report ``lost=True``: exactly the signal after
which a live consumer redumps, so consumers need no replay-only path. Control calls (``seek``, ``pause``,
``resume``, ``set_speed``) and ``position`` are cheap and safe from the UI thread; the work of a seek is done by
the next data call, in the caller's worker thread.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any, Final

from cttop.kernel import events as kernel_events
from cttop.kernel.ctnetlink import Stats
from cttop.kernel.decode import Decoder
from cttop.kernel.events import EventBatch
from cttop.kernel.framing import NLH3, NLH_LEN, DecodeError, align
from cttop.model import EV_DESTROY, EV_UPDATE, R_TIMEOUT, Row
from cttop.sources.record import K_DUMP_BEGIN, K_DUMP_DATA, K_DUMP_END, K_EVENTS, K_LOST, K_STATS, K_SYSCTLS
from cttop.sources.replay.index import Recording, parse_stats, parse_sysctls
from cttop.sources.replay.reader import ReplayError
from cttop.table.packing import flow_key
from cttop.table.store import FlowTable

# Events per events() call. A decoded event costs ~600 bytes: the live socket's 200,000 would be 120 MB.
MAX_BATCH: Final = 5_000
# Events decoded at a time: a record of MAX_RECORD bytes of the smallest events would be ~30,000 rows at once.
EVENT_SLICE: Final = 1024


def decode_events(dec: Decoder, payload: bytes) -> list[tuple[int, Row]]:
    """Recorded event datagrams into (EV_*, row), classified as the live event socket does."""
    out: list[tuple[int, Row]] = []
    bad = kernel_events.decode_events(dec, payload, out)
    if bad:
        raise DecodeError(f"{bad} recorded event messages do not decode")
    return out


def _slice_end(payload: bytes, off: int) -> int:
    """Where the EVENT_SLICE messages from ``off`` end (the end, if the framing breaks: the decoder says how)."""
    n = len(payload)
    for _ in range(EVENT_SLICE):
        if off + NLH_LEN > n:
            return n
        length = NLH3.unpack_from(payload, off)[0]
        off += align(length)
        if length < NLH_LEN or off >= n:
            return n
    return off


def _check_speed(speed: float) -> None:
    if not 0 < speed < math.inf:
        raise ReplayError(f"replay: speed {speed:g}: must be more than 0, and finite")


def _changes(old: FlowTable, new: FlowTable) -> list[tuple[int, Row]]:
    """Events turning ``old`` into ``new``; a changed timeout alone is no news."""
    out: list[tuple[int, Row]] = [(EV_DESTROY, r) for r in old.rows() if flow_key(r) not in new]
    for r in new.rows():
        was = old.get(flow_key(r))
        if was is None or was[:R_TIMEOUT] != r[:R_TIMEOUT] or was[R_TIMEOUT + 1:] != r[R_TIMEOUT + 1:]:
            out.append((EV_UPDATE, r))
    return out


class ReplaySource:
    """A recording as a Source (``live = False``), with a play clock: pause, resume, speed, seek.

    Two locks: the data lock is held by the consumer's worker while it decodes or
    rebuilds (which can take a while on a big table); the clock lock guards only
    a few numbers, so the control calls and ``position`` never wait on that work.
    """

    live = False
    spec = None  # no processes to ask who owns a flow, no /proc
    events_overflow = False  # a recording's events wait for the reader

    def __init__(self, path: str, speed: float = 1.0, paused: bool = False) -> None:
        _check_speed(speed)
        self.recording = Recording.open(path)
        self.path = path
        # The header shows the label: a cut recording says so for as long as it is on screen.
        self.label = os.path.basename(path) + (" (cut short)" if self.recording.cut else "")
        self._lock = threading.Lock()  # the data: table, record stream, cursor
        self._clock = threading.Lock()  # the play clock and pending requests
        self._wake = threading.Event()  # set by control calls, to cut an events() wait short
        self._speed = speed
        self._paused = paused
        self._started = False
        self._anchor_wall = 0.0
        self._anchor_pos = 0.0
        self._seek_to: float | None = None
        self._resync = False
        self._cursor = 0.0
        self._decoder = Decoder()
        self._records: Generator[tuple[int, int, float, bytes], None, None] | None = None
        self._next: tuple[int, int, float, bytes] | None = None
        self._rest: tuple[bytes, int] | None = None  # an events record being played: it, and where it is at
        # The last stats and sysctls records played (the ones at the cursor), raw; parsed when asked for.
        self._last: dict[int, bytes] = {}
        self._parsed: dict[int, tuple[bytes, Any]] = {}
        self.table = FlowTable()
        self._goto(0.0)

    # --- the play clock (safe from any thread, never blocks on the data) ------------------

    @property
    def playback(self) -> ReplaySource:
        return self

    @property
    def start(self) -> float:
        return self.recording.start

    @property
    def duration(self) -> float:
        return self.recording.duration

    @property
    def position(self) -> float:
        """Seconds from the start of the recording that the view is at (or is seeking to)."""
        seek = self._seek_to
        return seek if seek is not None else self._cursor

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def at_end(self) -> bool:
        """Whether everything recorded has been handed out (or a seek to the end is pending)."""
        seek = self._seek_to
        return seek >= self.duration if seek is not None else self._next is None and self._rest is None

    def pause(self) -> None:
        with self._clock:
            if not self._paused:
                self._anchor_pos = self._target_locked()
                self._paused = True
        self._wake.set()

    def resume(self) -> None:
        with self._clock:
            if self._paused:
                self._paused = False
                self._anchor_wall = time.monotonic()
                self._anchor_pos = self._cursor
        self._wake.set()

    def set_speed(self, speed: float) -> None:
        _check_speed(speed)
        with self._clock:
            self._anchor_pos = self._target_locked()
            self._anchor_wall = time.monotonic()
            self._speed = speed
        self._wake.set()

    def seek(self, t: float) -> None:
        """Move to ``t`` seconds from the start (clamped); carried out by the next data call."""
        with self._clock:
            self._seek_to = min(max(0.0, t), self.duration)
        self._wake.set()

    def timeline(self) -> list[tuple[float, int, int]]:
        """(seconds from start, count, max) of every recorded stats sample, for a time line."""
        start = self.recording.start
        return [(s.t - start, s.count, s.max) for s in self.recording.stats]

    def _target_locked(self) -> float:
        if self._paused or not self._started:
            return self._anchor_pos
        return min(self._anchor_pos + (time.monotonic() - self._anchor_wall) * self._speed, self.duration)

    def _target(self) -> float:
        """Where the play clock is now: what the cursor moves towards."""
        with self._clock:
            return self._target_locked()

    # --- reading the records (the caller holds the data lock) -----------------------------

    def _goto(self, t: float) -> None:
        """Rebuild the table at ``t`` seconds from the start, from the keyframe before it."""
        rec = self.recording
        seg = rec.segment_for(rec.start + t)
        if self._records is not None:
            self._records.close()
        self._records = rec.records(seg)
        self._next = next(self._records, None)
        self._rest = None
        self._last = {}
        self.table = FlowTable()
        self._cursor = rec.segments[seg][1] - rec.start
        self._advance(t, collect=False, need_dump=True)
        with self._clock:
            self._anchor_pos = self._cursor
            self._anchor_wall = time.monotonic()

    def _take(self) -> tuple[int, float, bytes]:
        assert self._next is not None and self._records is not None
        _member, kind, t, payload = self._next
        try:
            self._next = next(self._records, None)
        except ReplayError:
            self._next = None
            raise
        if kind in (K_STATS, K_SYSCTLS):
            self._last[kind] = payload
        return kind, t, payload

    def _advance(self, target: float, collect: bool = True, need_dump: bool = False) -> EventBatch:
        """Apply every record up to ``target`` seconds, and past it while a dump is due.

        A dump is due at a segment's start (its keyframe) and after a recorded
        event loss (the resync dump that followed), so the table is never without it.
        """
        batch = EventBatch()
        start = self.recording.start
        try:
            while True:
                if self._rest is not None:  # a slice at a time: the rows in memory stay a few thousand
                    payload, off = self._rest
                    end = _slice_end(payload, off)
                    self._rest = (payload, end) if end < len(payload) else None
                    events = decode_events(self._decoder, payload[off:end])
                    self.table.apply_events(events)
                    if collect:
                        batch.events += events
                        if len(batch.events) >= MAX_BATCH:
                            return batch
                    continue
                if self._next is None or not (need_dump or self._next[2] - start <= target):
                    break
                kind, t, payload = self._take()
                self._cursor = max(self._cursor, t - start)
                if kind == K_EVENTS:
                    self._rest = (payload, 0)
                elif kind == K_DUMP_BEGIN:
                    changes = self._apply_dump()
                    if collect and not need_dump:
                        batch.events += changes
                    need_dump = False
                elif kind == K_LOST:
                    batch.lost = True
                    need_dump = True
        except DecodeError as e:
            # Past the scan (which frames every record but decodes no flow): where in the recording it is.
            raise ReplayError(f"replay: {self.path} is corrupt at {self._cursor:.3f} s of "
                              f"{self.recording.duration:.3f}: {e}") from None
        self._cursor = max(self._cursor, min(target, self.duration))
        return batch

    def _apply_dump(self) -> list[tuple[int, Row]]:
        """Read the dump that just began up to its end (restarting if it was restarted) and apply it.

        Returns what the dump changed as events. The kernel sends no events for
        flows created while nobody listened (nf_conntrack_events=2), so a dump
        can hold news the events missed; handing it on as events keeps a
        consumer's table equal to the replay's without a redump.
        """
        # Decoded chunk by chunk into the new table, so a dump costs the flows it holds, not its bytes
        # (a crafted dump of one message repeated a million times is one flow).
        table, done = FlowTable(), False
        while self._next is not None:
            kind, t, payload = self._take()
            self._cursor = max(self._cursor, t - self.recording.start)
            if kind == K_DUMP_BEGIN:
                table, done = FlowTable(), False
            elif kind == K_DUMP_DATA and not done:
                rows: list[Row] = []
                done = self._decoder.decode_chunk(payload, rows)
                fresh = {k: r for k, r in zip(map(flow_key, rows), rows) if k not in table}
                table.extend(list(fresh.values()))
            elif kind == K_DUMP_END:
                old, self.table = self.table, table
                return _changes(old, self.table)
        return []

    def _pending_seek(self) -> None:
        t = self._seek_to
        if t is None:
            return
        self._goto(t)
        with self._clock:
            if self._seek_to == t:  # a newer request stays for the next call
                self._seek_to = None
        self._resync = True

    # --- the Source protocol --------------------------------------------------------------

    def subscribe(self) -> None:
        """Nothing to subscribe to; the play clock starts with the first events() call."""

    def dump(self) -> list[Row]:
        with self._lock:
            self._pending_seek()
            return list(self.table.rows())

    def dump_chunks(self) -> Iterator[list[Row]]:
        yield self.dump()  # the recording's table is in memory already

    def events(self, timeout: float) -> EventBatch:
        deadline = time.monotonic() + timeout
        with self._clock:
            if not self._started:
                self._started = True
                self._anchor_wall = time.monotonic()
        while True:
            self._wake.clear()
            with self._lock:
                self._pending_seek()
                if self._resync:
                    self._resync = False
                    return EventBatch(lost=True)
                target = self._target()
                batch = self._advance(target)
                if batch.events or batch.lost:
                    return batch
                ahead = self._next[2] - self.recording.start - target if self._next is not None else None
            left = deadline - time.monotonic()
            if left <= 0:
                return batch
            if ahead is not None and not self._paused:
                left = min(left, max(ahead / self._speed, 0.001))
            self._wake.wait(left)

    def stats(self) -> Stats:
        s = self._at_cursor(K_STATS)
        return Stats(s[0], s[1]) if s is not None else Stats(len(self.table), 0)

    def stats_cpu(self) -> list[dict[str, int]]:
        s = self._at_cursor(K_STATS)
        if s is None:
            return []
        names = self.recording.names
        return [{"cpu": c[0], **dict(zip(names, c[1:], strict=False))} for c in s[2]]

    def sysctls(self) -> dict[str, str]:
        return dict(self._at_cursor(K_SYSCTLS) or {})

    def now(self) -> float:
        with self._lock:
            self._pending_seek()
            return self.recording.start + self._cursor

    def close(self) -> None:
        with self._lock:
            self._next = self._rest = None
            if self._records is not None:
                self._records.close()

    def _at_cursor(self, kind: int) -> Any:
        """The last stats or sysctls record played, parsed (the scan has checked that it parses)."""
        with self._lock:
            self._pending_seek()
            raw = self._last.get(kind)
            if raw is None:
                return None
            done = self._parsed.get(kind)
            if done is None or done[0] is not raw:
                value = parse_stats(raw, len(self.recording.names)) if kind == K_STATS else parse_sysctls(raw)
                done = self._parsed[kind] = (raw, value)
            return done[1]

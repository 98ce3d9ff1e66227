"""``cttop replay``: a recording played back as a :class:`cttop.sources.live.Source`.

Opening a file reads it through once: that validates every record and
indexes the segments, the small stats and sysctl records, and the time line.
Damage is found then, never halfway through a session. A file cut short (a
recorder killed with kill -9, a full disk) opens up to its last complete record
outside a dump; a corrupt one up to the end of the last segment before the
damage, whose gzip CRC vouches for it. :attr:`Recording.cut` says what was left
out; only a file with nothing whole in it (no complete first keyframe) is an error. Dumps and events are not kept: playback
streams them from the segment it is in, and a seek restarts from the keyframe
at the start of the segment holding the target time.

The replay keeps the table as it stood at its cursor, so ``dump()`` answers
like the kernel would have at that moment, and ``events()`` hands out what was
recorded between the cursor and the play clock. A seek (or a recorded event
loss) makes the next ``events()`` report ``lost=True``: exactly the signal
after which a live consumer redumps, so consumers need no replay-only path.
Control calls (``seek``, ``pause``, ``resume``, ``set_speed``) and ``position``
are cheap and safe from the UI thread; the work of a seek is done by the next
data call, in the caller's worker thread.
"""

from __future__ import annotations

import bisect
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from cttop.errors import CttopError
from cttop.sources.record import (
    HEADER,
    K_DUMP_BEGIN,
    K_DUMP_DATA,
    K_DUMP_END,
    K_END,
    K_EVENTS,
    K_LOST,
    K_META,
    K_STATS,
    K_SYSCTLS,
    KINDS,
    MAGIC,
    MAX_RECORD,
    REC,
    VERSION,
)
from cttop.kernel import events as kernel_events
from cttop.kernel.ctnetlink import Stats
from cttop.kernel.decode import Decoder
from cttop.kernel.framing import DecodeError, messages
from cttop.kernel.events import EventBatch
from cttop.model import EV_DESTROY, EV_UPDATE, R_TIMEOUT, Row
from cttop.table.packing import flow_key
from cttop.table.store import FlowTable

READ_CHUNK: Final = 1 << 20
MAX_BATCH: Final = 200_000  # events per events() call, as the live socket caps them


class ReplayError(CttopError):
    """A recording that cannot be replayed; the message names the file and the byte."""


class Corrupt(ReplayError):
    """Damage in the segment starting at file offset ``member``."""

    def __init__(self, path: str, member: int, why: str) -> None:
        self.path, self.member, self.why = path, member, why
        super().__init__(f"replay: {path} is corrupt at byte {member}: {why}")

    def located(self, size: int) -> str:
        """The message with the damaged byte range, found by decompressing the segment again."""
        return (f"replay: {self.path} is corrupt in bytes {self.member}-{_segment_end(self.path, self.member, size)}"
                f": {self.why}")


class Truncated(ReplayError):
    def __init__(self, path: str, size: int) -> None:
        super().__init__(f"replay: {path} is truncated at byte {size}")


def _segment_end(path: str, member: int, size: int) -> int:
    """Where the segment at ``member`` ends, or where its damage was noticed: the end of a damaged range."""
    d = zlib.decompressobj(31)
    pos = member
    with open(path, "rb") as f:
        f.seek(member)
        # Small steps, so the offset at which zlib gives up is known to within a step.
        while data := f.read(256):
            try:
                d.decompress(data)
            except zlib.error:
                return min(pos + len(data), size)
            if d.eof:
                return pos + len(data) - len(d.unused_data)
            pos += len(data)
    return size


def read_header(path: str) -> int:
    """Check magic and version; the file's size."""
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER.size)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise ReplayError(f"replay: {path}: no such file") from None
    except IsADirectoryError:
        raise ReplayError(f"replay: {path}: is a directory") from None
    except OSError as e:
        raise ReplayError(f"replay: {path}: {e.strerror}") from None
    if len(head) < HEADER.size:
        if head and MAGIC.startswith(head[:len(MAGIC)]):
            raise Truncated(path, size)
        raise ReplayError(f"replay: {path} is not a cttop recording (no {MAGIC.decode()} header)")
    magic, version, _flags = HEADER.unpack(head)
    if magic != MAGIC:
        raise ReplayError(f"replay: {path} is not a cttop recording (no {MAGIC.decode()} header)")
    if version != VERSION:
        raise ReplayError(f"replay: {path} is format version {version}; this cttop reads version {VERSION}")
    return size


def stream(path: str, offset: int, size: int) -> Generator[tuple[int, int, float, bytes], None, None]:
    """``(segment offset, kind, time, payload)`` of every record from the segment at ``offset`` on."""
    try:
        f = open(path, "rb")  # closed in finally: the generator may be abandoned
    except OSError as e:
        raise ReplayError(f"replay: {path}: {e.strerror}") from None
    try:
        f.seek(offset)
        pos = member = offset
        d = zlib.decompressobj(31)
        pending = bytearray()
        while True:
            data = f.read(READ_CHUNK)
            if not data:
                if pos > member or pending:
                    raise Truncated(path, size)
                return
            while data:
                try:
                    pending += d.decompress(data)
                except zlib.error as e:
                    raise Corrupt(path, member, f"compressed data: {e}") from None
                off = 0
                while len(pending) - off >= REC.size:
                    kind, t, ln = REC.unpack_from(pending, off)
                    if kind not in KINDS or ln > MAX_RECORD or t != t:
                        raise Corrupt(path, member, f"bad record header (kind {kind}, {ln} bytes)")
                    if len(pending) - off - REC.size < ln:
                        break
                    start = off + REC.size
                    yield member, kind, t, bytes(pending[start:start + ln])
                    off = start + ln
                del pending[:off]
                if d.eof:
                    if pending:
                        raise Corrupt(path, member, "a record runs past the end of its segment")
                    used = len(data) - len(d.unused_data)
                    data = d.unused_data
                    pos += used
                    member = pos
                    d = zlib.decompressobj(31)
                else:
                    pos += len(data)
                    data = b""
    finally:
        f.close()


def _count_messages(payload: bytes) -> int:
    """Number of netlink messages in ``payload``; DecodeError if their framing is broken."""
    return sum(1 for _ in messages(payload))


@dataclass
class StatsSample:
    t: float
    count: int
    max: int
    cpus: list[list[int]]


@dataclass(frozen=True)
class _Whole:
    """A point a damaged recording can end at: after a record outside any dump, its segment's keyframe complete."""

    member: int
    records: int  # records of the segment at ``member`` up to here
    segments: int
    stats: int
    sysctls: int
    dumps: int
    events: int
    lost: int
    t: float


@dataclass
class Recording:
    """What a scan of a recording learned: the index and the small records."""

    path: str
    size: int
    meta: dict[str, Any]
    start: float
    end: float
    segments: list[tuple[int, float]] = field(default_factory=list)  # (file offset, time of first record)
    stats: list[StatsSample] = field(default_factory=list)
    sysctls: list[tuple[float, dict[str, str]]] = field(default_factory=list)
    dumps: int = 0
    events: int = 0
    lost: int = 0
    cut: str | None = None  # why the file's end was left out, for a truncated or damaged file
    stop: tuple[int, int] | None = None  # (segment offset, records in it) where the readable part ends

    @property
    def duration(self) -> float:
        return self.end - self.start

    @classmethod
    def open(cls, path: str) -> Recording:
        size = read_header(path)
        rec: Recording | None = None
        last_t = float("-inf")
        ended = False
        dumped = True  # whether the current segment's keyframe dump has been seen
        in_dump = False
        whole: _Whole | None = None  # the last point the recording can end at
        checked: _Whole | None = None  # the same, in a segment whose gzip CRC has been checked
        member_now, n = -1, 0
        cut_short = False
        dec = Decoder()
        try:
            for member, kind, t, payload in stream(path, HEADER.size, size):
                if member != member_now:
                    if not dumped:
                        raise Corrupt(path, member_now, "a segment without its keyframe dump")
                    checked = whole  # the stream moves on only once the segment's CRC checked out
                    member_now, n = member, 0
                n += 1
                if ended:
                    raise Corrupt(path, member, "records after the end marker")
                if rec is None:
                    rec = cls._begin(path, size, member, kind, t, payload)
                if t < last_t:
                    raise Corrupt(path, member, "time goes backwards")
                last_t = t
                if not rec.segments or rec.segments[-1][0] != member:
                    rec.segments.append((member, t))
                    dumped = False
                rec._scan_record(dec, member, kind, t, payload)
                in_dump = kind in (K_DUMP_BEGIN, K_DUMP_DATA)
                dumped = dumped or kind == K_DUMP_END
                ended = kind == K_END
                if dumped and not in_dump:
                    whole = _Whole(member, n, len(rec.segments), len(rec.stats), len(rec.sysctls), rec.dumps,
                                   rec.events, rec.lost, t)
        except Truncated:
            cut_short = True  # even after the end marker: the last segment's CRC is missing
        except Corrupt as e:
            keep = checked if e.member <= member_now else whole
            if rec is None or keep is None:
                raise ReplayError(e.located(size)) from None
            rec._cut_at(keep, f"{e.located(size)}; replaying the {keep.t - rec.start:.1f} s before byte "
                              f"{e.member}, the rest is left out")
            return rec
        if rec is not None and ended and not cut_short:
            rec.end = last_t
            return rec
        if rec is None or whole is None:
            raise Truncated(path, size)
        rec._cut_at(whole, f"replay: {path} was cut off at byte {size} (the recorder did not finish): "
                           f"replaying its first {whole.t - rec.start:.1f} s; the last {last_t - whole.t:.1f} s "
                           "before the cut are incomplete and left out")
        return rec

    @classmethod
    def _begin(cls, path: str, size: int, member: int, kind: int, t: float, payload: bytes) -> Recording:
        """The recording its first record describes."""
        if kind != K_META:
            raise Corrupt(path, member, "the first record is not the recording's description")
        try:
            meta = json.loads(payload)
            start = float(meta["start"])
            names = meta["stats_names"]
        except (ValueError, KeyError, TypeError) as e:
            raise Corrupt(path, member, f"bad description: {e}") from None
        if not isinstance(names, list):
            raise Corrupt(path, member, "bad description: stats_names")
        return cls(path, size, meta, start, t)

    def _cut_at(self, whole: _Whole, why: str) -> None:
        """Forget everything after ``whole``: playback stops there too."""
        del self.segments[whole.segments:], self.stats[whole.stats:], self.sysctls[whole.sysctls:]
        self.dumps, self.events, self.lost = whole.dumps, whole.events, whole.lost
        self.end = whole.t
        self.stop = (whole.member, whole.records)
        self.cut = why

    def records(self, seg: int) -> Generator[tuple[int, int, float, bytes], None, None]:
        """:func:`stream` from segment ``seg``, ending where :meth:`open` found the readable part ends."""
        inner = stream(self.path, self.segments[seg][0], self.size)
        try:
            if self.stop is None:
                yield from inner
                return
            last, count = self.stop
            n = 0
            for r in inner:
                yield r
                n = n + 1 if r[0] == last else 0
                # Stop before asking for more: past here the stream would hit the damage or the cut.
                if n == count:
                    return
        finally:
            inner.close()

    def _scan_record(self, dec: Decoder, member: int, kind: int, t: float, payload: bytes) -> None:
        try:
            if kind == K_STATS:
                d = json.loads(payload)
                self.stats.append(StatsSample(t, int(d["count"]), int(d["max"]), [list(c) for c in d["cpus"]]))
            elif kind == K_SYSCTLS:
                d = json.loads(payload)
                if not isinstance(d, dict):
                    raise ValueError("not a mapping")
                self.sysctls.append((t, {str(k): str(v) for k, v in d.items()}))
            elif kind == K_EVENTS:
                self.events += _count_messages(payload)
            elif kind == K_DUMP_DATA:
                _count_messages(payload)
            elif kind == K_DUMP_END:
                struct.unpack("<I", payload)
                self.dumps += 1
            elif kind == K_LOST:
                self.lost += 1
        except (ValueError, KeyError, TypeError, struct.error, DecodeError) as e:
            raise Corrupt(self.path, member, f"bad record at {t - self.start:.3f} s: {e}") from None

    def segment_for(self, t: float) -> int:
        """Index of the segment whose keyframe is the last one at or before absolute time ``t``."""
        return max(0, bisect.bisect_right([s[1] for s in self.segments], t) - 1)


def decode_events(dec: Decoder, payload: bytes) -> list[tuple[int, Row]]:
    """Recorded event datagrams into (EV_*, row), classified as the live event socket does."""
    out: list[tuple[int, Row]] = []
    bad = kernel_events.decode_events(dec, payload, out)
    if bad:
        raise DecodeError(f"{bad} recorded event messages do not decode")
    return out


def _changes(old: FlowTable, new: FlowTable, rows: list[Row]) -> list[tuple[int, Row]]:
    """Events turning ``old`` into ``new`` (whose rows are ``rows``); a changed timeout alone is no news."""
    out: list[tuple[int, Row]] = [(EV_DESTROY, r) for r in old.rows() if flow_key(r) not in new]
    for r in rows:
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

    def __init__(self, path: str, speed: float = 1.0, paused: bool = False) -> None:
        if not speed > 0:
            raise ReplayError(f"replay: --speed {speed:g}: must be more than 0")
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
        self.table = FlowTable()
        self._goto(0.0)

    # --- the play clock (safe from any thread, never blocks on the data) ------------------

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
        return seek >= self.duration if seek is not None else self._next is None

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
        if not speed > 0:
            raise ReplayError(f"replay: speed {speed:g}: must be more than 0")
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
        return kind, t, payload

    def _advance(self, target: float, collect: bool = True, need_dump: bool = False) -> EventBatch:
        """Apply every record up to ``target`` seconds, and past it while a dump is due.

        A dump is due at a segment's start (its keyframe) and after a recorded
        event loss (the resync dump that followed), so the table is never without it.
        """
        batch = EventBatch()
        start = self.recording.start
        try:
            while self._next is not None and (need_dump or self._next[2] - start <= target):
                kind, t, payload = self._take()
                self._cursor = max(self._cursor, t - start)
                if kind == K_EVENTS:
                    events = decode_events(self._decoder, payload)
                    self.table.apply_events(events)
                    if collect:
                        batch.events += events
                        if len(batch.events) >= MAX_BATCH:
                            return batch
                elif kind == K_DUMP_BEGIN:
                    changes = self._apply_dump()
                    if collect and not need_dump:
                        batch.events += changes
                    need_dump = False
                elif kind == K_LOST:
                    batch.lost = True
                    need_dump = True
        except DecodeError as e:
            raise ReplayError(f"replay: {self.path} is corrupt: {e}") from None
        self._cursor = max(self._cursor, min(target, self.duration))
        return batch

    def _apply_dump(self) -> list[tuple[int, Row]]:
        """Read the dump that just began up to its end (restarting if it was restarted) and apply it.

        Returns what the dump changed as events. The kernel sends no events for
        flows created while nobody listened (nf_conntrack_events=2), so a dump
        can hold news the events missed; handing it on as events keeps a
        consumer's table equal to the replay's without a redump.
        """
        chunks: list[bytes] = []
        while self._next is not None:
            kind, t, payload = self._take()
            self._cursor = max(self._cursor, t - self.recording.start)
            if kind == K_DUMP_BEGIN:
                chunks = []
            elif kind == K_DUMP_DATA:
                chunks.append(payload)
            elif kind == K_DUMP_END:
                rows: list[Row] = []
                for chunk in chunks:
                    if self._decoder.decode_chunk(chunk, rows):
                        break
                old, self.table = self.table, FlowTable()
                self.table.apply_dump(rows)
                return _changes(old, self.table, rows)
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
        s = self._stats_sample()
        return Stats(s.count, s.max) if s is not None else Stats(len(self.table), 0)

    def stats_cpu(self) -> list[dict[str, int]]:
        s = self._stats_sample()
        if s is None:
            return []
        names = self.recording.meta["stats_names"]
        return [{"cpu": c[0], **dict(zip(names, c[1:], strict=False))} for c in s.cpus]

    def sysctls(self) -> dict[str, str]:
        with self._lock:
            self._pending_seek()
            items = self.recording.sysctls
            i = bisect.bisect_right([t for t, _ in items], self.recording.start + self._cursor) - 1
            return dict(items[max(i, 0)][1]) if items else {}

    def now(self) -> float:
        with self._lock:
            self._pending_seek()
            return self.recording.start + self._cursor

    def close(self) -> None:
        with self._lock:
            self._next = None
            if self._records is not None:
                self._records.close()

    def _stats_sample(self) -> StatsSample | None:
        with self._lock:
            self._pending_seek()
            items = self.recording.stats
            if not items:
                return None
            i = bisect.bisect_right([s.t for s in items], self.recording.start + self._cursor) - 1
            return items[max(i, 0)]

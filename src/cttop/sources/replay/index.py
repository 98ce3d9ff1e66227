"""The index of a recording: one read through the file validates every record and keeps, in memory that does
not grow with the file, the segments' offsets, a decimated time line and the counts. Damage is found here, never
halfway through a session: a file cut short or damaged is indexed up to its last whole point (:attr:`Recording.cut`
says what was left out). JSON records are sized up before they are parsed."""

from __future__ import annotations

import bisect
import itertools
import json
import struct
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, overload

from cttop.kernel.framing import DecodeError, count_messages
from cttop.sources.record import (
    DUMP_END,
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
    MAX_RECORD,
)
from cttop.sources.replay.reader import Corrupt, Inflated, ReplayError, Truncated, read_header, stream

MAX_CPUS: Final = 8192  # Linux's largest NR_CPUS: more per-CPU stats entries than that are no recording's
MAX_NAMES: Final = 256  # stats names, sysctls per record: a few dozen in any real recording
MAX_SMALL: Final = 64 << 10  # bytes of a description or sysctls record: a few hundred in any real recording
MAX_SAMPLES: Final = 1 << 16  # time line points kept; beyond, every other is dropped (the screen has ~200 cells)
MAX_SEGMENTS: Final = 1 << 18  # a year of 2-minute dump intervals
MAX_SPAN: Final = 10 * 366 * 86400.0  # seconds a recording may span
MAX_EPOCH: Final = 1e10  # its start, as Unix time (year 2286): beyond, no clock can show it


@dataclass(frozen=True)
class StatsSample:
    t: float
    count: int
    max: int


class Samples:
    """The stats samples' (time, count, max), for the time line: flat arrays, at most MAX_SAMPLES of them.

    Past that, every other sample is dropped and only every ``stride``-th new one kept, so a week of
    1 s samples costs what 18 hours do. The per-CPU values are not kept: they are read back at the cursor.
    """

    def __init__(self) -> None:
        self.t = array("d")
        self.count = array("q")
        self.max = array("q")
        self.stride = 1
        self._seen = 0

    def add(self, t: float, count: int, mx: int) -> None:
        self._seen += 1
        if (self._seen - 1) % self.stride:
            return
        if len(self.t) >= MAX_SAMPLES:
            self.t, self.count, self.max = self.t[::2], self.count[::2], self.max[::2]
            self.stride *= 2
            if (self._seen - 1) % self.stride:
                return
        self.t.append(t)
        self.count.append(count)
        self.max.append(mx)

    def cut_after(self, t: float) -> None:
        n = bisect.bisect_right(self.t, t)
        del self.t[n:], self.count[n:], self.max[n:]

    def __len__(self) -> int:
        return len(self.t)

    @overload
    def __getitem__(self, i: int) -> StatsSample: ...

    @overload
    def __getitem__(self, i: slice) -> list[StatsSample]: ...

    def __getitem__(self, i: int | slice) -> StatsSample | list[StatsSample]:
        if isinstance(i, slice):
            return [StatsSample(*x) for x in zip(self.t[i], self.count[i], self.max[i])]
        return StatsSample(self.t[i], self.count[i], self.max[i])

    def __iter__(self) -> Iterator[StatsSample]:
        return (StatsSample(*x) for x in zip(self.t, self.count, self.max))


class Segments:
    """(file offset, time of the first record) of every segment, in flat arrays (a crafted file may hold many)."""

    def __init__(self) -> None:
        self.offsets = array("q")
        self.times = array("d")

    def append(self, item: tuple[int, float]) -> None:
        self.offsets.append(item[0])
        self.times.append(item[1])

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> tuple[int, float]:
        return self.offsets[i], self.times[i]

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self.offsets, self.times)

    def __delitem__(self, s: slice) -> None:
        del self.offsets[s], self.times[s]


@dataclass(frozen=True)
class _Whole:
    """A point a damaged recording can end at: after a record outside any dump, its segment's keyframe complete."""

    member: int
    records: int  # records of the segment at ``member`` up to here
    segments: int
    dumps: int
    events: int
    lost: int
    t: float


def _int(v: object) -> int:
    """A JSON integer (not a bool, not a float) that fits in a signed 64-bit array slot."""
    if type(v) is not int or not -(1 << 63) <= v < 1 << 63:
        raise ValueError(f"not an integer: {str(v)[:20]}")
    return v


def _load(payload: bytes, containers: int, values: int, size: int = MAX_RECORD) -> Any:
    """JSON of at most ``size`` bytes, ``containers`` lists and objects and ``values`` items, counted before any
    is built: parsed, an empty list costs ~70 bytes for its 3 bytes of text and a float ~36 for its 4, so 2 MB of
    "[]," would take 45 MB and of "1.5," 18 MB. (Brackets and commas in strings count too; cttop records few.)"""
    if len(payload) > size:
        raise ValueError(f"{len(payload)} bytes, more than {size}")
    if payload.count(b"[") + payload.count(b"{") > containers:
        raise ValueError(f"more than {containers} lists and objects")
    if payload.count(b",") >= values:
        raise ValueError(f"more than {values} items")
    return json.loads(payload)


def parse_stats(payload: bytes, names: int) -> tuple[int, int, list[list[int]]]:
    """(count, max, per-CPU rows) of a stats record; ValueError if it is not one, or is past the limits."""
    d = _load(payload, MAX_CPUS + 2, MAX_CPUS * (2 + names) + 8)
    if not isinstance(d, dict):
        raise ValueError("not a mapping")
    cpus = d["cpus"]
    if not isinstance(cpus, list) or len(cpus) > MAX_CPUS:
        raise ValueError(f"cpus: a list of at most {MAX_CPUS}")
    rows = f"a CPU's stats: a list of at most {1 + names} integers"
    if not all(type(c) is list and 1 <= len(c) <= 1 + names for c in cpus):
        raise ValueError(rows)
    try:
        array("q", itertools.chain.from_iterable(cpus))  # every value a 64-bit integer (checked in C: fast)
    except (TypeError, OverflowError):
        raise ValueError(rows) from None
    return _int(d["count"]), _int(d["max"]), cpus


def parse_sysctls(payload: bytes) -> dict[str, str]:
    d = _load(payload, 1, MAX_NAMES, MAX_SMALL)
    if not isinstance(d, dict) or len(d) > MAX_NAMES:
        raise ValueError(f"not a mapping of at most {MAX_NAMES} names")
    return {str(k): str(v) for k, v in d.items()}


@dataclass
class Recording:
    """What a scan of a recording learned: the index and the counts, in memory that does not grow with the file."""

    path: str
    size: int
    ident: tuple[int, int]  # (device, inode): every later read must be of this very file
    meta: dict[str, Any]
    names: list[str]  # the stats names, in the order of the per-CPU rows
    start: float
    end: float
    segments: Segments = field(default_factory=Segments)
    stats: Samples = field(default_factory=Samples)
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
        size, ident = read_header(path)
        rec: Recording | None = None
        last_t = float("-inf")
        ended = False
        dumped = True  # whether the current segment's keyframe dump has been seen
        in_dump = False
        whole: _Whole | None = None  # the last point the recording can end at
        checked: _Whole | None = None  # the same, in a segment whose gzip CRC has been checked
        member_now, n = -1, 0
        cut_short = False
        try:
            for member, kind, t, payload in stream(path, HEADER.size, size, ident):
                if member != member_now:
                    if not dumped:
                        raise Corrupt(path, member_now, "a segment without its keyframe dump")
                    checked = whole  # the stream moves on only once the segment's CRC checked out
                    member_now, n = member, 0
                n += 1
                if ended:
                    raise Corrupt(path, member, "records after the end marker")
                if rec is None:
                    rec = cls._begin(path, size, ident, member, kind, t, payload)
                if t < last_t:
                    raise Corrupt(path, member, "time goes backwards")
                if not rec.start - 1 <= t <= rec.start + MAX_SPAN:
                    raise Corrupt(path, member, f"a record's time is {t - rec.start:.3g} s from the start")
                last_t = t
                if not rec.segments or rec.segments.offsets[-1] != member:
                    if len(rec.segments) >= MAX_SEGMENTS:
                        raise Corrupt(path, member, f"more than {MAX_SEGMENTS} segments")
                    rec.segments.append((member, t))
                    dumped = False
                rec._scan_record(member, kind, t, payload)
                in_dump = kind in (K_DUMP_BEGIN, K_DUMP_DATA)
                dumped = dumped or kind == K_DUMP_END
                ended = kind == K_END
                if dumped and not in_dump:
                    whole = _Whole(member, n, len(rec.segments), rec.dumps, rec.events, rec.lost, t)
        except Truncated:
            cut_short = True  # even after the end marker: the last segment's CRC is missing
        except Inflated as e:
            if rec is None or whole is None:
                raise
            rec._cut_at(whole, f"{e}; replaying its first {whole.t - rec.start:.1f} s, the rest is left out")
            return rec
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
    def _begin(cls, path: str, size: int, ident: tuple[int, int], member: int, kind: int, t: float,
               payload: bytes) -> Recording:
        """The recording its first record describes."""
        if kind != K_META:
            raise Corrupt(path, member, "the first record is not the recording's description")
        try:
            meta = _load(payload, 64, 4096, MAX_SMALL)
            if not isinstance(meta, dict):
                raise ValueError("not a mapping")
            start = float(meta["start"])
            names = meta["stats_names"]
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            raise Corrupt(path, member, f"bad description: {e}") from None
        if not 0 <= start <= MAX_EPOCH:
            raise Corrupt(path, member, "bad description: start")
        if not isinstance(names, list) or len(names) > MAX_NAMES or \
                not all(isinstance(x, str) and len(x) <= 64 for x in names):
            raise Corrupt(path, member, "bad description: stats_names")
        return cls(path, size, ident, meta, names, start, t)

    def _cut_at(self, whole: _Whole, why: str) -> None:
        """Forget everything after ``whole``: playback stops there too."""
        del self.segments[whole.segments:]
        self.stats.cut_after(whole.t)
        self.dumps, self.events, self.lost = whole.dumps, whole.events, whole.lost
        self.end = whole.t
        self.stop = (whole.member, whole.records)
        self.cut = why

    def records(self, seg: int) -> Generator[tuple[int, int, float, bytes], None, None]:
        """:func:`stream` from segment ``seg``, ending where :meth:`open` found the readable part ends."""
        inner = stream(self.path, self.segments[seg][0], self.size, self.ident, guard=False)
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

    def _scan_record(self, member: int, kind: int, t: float, payload: bytes) -> None:
        try:
            if kind == K_STATS:
                count, mx, _cpus = parse_stats(payload, len(self.names))
                self.stats.add(t, count, mx)
            elif kind == K_SYSCTLS:
                parse_sysctls(payload)
            elif kind == K_EVENTS:
                self.events += count_messages(payload, strict=True)
            elif kind == K_DUMP_DATA:
                count_messages(payload, strict=True)
            elif kind == K_DUMP_END:
                DUMP_END.unpack(payload)
                self.dumps += 1
            elif kind == K_LOST:
                self.lost += 1
        except (ValueError, KeyError, TypeError, OverflowError, RecursionError, struct.error, DecodeError) as e:
            why = f"no field {e}" if isinstance(e, KeyError) else str(e)
            raise Corrupt(self.path, member, f"bad record at {t - self.start:.3f} s: {why}") from None

    def segment_for(self, t: float) -> int:
        """Index of the segment whose keyframe is the last one at or before absolute time ``t``."""
        return max(0, bisect.bisect_right(self.segments.times, t) - 1)


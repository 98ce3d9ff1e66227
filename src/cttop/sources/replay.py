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

Recordings are attached to bug reports: untrusted input. Everything read is
bounded, so a crafted file costs bounded memory whatever it claims: the file
must be a regular file (a FIFO or a device is refused, and no symbolic link is
followed); decompression hands out at most OUT_CHUNK bytes at a time, and a
file inflating past MAX_RATIO is read no further; a record is at most
MAX_RECORD bytes, and JSON is sized up before it is parsed; the index keeps
per-segment offsets and a decimated time line in flat arrays, never a record's
contents (the stats and sysctls at the cursor are read back as playback passes
them); a dump is decoded chunk by chunk into its table, events a slice at a time.

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
import errno
import itertools
import json
import math
import os
import stat
import struct
import threading
import time
import zlib
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, overload

from cttop.errors import CttopError
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
    KINDS,
    MAGIC,
    MAX_RECORD,
    REC,
    VERSION,
)
from cttop.kernel import events as kernel_events
from cttop.kernel.ctnetlink import Stats
from cttop.kernel.decode import Decoder
from cttop.kernel.framing import NLH3, NLH_LEN, DecodeError, align, count_messages
from cttop.kernel.events import EventBatch
from cttop.model import EV_DESTROY, EV_UPDATE, R_TIMEOUT, Row
from cttop.table.packing import flow_key
from cttop.table.store import FlowTable

READ_CHUNK: Final = 1 << 16  # compressed bytes read at a time
OUT_CHUNK: Final = 1 << 18  # decompressed bytes handed out at a time: 3 MB of gzip can hold 3 GB of zeros
# Events per events() call. A decoded event costs ~600 bytes: the live socket's 200,000 would be 120 MB.
MAX_BATCH: Final = 5_000
# Events decoded at a time: a record of MAX_RECORD bytes of the smallest events would be ~30,000 rows at once.
EVENT_SLICE: Final = 1024
MAX_CPUS: Final = 8192  # Linux's largest NR_CPUS: more per-CPU stats entries than that are no recording's
MAX_NAMES: Final = 256  # stats names, sysctls per record: a few dozen in any real recording
MAX_SMALL: Final = 64 << 10  # bytes of a description or sysctls record: a few hundred in any real recording
MAX_SAMPLES: Final = 1 << 16  # time line points kept; beyond, every other is dropped (the screen has ~200 cells)
MAX_SEGMENTS: Final = 1 << 18  # a year of 2-minute dump intervals
MAX_SPAN: Final = 10 * 366 * 86400.0  # seconds a recording may span
MAX_EPOCH: Final = 1e10  # its start, as Unix time (year 2286): beyond, no clock can show it
# Inflated bytes per file byte. What cttop writes (gzip level 1, a sync flush a second) stays under ~75:1 even
# idle (one stats record repeated); deflate goes to 1032:1, which is how 3 MB of a file became 3 GB. Past this
# ratio (and a slack for small files) a file is not read on: its reading costs CPU in proportion to its size.
MAX_RATIO: Final = 250
RATIO_SLACK: Final = 16 << 20


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


class Inflated(ReplayError):
    """Past MAX_RATIO: like a cut, what came before is whole (it inflated without error) and is replayed."""

    def __init__(self, path: str, pos: int) -> None:
        super().__init__(f"replay: {path} inflates more than {MAX_RATIO}:1 by byte {pos}, far more than any "
                         "recording cttop writes (a decompression bomb?)")


def _over_ratio(inflated: int, consumed: int) -> bool:
    return inflated > MAX_RATIO * consumed + RATIO_SLACK


def _segment_end(path: str, member: int, size: int) -> int:
    """Where the segment at ``member`` ends, or where its damage was noticed: the end of a damaged range."""
    d = zlib.decompressobj(31)
    pos = member
    inflated = 0
    with open_recording(path) as f:
        f.seek(member)
        # Small steps, so the offset at which zlib gives up is known to within a step.
        while chunk := f.read(256):
            data = chunk
            try:
                while True:  # the output is thrown away, a bounded piece at a time
                    out = d.decompress(data, OUT_CHUNK)
                    inflated += len(out)
                    data = d.unconsumed_tail
                    if d.eof or not (data or len(out) == OUT_CHUNK):
                        break
            except zlib.error:
                return min(pos + len(chunk), size)
            if d.eof:
                return pos + len(chunk) - len(d.unused_data)
            pos += len(chunk)
            if _over_ratio(inflated, pos - member):
                return pos  # a bomb: its range runs at least to here
    return size


_KINDS_OF_FILE: Final = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
                         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def open_recording(path: str, ident: tuple[int, int] | None = None) -> BinaryIO:
    """``path`` opened for reading, refused unless it is a regular file (and, given ``ident``, the same one).

    O_NONBLOCK so that a FIFO is refused instead of hanging the open; O_NOFOLLOW so that what is read is the
    file named, not wherever a link in a bug report's archive points.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ReplayError(f"replay: {path}: no such file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ReplayError(f"replay: {path} is a symbolic link; give the recording itself") from None
        raise ReplayError(f"replay: {path}: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = _KINDS_OF_FILE.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise ReplayError(f"replay: {path}: is {what}, not a recording")
    if ident is not None and (st.st_dev, st.st_ino) != ident:
        os.close(fd)
        raise ReplayError(f"replay: {path} was replaced since it was opened")
    return os.fdopen(fd, "rb")


def read_header(path: str) -> tuple[int, tuple[int, int]]:
    """Check magic and version; the file's size and identity (device, inode)."""
    with open_recording(path) as f:
        try:
            head = f.read(HEADER.size)
        except OSError as e:
            raise ReplayError(f"replay: {path}: {e.strerror}") from None
        st = os.fstat(f.fileno())
    size, ident = st.st_size, (st.st_dev, st.st_ino)
    if len(head) < HEADER.size:
        if head and MAGIC.startswith(head[:len(MAGIC)]):
            raise Truncated(path, size)
        raise ReplayError(f"replay: {path} is not a cttop recording (no {MAGIC.decode()} header)")
    magic, version, _flags = HEADER.unpack(head)
    if magic != MAGIC:
        raise ReplayError(f"replay: {path} is not a cttop recording (no {MAGIC.decode()} header)")
    if version != VERSION:
        raise ReplayError(f"replay: {path} is format version {version}; this cttop reads version {VERSION}")
    return size, ident


def stream(path: str, offset: int, size: int, ident: tuple[int, int] | None = None,
           guard: bool = True) -> Generator[tuple[int, int, float, bytes], None, None]:
    """``(segment offset, kind, time, payload)`` of every record from the segment at ``offset`` on.

    Holds at most one record (MAX_RECORD) and one piece of output (OUT_CHUNK) at a time, and with ``guard``
    raises :class:`Inflated` past MAX_RATIO (a replay reads no further than the scan that checked it).
    """
    f = open_recording(path, ident)  # closed in finally: the generator may be abandoned
    try:
        f.seek(offset)
        pos = member = offset  # file offsets: of the input consumed, of the segment it belongs to
        d = zlib.decompressobj(31)
        pending = bytearray()
        inflated = 0
        while True:
            try:
                data = f.read(READ_CHUNK)
            except OSError as e:
                raise ReplayError(f"replay: {path}: {e.strerror}") from None
            if not data:
                if pos > member or pending:
                    raise Truncated(path, size)
                return
            while True:
                try:
                    out = d.decompress(data, OUT_CHUNK)
                except zlib.error as e:
                    raise Corrupt(path, member, f"compressed data: {e}") from None
                inflated += len(out)
                if guard and _over_ratio(inflated, pos + len(data) - offset):
                    raise Inflated(path, pos + len(data))
                pending += out
                off = 0
                while len(pending) - off >= REC.size:
                    kind, t, ln = REC.unpack_from(pending, off)
                    if kind not in KINDS or ln > MAX_RECORD or not math.isfinite(t):
                        raise Corrupt(path, member, f"bad record header (kind {kind}, {ln} bytes)")
                    if len(pending) - off - REC.size < ln:
                        break
                    start = off + REC.size
                    with memoryview(pending) as view:  # one copy of the record, not two
                        payload = bytes(view[start:start + ln])
                    yield member, kind, t, payload
                    off = start + ln
                del pending[:off]
                if d.eof:
                    if pending:
                        raise Corrupt(path, member, "a record runs past the end of its segment")
                    pos += len(data) - len(d.unused_data)
                    data = d.unused_data
                    member = pos
                    d = zlib.decompressobj(31)
                    if not data:
                        break
                elif d.unconsumed_tail or len(out) == OUT_CHUNK:
                    # The output was capped: the rest of this input (or output zlib still holds) comes next.
                    pos += len(data) - len(d.unconsumed_tail)
                    data = d.unconsumed_tail
                else:
                    pos += len(data)
                    break
    finally:
        f.close()


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

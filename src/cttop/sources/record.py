"""``cttop record``: the kernel's stream of dumps, events and stats, kept as raw netlink bytes.

Raw messages are the most compact form there is (the decoder's rows are several
times larger) and a replay sends them through the very decoder a live session
uses, so a recording reproduces decoder behaviour too, for bug reports.

File layout::

    header   b"CTTOPREC" | u16 format version | u16 flags      (little endian, uncompressed)
    segment  one gzip member: records, starting with a keyframe
    segment  ...

A record is ``u8 kind | f64 time | u32 length | payload``. Times come from a
monotonic clock anchored at the start's wall time, so they never go backwards.
Each segment opens with a keyframe (sysctls, stats and a full dump), so a
replay can seek to any segment without reading what comes before. The first
segment starts with a JSON ``META`` record. A clean end is an ``END`` record;
the writer sync-flushes every second, so a killed recorder leaves a file whose
readable part is at most a second short (the reader replays it up to there, and says so).
"""

from __future__ import annotations

import io
import json
import os
import platform
import select
import socket
import stat
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from cttop import version
from cttop.errors import CttopError
from cttop.kernel import nlconst as C
from cttop.kernel import sysctl
from cttop.kernel.ctnetlink import RECV_SIZE, Ctnetlink, KernelError
from cttop.kernel.events import EventSocket
from cttop.kernel.framing import NLH3, NLH_LEN, align, count_messages, error_code
from cttop.kernel.netns import NetnsSpec

MAGIC: Final = b"CTTOPREC"
VERSION: Final = 1
HEADER: Final = struct.Struct("<8sHH")
REC: Final = struct.Struct("<BdI")
# The reader refuses a bigger record (a crafted length must not make it buffer gigabytes, and every byte it
# holds counts: a record is buffered, copied and decoded), and nothing the recorder writes reaches it: a dump
# chunk is one recv of at most RECV_SIZE, an events record stops once EVENTS_BYTES are in (plus one datagram of
# at most RECV_SIZE), and stats of 8192 CPUs, 15 u32 counters each, are at most 1.4 MB of JSON.
MAX_RECORD: Final = 2 << 20
EVENTS_BYTES: Final = 1 << 19

K_META: Final = 1  # JSON: what was recorded, where, how
K_SYSCTLS: Final = 2  # JSON: {name: value}
K_STATS: Final = 3  # JSON: {"count", "max", "cpus": [[cpu, *values in META stats_names order]]}
K_DUMP_BEGIN: Final = 4  # empty; a later BEGIN before END restarts the dump (the kernel interrupted it)
K_DUMP_DATA: Final = 5  # one received chunk of dump messages, as the kernel sent it
K_DUMP_END: Final = 6  # u32 number of entries
K_EVENTS: Final = 7  # event datagrams, concatenated
K_LOST: Final = 8  # the event socket overflowed (ENOBUFS); a resync dump follows
K_END: Final = 9  # the recording finished cleanly
KINDS: Final = frozenset(range(K_META, K_END + 1))

STATS_NAMES: Final = tuple(C.STATS_CPU_NAMES.values())
SYNC_EVERY: Final = 1.0
SYSCTLS_EVERY: Final = 5.0
DUMP_RETRIES: Final = 3
DUMP_END: Final = struct.Struct("<I")
# gzip level 1 rather than 6: the recorder runs beside the workload under study, and level 6
# costs ~1.4x the CPU per event and ~2x per dump for files only ~1.4x smaller (bench_record.py).
DEFAULT_LEVEL: Final = 1


class RecordError(CttopError):
    """The recording cannot be written; says which file and why."""


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _link_refused(path: str) -> RecordError:
    return RecordError(f"record: {path} is a symbolic link; refusing to write through it (give the file it "
                       "points to, or remove the link)")


def _create(path: str, overwrite: bool) -> io.FileIO:
    """The recording's file, created new and 0600 (it names hosts and flows), never through a symbolic link.

    ``overwrite`` replaces a regular file by a new one rather than truncating it, so that whatever other
    name (a hard link) the old one had is left alone.
    """
    if overwrite:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise RecordError(f"record: cannot write {path}: {e.strerror}") from None
        else:
            if stat.S_ISLNK(st.st_mode):
                raise _link_refused(path)
            if not stat.S_ISREG(st.st_mode):
                raise RecordError(f"record: {path} exists and is not a regular file; refusing to replace it")
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise RecordError(f"record: cannot replace {path}: {e.strerror}") from None
    try:
        # Exclusive even with --force (the old file is gone by now): a link or a file made in between is
        # refused, never followed. Without --force, an existing file may be the only copy of an incident.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        if os.path.islink(path):
            raise _link_refused(path) from None
        raise RecordError(f"record: {path} exists; give --force to overwrite it") from None
    except OSError as e:
        raise RecordError(f"record: cannot write {path}: {e.strerror}") from None
    return io.FileIO(fd, "wb")


class RecordingWriter:
    """Writes records into gzip segments; :meth:`keyframe` starts a new segment.

    A failed write (a full disk) leaves no torn or useless file: what was synced before it, a replayable
    recording cut short, is kept and the rest cut off; with nothing synced yet, the file is removed.
    """

    def __init__(self, path: str, meta: dict[str, Any], clock: Callable[[], float],
                 level: int = DEFAULT_LEVEL, overwrite: bool = False) -> None:
        self.path = path
        self.clock = clock
        self.level = level
        # Unbuffered: zlib hands out a few large pieces, and a write error must show at the write that failed,
        # not at a later flush, so the file can be cut back to the last sync.
        self.f = _create(path, overwrite)  # closed by close()
        self._ident = os.fstat(self.f.fileno())
        self.raw_bytes = 0  # uncompressed record bytes, for the overhead report
        self.segments = 0
        self.written = 0  # bytes in the file
        self._synced: tuple[int, float] | None = None  # (file size, time) at the last sync
        self._start = clock()
        self._z: Any = None
        self._meta = _json(meta)
        self._last_sync = time.monotonic()
        self._out(HEADER.pack(MAGIC, VERSION, 0))

    def _out(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                n = self.f.write(view)  # may be short on a full disk: the rest is written again, or fails
                assert n is not None  # a blocking file
                view = view[n:]
                self.written += n
        except OSError as e:
            self._fail(e.strerror or str(e))

    def _fail(self, why: str) -> NoReturn:
        """Leave the file whole or gone, then say so; the writer is closed."""
        self._z = None  # nothing more goes in
        try:
            if self._synced is not None:
                os.ftruncate(self.f.fileno(), self._synced[0])
                kept = (f"kept its first {self._synced[1] - self._start:.1f} s, which `cttop replay` opens as a "
                        "recording cut short")
            else:
                kept = self._remove()
        except OSError as e:
            kept = f"the partial file could not be cut back to its whole part ({e.strerror})"
        try:
            self.f.close()
        except OSError:
            pass  # the error that matters is the one above
        raise RecordError(f"record: writing {self.path}: {why}; {kept}")

    def _remove(self) -> str:
        """Unlink the file unless its name now points to another one (removed or replaced meanwhile)."""
        try:
            now = os.lstat(self.path)
            if (now.st_dev, now.st_ino) == (self._ident.st_dev, self._ident.st_ino):
                os.unlink(self.path)
                return "removed the partial file"
        except OSError:
            pass
        return "the partial file was moved away meanwhile; left alone"

    def keyframe(self) -> None:
        """End the current segment and start the next; the caller then writes the keyframe's records."""
        if self._z is not None:
            self._out(self._z.flush(zlib.Z_FINISH))
        self._z = zlib.compressobj(self.level, zlib.DEFLATED, 31)
        self.segments += 1
        if self.segments == 1:
            self.write(K_META, self._meta)

    def write(self, kind: int, payload: bytes | bytearray | memoryview = b"") -> None:
        """One record, stamped now: stamping at write time keeps the times in file order."""
        data = REC.pack(kind, self.clock(), len(payload))
        self.raw_bytes += len(data) + len(payload)
        self._out(self._z.compress(data))
        if payload:
            self._out(self._z.compress(payload))

    def sync_if_due(self) -> None:
        """Push everything written so far to the file (every second at most)."""
        if time.monotonic() - self._last_sync >= SYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        """Push everything written so far to the file: up to here, the file replays."""
        self._last_sync = time.monotonic()
        self._out(self._z.flush(zlib.Z_SYNC_FLUSH))
        self._synced = (self.written, self.clock())

    def close(self) -> None:
        if self.f.closed:
            return  # a failed write closed it
        if self._z is not None:
            self.write(K_END)
            self._out(self._z.flush(zlib.Z_FINISH))
            self._z = None
        self.f.close()

    @property
    def file_bytes(self) -> int:
        return self.written


@dataclass
class RecordSummary:
    path: str
    seconds: float
    dumps: int
    entries: int  # in the last dump
    events: int
    lost: int
    raw_bytes: int
    file_bytes: int

    def text(self) -> str:
        return (f"recorded {self.seconds:.1f} s to {self.path}: {self.dumps} dumps, {self.events} events"
                + (f", {self.lost} event losses" if self.lost else "")
                + f"; {self.file_bytes / 1e6:.2f} MB ({self.raw_bytes / max(self.file_bytes, 1):.1f}x compressed)")


class Clock:
    """Wall-clock time at the start, then monotonic: record times never go backwards."""

    def __init__(self) -> None:
        self.wall = time.time()
        self.mono = time.monotonic()

    def __call__(self) -> float:
        return self.wall + (time.monotonic() - self.mono)


class Recorder:
    """Records one namespace: a keyframe every ``dump_interval`` seconds, stats every ``stats_interval``."""

    def __init__(self, spec: NetnsSpec, path: str, dump_interval: float = 30.0,
                 stats_interval: float = 1.0, level: int = DEFAULT_LEVEL, overwrite: bool = False) -> None:
        self.spec = spec
        self.overwrite = overwrite
        self.path = path
        self.dump_interval = dump_interval
        self.stats_interval = stats_interval
        self.level = level
        self.events = 0
        self.lost = 0
        self.dumps = 0
        self.entries = 0

    def run(self, duration: float | None = None, stop: threading.Event | None = None,
            on_start: Callable[[], None] | None = None) -> RecordSummary:
        """Record until ``duration`` seconds have passed or ``stop`` is set.

        ``on_start`` is called once the first keyframe is in the file: the recording has begun.
        """
        stop = stop or threading.Event()
        clock = Clock()
        # Subscribe before the first dump, so no change falls between the two.
        meta = {"format": VERSION, "cttop": version(), "label": self.spec.label(),
                "host": socket.gethostname(), "kernel": platform.release(), "start": clock.wall,
                "stats_names": list(STATS_NAMES), "dump_interval": self.dump_interval,
                "stats_interval": self.stats_interval}
        ev = EventSocket(self.spec)
        try:
            ct = Ctnetlink(self.spec)
            try:
                w = RecordingWriter(self.path, meta, clock, self.level, self.overwrite)
                try:
                    self._loop(ev, ct, w, clock, duration, stop, on_start)
                finally:
                    w.close()
            finally:
                ct.close()
        finally:
            ev.close()
        return RecordSummary(self.path, clock() - clock.wall, self.dumps, self.entries, self.events, self.lost,
                             w.raw_bytes, w.file_bytes)

    def _loop(self, ev: EventSocket, ct: Ctnetlink, w: RecordingWriter, clock: Clock,
              duration: float | None, stop: threading.Event, on_start: Callable[[], None] | None) -> None:
        end = clock.wall + duration if duration is not None else float("inf")
        sysctls = self._keyframe(ct, w)
        w.sync()  # the recording has begun once it replays
        if on_start is not None:
            on_start()
        next_dump = clock() + self.dump_interval if self.dump_interval > 0 else float("inf")
        next_stats = clock() + self.stats_interval
        next_sysctls = clock() + SYSCTLS_EVERY
        buf = bytearray(RECV_SIZE)
        while not stop.is_set():
            now = clock()
            if now >= end:
                break
            wait = max(0.0, min(end, next_stats, next_dump) - now)
            if select.select([ev], [], [], min(wait, 0.25))[0]:
                if self._read_events(ev, w, buf):
                    sysctls = self._keyframe(ct, w)
                    next_dump = clock() + self.dump_interval if self.dump_interval > 0 else float("inf")
            now = clock()
            if now >= next_dump:
                sysctls = self._keyframe(ct, w)
                next_dump = now + self.dump_interval
            if now >= next_stats:
                self._stats(ct, w)
                next_stats = now + self.stats_interval
            if now >= next_sysctls:
                sysctls = self._sysctls(w, sysctls)
                next_sysctls = now + SYSCTLS_EVERY
            w.sync_if_due()
        # What happened before the stop is queued on the socket: keep it, and end on a
        # dump, so the recording's last state is the kernel's even for flows that sent no events.
        self._read_events(ev, w, buf)
        self._stats(ct, w)
        self._dump(ct, w)

    def _read_events(self, ev: EventSocket, w: RecordingWriter, buf: bytearray) -> bool:
        """Record every queued event datagram; True if events were lost (a resync is due)."""
        chunks: list[bytes] = []
        size = 0
        lost = False
        while True:
            n = ev.recv_into(buf)
            if n is None:
                lost = True
                continue
            if n == 0:
                break
            data = bytes(buf[:n])
            self.events += count_messages(data)
            chunks.append(data + b"\0" * (align(n) - n))
            size += len(chunks[-1])
            if len(chunks) >= 4096 or size >= EVENTS_BYTES:
                break
        if chunks:
            w.write(K_EVENTS, b"".join(chunks))
        if lost:
            self.lost += 1
            w.write(K_LOST)
        return lost

    def _keyframe(self, ct: Ctnetlink, w: RecordingWriter) -> dict[str, str]:
        w.keyframe()
        current = sysctl.read(self.spec)
        w.write(K_SYSCTLS, _json(current))
        self._stats(ct, w)
        self._dump(ct, w)
        return current

    def _sysctls(self, w: RecordingWriter, last: dict[str, str]) -> dict[str, str]:
        current = sysctl.read(self.spec)
        if current != last:
            w.write(K_SYSCTLS, _json(current))
        return current

    def _stats(self, ct: Ctnetlink, w: RecordingWriter) -> None:
        s = ct.stats()
        cpus = [[d["cpu"], *(d[n] for n in STATS_NAMES)] for d in ct.stats_cpu()]
        w.write(K_STATS, _json({"count": s.count, "max": s.max, "cpus": cpus}))

    def _dump(self, ct: Ctnetlink, w: RecordingWriter) -> None:
        for _ in range(DUMP_RETRIES):
            w.write(K_DUMP_BEGIN)
            entries = self._dump_once(ct, w)
            if entries is not None:
                w.write(K_DUMP_END, DUMP_END.pack(entries))
                self.dumps += 1
                self.entries = entries
                return
        raise KernelError(f"conntrack dump: the table kept changing under the dump ({DUMP_RETRIES} tries)")

    def _dump_once(self, ct: Ctnetlink, w: RecordingWriter) -> int | None:
        """Record one dump chunk by chunk; the entry count, or None if the kernel interrupted it."""
        entries = 0
        interrupted = False
        for data in ct.raw_dump():
            n, done, intr, err = _scan_dump_chunk(data)
            if err:
                raise KernelError(f"conntrack dump: kernel said {os.strerror(err)}")
            entries += n
            interrupted = interrupted or intr
            w.write(K_DUMP_DATA, data)
            if done:
                return None if interrupted else entries
        raise KernelError("conntrack dump: the reply's framing is broken")




def _scan_dump_chunk(data: bytes) -> tuple[int, bool, bool, int]:
    """(entries, done, interrupted, errno) of one received dump chunk."""
    off, n, count, intr = 0, len(data), 0, False
    while off + NLH_LEN <= n:
        length, typ, flags = NLH3.unpack_from(data, off)
        if typ == C.NLMSG_DONE:
            return count, True, intr or bool(flags & C.NLM_F_DUMP_INTR), 0
        if typ == C.NLMSG_ERROR:
            return count, True, intr, error_code(data, off)
        if length < NLH_LEN:
            break
        intr = intr or bool(flags & C.NLM_F_DUMP_INTR)
        count += 1
        off += align(length)
    return count, n == 0, intr, 0

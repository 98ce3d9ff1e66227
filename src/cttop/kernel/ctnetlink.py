"""The ctnetlink socket: dumps, stats, deletes and flushes in one network namespace.

The socket is created inside the target namespace (via :mod:`cttop.kernel.netns`)
and stays bound to it, so it can then be used from any thread. Requests are built
by hand: they are a few fixed headers, and pyroute2 0.9's asyncio-wrapped
NFCTSocket costs ~80 µs a message on the receive side (docs/ARCHITECTURE.md), which is
the whole budget for a dump.
"""

from __future__ import annotations

import errno
import os
import queue
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from cttop.errors import CttopError
from cttop.kernel import native
from cttop.kernel import nlconst as C
from cttop.kernel.attrs import be, nest, nla
from cttop.kernel.decode import Decoder, ErrorReply, Holder, helper_name
from cttop.kernel.framing import (
    HEADER_LEN,
    NFGEN,
    NFGEN_RES_ID,
    DecodeError,
    attrs,
    ends_dump,
    error_code,
    messages,
    request,
    seq_of,
)
from cttop.kernel.kfilter import KernelFilterLike, encode_filter
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.model import (
    AF_INET6,
    ICMP_PROTOS,
    IPS_CONFIRMED,
    NO_PSTATE,
    R_DPORT,
    R_DST,
    R_FAMILY,
    R_ID,
    R_MARK,
    R_PROTO,
    R_PSTATE,
    R_RDPORT,
    R_RDST,
    R_RSPORT,
    R_RSRC,
    R_SPORT,
    R_SRC,
    R_STATUS,
    R_TIMEOUT,
    R_ZONE,
    Row,
)

if TYPE_CHECKING:
    from cttop.kernel._ctdecode import Counts

T = TypeVar("T")
RECV_SIZE = 1 << 20
# The compiled receive's batch of a dump's chunks: none while less than DUMP_ROOM of the buffer is left (the
# kernel caps a dump's skb at 32 kB, netlink_recvmsg's max_recvmsg_len, so no chunk is cut), DUMP_BATCH at most.
DUMP_ROOM = 64 << 10
DUMP_BATCH = 64
# The most batches of chunks a reader thread keeps ahead of the thread decoding them (a batch is one chunk of
# ~32 kB, or with the compiled receive up to RECV_SIZE of them): it runs at the kernel's pace, and an unbounded
# queue would hold a slow consumer's whole dump (~230 MB a million flows).
READ_AHEAD_BATCHES = 16


# What the views say when the kernel refuses a dump for lack of privilege.
NEEDS_CAP = "flows need CAP_NET_ADMIN (run with sudo)"


class KernelError(CttopError):
    """The kernel refused a request or the socket failed; says which request and why."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code  # the errno, when there is one

    @property
    def permission(self) -> bool:
        return self.code in (errno.EPERM, errno.EACCES)


def tuple_attr(typ: int, family: int, proto: int, src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    v6 = family == AF_INET6
    ip = nest(C.CTA_TUPLE_IP, nla(C.CTA_IP_V6_SRC if v6 else C.CTA_IP_V4_SRC, src),
              nla(C.CTA_IP_V6_DST if v6 else C.CTA_IP_V4_DST, dst))
    if proto in ICMP_PROTOS:
        base = C.CTA_PROTO_ICMPV6_ID if proto == 58 else C.CTA_PROTO_ICMP_ID
        l4 = [nla(base, be("H", sport)), nla(base + 1, bytes([dport >> 8])), nla(base + 2, bytes([dport & 0xFF]))]
    else:
        l4 = [nla(C.CTA_PROTO_SRC_PORT, be("H", sport)), nla(C.CTA_PROTO_DST_PORT, be("H", dport))]
    return nest(typ, ip, nest(C.CTA_TUPLE_PROTO, nla(C.CTA_PROTO_NUM, bytes([proto])), *l4))


def row_tuples(row: Row) -> bytes:
    return (tuple_attr(C.CTA_TUPLE_ORIG, row[R_FAMILY], row[R_PROTO], row[R_SRC], row[R_DST],
                       row[R_SPORT], row[R_DPORT])
            + tuple_attr(C.CTA_TUPLE_REPLY, row[R_FAMILY], row[R_PROTO], row[R_RSRC], row[R_RDST],
                         row[R_RSPORT], row[R_RDPORT]))


@dataclass(frozen=True)
class Stats:
    count: int
    max: int


class _FastSwitching:
    """The interpreter's thread switch interval lowered while any dump is read ahead, put back after the last.

    The reader needs the GIL for a moment after every recv; with the default 5 ms switch interval it waits on
    the decoding thread and the overlap is lost. Two dumps may overlap (a bounded view's list is read by the
    indexer while the collector dumps): each saving and restoring the interval on its own, the later to end
    would put back the other's lowered one for good, and a GIL handed over every 0.5 ms costs CPU.
    """

    FAST = 0.0005

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved = 0.0

    def __enter__(self) -> None:
        with self._lock:
            if not self._users:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, self.FAST))
            self._users += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                sys.setswitchinterval(self._saved)


FAST_SWITCHING = _FastSwitching()


def core_to_spare() -> bool:
    """Whether a core sits idle for a thread of ours: the last minute's load average is below the cores
    less one (the kernel's dump work and our decoding each want one)."""
    cores = os.cpu_count() or 1
    return cores > 1 and os.getloadavg()[0] < cores - 1


def delete_request(row: Row) -> tuple[int, bytes]:
    """The family and payload of the CT_DELETE of ``row``'s entry: by id and original tuple (and zone)."""
    payload = tuple_attr(C.CTA_TUPLE_ORIG, row[R_FAMILY], row[R_PROTO], row[R_SRC], row[R_DST],
                         row[R_SPORT], row[R_DPORT]) + nla(C.CTA_ID, be("I", row[R_ID]))
    if row[R_ZONE]:
        payload += nla(C.CTA_ZONE, be("H", row[R_ZONE]))
    return row[R_FAMILY], payload


class Ctnetlink:
    """A ctnetlink request socket in one namespace. Not thread-safe; one per thread."""

    def __init__(self, spec: NetnsSpec = NetnsSpec(), rcvbuf: int = 8 << 20) -> None:
        self.spec = spec
        self.sock = run_in(spec, lambda: open_socket(rcvbuf))
        self.seq = int.from_bytes(os.urandom(2), "big")
        self.decoder = Decoder()
        self.native = native.DEFAULT  # the compiled dump receive (raw_chunks), or None
        self._recv_buf: bytearray | None = None  # see _buffer

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Ctnetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, kind: int, flags: int, family: int, payload: bytes = b"", msg_type: int | None = None) -> int:
        """Send one request: a conntrack message ``kind``, or any ctnetlink subsystem's ``msg_type``."""
        self.seq += 1
        typ = C.ct_msg(kind) if msg_type is None else msg_type
        msg = request(typ, C.NLM_F_REQUEST | flags, self.seq, NFGEN.pack(family, 0, 0) + payload)
        try:
            self.sock.send(msg)
        except OSError as e:
            raise KernelError(f"ctnetlink request {typ:#x}: {e.strerror}", e.errno) from None
        return self.seq

    def dump_messages(self, msg_type: int, what: str,
                      family: int = socket.AF_UNSPEC) -> Iterator[tuple[bytearray, int, int]]:
        """A dump of another ctnetlink table (the expectations: ``nlconst.exp_msg``), message by message:
        (buffer, offset, length) of each, valid until the next is asked for."""
        self._send(0, C.NLM_F_DUMP, family, msg_type=msg_type)
        return self._replies(what)

    def _buffer(self) -> bytearray:
        """The socket's receive buffer, made once: a megabyte zeroed for every request (the count is read every
        frame) is a megabyte mapped, faulted in and unmapped each time. Replies are read before the next request."""
        if self._recv_buf is None:
            self._recv_buf = bytearray(RECV_SIZE)
        return self._recv_buf

    def _replies(self, what: str) -> Iterator[tuple[bytearray, int, int]]:
        """Yield (buffer, offset, length) of each data message until DONE or the ACK.

        Requests that are not dumps must ask for an ACK: even single replies such as
        CT_GET_STATS come flagged NLM_F_MULTI, so the ACK is the only reliable end.
        """
        buf = self._buffer()
        while True:
            try:
                n = self.sock.recv_into(buf)
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    raise KernelError(f"{what}: the socket buffer overflowed (ENOBUFS); retry", e.errno) from None
                raise KernelError(f"{what}: {e.strerror}", e.errno) from None
            view = memoryview(buf)[:n]
            for off, length, typ, flags in messages(view):
                if typ == C.NLMSG_DONE:
                    return
                if typ == C.NLMSG_ERROR:
                    code = error_code(view, off)
                    if code == 0:
                        return
                    raise KernelError(f"{what}: kernel said {os.strerror(code)}", code)
                if flags & C.NLM_F_DUMP_INTR:
                    raise KernelError(f"{what}: the table changed during the dump; retry")
                yield buf, off, length

    def dump(self, family: int = socket.AF_UNSPEC, kfilter: KernelFilterLike | None = None) -> list[Row]:
        """Every entry (both families by default), decoded; the kernel-side filter narrows it."""
        out: list[Row] = []
        for chunk in self.dump_chunks(family, kfilter):
            out += chunk
        return out

    def dump_chunks(self, family: int = socket.AF_UNSPEC,
                    kfilter: KernelFilterLike | None = None) -> Iterator[list[Row]]:
        """The dump as lists of rows, one per received chunk, so callers can aggregate as it arrives.

        With a core to spare, a reader thread receives while this thread decodes: the kernel builds
        the next chunk inside recv() with the GIL released, so the kernel's half of the work and ours
        overlap instead of adding up. On a box whose cores are busy (the box in trouble) there is
        nothing to overlap with, and the thread's GIL hand-offs only cost CPU: the dump is read inline.
        """
        decode = self.decoder.decode_chunk

        def rows_of(chunk: bytes) -> tuple[list[Row], bool]:
            rows: list[Row] = []
            return rows, decode(chunk, rows)

        return self._dump_each(family, kfilter, rows_of)

    def dump_counts(self, counts: Counts, family: int = socket.AF_UNSPEC,
                    kfilter: KernelFilterLike | None = None) -> None:
        """The dump counted into ``counts`` (kernel/_counts.c) as it arrives, no row made of a flow the C walk
        takes: what a snapshot's aggregates need, at a fraction of a row's cost."""
        for _ in self.dump_held(counts, None, family, kfilter):
            pass

    def dump_held(self, counts: Counts, hold: Holder | None, family: int = socket.AF_UNSPEC,
                  kfilter: KernelFilterLike | None = None) -> Iterator[None]:
        """:meth:`dump_counts` a chunk at a time, every flow also held by ``hold`` (Decoder.count_chunk): a dump
        read into the held table without a row a flow."""
        count = self.decoder.count_chunk
        return self._dump_each(family, kfilter, lambda chunk: (None, count(chunk, counts, hold)))

    def _dump_each(self, family: int, kfilter: KernelFilterLike | None,
                   each: Callable[[bytes], tuple[T, bool]]) -> Iterator[T]:
        """Request a dump and yield what ``each`` makes of every chunk (and whether it saw the dump's end)."""
        if family == socket.AF_UNSPEC and kfilter is not None and kfilter.proto is not None:
            # The kernel parses a tuple filter only for a concrete family (else EOPNOTSUPP).
            for fam in (socket.AF_INET, socket.AF_INET6):
                yield from self._dump_each(fam, kfilter, each)
            return
        self._send(C.IPCTNL_MSG_CT_GET, C.NLM_F_DUMP, family,
                   encode_filter(kfilter) if kfilter is not None else b"")
        chunks = self._read_ahead() if core_to_spare() else self.raw_chunks()
        try:
            for chunk in chunks:
                made, done = each(chunk)
                yield made
                if done:
                    break
        except ErrorReply as e:
            raise KernelError(f"conntrack dump: kernel said {os.strerror(e.code)}", e.code) from None
        except DecodeError as e:
            raise KernelError(f"conntrack dump: {e}") from None
        finally:
            # Left early (an error, or a caller that stopped): the rest of the dump is read and dropped, so
            # it is not taken for the reply to this socket's next request.
            for _ in chunks:
                pass

    def _read_ahead(self) -> Iterator[bytes]:
        """The requested dump's chunks, received on a thread of their own while the caller works."""
        batches: queue.Queue[list[bytes] | BaseException | None] = queue.Queue(READ_AHEAD_BATCHES)
        reader = threading.Thread(target=self._read_dump, args=(batches,), name="ct-dump", daemon=True)
        with FAST_SWITCHING:
            reader.start()
            try:
                while (batch := batches.get()) is not None:
                    if isinstance(batch, BaseException):
                        raise batch
                    yield from batch
            finally:
                # Left early (closed mid-dump): the reader may be waiting on a full queue, so empty it until
                # the reader has read the dump to its end, which the socket's next request needs anyway.
                while reader.is_alive():
                    try:
                        batches.get(timeout=0.05)
                    except queue.Empty:
                        pass
                reader.join()

    def _read_dump(self, batches: queue.Queue[list[bytes] | BaseException | None]) -> None:
        # A batch at a time: each put may wait on the queue and then on the GIL, once a batch, not once a chunk.
        try:
            for batch in self._raw_batches():
                batches.put(batch)
        except KernelError as e:
            batches.put(e)
        batches.put(None)

    def raw_dump(self) -> Iterator[bytes]:
        """A whole-table dump as the kernel sends it, chunk by chunk, undecoded (the recorder keeps the bytes)."""
        self._send(C.IPCTNL_MSG_CT_GET, C.NLM_F_DUMP, socket.AF_UNSPEC)
        return self.raw_chunks()

    def raw_chunks(self) -> Iterator[bytes]:
        """Receive a requested dump's chunks until the one holding NLMSG_DONE or an error."""
        for batch in self._raw_batches():
            yield from batch

    def _raw_batches(self) -> Iterator[list[bytes]]:
        """A requested dump's chunks in the batches they were received in: the compiled receive's, or one by one.

        Into the socket's buffer, each chunk copied out at its size: recv(RECV_SIZE) maps a fresh megabyte for
        every chunk (~32 kB, the most a dump's skb holds) and shrinks it (mmap, mremap, munmap and the page
        faults between), ~8% of a dump's CPU at 262k entries.

        Where the dump ends is found without walking every chunk's messages in Python (~0.2 µs a message, a
        fifth of a second at a million, on the thread that needs the GIL least): the kernel builds a dump's
        next chunk inside the recv() that hands over the last one, so a chunk is queued already unless the
        dump ended. Only when none is does the walk (:func:`ends_dump`) look at the last chunk, and only it
        decides: no chunk queued and no end in sight (a kernel that builds chunks later) waits for the next.
        """
        if self.native is not None:
            yield from self._batched_chunks(self.native.recv_queued)
            return
        buf = self._buffer()
        view = memoryview(buf)
        data = bytes(view[:self._recv_dump(buf, 0)])
        while True:
            yield [data]
            try:
                n = self._recv_dump(buf, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if ends_dump(data):
                    return
                n = self._recv_dump(buf, 0)
            data = bytes(view[:n])

    def _batched_chunks(self, recv_queued: Callable[[int, bytearray, bool, int, int], tuple[list[int], int]]
                        ) -> Iterator[list[bytes]]:
        """_raw_batches with the compiled receive: every chunk queued, received without the GIL in one call. A
        reader thread that takes the GIL back after each recv() waits on the decoding thread each time: at a
        million flows, 1.5 s of a first frame went to those waits."""
        buf = self._buffer()
        view = memoryview(buf)
        block, data = True, b""
        while True:
            lengths, err = recv_queued(self.sock.fileno(), buf, block, DUMP_ROOM, DUMP_BATCH)
            batch, pos = [], 0
            for n in lengths:
                batch.append(data := bytes(view[pos:pos + n]))
                pos += n
            if batch:
                yield batch
            if err == errno.EAGAIN:  # nothing more queued: the walk of the last chunk decides, as above
                if ends_dump(data):
                    return
                block = True
            elif err:
                raise KernelError(f"conntrack dump: {os.strerror(err)}", err)
            else:
                block = False

    def _recv_dump(self, buf: bytearray, flags: int) -> int:
        try:
            return self.sock.recv_into(buf, 0, flags)
        except BlockingIOError:
            raise  # nothing queued (MSG_DONTWAIT): raw_chunks' question, not an error
        except OSError as e:
            raise KernelError(f"conntrack dump: {e.strerror}", e.errno) from None

    def stats(self) -> Stats:
        """Count and max from one CT_GET_STATS reply."""
        self._send(C.IPCTNL_MSG_CT_GET_STATS, C.NLM_F_ACK, socket.AF_UNSPEC)
        vals: dict[int, int] = {}
        for buf, off, ln in self._replies("conntrack stats"):
            for typ, payload in attrs(buf, off + HEADER_LEN, off + ln):
                vals[typ] = int.from_bytes(payload, "big")
        return Stats(vals.get(C.CTA_STATS_GLOBAL_ENTRIES, 0), vals.get(C.CTA_STATS_GLOBAL_MAX_ENTRIES, 0))

    def stats_cpu(self) -> list[dict[str, int]]:
        """Per-CPU counters (conntrack -S), one dict per CPU with every CTA_STATS_* name."""
        self._send(C.IPCTNL_MSG_CT_GET_STATS_CPU, C.NLM_F_DUMP, socket.AF_UNSPEC)
        out = []
        for buf, off, ln in self._replies("conntrack per-cpu stats"):
            d = {name: 0 for name in C.STATS_CPU_NAMES.values()}
            d["cpu"] = struct.unpack_from(">H", buf, off + NFGEN_RES_ID)[0]
            for typ, payload in attrs(buf, off + HEADER_LEN, off + ln):
                name = C.STATS_CPU_NAMES.get(typ)
                if name is not None:
                    d[name] = int.from_bytes(payload, "big")
            out.append(d)
        return out

    def helper_of(self, row: Row) -> str | None:
        """The helper attached to one entry now (``ftp``…), asked by its original tuple and zone; None when
        it has none. KernelError (ENOENT) when the entry is gone."""
        payload = tuple_attr(C.CTA_TUPLE_ORIG, row[R_FAMILY], row[R_PROTO], row[R_SRC], row[R_DST],
                             row[R_SPORT], row[R_DPORT])
        if row[R_ZONE]:
            payload += nla(C.CTA_ZONE, be("H", row[R_ZONE]))
        self._send(C.IPCTNL_MSG_CT_GET, C.NLM_F_ACK, row[R_FAMILY], payload)
        helper = None
        for buf, off, ln in self._replies("conntrack get"):
            helper = helper_name(buf, off, ln)
        return helper

    def delete_rows(self, rows: Iterable[Row]) -> int:
        """Delete entries by id and original tuple, pipelined; returns how many the kernel removed.

        Entries already gone (ENOENT) are not counted: they expired or someone else removed them.
        """
        return self.delete(map(delete_request, rows))

    def delete(self, requests: Iterable[tuple[int, bytes]]) -> int:
        """:meth:`delete_rows` of the entries :func:`delete_request` made these (family, payload) of: what
        a dump's matches can be kept as until the dump ends, a fifth of a row's memory."""
        removed = 0
        pending: dict[int, None] = {}
        batch = 0
        for family, payload in requests:
            pending[self._send(C.IPCTNL_MSG_CT_DELETE, C.NLM_F_ACK, family, payload)] = None
            batch += 1
            if batch >= 256:  # keep the ACKs within the receive buffer
                removed += self._collect_acks(pending, "conntrack delete")
                batch = 0
        removed += self._collect_acks(pending, "conntrack delete")
        return removed

    def _collect_acks(self, pending: dict[int, None], what: str) -> int:
        ok = 0
        buf = self._buffer()
        while pending:
            n = self.sock.recv_into(buf)
            for off, _ln, typ, _flags in messages(memoryview(buf)[:n]):
                if typ != C.NLMSG_ERROR:
                    continue
                seq, code = seq_of(buf, off), error_code(buf, off)
                if pending.pop(seq, 0) is None:
                    if code == 0:
                        ok += 1
                    elif code != errno.ENOENT:
                        pending.clear()
                        raise KernelError(f"{what}: kernel said {os.strerror(code)}", code)
        return ok

    def flush(self, family: int = socket.AF_UNSPEC, kfilter: KernelFilterLike | None = None) -> None:
        """Delete every entry, or those the kernel-side filter selects (kernel ≥ 6.x)."""
        payload = encode_filter(kfilter) if kfilter is not None else b""
        self._send(C.IPCTNL_MSG_CT_DELETE, C.NLM_F_ACK, family, payload)
        for _ in self._replies("conntrack flush"):
            pass

    def create(self, rows: Iterable[Row]) -> int:
        """Insert entries (as conntrack -I does); for tests, benchmarks and the lab. Returns how many."""
        pending: dict[int, None] = {}
        made = 0
        for i, row in enumerate(rows):
            # The kernel marks entries it creates for us CONFIRMED and refuses (EBUSY)
            # a requested status that would clear that bit.
            payload = row_tuples(row) + nla(C.CTA_STATUS, be("I", row[R_STATUS] | IPS_CONFIRMED))
            payload += nla(C.CTA_TIMEOUT, be("I", row[R_TIMEOUT] or 60))
            if row[R_MARK]:
                payload += nla(C.CTA_MARK, be("I", row[R_MARK]))
            if row[R_ZONE]:
                payload += nla(C.CTA_ZONE, be("H", row[R_ZONE]))
            if row[R_PSTATE] != NO_PSTATE and row[R_PROTO] == 6:
                payload += nest(C.CTA_PROTOINFO, nest(C.CTA_PROTOINFO_TCP,
                                                      nla(C.CTA_PROTOINFO_TCP_STATE, bytes([row[R_PSTATE]]))))
            seq = self._send(C.IPCTNL_MSG_CT_NEW, C.NLM_F_ACK | C.NLM_F_CREATE | C.NLM_F_EXCL,
                             row[R_FAMILY], payload)
            pending[seq] = None
            if i % 256 == 255:
                made += self._collect_acks(pending, "conntrack create")
        return made + self._collect_acks(pending, "conntrack create")


def open_socket(rcvbuf: int) -> socket.socket:
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, C.NETLINK_NETFILTER)
    except OSError as e:
        raise KernelError(f"cannot open a netfilter netlink socket: {e.strerror}", e.errno) from None
    try:
        s.setsockopt(socket.SOL_SOCKET, C.SO_RCVBUFFORCE, rcvbuf)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(C.SOL_NETLINK, C.NETLINK_EXT_ACK, 1)
    s.bind((0, 0))
    return s


def sum_cpus(per_cpu: list[dict[str, int]]) -> dict[str, int]:
    """Per-CPU counters added up, as `conntrack -S` totals would be (without the cpu field)."""
    out = {name: 0 for name in C.STATS_CPU_NAMES.values()}
    for d in per_cpu:
        for k in out:
            out[k] += d.get(k, 0)
    return out

"""ctnetlink event subscription: NEW / UPDATE / DESTROY, with loss detection.

ENOBUFS on a netlink multicast socket means the kernel dropped events because we
were slow. It is never hidden (no NETLINK_NO_ENOBUFS): the reader grows the receive
buffer, reports the loss, and the caller resyncs with a dump.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from dataclasses import dataclass, field
from typing import Final

from cttop.kernel import native
from cttop.kernel import nlconst as C
from cttop.kernel.ctnetlink import KernelError, open_socket
from cttop.kernel.decode import Decoder
from cttop.kernel.framing import NLH3, NLH_LEN, DecodeError, align
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.model import EV_DESTROY, EV_NEW, EV_UPDATE, Row

ALL_GROUPS: Final = (C.NFNLGRP_CONNTRACK_NEW, C.NFNLGRP_CONNTRACK_UPDATE, C.NFNLGRP_CONNTRACK_DESTROY)
MAX_RCVBUF: Final = 256 << 20
# The compiled receive's batch of events (native recv_queued): none while less than EVENT_ROOM of the buffer is
# left (an event is one message of a few hundred bytes, built to its size by ctnetlink_nlmsg_size, so one never
# comes near it), EVENT_BATCH at most: a megabyte's buffer holds ~4,000 of them.
EVENT_BUF: Final = 1 << 20
EVENT_ROOM: Final = 64 << 10
EVENT_BATCH: Final = 4096
_NEW_FLAGS: Final = C.NLM_F_CREATE | C.NLM_F_EXCL
_CT_NEW: Final = C.IPCTNL_MSG_CT_NEW
_CT_DELETE: Final = C.IPCTNL_MSG_CT_DELETE


@dataclass
class EventBatch:
    events: list[tuple[int, Row]] = field(default_factory=list)
    lost: bool = False  # the kernel dropped events (ENOBUFS): resync with a dump
    # Where in ``events`` each loss happened: the events before it were queued before the drop,
    # the ones after it came after (a stream can mark the gap where it happened).
    lost_at: list[int] = field(default_factory=list)
    # The kernel reported a drop (ENOBUFS) during this read: the table is wrong now, so a view resyncs at
    # once, while where the gap shows in the stream (lost, lost_at) waits for the queue ahead of it.
    dropped: bool = False
    bad: int = 0  # messages that failed to decode


def decode_events(dec: Decoder, buf: bytes | bytearray | memoryview, out: list[tuple[int, Row]]) -> int:
    """Classify and decode the event messages in ``buf`` into ``out``; returns how many failed to decode.

    Raises DecodeError only when the netlink framing itself is broken. This is the
    event path's hot loop, so like :meth:`Decoder.decode_chunk` it walks the framing
    itself (framing.messages inlined) and tries the compiled decoder where built, then the newest template of
    the length inline (Decoder.fast), before :meth:`Decoder.decode_one`.
    """
    # The kernel sends each event in a datagram of its own, so this runs once per event, loop and
    # all: no bound methods are set up as locals first (each is an allocation), methods are called in place.
    bad, off, n, fast, compiled = 0, 0, len(buf), dec.fast, dec.compiled
    while off < n:
        if compiled is not None:  # it decodes up to the first message it leaves to the code below
            off = compiled.events(buf, off, out)
            if off >= n:
                break
        if n - off < NLH_LEN:
            raise DecodeError(f"netlink: {n - off} stray bytes after the last message")
        length, typ, flags = NLH3.unpack_from(buf, off)
        if length < NLH_LEN or off + length > n:
            raise DecodeError(f"netlink: message at byte {off} claims {length} bytes of {n - off}")
        kind = typ & 0xFF
        if kind == _CT_NEW:
            ev = EV_NEW if flags & _NEW_FLAGS == _NEW_FLAGS else EV_UPDATE
        elif kind == _CT_DELETE:
            ev = EV_DESTROY
        else:
            off += align(length)
            continue
        t = fast.get(length)
        # The template's fingerprint check (decode._as_int, inlined): the message as one int, values masked out.
        if t is not None and int.from_bytes(buf[off:off + length], "little") & t[0] == t[1]:
            out.append((ev, t[3](t[2](buf, off))))
        else:
            try:
                out.append((ev, dec.decode_one(buf, off, length)))
            except DecodeError:
                bad += 1
        off += (length + 3) & ~3  # framing.align, inlined
    return bad


class EventSocket:
    """Subscribed ctnetlink multicast socket in one namespace."""

    def __init__(self, spec: NetnsSpec = NetnsSpec(), groups: tuple[int, ...] = ALL_GROUPS,
                 rcvbuf: int = 16 << 20) -> None:
        self.sock = run_in(spec, lambda: open_socket(rcvbuf))
        for g in groups:
            try:
                self.sock.setsockopt(C.SOL_NETLINK, C.NETLINK_ADD_MEMBERSHIP, g)
            except OSError as e:
                self.sock.close()
                raise KernelError(f"conntrack events: cannot subscribe: {e.strerror}", e.errno) from None
        self.sock.setblocking(False)
        self.rcvbuf = rcvbuf
        self.decoder = Decoder()
        self.native = native.DEFAULT  # the compiled batch receive (read), or None
        self.losses = 0
        self._gap = False  # ENOBUFS was reported, and the events queued ahead of the drop are still being read
        self._buf = bytearray(EVENT_BUF)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def recv_into(self, buf: bytearray) -> int | None:
        """Receive one queued datagram into ``buf``: its size, 0 when none is queued, or None when the
        kernel dropped events (ENOBUFS; the buffer has been grown, and a resync with a dump is due)."""
        try:
            return self.sock.recv_into(buf)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno != errno.ENOBUFS:
                raise KernelError(f"conntrack events: {e.strerror}", e.errno) from None
            self._overflowed()
            return None

    def _overflowed(self) -> None:
        """The kernel dropped events (ENOBUFS): counted, and the buffer grown so it happens less."""
        self.losses += 1
        self.rcvbuf = min(self.rcvbuf * 2, MAX_RCVBUF)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, C.SO_RCVBUFFORCE, self.rcvbuf)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)

    def read(self, timeout: float | None = 0.0, max_events: int = 200_000) -> EventBatch:
        """Everything queued now (waiting up to ``timeout`` for the first message); a read stops once it has
        ``max_events`` or more (the compiled receive's last batch may take it up to EVENT_BATCH over)."""
        batch = EventBatch()
        # (With a gap pending, the queue is looked at now: if it ran dry, the gap is there.)
        if timeout and not self._gap and not select.select([self.sock], [], [], timeout)[0]:
            return batch
        if self.native is not None:
            self._read_batches(batch, max_events)
            return batch
        buf, dec, out = self._buf, self.decoder, batch.events
        while len(out) < max_events:
            n = self.recv_into(buf)
            if n is None:
                # The kernel says ENOBUFS before handing over what it had queued ahead of the drop, and
                # drops every event until that queue is empty: the gap is where the queue runs dry, not here.
                self._gap = batch.dropped = True
                continue
            if n == 0:
                self._ran_dry(batch)
                break
            try:
                batch.bad += decode_events(dec, memoryview(buf)[:n], out)
            except DecodeError:
                batch.bad += 1
        return batch

    def _ran_dry(self, batch: EventBatch) -> None:
        """Nothing more is queued: a gap the kernel reported is here, after the events queued ahead of it."""
        if self._gap:
            self._gap = False
            batch.lost = True
            batch.lost_at.append(len(batch.events))

    def _read_batches(self, batch: EventBatch, max_events: int) -> None:
        """read's loop with the compiled receive: every queued datagram in one call without the GIL, then all
        of them decoded in one walk when each is whole messages end to end (the kernel's always are), else
        each on its own, as the loop above does: 1.9 µs an event read and decoded, against 3.0 µs with a
        recv_into and a decode call a datagram (benchmarks/bench_event_receive.py)."""
        assert self.native is not None
        recv_queued, framed = self.native.recv_queued, self.native.framed
        buf, dec, out, fd = self._buf, self.decoder, batch.events, self.sock.fileno()
        view = memoryview(buf)
        while len(out) < max_events:
            lengths, err = recv_queued(fd, buf, False, EVENT_ROOM, EVENT_BATCH)
            if lengths:
                if framed(buf, lengths):
                    batch.bad += decode_events(dec, view[:sum(lengths)], out)
                else:
                    pos = 0
                    for n in lengths:
                        try:
                            batch.bad += decode_events(dec, view[pos:pos + n], out)
                        except DecodeError:
                            batch.bad += 1
                        pos += n
            # ECONNRESET is an empty datagram (never the kernel's), which recv_into's 0 makes the loop above
            # take for an empty queue: so here too, and the rest is read next time.
            if err in (errno.EAGAIN, errno.ECONNRESET):
                self._ran_dry(batch)
                break
            if err == errno.ENOBUFS:  # as in the loop above: the gap is where the queue runs dry
                self._overflowed()
                self._gap = batch.dropped = True
            elif err == errno.EMSGSIZE:  # a datagram over EVENT_ROOM, received cut: what recv_into would decode as
                batch.bad += 1
            elif err:
                raise KernelError(f"conntrack events: {os.strerror(err)}", err)

"""The event socket's two receive paths on the same datagrams: one at a time in Python, and the compiled batch
(``recv_queued``, then one decode of the whole batch when ``framed`` says each datagram is whole messages).

Recorded kernel events (tests/fixtures/events_mix.bin) are sent over a datagram socketpair, some of them
damaged the ways a walk of the whole batch would read differently from a walk of each datagram: trailing
bytes, a cut message, two messages in one datagram. Both paths must give the same events and the same count
of bad datagrams. tests/kernel/test_events.py reads real events and losses both ways.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.kernel import _ctdecode, native
from cttop.kernel.decode import Decoder
from cttop.kernel.events import EVENT_BUF, EventBatch, EventSocket
from tests.unit.test_decode import messages

EVENTS = messages("events_mix.bin")
# Unix datagram sockets queue at most net.unix.max_dgram_qlen (10 by default) + 1: rounds of this many.
ROUND = 8


def damaged() -> list[bytes]:
    a, b, c = EVENTS[:3]
    cut = a[:len(a) - 8]
    return [
        a + b"\0" * 4,  # a stray word after the message
        b + b"\0\0",  # unaligned: the batch walk would start the next datagram two bytes early
        struct.pack("<I", len(cut)) + cut[4:],  # a message cut short, its length saying so
        a[:len(a) - 8],  # cut, its length still claiming the whole
        b + c,  # two messages in one datagram
        struct.pack("<I", 8) + a[4:],  # a length under a header's
        b"",  # empty
    ]


@contextmanager
def fed(compiled: bool) -> Iterator[tuple[EventSocket, socket.socket]]:
    """An event socket reading a socketpair instead of the kernel (its own state made as __init__ makes it)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    ev = EventSocket.__new__(EventSocket)
    ev.sock, ev.rcvbuf, ev.decoder, ev.losses, ev._gap = ours, 0, Decoder(), 0, False
    ev.native, ev._buf = (native.BUILT if compiled else None), bytearray(EVENT_BUF)
    try:
        yield ev, theirs
    finally:
        ours.close()
        theirs.close()


def read_all(datagrams: list[bytes], compiled: bool) -> EventBatch:
    got = EventBatch()
    with fed(compiled) as (ev, peer):
        for i in range(0, len(datagrams), ROUND):
            for d in datagrams[i:i + ROUND]:
                peer.send(d)
            while select.select([ev.sock], [], [], 0)[0]:  # (a read stops at an empty datagram)
                b = ev.read()
                got.events += b.events
                got.bad += b.bad
                assert not b.lost and not b.dropped
    return got


@pytest.mark.parametrize("which", ["real", "damaged", "mixed"])
def test_both_receive_paths_give_the_same_events_and_bad_count(which: str) -> None:
    datagrams = {"real": EVENTS, "damaged": damaged(),
                 "mixed": [d for pair in zip(EVENTS, damaged() * 7, strict=False) for d in pair]}[which]
    pure, compiled = read_all(datagrams, False), read_all(datagrams, True)
    assert compiled.events == pure.events and compiled.bad == pure.bad
    if which == "real":
        assert len(pure.events) == len(EVENTS) and pure.bad == 0
    else:
        assert pure.bad > 0 and pure.events  # the damage is seen, and what was whole still decoded


def test_framed_says_whether_one_walk_reads_what_each_would() -> None:
    whole = b"".join(EVENTS)
    assert _ctdecode.framed(whole, [len(m) for m in EVENTS])
    assert _ctdecode.framed(b"", [])
    stray, unaligned, cut_told, cut_untold, two, short, _empty = damaged()
    assert _ctdecode.framed(two + whole, [len(two), len(whole)])  # two messages in one datagram
    assert _ctdecode.framed(cut_told + whole, [len(cut_told), len(whole)])  # framing whole, the content cut
    for bad in (stray, unaligned, cut_untold, short):
        assert not _ctdecode.framed(bad + whole, [len(bad), len(whole)]), bad[:8]
    assert not _ctdecode.framed(whole, [len(whole) + 4])  # a length past the buffer
    assert not _ctdecode.framed(whole, [-1])
    with pytest.raises(TypeError):
        _ctdecode.framed(whole, (len(whole),))
    with pytest.raises(TypeError):
        _ctdecode.framed(whole, ["16"])


def test_a_full_queue_is_read_in_one_batch_without_python_receiving() -> None:
    """What it is for: the compiled path takes every queued datagram in one call (no recv_into a datagram)."""
    with fed(True) as (ev, peer):
        def no_python_receive(buf: bytearray) -> int | None:
            raise AssertionError("the compiled path received a datagram in Python")

        ev.recv_into = no_python_receive  # type: ignore[method-assign]
        for d in EVENTS[:ROUND]:
            peer.send(d)
        b = ev.read()
        assert len(b.events) == ROUND and not b.bad


def python_framed(buf: bytes, lengths: list[int]) -> bool:
    """framed's reference: walk each datagram's headers on its own."""
    at = 0
    for n in lengths:
        if n < 0 or n > len(buf) - at:
            return False
        end = at + n
        while at < end:
            if end - at < 16:
                return False
            (length,) = struct.unpack_from("<I", buf, at)
            step = (length + 3) & ~3
            if length < 16 or step > end - at:
                return False
            at += step
    return True


def mutated(draw: st.DrawFn) -> bytes:
    m = bytearray(draw(st.sampled_from(EVENTS)))
    how = draw(st.sampled_from(["whole", "cut", "grow", "length", "byte", "header first"]))
    if how == "header first":  # a bare header of 16-20 bytes, padded, then the message: framed, if odd
        n = draw(st.integers(16, 20))
        m[0:0] = struct.pack("<IHHII", n, 0x100, 0, 0, 0) + bytes(((n + 3) & ~3) - 16)
    elif how == "cut":
        del m[draw(st.integers(0, len(m))):]
    elif how == "grow":
        m += draw(st.binary(min_size=1, max_size=40))
    elif how == "length":
        m[0:4] = struct.pack("<I", draw(st.integers(0, 2 * len(m))))
    elif how == "byte":
        i = draw(st.integers(0, len(m) - 1))
        m[i] = draw(st.integers(0, 255))
    return bytes(m)


@st.composite
def datagrams(draw: st.DrawFn) -> list[bytes]:
    return [mutated(draw) for _ in range(draw(st.integers(1, 24)))]


@settings(max_examples=150, deadline=None)
@given(datagrams())
def test_damaged_datagrams_read_alike_both_ways_and_framed_is_its_reference(sent: list[bytes]) -> None:
    sent = [d for d in sent if d]  # (an empty datagram ends a read: the rounds above need each one read)
    pure, compiled = read_all(sent, False), read_all(sent, True)
    assert compiled.events == pure.events and compiled.bad == pure.bad
    lengths = [len(d) for d in sent]
    assert _ctdecode.framed(b"".join(sent), lengths) is python_framed(b"".join(sent), lengths)


def test_recv_queued_refuses_a_room_it_could_never_receive_into() -> None:
    """A buffer under ``room`` would hand back nothing and no error, forever: a read loop that never ends."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        for buf, room, most in ((bytearray(100), 200, 4), (bytearray(100), 8, 4), (bytearray(100), 50, 0)):
            with pytest.raises(ValueError):
                _ctdecode.recv_queued(ours.fileno(), buf, False, room, most)
        theirs.send(b"x" * 20)
        theirs.send(b"y" * 30)
        buf = bytearray(100)
        assert _ctdecode.recv_queued(ours.fileno(), buf, False, 90, 4) == ([20], 0)  # then under room is left
        assert _ctdecode.recv_queued(ours.fileno(), buf, False, 90, 4) == ([30], 0)
        assert _ctdecode.recv_queued(ours.fileno(), buf, False, 90, 4) == ([], errno.EAGAIN)  # none queued
        assert bytes(buf[:30]) == b"y" * 30
    finally:
        ours.close()
        theirs.close()

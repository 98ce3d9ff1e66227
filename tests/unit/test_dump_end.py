"""Where a dump ends, as the reader sees it: raw_chunks stops at the chunk holding NLMSG_DONE (or the error
that ends a dump before it starts), walks only that chunk's messages when the kernel has queued the next one,
and never stops early when the next chunk is merely late. Both receives: Python's, a chunk a recv(), and the
compiled one's batches (the end logic around a stand-in for ``recv_queued``; tests/kernel/test_dump_paths.py
runs the real one on real dumps)."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import pytest

from cttop.kernel import ctnetlink
from cttop.kernel import nlconst as C
from cttop.kernel.ctnetlink import Ctnetlink, KernelError
from cttop.kernel.framing import ERRNO, NLH_LEN, request
from tests.unit.test_decode import realistic_chunks


class LateSocket:
    """Hands out recorded chunks; with ``late``, a non-blocking receive finds nothing queued before each."""

    def __init__(self, chunks: list[bytes], late: bool = False) -> None:
        self.chunks, self.late = list(chunks), late
        self.tried = False

    def recv_into(self, buf: bytearray, nbytes: int = 0, flags: int = 0) -> int:
        if flags & socket.MSG_DONTWAIT and self.late and not self.tried:
            self.tried = True
            raise BlockingIOError(11, "Resource temporarily unavailable")
        if not self.chunks:  # what a blocking recv after the dump's end would do: wait for good
            if flags & socket.MSG_DONTWAIT:
                raise BlockingIOError(11, "Resource temporarily unavailable")
            raise AssertionError("a blocking receive after the dump ended would hang")
        self.tried = False
        data = self.chunks.pop(0)
        buf[:len(data)] = data
        return len(data)


def reader(sock: LateSocket) -> Ctnetlink:
    ct = Ctnetlink.__new__(Ctnetlink)  # no kernel socket: the recorded chunks stand in for it
    ct.sock, ct._recv_buf, ct.native = sock, None, None  # type: ignore[assignment]
    return ct


def error_chunk(code: int) -> bytes:
    """NLMSG_ERROR as the kernel answers a dump it refuses (errno, then the request's header)."""
    refused = request(C.ct_msg(C.IPCTNL_MSG_CT_GET), C.NLM_F_REQUEST | C.NLM_F_DUMP, 1, b"")
    return request(C.NLMSG_ERROR, 0, 1, ERRNO.pack(-code) + refused[:NLH_LEN])


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls: list[int] = []
    real = ctnetlink.ends_dump

    def counted(data: bytes) -> bool:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(ctnetlink, "ends_dump", counted)
    yield calls


def test_the_dump_ends_at_done_and_only_the_last_chunk_is_walked(walks: list[int]) -> None:
    chunks = realistic_chunks()
    assert len(chunks) > 3
    got = list(reader(LateSocket(chunks)).raw_chunks())
    assert got == chunks
    assert walks == [len(chunks[-1])]


def test_a_late_chunk_is_waited_for_not_taken_for_the_end(walks: list[int]) -> None:
    chunks = realistic_chunks()
    got = list(reader(LateSocket(chunks, late=True)).raw_chunks())
    assert got == chunks  # every chunk, though none was queued when the one before it was handed over
    assert walks == [len(c) for c in chunks]  # each late one was walked, and found not to end the dump


def test_a_refused_dump_ends_at_its_error() -> None:
    got = list(reader(LateSocket([error_chunk(95)])).raw_chunks())
    assert got == [error_chunk(95)]


def test_a_receive_error_is_a_kernel_error() -> None:
    class Failing(LateSocket):
        def recv_into(self, buf: bytearray, nbytes: int = 0, flags: int = 0) -> int:
            raise OSError(105, "No buffer space available")

    with pytest.raises(KernelError, match="conntrack dump: No buffer space available"):
        list(reader(Failing([])).raw_chunks())


class QueuedChunks:
    """Stands in for the compiled ``recv_queued``: hands out the queued chunks, or with ``late`` one chunk per
    waiting call, nothing being queued behind it."""

    def __init__(self, chunks: list[bytes], late: bool = False, fail: int = 0) -> None:
        self.chunks, self.late, self.fail = list(chunks), late, fail

    def __call__(self, fd: int, buf: bytearray, block: bool, room: int, batch: int) -> tuple[list[int], int]:
        if self.fail:
            return [], self.fail
        if not self.chunks and block:
            raise AssertionError("a blocking receive after the dump ended would hang")
        most = (1 if block else 0) if self.late else batch
        lengths, pos = [], 0
        while self.chunks and len(lengths) < most and len(buf) - pos >= room:  # as the C loop stops
            data = self.chunks.pop(0)
            buf[pos:pos + len(data)] = data
            lengths.append(len(data))
            pos += len(data)
        return lengths, 0 if self.chunks and not self.late else errno.EAGAIN


def batched(queued: QueuedChunks) -> list[bytes]:
    ct = reader(LateSocket([]))
    ct.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # a file number to hand over; never read
    try:
        return [c for batch in ct._batched_chunks(queued) for c in batch]
    finally:
        ct.sock.close()


def test_in_batches_the_dump_ends_at_done_and_only_the_last_chunk_is_walked(walks: list[int]) -> None:
    recorded = realistic_chunks()
    chunks = recorded[:-1] * 8 + recorded[-1:]  # more than a batch fills the buffer; DONE in the last
    assert len(chunks) * 32_000 > ctnetlink.RECV_SIZE
    assert batched(QueuedChunks(chunks)) == chunks
    assert walks == [len(chunks[-1])]


def test_in_batches_a_late_chunk_is_waited_for_not_taken_for_the_end(walks: list[int]) -> None:
    chunks = realistic_chunks()
    assert batched(QueuedChunks(chunks, late=True)) == chunks
    assert walks == [len(c) for c in chunks]


def test_in_batches_a_refused_dump_ends_at_its_error() -> None:
    assert batched(QueuedChunks([error_chunk(95)])) == [error_chunk(95)]


def test_in_batches_a_receive_error_is_a_kernel_error() -> None:
    with pytest.raises(KernelError, match="conntrack dump: No buffer space available"):
        batched(QueuedChunks([], fail=errno.ENOBUFS))

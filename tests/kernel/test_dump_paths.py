"""A dump read inline (cores busy) and one read ahead on a thread (a core to spare) give the kernel's table,
and a dump left early leaves nothing on the socket for the next request to mistake for its reply."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from benchmarks.common import realistic_rows
from cttop.kernel import ctnetlink, native, nlconst
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.decode import Decoder
from cttop.kernel.netns import NetnsSpec
from cttop.model import R_ID, R_TIMEOUT, flow_dict
from tests.oracle import conntrack_count, conntrack_list

pytestmark = pytest.mark.kernel

ENTRIES = 3000  # a few dozen chunks


@pytest.fixture
def filled(netns: str) -> str:
    with Ctnetlink(NetnsSpec(name=netns)) as ct:
        assert ct.create(list(realistic_rows(ENTRIES))) == ENTRIES
    return netns


@pytest.fixture(params=[True, False], ids=["compiled-receive", "python-receive"])
def receive(request: pytest.FixtureRequest) -> bool:
    """The dump received in batches by the compiled accelerator, or chunk by chunk in Python (its fallback)."""
    return bool(request.param)


def opened(netns: str, compiled: bool) -> Ctnetlink:
    ct = Ctnetlink(NetnsSpec(name=netns))
    ct.native = native.BUILT if compiled else None
    return ct


@pytest.mark.parametrize("spare", [True, False], ids=["read-ahead", "inline"])
def test_either_way_the_dump_is_the_kernels_table(filled: str, spare: bool, receive: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctnetlink, "core_to_spare", lambda: spare)
    with opened(filled, receive) as ct:
        chunks = list(ct.dump_chunks())
    assert len(chunks) > 5
    assert sorted(r[R_ID] for c in chunks for r in c) == sorted(f["id"] for f in conntrack_list(filled))


@pytest.mark.parametrize("spare", [True, False], ids=["read-ahead", "inline"])
def test_a_dump_left_after_one_chunk_leaves_the_socket_clean(filled: str, spare: bool, receive: bool,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ctnetlink, "core_to_spare", lambda: spare)
    with opened(filled, receive) as ct:
        chunks = ct.dump_chunks()
        assert next(chunks)
        chunks.close()  # the caller stops: the rest of the dump is still on its way
        assert ct.stats().count == conntrack_count(filled) == ENTRIES
        assert len(ct.dump()) == ENTRIES  # and a dump after it is whole


def test_both_decoders_read_the_same_table(filled: str) -> None:
    """The compiled decoder and its pure-Python fallback, on one real table of v4 and v6, TCP, UDP and ICMP
    the same rows (the timeouts may tick between the two dumps), the kernel's every entry."""
    dumps = {}
    for compiled in (True, False):
        with Ctnetlink(NetnsSpec(name=filled)) as ct:
            ct.decoder = Decoder(compiled)
            dumps[compiled] = sorted(ct.dump())
    assert len(dumps[True]) == ENTRIES
    for a, b in zip(dumps[True], dumps[False], strict=True):
        assert a[:R_TIMEOUT] + a[R_TIMEOUT + 1:] == b[:R_TIMEOUT] + b[R_TIMEOUT + 1:]
        assert abs(a[R_TIMEOUT] - b[R_TIMEOUT]) <= 2
    oracle = {f["id"]: f for f in conntrack_list(filled)}
    assert sorted(oracle) == [r[R_ID] for r in dumps[True]]
    for r in dumps[True]:
        d, o = flow_dict(r), oracle[r[R_ID]]
        assert (d["src"], d["dst"], d["reply_src"], d["reply_dst"]) == \
            (o["orig"]["src"], o["orig"]["dst"], o["reply"]["src"], o["reply"]["dst"])


def test_the_compiled_receive_takes_chunks_in_batches(filled: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What it is for: many chunks a call, so a reader thread takes the GIL back once a batch, not once a chunk."""
    assert native.BUILT is not None
    calls: list[int] = []
    recv = native.BUILT.recv_queued

    def counted(fd: int, buf: bytearray, block: bool, room: int, most: int) -> tuple[list[int], int]:
        got = recv(fd, buf, block, room, most)
        calls.append(len(got[0]))
        return got

    monkeypatch.setattr(native.BUILT, "recv_queued", counted)
    with opened(filled, True) as ct:
        rows = [r for chunk in ct.dump_chunks() for r in chunk]
        assert len(rows) == ENTRIES and len(calls) < sum(calls) and max(calls) > 1
        assert ct.stats().count == ENTRIES  # and the socket is left clean for the next request


def test_a_dump_read_ahead_and_closed_mid_way_leaves_no_reader_behind(filled: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-ahead queue is bounded: a caller that closes the dump while the reader waits on a full queue
    must not hang, and the socket's next request must get its own reply."""
    monkeypatch.setattr(ctnetlink, "core_to_spare", lambda: True)
    monkeypatch.setattr(ctnetlink, "READ_AHEAD_BATCHES", 1)
    with opened(filled, True) as ct:
        ct._send(nlconst.IPCTNL_MSG_CT_GET, nlconst.NLM_F_DUMP, socket.AF_UNSPEC)
        ahead = ct._read_ahead()
        assert next(ahead)
        time.sleep(0.2)  # the reader fills the queue and waits on it
        closing = threading.Thread(target=ahead.close, daemon=True)
        closing.start()
        closing.join(30)
        assert not closing.is_alive(), "closing the dump hangs on its reader"
        assert ct.stats().count == ENTRIES and len(ct.dump()) == ENTRIES

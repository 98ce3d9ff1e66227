"""The decoder on real kernel bytes (tests/fixtures, recorded by tests/fixtures/record.py), and fuzzed.

The tests of the chunk and event loops run with the compiled decoder and with the pure-Python one (its
fallback, ``compiled``); the ones about templates use the pure-Python one, whose templates they inspect.
"""

from __future__ import annotations

import gzip
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.kernel import decode
from cttop.kernel.decode import DecodeError, Decoder, ErrorReply
from cttop.model import flow_dict
from tests.oracle import parse_line

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


@pytest.fixture(params=[True, False], ids=["compiled", "pure-python"])
def compiled(request: pytest.FixtureRequest) -> bool:
    """Both decoders: the compiled one must be built here (scripts/setup.sh builds it)."""
    return bool(request.param)


def messages(name: str) -> list[bytes]:
    """A fixture's recorded messages (or chunks), each stored after its 4-byte length; ``.gz`` gzipped."""
    with (gzip.open if name.endswith(".gz") else open)(os.path.join(FIX, name), "rb") as f:
        data = f.read()
    out, off = [], 0
    while off < len(data):
        (n,) = struct.unpack_from("<I", data, off)
        out.append(data[off + 4:off + 4 + n])
        off += 4 + n
    return out


def oracle() -> dict[int, dict]:
    lines = open(os.path.join(FIX, "dump_mix.conntrack.txt")).read().splitlines()
    return {f["id"]: f for f in map(parse_line, filter(None, lines))}


def test_dump_fixture_decodes_to_what_conntrack_printed() -> None:
    dec = Decoder()
    rows = [dec.decode_one(m, 0, len(m)) for m in messages("dump_mix.bin")]
    want = oracle()
    assert len(rows) == len(want) >= 15
    for r in rows:
        d, o = flow_dict(r), want[r[0]]
        assert d["family"] == o["family"]
        assert d["proto"] == (str(o["protonum"]) if o["proto"] == "unknown" else o["proto"])
        assert (d["src"], d["dst"], d["reply_src"], d["reply_dst"]) == \
            (o["orig"]["src"], o["orig"]["dst"], o["reply"]["src"], o["reply"]["dst"])
        if "sport" in o["orig"]:
            assert (d["sport"], d["dport"], d["reply_sport"], d["reply_dport"]) == tuple(
                int(x) for x in (o["orig"]["sport"], o["orig"]["dport"], o["reply"]["sport"], o["reply"]["dport"]))
        assert d["mark"] == int(o["extra"]["mark"]) and d["zone"] == int(o["extra"].get("zone", 0))
        if o["state"]:
            assert d["state"] == o["state"]
        assert ("ASSURED" in d["status"]) == ("ASSURED" in o["flags"])
        if "packets" in o["orig"]:
            assert d["orig_packets"] == int(o["orig"]["packets"]) and d["reply_bytes"] == int(o["reply"]["bytes"])
        else:
            assert d["packets"] is None
        assert abs(d["timeout"] - o["timeout"]) <= 1
        assert d["start"] is not None  # timestamps were on when the fixture was recorded


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The offset of each message a Python decoder walks (no template of it, or none of its layout) from now on."""
    out: list[int] = []
    walk = decode._walk

    def counted(buf: bytes | bytearray | memoryview, off: int, length: int) -> object:
        out.append(off)
        return walk(buf, off, length)

    monkeypatch.setattr(decode, "_walk", counted)
    return out


def test_fast_path_equals_the_walk(walks: list[int]) -> None:
    """Templates learned from one message decode the next ones exactly as a fresh walk does."""
    warm = Decoder(compiled=False)
    msgs = messages("dump_mix.bin") + messages("events_mix.bin")
    for m in msgs:
        warm.decode_one(m, 0, len(m))
    fresh = [Decoder().decode_one(m, 0, len(m)) for m in msgs]
    del walks[:]
    assert [warm.decode_one(m, 0, len(m)) for m in msgs] == fresh
    assert walks == []  # the second pass took the templates only


def test_decode_chunk_walks_a_buffer_of_many_messages(compiled: bool) -> None:
    msgs = messages("dump_mix.bin")
    buf = b"".join(m + b"\0" * (-len(m) % 4) for m in msgs)
    out: list = []
    assert Decoder(compiled).decode_chunk(buf, out) is False
    assert out == [Decoder().decode_one(m, 0, len(m)) for m in msgs]
    done = struct.pack("<IHHII", 20, 3, 2, 0, 0) + b"\0" * 4
    assert Decoder(compiled).decode_chunk(buf + done, []) is True
    err = struct.pack("<IHHIIi", 36, 2, 0, 0, 0, -1) + b"\0" * 16
    try:
        Decoder(compiled).decode_chunk(buf + err, [])
        raise AssertionError("an NLMSG_ERROR must raise")
    except ErrorReply as e:
        assert e.code == 1


def test_events_fixture_has_every_kind() -> None:
    dec = Decoder()
    kinds = set()
    for m in messages("events_mix.bin"):
        typ, flags = struct.unpack_from("<HH", m, 4)
        dec.decode_one(m, 0, len(m))
        kinds.add((typ & 0xFF, bool(flags & 0x600 == 0x600)))
    assert kinds >= {(0, True), (0, False), (2, False)}  # NEW, UPDATE, DESTROY


def test_truncated_messages_raise_decode_error() -> None:
    for m in messages("dump_mix.bin")[:5]:
        for cut in range(0, len(m), 7):
            try:
                Decoder().decode_one(m[:cut], 0, len(m))
            except DecodeError:
                continue
            raise AssertionError(f"cut at {cut} decoded")


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "pure-python"])
@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_only_ever_raise_decode_error(compiled: bool, data: bytes) -> None:
    from cttop.kernel.events import decode_events

    dec = Decoder(compiled)
    try:
        dec.decode_one(data, 0, len(data))
    except DecodeError:
        pass
    try:
        dec.decode_chunk(data, [])
    except (DecodeError, ErrorReply):
        pass
    try:
        decode_events(dec, data, [])
    except DecodeError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(messages("dump_mix.bin")), st.data())
def test_mutated_real_messages_only_ever_raise_decode_error(msg: bytes, data: st.DataObject) -> None:
    """Real messages with bytes flipped: the fast path must reject what the walk would, or decode."""
    b = bytearray(msg)
    for _ in range(data.draw(st.integers(1, 6))):
        b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
    dec = Decoder()
    dec.decode_one(msg, 0, len(msg))  # learn the real layout first
    try:
        dec.decode_one(bytes(b), 0, len(b))
    except DecodeError:
        pass


def realistic_chunks() -> list[bytes]:
    return messages("dump_realistic.bin.gz")


def walked(chunk: bytes) -> list:
    """Each message of a chunk decoded by a fresh Decoder: the walk, then its new template."""
    out, off = [], 0
    while off < len(chunk):
        length, typ = struct.unpack_from("<IH", chunk, off)
        if typ == 3:  # NLMSG_DONE
            break
        out.append(Decoder().decode_one(chunk, off, length))
        off += (length + 3) & ~3
    return out


def test_decode_chunk_equals_the_walk_on_a_realistic_dump(compiled: bool, walks: list[int]) -> None:
    """Every layout of a real dump (v4/v6, TCP/UDP/ICMP, with and without counters; some share a
    length) goes through the chunk scan with the same rows the walk gives; in pure Python, only the first
    message of each layout takes the walk."""
    chunks = realistic_chunks()
    want = [r for c in chunks for r in walked(c)]
    del walks[:]  # (walked's own)
    dec = Decoder(compiled)
    for _ in range(2):
        got: list = []
        done = [dec.decode_chunk(c, got) for c in chunks]
        assert got == want and done[-1] and not any(done[:-1])
    if compiled:
        assert walks == [], "the compiled decoder decodes every message of a real dump itself"
        return
    assert len(walks) == sum(len(ts) for ts in dec.templates.values())
    lengths = [t.length for ts in dec.templates.values() for t in ts]
    assert len(lengths) > len(set(lengths)), "the recording must hold two layouts of one length"


def test_a_known_layout_flagged_dump_intr_is_refused(compiled: bool) -> None:
    """The scan matches a message's flags too: NLM_F_DUMP_INTR on a known layout still raises."""
    msg = messages("dump_mix.bin")[0]
    dec = Decoder(compiled)
    dec.decode_chunk(msg, [])
    flagged = bytearray(msg)
    struct.pack_into("<H", flagged, 6, struct.unpack_from("<H", msg, 6)[0] | 0x10)  # NLM_F_DUMP_INTR
    try:
        dec.decode_chunk(bytes(flagged), [])
        raise AssertionError("NLM_F_DUMP_INTR must raise")
    except DecodeError:
        pass


def test_a_known_length_with_other_attribute_headers_takes_the_walk(walks: list[int]) -> None:
    """The template of a length decodes only messages whose every attribute header matches (the values
    masked out of the fingerprint): one changed header byte sends the event to the walk, which decodes
    it as a fresh decoder does or refuses it."""
    from cttop.kernel.decode import _walk
    from cttop.kernel.events import decode_events

    for m in messages("events_mix.bin"):
        warm = Decoder(compiled=False)
        assert decode_events(warm, m, []) == 0
        for off, _ln, _typ in _walk(m, 0, len(m)).headers:
            changed = bytearray(m)
            changed[off + 2] ^= 0x01  # the attribute's type
            got, want = [], []
            walked = len(walks)
            undecoded = decode_events(warm, bytes(changed), got)
            assert len(walks) == walked + 1  # the warm decoder walked it: no template matched
            assert undecoded == decode_events(Decoder(False), bytes(changed), want) and got == want

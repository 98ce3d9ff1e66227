"""The compiled decoder (kernel/_ctdecode.c) against its reference, the pure-Python one (kernel/decode.py).

Both must give the same rows, the same errors and the same count of undecodable events on every input:
real kernel bytes, the same with bytes flipped or cut, and random bytes. The compiled one must never read
past a message or crash: a flipped length byte is exactly what would make C read out of bounds.
"""

from __future__ import annotations

import os
import struct
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop import model
from cttop.kernel import _ctdecode, framing, native
from cttop.kernel import nlconst as C
from cttop.kernel.decode import DecodeError, Decoder, ErrorReply
from cttop.kernel.events import decode_events
from cttop.table import packing
from tests.unit.test_decode import messages

DUMP = messages("dump_mix.bin")
EVENTS = messages("events_mix.bin")
CHUNKS = messages("dump_realistic.bin.gz")


def test_the_compiled_decoder_is_built_and_on_unless_turned_off() -> None:
    """scripts/setup.sh builds it (hatch_build.py); it is on unless CTTOP_PURE_PYTHON is set (the suite's
    pure-Python run), and then nothing uses it."""
    assert native.BUILT is _ctdecode
    if os.environ.get("CTTOP_PURE_PYTHON"):
        assert native.DEFAULT is None and Decoder().compiled is None
    else:
        assert native.DEFAULT is _ctdecode and Decoder().compiled is _ctdecode


def test_its_constants_are_the_ones_python_defines() -> None:
    """The C file copies the kernel's numbers; their one definition is in nlconst, framing and model."""
    where = {"NLH_LEN": framing.NLH_LEN, "HEADER_LEN": framing.HEADER_LEN, "NFGEN_FAMILY": framing.NFGEN_FAMILY,
             "AF_INET": model.AF_INET, "AF_INET6": model.AF_INET6, "NO_PSTATE": model.NO_PSTATE,
             "EV_NEW": model.EV_NEW, "EV_UPDATE": model.EV_UPDATE, "EV_DESTROY": model.EV_DESTROY,
             "ROW_LEN": model.ROW_LEN, "IPS_ASSURED": model.IPS_ASSURED, "IPS_SEEN_REPLY": model.IPS_SEEN_REPLY,
             "UNREAD": packing.UNREAD}
    where |= {name: getattr(model, name) for name in dir(model) if name.startswith("R_")}
    consts = _ctdecode.CONSTANTS
    assert len(consts) > 50
    for name, value in consts.items():
        assert value == where.get(name, getattr(C, name, None)), name


def outcome(compiled: bool, kind: str, buf: bytes | bytearray | memoryview) -> tuple[object, ...]:
    """What one decoder makes of ``buf`` read as a dump chunk or as events: rows, and the error or bad count."""
    out: list = []
    dec = Decoder(compiled)
    try:
        if kind == "dump":
            return ("done" if dec.decode_chunk(buf, out) else "more", out)  # type: ignore[arg-type]
        return ("bad", decode_events(dec, buf, out), out)
    except ErrorReply as e:
        return ("error reply", e.code, out)
    except DecodeError as e:
        return ("decode error", str(e), out)


def same(kind: str, buf: bytes | bytearray | memoryview) -> None:
    assert outcome(True, kind, buf) == outcome(False, kind, buf)


def padded(msgs: list[bytes]) -> bytes:
    return b"".join(m + b"\0" * (-len(m) % 4) for m in msgs)


@pytest.mark.parametrize("kind", ["dump", "events"])
def test_real_kernel_bytes_decode_alike(kind: str) -> None:
    for buf in [*CHUNKS, padded(DUMP), padded(EVENTS), *EVENTS]:
        same(kind, buf)
        same(kind, bytearray(buf))
        same(kind, memoryview(bytearray(buf))[:len(buf)])
    rows = outcome(True, "dump", padded(DUMP))[1]
    assert len(rows) == len(DUMP)  # type: ignore[arg-type]


def test_every_kind_of_event_is_told_apart() -> None:
    got = outcome(True, "events", padded(EVENTS))
    assert got[1] == 0 and {k for k, _ in got[2]} == {model.EV_NEW, model.EV_UPDATE, model.EV_DESTROY}  # type: ignore


def with_labels(msg: bytes, bitmap: bytes) -> bytes:
    """``msg`` with a CTA_LABELS attribute appended (the kernel's bitmap of unsigned longs)."""
    attr = struct.pack("<HH", 4 + len(bitmap), C.CTA_LABELS) + bitmap
    body = msg + b"\0" * (-len(msg) % 4) + attr
    return struct.pack("<I", len(body)) + body[4:]


def test_a_flow_with_labels_is_decoded_in_its_place() -> None:
    """The compiled decoder leaves labels to Python, mid-chunk: the rows keep their order and the labels."""
    labelled = with_labels(DUMP[1], struct.pack("=QQ", 1 << 5, 1 << 3))
    buf = padded([DUMP[0], labelled, DUMP[2]])
    got = outcome(True, "dump", buf)
    assert got == outcome(False, "dump", buf)
    rows = got[1]
    assert [r[model.R_LABELS] for r in rows] == [0, 1 << 5 | 1 << 67, 0]  # type: ignore[union-attr]
    same("events", buf)


def test_a_message_lacking_what_a_row_needs_is_left_to_python() -> None:
    """No CTA_ID: Python raises its own error, with its own words, where the message is."""
    msg = DUMP[0]
    body = bytearray(msg[:framing.HEADER_LEN])
    for off, length, typ in _top_attrs(msg):
        if typ != C.CTA_ID:
            body += msg[off:off + ((length + 3) & ~3)]
    struct.pack_into("<I", body, 0, len(body))
    buf = padded([DUMP[1], bytes(body)])
    got = outcome(True, "dump", buf)
    assert got[0] == "decode error" and "lacks its id" in got[1] and len(got[2]) == 1  # type: ignore[arg-type]
    assert got == outcome(False, "dump", buf)


def _top_attrs(msg: bytes) -> list[tuple[int, int, int]]:
    out, pos = [], framing.HEADER_LEN
    while pos + 4 <= len(msg):
        length, typ = struct.unpack_from("<HH", msg, pos)
        out.append((pos, length, typ & C.NLA_TYPE_MASK))
        pos += (length + 3) & ~3
    return out


@pytest.mark.parametrize("pos", [-5, 10**9])
def test_a_position_outside_the_buffer_decodes_nothing(pos: int) -> None:
    out: list = []
    assert _ctdecode.dump(DUMP[0], pos, out) == len(DUMP[0]) and out == []


@pytest.mark.parametrize("kind", ["dump", "events"])
@settings(max_examples=600, deadline=None)
@given(msgs=st.lists(st.sampled_from(DUMP + EVENTS), min_size=1, max_size=4), data=st.data())
def test_mutated_real_bytes_decode_alike(kind: str, msgs: list[bytes], data: st.DataObject) -> None:
    """Real messages with bytes flipped (lengths and types included) or the buffer cut short."""
    b = bytearray(padded(msgs))
    for _ in range(data.draw(st.integers(0, 6))):
        b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(b)))
    same(kind, bytes(b[:cut]))


@pytest.mark.parametrize("kind", ["dump", "events"])
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_random_bytes_decode_alike(kind: str, data: bytes) -> None:
    same(kind, data)


def header_variants(msg: bytes) -> list[bytes]:
    """``msg`` with each attribute header changed: every length from 4 short to 4 long (a leaf of the wrong
    size, a nest that overruns its parent or the message), and every type bit flipped or the nesting flag set."""
    from cttop.kernel.decode import _walk

    out = []
    for off, length, typ in _walk(msg, 0, len(msg)).headers:
        for ln in range(max(0, length - 4), length + 5):
            if ln != length:
                b = bytearray(msg)
                struct.pack_into("<H", b, off, ln)
                out.append(bytes(b))
        for bit in [*range(6), 15]:
            b = bytearray(msg)
            struct.pack_into("<H", b, off + 2, typ ^ 1 << bit)
            out.append(bytes(b))
    return out


@pytest.mark.parametrize("kind", ["dump", "events"])
def test_every_attribute_header_changed_decodes_alike(kind: str) -> None:
    """Exhaustive where random flips are thin: each header of each real message, each way it can be wrong."""
    n = 0
    for msg in DUMP + EVENTS:
        for variant in header_variants(msg):
            same(kind, padded([DUMP[0], variant, DUMP[0]]))
            n += 1
    assert n > 5000


def test_a_build_left_from_another_version_is_not_used(capsys: pytest.CaptureFixture[str]) -> None:
    """A checkout updated without building again keeps the last build: called the new way it would fail mid-view
    (recv_queued took three arguments before, and there were no Digests). native refuses it and says why."""
    assert native.usable(_ctdecode) is _ctdecode and native.usable(None) is None
    assert capsys.readouterr().err == ""
    for api in (None, native.API - 1, native.API + 1):
        stale = types.ModuleType("cttop.kernel._ctdecode")
        stale.__file__ = "/somewhere/_ctdecode.so"
        if api is not None:
            stale.API = api  # type: ignore[attr-defined]
        assert native.usable(stale) is None
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "/somewhere/_ctdecode.so is another version's" in err
        assert "running pure Python" in err and "pip install -e ." in err


def test_the_stale_builds_line_escapes_its_path(capsys: pytest.CaptureFixture[str]) -> None:
    stale = types.ModuleType("cttop.kernel._ctdecode")
    stale.__file__ = "/opt/\x1b[2Jevil\n/_ctdecode.so"
    assert native.usable(stale) is None
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.count("\n") == 1 and "evil" in err

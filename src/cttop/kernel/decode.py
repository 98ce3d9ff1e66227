"""Decode ctnetlink conntrack messages into flow rows, fast.

A generic TLV walk costs ~4 µs a message in Python. But messages from one kernel
come in few layouts: same attributes, same order, same sizes, differing only in
values. So the walk is done once per layout and turned into a *template*: the
layout's fingerprint (its attribute headers' bytes, see :func:`_fixed`) and one
big-endian Struct over every value. A message whose length and fingerprint match
a known template is decoded with one C-level unpack and one generated tuple
builder; anything else takes the walk, which also teaches a new template.

A dump (:meth:`Decoder.decode_chunk`) goes one step further: every template is also a
byte pattern (its netlink header and attribute headers literal, its values any byte),
and one compiled regex alternating them matches a whole message in C and says which
layout it has. Unpacking the ~58 header fields to compare them cost more than decoding
the values; the regex checks the same bytes in a third of the time. One message at a
time (events, and what the regex leaves), the fingerprint is checked by reading the
message as one integer and masking the values out: two C calls, not ~58 fields.

Where it was built (hatch_build.py), a compiled decoder (``_ctdecode.c``) takes every message it can
first: the same walk in C, a whole buffer per call, ~4× faster on a real dump. It leaves everything
unusual (errors, NLMSG_DONE, labels, anything malformed) to this module, which stays the reference:
the two give the same rows (tests/unit/test_decode_compiled.py). ``CTTOP_PURE_PYTHON=1`` turns it off.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Protocol

from cttop.kernel import native
from cttop.kernel import nlconst as C
from cttop.kernel.framing import ERRNO, HEADER_LEN, NFGEN_FAMILY, NLA, NLH3, NLH_LEN, DecodeError, align, attrs
from cttop.kernel.nlconst import NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR
from cttop import model as M
from cttop.model import AF_INET, AF_INET6, NO_PSTATE, ROW_LEN, Row

if TYPE_CHECKING:
    from cttop.kernel._ctdecode import Counts, Digests, Records


class Holder(Protocol):
    """Where a dump counted by :meth:`Decoder.count_chunk` is also held (table.store's Loading): the compiled store
    the C walk packs each flow into (a bounded table's digests: table.tally), read at ``seen``, and what holds and
    counts a row this module decoded instead."""

    into: Records | Digests
    seen: int

    def row(self, row: Row) -> None: ...

MAX_TEMPLATES = 512  # garbage input must not grow the cache without bound
# The newest templates a dump's regex alternates: a kernel's dump has a few dozen layouts at most, and
# the pattern is recompiled whenever a template is learned. Older ones still decode, via decode_one.
SCAN_TEMPLATES = 64


class ErrorReply(Exception):
    """An NLMSG_ERROR inside a dump; ``code`` is the positive errno."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# Where each named leaf lands in the row; names not here (icmp parts) are combined below.
_ROW_INDEX = {
    "id": M.R_ID, "proto": M.R_PROTO, "pstate": M.R_PSTATE, "status": M.R_STATUS, "src": M.R_SRC, "dst": M.R_DST,
    "sport": M.R_SPORT, "dport": M.R_DPORT, "rsrc": M.R_RSRC, "rdst": M.R_RDST, "rsport": M.R_RSPORT,
    "rdport": M.R_RDPORT, "timeout": M.R_TIMEOUT, "mark": M.R_MARK, "zone": M.R_ZONE, "use": M.R_USE,
    "opkts": M.R_OPKTS, "obytes": M.R_OBYTES, "rpkts": M.R_RPKTS, "rbytes": M.R_RBYTES, "start": M.R_START,
    "labels": M.R_LABELS,
}
_DEFAULTS: list[object] = [0, 0, 0, NO_PSTATE, 0, b"", b"", 0, 0, b"", b"", 0, 0, 0, 0, 0, 0,
                           None, None, None, None, 0, 0]
assert len(_DEFAULTS) == ROW_LEN

_U = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass
class _Walk:
    """What one walk over a message found: leaf fields and every attribute header."""

    family: int
    fields: dict[str, tuple[int, str]]  # name -> (offset in message, struct code)
    headers: list[tuple[int, int, int]]  # (offset, nla_len, nla_type)


def _leaf(w: _Walk, name: str, pos: int, ln: int, size: int | None, base: int) -> None:
    plen = ln - NLA.size
    if size is not None and plen != size:
        raise DecodeError(f"ctnetlink: attribute {name} has length {plen}, expected {size}")
    code = _U[plen] if size is not None else f"{plen}s"
    w.fields[name] = (pos + NLA.size - base, code)


def _attrs(buf: bytes | bytearray | memoryview, pos: int, end: int, w: _Walk,
           base: int) -> Iterator[tuple[int, int, int]]:
    while pos + NLA.size <= end:
        ln, typ = NLA.unpack_from(buf, pos)
        if ln < NLA.size or pos + ln > end:
            raise DecodeError(f"ctnetlink: attribute at byte {pos - base} has bad length {ln}")
        w.headers.append((pos - base, ln, typ))
        yield pos, ln, typ & C.NLA_TYPE_MASK
        pos += align(ln)
    if pos < end and end - pos >= NLA.size:
        raise DecodeError(f"ctnetlink: trailing bytes at {pos - base}")


def _tuple(buf: bytes | bytearray | memoryview, pos: int, end: int, w: _Walk, base: int, r: str) -> None:
    for p, ln, t in _attrs(buf, pos + NLA.size, end, w, base):
        if t == C.CTA_TUPLE_IP:
            for p2, ln2, t2 in _attrs(buf, p + NLA.size, p + ln, w, base):
                if t2 in (C.CTA_IP_V4_SRC, C.CTA_IP_V6_SRC):
                    _leaf(w, r + "src", p2, ln2, None, base)
                elif t2 in (C.CTA_IP_V4_DST, C.CTA_IP_V6_DST):
                    _leaf(w, r + "dst", p2, ln2, None, base)
        elif t == C.CTA_TUPLE_PROTO:
            for p2, ln2, t2 in _attrs(buf, p + NLA.size, p + ln, w, base):
                if t2 == C.CTA_PROTO_NUM and not r:
                    _leaf(w, "proto", p2, ln2, 1, base)
                elif t2 == C.CTA_PROTO_SRC_PORT:
                    _leaf(w, r + "sport", p2, ln2, 2, base)
                elif t2 == C.CTA_PROTO_DST_PORT:
                    _leaf(w, r + "dport", p2, ln2, 2, base)
                elif t2 in (C.CTA_PROTO_ICMP_ID, C.CTA_PROTO_ICMPV6_ID):
                    _leaf(w, r + "icmp_id", p2, ln2, 2, base)
                elif t2 in (C.CTA_PROTO_ICMP_TYPE, C.CTA_PROTO_ICMPV6_TYPE):
                    _leaf(w, r + "icmp_type", p2, ln2, 1, base)
                elif t2 in (C.CTA_PROTO_ICMP_CODE, C.CTA_PROTO_ICMPV6_CODE):
                    _leaf(w, r + "icmp_code", p2, ln2, 1, base)
        elif t == C.CTA_TUPLE_ZONE and not r:
            _leaf(w, "tzone", p, ln, 2, base)


# The message's own one-value attributes: the field each is and its payload's size (None: any, the labels).
_LEAVES: dict[int, tuple[str, int | None]] = {
    C.CTA_STATUS: ("status", 4), C.CTA_TIMEOUT: ("timeout", 4), C.CTA_MARK: ("mark", 4), C.CTA_USE: ("use", 4),
    C.CTA_ID: ("id", 4), C.CTA_ZONE: ("zone", 2), C.CTA_LABELS: ("labels", None),
}


def _walk(buf: bytes | bytearray | memoryview, off: int, length: int) -> _Walk:
    if length < HEADER_LEN:
        raise DecodeError(f"ctnetlink: message of {length} bytes is shorter than its header")
    w = _Walk(buf[off + NFGEN_FAMILY], {}, [])
    end = off + length
    for p, ln, t in _attrs(buf, off + HEADER_LEN, end, w, off):
        if t == C.CTA_TUPLE_ORIG:
            _tuple(buf, p, p + ln, w, off, "")
        elif t == C.CTA_TUPLE_REPLY:
            _tuple(buf, p, p + ln, w, off, "r")
        elif t in _LEAVES:
            name, size = _LEAVES[t]
            _leaf(w, name, p, ln, size, off)
        elif t == C.CTA_PROTOINFO:
            for p2, ln2, t2 in _attrs(buf, p + NLA.size, p + ln, w, off):
                if t2 in (C.CTA_PROTOINFO_TCP, C.CTA_PROTOINFO_DCCP, C.CTA_PROTOINFO_SCTP):
                    for p3, ln3, t3 in _attrs(buf, p2 + NLA.size, p2 + ln2, w, off):
                        if t3 == C.CTA_PROTOINFO_TCP_STATE:  # state is attribute 1 for all three
                            _leaf(w, "pstate", p3, ln3, 1, off)
        elif t in (C.CTA_COUNTERS_ORIG, C.CTA_COUNTERS_REPLY):
            d = "o" if t == C.CTA_COUNTERS_ORIG else "r"
            for p2, ln2, t2 in _attrs(buf, p + NLA.size, p + ln, w, off):
                if t2 == C.CTA_COUNTERS_PACKETS:
                    _leaf(w, d + "pkts", p2, ln2, 8, off)
                elif t2 == C.CTA_COUNTERS_BYTES:
                    _leaf(w, d + "bytes", p2, ln2, 8, off)
                elif t2 == C.CTA_COUNTERS32_PACKETS:
                    _leaf(w, d + "pkts", p2, ln2, 4, off)
                elif t2 == C.CTA_COUNTERS32_BYTES:
                    _leaf(w, d + "bytes", p2, ln2, 4, off)
        elif t == C.CTA_TIMESTAMP:
            for p2, ln2, t2 in _attrs(buf, p + NLA.size, p + ln, w, off):
                if t2 == C.CTA_TIMESTAMP_START:
                    _leaf(w, "start", p2, ln2, 8, off)
    if "id" not in w.fields or "src" not in w.fields or "proto" not in w.fields:
        raise DecodeError("ctnetlink: message lacks its id or original tuple")
    addr_len = {"src": len_of(w, "src"), "dst": len_of(w, "dst")}
    expect = 4 if w.family == AF_INET else 16 if w.family == AF_INET6 else None
    if expect is None or any(v not in (0, expect) for v in addr_len.values()):
        raise DecodeError(f"ctnetlink: family {w.family} with {addr_len['src']}-byte addresses")
    return w


def len_of(w: _Walk, name: str) -> int:
    f = w.fields.get(name)
    if f is None:
        return 0
    return int(f[1][:-1]) if f[1].endswith("s") else struct.calcsize(f[1])


@dataclass(frozen=True)
class Template:
    length: int
    # The fingerprint: the message read as one little-endian int (:func:`_as_int`), ANDed with
    # ``mask`` (all ones over the bytes _fixed names), equals ``fingerprint``.
    mask: int
    fingerprint: int
    values: struct.Struct
    build: Callable[[tuple[object, ...]], Row]
    pattern: bytes  # a regex matching exactly this layout's messages (see _pattern)


def _fixed(length: int, w: _Walk, head: int) -> list[bool]:
    """Which bytes of a ``length``-byte message of ``w``'s layout the layout fixes: the first ``head``
    bytes of the netlink header, nfgenmsg's family and version, and every attribute header (the
    fingerprint). The rest are values, and seq, portid and res_id, which change with every message."""
    fixed = [False] * length
    fixed[0:head] = [True] * head
    fixed[NFGEN_FAMILY:NFGEN_FAMILY + 2] = [True, True]  # nfgen_family, version
    for off, _ln, _typ in w.headers:
        fixed[off:off + NLA.size] = [True] * NLA.size
    return fixed


def _as_int(buf: bytes | bytearray | memoryview, off: int, length: int) -> int:
    return int.from_bytes(buf[off:off + length], "little")


def _pattern(msg: bytes, w: _Walk) -> bytes:
    """A regex for messages of ``msg``'s layout: the bytes the layout fixes are literal, the rest any byte.

    Fixed (:func:`_fixed`) with the netlink length, type and flags, so NLMSG_DONE, errors and
    NLM_F_DUMP_INTR never match. Compiled with re.DOTALL, so ``.`` is any byte.
    """
    fixed = _fixed(len(msg), w, 8)  # nlmsg_len, nlmsg_type, nlmsg_flags
    parts, pos = [], 0
    for lit, same in groupby(fixed):
        run = len(list(same))
        parts.append(re.escape(msg[pos:pos + run]) if lit else b".{%d}" % run)
        pos += run
    return b"".join(parts)


_LONG = struct.calcsize("L")


def _labels(bitmap: bytes) -> int:
    """CTA_LABELS is the kernel's label bitmap as unsigned longs in host order: bit N of it is label N."""
    words = struct.unpack(f"{len(bitmap) // _LONG}L", bitmap[:len(bitmap) // _LONG * _LONG])
    return sum(word << (8 * _LONG * i) for i, word in enumerate(words))


def _row_expr(w: _Walk, order: list[str]) -> str:
    """Source of a tuple expression building the row from the values tuple ``v``."""
    at = {name: f"v[{i}]" for i, name in enumerate(order)}
    items = [repr(d) for d in _DEFAULTS]
    items[M.R_FAMILY] = repr(w.family)
    for name, idx in _ROW_INDEX.items():
        if name in at:
            items[idx] = at[name]
    if "zone" not in at and "tzone" in at:
        items[M.R_ZONE] = at["tzone"]
    for r, (sp, dp) in (("", (M.R_SPORT, M.R_DPORT)), ("r", (M.R_RSPORT, M.R_RDPORT))):
        if r + "icmp_id" in at:
            items[sp] = at[r + "icmp_id"]
        if r + "icmp_type" in at:
            items[dp] = f"({at[r + 'icmp_type']} << 8 | {at.get(r + 'icmp_code', '0')})"
    if "labels" in at:
        items[M.R_LABELS] = f"_labels({at['labels']})"
    return "(" + ", ".join(items) + ",)"


def compile_template(w: _Walk, length: int, msg: bytes) -> Template:
    """The template of ``w``'s layout; ``msg`` is the walked message's ``length`` bytes."""
    # The netlink header is left out of the fingerprint: the template is found by the length, and an
    # event's type and flags (NEW, UPDATE, DESTROY) differ over one layout.
    mask = int.from_bytes(bytes(0xFF if f else 0 for f in _fixed(length, w, 0)), "little")
    order = sorted(w.fields, key=lambda n: w.fields[n][0])
    vfmt, pos = [">"], 0
    for name in order:
        off, code = w.fields[name]
        vfmt.append(f"{off - pos}x{code}" if off > pos else code)
        pos = off + struct.calcsize(code)
    # Generated once per layout: a straight tuple display is several times faster
    # than any loop that maps values to row slots.
    build = eval("lambda v: " + _row_expr(w, order))  # source built above from constants
    return Template(length, mask, _as_int(msg, 0, length) & mask, struct.Struct("".join(vfmt)), build,
                    _pattern(msg, w))


def _unpack_walk(buf: bytes | bytearray | memoryview, off: int, w: _Walk) -> Row:
    order = sorted(w.fields, key=lambda n: w.fields[n][0])
    vals = tuple(struct.unpack_from(">" + w.fields[n][1], buf, off + w.fields[n][0])[0] for n in order)
    build: Callable[[tuple[object, ...]], Row] = eval("lambda v: " + _row_expr(w, order))
    return build(vals)


class Decoder:
    """Turns buffers of ctnetlink messages into rows; keeps the learned templates."""

    def __init__(self, compiled: bool = native.DEFAULT is not None) -> None:
        if compiled and native.BUILT is None:
            raise ValueError("the compiled decoder was not built")
        # The compiled decoder's dump(buf, pos, out) and events(buf, pos, out), or None: the templates do it all.
        self.compiled = native.BUILT if compiled else None
        self.templates: dict[int, list[Template]] = {}
        # The newest template per length, for the events' inner loop (events.decode_events): its mask and
        # fingerprint, values unpack as a bare bound method, and row builder.
        self.fast: dict[int, tuple[int, int, Callable[..., tuple[object, ...]],
                                   Callable[[tuple[object, ...]], Row]]] = {}
        self._learned: list[Template] = []  # every template, oldest first
        # decode_chunk's regex over the newest templates' patterns (None: stale, recompile before use),
        # and per regex group (template) its values unpack, row builder and aligned length.
        self._scan: re.Pattern[bytes] | None = None
        self._scan_of: list[tuple[Callable[..., tuple[object, ...]], Callable[[tuple[object, ...]], Row], int]] = []

    def decode_one(self, buf: bytes | bytearray | memoryview, off: int, length: int) -> Row:
        """One conntrack message (nlmsghdr at ``off``) into a row; DecodeError if malformed."""
        if off + length > len(buf):
            raise DecodeError(f"ctnetlink: message of {length} bytes truncated at {len(buf) - off}")
        for t in self.templates.get(length, ()):
            if _as_int(buf, off, length) & t.mask == t.fingerprint:
                return t.build(t.values.unpack_from(buf, off))
        try:
            w = _walk(buf, off, length)
        except (struct.error, IndexError, KeyError, ValueError) as e:
            raise DecodeError(f"ctnetlink: malformed message: {e}") from None
        n = sum(len(v) for v in self.templates.values())
        if n < MAX_TEMPLATES:
            t = compile_template(w, length, bytes(buf[off:off + length]))
            self.templates.setdefault(length, []).append(t)
            self._learned.append(t)
            self.fast[length] = (t.mask, t.fingerprint, t.values.unpack_from, t.build)
            self._scan = None
            return t.build(t.values.unpack_from(buf, off))
        return _unpack_walk(buf, off, w)

    def _compile_scan(self) -> re.Pattern[bytes]:
        """One regex alternating the newest templates' patterns, each its own group, so a match's
        ``lastindex`` names its template."""
        newest = self._learned[-SCAN_TEMPLATES:]
        self._scan_of = [(lambda v: (), lambda v: (), 0)]  # group numbers start at 1
        self._scan_of += [(t.values.unpack_from, t.build, align(t.length)) for t in newest]
        alternatives = b"|".join(b"(" + t.pattern + b")" for t in newest)
        self._scan = re.compile(alternatives or b"(?!)", re.DOTALL)  # (?!): no template yet, never matches
        return self._scan

    def decode_chunk(self, buf: bytes, out: list[Row]) -> bool:
        """Decode one received chunk of a dump into ``out``; True once NLMSG_DONE is seen.

        This is the dump's hot loop: a message of a known layout costs one regex match (which
        also checks its framing, see :func:`_pattern`), one values unpack and one row builder.
        Anything else gets the full framing checks and :meth:`decode_one`.
        """
        scan = self._scan or self._compile_scan()
        # Locals, not attributes: each is read once per message.
        match, scan_of, append, compiled = scan.match, self._scan_of, out.append, self.compiled
        pos, n = 0, len(buf)
        while pos < n:
            if compiled is not None:  # it decodes up to the first message it leaves to the code below
                pos = compiled.dump(buf, pos, out)
                if pos >= n:
                    break
            m = match(buf, pos)
            if m is not None:
                values, build, step = scan_of[m.lastindex]  # type: ignore[index]
                append(build(values(buf, pos)))
                pos += step
                continue
            row, pos = self._one(buf, pos)
            if row is None:
                return True
            append(row)
            if self._scan is None:  # it learned a layout
                match, scan_of = self._compile_scan().match, self._scan_of
        return False

    def _one(self, buf: bytes, pos: int) -> tuple[Row | None, int]:
        """The dump's message at ``pos`` with every framing check, and where the next starts; None at NLMSG_DONE."""
        n = len(buf)
        if n - pos < NLH_LEN:
            raise DecodeError(f"netlink: {n - pos} stray bytes after the last message")
        length, typ, flags = NLH3.unpack_from(buf, pos)
        if length < NLH_LEN or pos + length > n:
            raise DecodeError(f"netlink: message at byte {pos} claims {length} bytes of {n - pos}")
        if typ == NLMSG_DONE:
            return None, n
        if typ == NLMSG_ERROR:
            raise ErrorReply(-ERRNO.unpack_from(buf, pos + NLH_LEN)[0])
        if flags & NLM_F_DUMP_INTR:
            raise DecodeError("netlink: the table changed during the dump (NLM_F_DUMP_INTR)")
        return self.decode_one(buf, pos, length), pos + align(length)

    def count_chunk(self, buf: bytes, counts: Counts, hold: Holder | None = None) -> bool:
        """Count one received chunk of a dump into ``counts`` (kernel/_counts.c) as :meth:`decode_chunk` would
        decode it, making a row only of a message the C walk leaves here; True once NLMSG_DONE is seen. With
        ``hold``, every flow is held too: the walk puts it into ``hold.into``, and a row made here goes to
        ``hold.row`` (which counts it too), in its place."""
        pos, n, done, refused = 0, len(buf), False, None
        while pos < n:
            pos = counts.dump(buf, pos) if hold is None else counts.dump(buf, pos, hold.into, hold.seen)
            if pos >= n:
                break
            row, pos = self._one(buf, pos)
            if row is None:
                done = True
                break
            try:
                if hold is None:
                    counts.add_row(row)
                else:
                    hold.row(row)  # held and counted as the rows' way would (or refused as it refuses it)
            except (TypeError, struct.error) as e:
                # Counters half there. Rows are counted (and held) once their chunk is decoded, so a message
                # broken later in it is what the rows' way reports: the same here, and this only when none is.
                refused = refused or e
        if refused is not None:
            raise refused
        return done


def helper_name(buf: bytes | bytearray | memoryview, off: int, length: int) -> str | None:
    """The helper a conntrack message names (CTA_HELP's CTA_HELP_NAME: ``ftp``, ``sip``…), or None.

    Not part of the row, so never on the hot path: the templates step over CTA_HELP (its header is
    in a layout's fingerprint, its value in no field), and the flow detail asks the kernel for its one
    entry (:meth:`cttop.kernel.ctnetlink.Ctnetlink.helper_of`) when it opens.
    """
    for typ, val in attrs(buf, off + HEADER_LEN, off + length):
        if typ == C.CTA_HELP:
            for sub, name in attrs(val, 0, len(val)):
                if sub == C.CTA_HELP_NAME:
                    return name.split(b"\0", 1)[0].decode("ascii", "backslashreplace")
    return None

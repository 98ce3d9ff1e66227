"""Rows packed into compact ``bytes`` for storage, and back.

A row as a tuple of Python objects costs ~500 bytes; packed it is 62–142 bytes
plus the 33-byte bytes header, which keeps a million flows within ~200 MB with
the dict. Four layouts: IPv4/IPv6, with and without counters, told apart by length.
Labels are rare and kept beside the table, not here.

Beside the row, a record keeps what the screen needs to stay truthful between dumps
(:func:`record_meta`): the second its timeout was read, so the timeout can count down,
and whether its counters are still unread (an event's row carries none, while the
flow may well have them), so "not known yet" is not shown as "accounting off".
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Final

from cttop import model
from cttop.kernel import native
from cttop.model import AF_INET6, R_DPORT, R_FAMILY, R_ID, R_OPKTS, R_RBYTES, R_SRC, R_START, R_TIMEOUT, R_USE, Row

# Fields in row order R_ID..R_USE, then R_START, when the timeout was read (whole seconds of the source's
# clock), the flags, then optionally the four counters. (name, struct code); "a" stands for the address size.
_FIELDS: Final = (("id", "I"), ("family", "B"), ("proto", "B"), ("pstate", "B"), ("status", "I"),
                  ("src", "a"), ("dst", "a"), ("sport", "H"), ("dport", "H"),
                  ("rsrc", "a"), ("rdst", "a"), ("rsport", "H"), ("rdport", "H"),
                  ("timeout", "I"), ("mark", "I"), ("zone", "H"), ("use", "I"), ("start", "Q"),
                  ("seen", "I"), ("flags", "B"),
                  ("opkts", "Q"), ("obytes", "Q"), ("rpkts", "Q"), ("rbytes", "Q"))
_HEAD: Final = "".join("{a}s" if code == "a" else code for _n, code in _FIELDS[:20])
_COUNTERS: Final = "".join(code for _n, code in _FIELDS[20:])
UNREAD: Final = 1  # flag: the kernel has not shown this flow's counters yet
V4 = struct.Struct(">" + _HEAD.format(a=4))
V6 = struct.Struct(">" + _HEAD.format(a=16))
V4C = struct.Struct(">" + _HEAD.format(a=4) + _COUNTERS)
V6C = struct.Struct(">" + _HEAD.format(a=16) + _COUNTERS)
_BY_SIZE = {V4.size: (V4, False), V6.size: (V6, False), V4C.size: (V4C, True), V6C.size: (V6C, True)}
assert len(_BY_SIZE) == 4, "layout sizes must be distinct"
SIZES: Final = tuple(_BY_SIZE)  # every record is one of these lengths
# Row slices: what the head holds, and the four counters it leaves to the tail.
HEAD_FIELDS: Final = slice(R_ID, R_USE + 1)
COUNTERS: Final = slice(R_OPKTS, R_RBYTES + 1)
assert R_USE + 1 == R_OPKTS and R_RBYTES + 1 == R_START, "the counters sit between use and start in a row"


def _offsets(a: int) -> dict[str, int]:
    """Byte offset of each field in a packed record with ``a``-byte addresses (big-endian, no padding)."""
    out, pos = {}, 0
    for name, code in _FIELDS:
        out[name] = pos
        pos += a if code == "a" else struct.calcsize(code)
    return out


# Offsets by address size; the fast paths (sorting, owner ranking) slice records at these.
O4: Final = _offsets(4)
O6: Final = _offsets(16)
OFFSETS: Final = {4: O4, 16: O6}
assert O4["opkts"] == V4.size and O6["opkts"] == V6.size and O4["rbytes"] + 8 == V4C.size \
    and O6["rbytes"] + 8 == V6C.size, "offsets must follow the layouts"
# The same in both layouts: everything before the addresses.
ID: Final = slice(O4["id"], O4["family"])  # the conntrack id, big-endian
FAMILY_AT: Final = O4["family"]
PROTO_AT: Final = O4["proto"]
PSTATE_AT: Final = O4["pstate"]
STATUS_AT: Final = O4["status"]
ORIG_AT: Final = O4["src"]  # the original tuple: src dst sport dport, then the reply tuple in the same shape
assert (O4["id"], FAMILY_AT, PROTO_AT, PSTATE_AT, STATUS_AT, ORIG_AT) == (
    O6["id"], O6["family"], O6["proto"], O6["pstate"], O6["status"], O6["src"])
assert all([o["dst"], o["sport"], o["dport"], o["rsrc"], o["rdst"], o["rsport"], o["rdport"]]
           == [ORIG_AT + a, ORIG_AT + 2 * a, ORIG_AT + 2 * a + 2, ORIG_AT + 2 * a + 4, ORIG_AT + 3 * a + 4,
               ORIG_AT + 4 * a + 4, ORIG_AT + 4 * a + 6] for a, o in OFFSETS.items()), "the two tuples, back to back"
# The counters (opkts, obytes, rpkts, rbytes), read in one unpack; record length -> where they start.
COUNTER_VALUES: Final = struct.Struct(">" + _COUNTERS)
COUNTERS_AT: Final = {V4C.size: O4["opkts"], V6C.size: O6["opkts"]}
assert [n for n, _c in _FIELDS[20:]] == ["opkts", "obytes", "rpkts", "rbytes"]
V6_MIN: Final = V6.size  # records this long or longer have 16-byte addresses (V4C < V6)
assert V4C.size < V6_MIN
# How the compiled store packs a row itself (kernel/_records.c, Records.put_row and put_rows: pack's work in C,
# ~0.45 µs a row in Python): each field's source, its row index or the record's own seen and flags, and its size
# in bytes (0: an address), every record's fields and then a counted one's, in _FIELDS' order. It checks that
# these make the four layouts.
_OWN_FIELDS: Final = {"seen": -1, "flags": -2}
PACK_SPEC: Final = tuple(
    tuple((_OWN_FIELDS[name] if name in _OWN_FIELDS else getattr(model, "R_" + name.upper()),
           0 if code == "a" else struct.calcsize(code)) for name, code in part)
    for part in (_FIELDS[:20], _FIELDS[20:]))
# Each layout (in SIZES' order) as the compiled store takes it (kernel/_records.c): its length, where the two
# tuples start, its address length. It cuts a reply tuple that mirrors the original, and makes it again.
LAYOUTS: Final = tuple((n, ORIG_AT, 16 if n >= V6_MIN else 4) for n in SIZES)


def addr_size(rec: bytes) -> int:
    return 4 if len(rec) < V6_MIN else 16


def pack(row: Row, seen: int = 0, flags: int = 0) -> bytes:
    """``seen``: when the row was read (its timeout counts down from then); ``flags``: UNREAD or 0."""
    v6 = row[R_FAMILY] == AF_INET6
    # The arguments as one tuple: f(*head, a, b) builds them through a list, a measurable share of an event.
    if row[R_OPKTS] is None:
        return (V6 if v6 else V4).pack(*(row[HEAD_FIELDS] + (row[R_START], seen, flags)))
    return (V6C if v6 else V4C).pack(*(row[HEAD_FIELDS] + (row[R_START], seen, flags) + row[COUNTERS]))


def unpack(rec: bytes, labels: int = 0) -> Row:
    st, counted = _BY_SIZE[len(rec)]
    t = st.unpack(rec)
    # One concatenation with a displayed tuple: half the cost of joining three slices.
    # t is the head (R_ID..R_USE), start, then the counters when counted.
    if counted:
        return t[:17] + (t[20], t[21], t[22], t[23], t[17], labels)
    return t[:17] + (None, None, None, None, t[17], labels)


# unpack's literal indexes: the head is R_ID..R_USE (17 fields), then start, seen, flags, the counters.
assert R_USE + 1 == 17 and R_START == 21 and _FIELDS[17][0] == "start" and _FIELDS[20][0] == "opkts"

_META = struct.Struct(">IB")
assert O4["flags"] == O4["seen"] + 4 and O6["flags"] == O6["seen"] + 4, "seen and flags are adjacent"
_META_AT = {V4.size: O4["seen"], V4C.size: O4["seen"], V6.size: O6["seen"], V6C.size: O6["seen"]}
# Record length -> where its flags byte is: FlowTable.apply_events reads it inline.
FLAGS_AT: Final = {n: at + 4 for n, at in _META_AT.items()}


def record_meta(rec: bytes) -> tuple[int, int]:
    """When the record's row was read (whole seconds) and its flags."""
    seen, flags = _META.unpack_from(rec, _META_AT[len(rec)])
    return seen, flags


def timeout_left(row: Row, seen: int, now: float) -> int:
    """The row's timeout counted down from when it was read: what is left at ``now``, at least 0."""
    timeout: int = row[R_TIMEOUT]
    return max(0, timeout - max(0, int(now) - seen))


def ran_out(row: Row, seen: int, now: float) -> bool:
    """Whether the countdown of a row read with time left has reached 0 while the flow is still held: traffic
    renewed its timer since it was read (packets do, silently), or the kernel has yet to reap it. Which one,
    only the next dump can tell: what is left is unknown, not 0."""
    return row[R_TIMEOUT] > 0 and timeout_left(row, seen, now) == 0


# Conntrack ids are 32-bit hashes, so a big table holds colliding ids (7 pairs among
# 262,144 flows here). Flows are keyed by the id in the low 32 bits and a hash of the
# original addresses and ports above it: stable for a flow's life, unique in practice.
# Exported for FlowTable.apply_events, which computes the key inline.
KEY_HIGH = 0xFFFFFFFF << 32
FLOW_TUPLE = slice(R_SRC, R_DPORT + 1)
_PORTS = struct.Struct(">HH")


def flow_key(row: Row) -> int:
    return hash(row[FLOW_TUPLE]) & KEY_HIGH | row[R_ID]  # type: ignore[no-any-return]


def flow_keys(rows: list[Row]) -> list[int]:
    """:func:`flow_key` of each row of a dump's batch: in C where the accelerator was built (a Python call a
    row was ~0.5 s of a million-flow first frame under cProfile), the same keys (tests/unit/test_table_tally.py)."""
    if native.DEFAULT is not None:
        return native.DEFAULT.flow_keys(rows)  # type: ignore[no-any-return]
    return list(map(flow_key, rows))


def record_key(rec: bytes) -> int:
    """:func:`flow_key` of a packed row, without unpacking it."""
    o = OFFSETS[addr_size(rec)]
    src, dst, sport = o["src"], o["dst"], o["sport"]
    return hash((rec[src:dst], rec[dst:sport], *_PORTS.unpack_from(rec, sport))) & KEY_HIGH \
        | int.from_bytes(rec[ID])


def key_id(key: int) -> bytes:
    """The id bytes a record under flow key ``key`` starts with: cheap to compare before the whole key."""
    return (key & ~KEY_HIGH).to_bytes(ID.stop - ID.start, "big")
# Record length -> where its (seen, timeout) are: the forecast reads every record's once per dump. In SIZES'
# order for the compiled store (Records.timeouts).
_SEEN_TIMEOUT_AT: Final = {n: (at, (O6 if n >= V6_MIN else O4)["timeout"]) for n, at in _META_AT.items()}
SEEN_TIMEOUT_AT: Final = tuple(_SEEN_TIMEOUT_AT[n] for n in SIZES)
_U32: Final = struct.Struct(">I")


def read_timeouts(records: Iterable[bytes]) -> Iterator[tuple[int, int]]:
    """Each record's (second it was read, timeout it had left then), without unpacking the rest."""
    u32, where = _U32.unpack_from, _SEEN_TIMEOUT_AT
    for rec in records:
        seen_at, timeout_at = where[len(rec)]
        yield u32(rec, seen_at)[0], u32(rec, timeout_at)[0]

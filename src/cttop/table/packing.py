"""Rows packed into compact ``bytes`` for storage, and back.

A row as a tuple of Python objects costs ~500 bytes; packed it is 53–113 bytes
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
from typing import Final

from cttop.model import AF_INET6, R_DPORT, R_ID, R_OPKTS, R_SRC, R_TIMEOUT, Row

# Fields in row order R_ID..R_USE, then R_START, when the timeout was read (whole seconds of the
# source's clock), the flags, then optionally the four counters.
_HEAD = "IBBBI{a}s{a}sHH{a}s{a}sHHIIHIQIB"
UNREAD: Final = 1  # flag: the kernel has not shown this flow's counters yet
V4 = struct.Struct(">" + _HEAD.format(a=4))
V6 = struct.Struct(">" + _HEAD.format(a=16))
V4C = struct.Struct(">" + _HEAD.format(a=4) + "QQQQ")
V6C = struct.Struct(">" + _HEAD.format(a=16) + "QQQQ")
_BY_SIZE = {V4.size: (V4, False), V6.size: (V6, False), V4C.size: (V4C, True), V6C.size: (V6C, True)}
assert len(_BY_SIZE) == 4, "layout sizes must be distinct"


def pack(row: Row, seen: int = 0, flags: int = 0) -> bytes:
    """``seen``: when the row was read (its timeout counts down from then); ``flags``: UNREAD or 0."""
    v6 = row[1] == AF_INET6
    if row[R_OPKTS] is None:
        return (V6 if v6 else V4).pack(*row[:17], row[21], seen, flags)
    return (V6C if v6 else V4C).pack(*row[:17], row[21], seen, flags, *row[17:21])


def unpack(rec: bytes, labels: int = 0) -> Row:
    st, counted = _BY_SIZE[len(rec)]
    t = st.unpack(rec)
    # One concatenation with a displayed tuple: half the cost of joining three slices.
    if counted:
        return t[:17] + (t[20], t[21], t[22], t[23], t[17], labels)
    return t[:17] + (None, None, None, None, t[17], labels)


_META = struct.Struct(">IB")
_META_AT = {V4.size: V4.size - _META.size, V4C.size: V4.size - _META.size,
            V6.size: V6.size - _META.size, V6C.size: V6.size - _META.size}
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


# Conntrack ids are 32-bit hashes, so a big table holds colliding ids (7 pairs among
# 262,144 flows here). Flows are keyed by the id in the low 32 bits and a hash of the
# original addresses and ports above it: stable for a flow's life, unique in practice.
# Exported for FlowTable.apply_events, which computes the key inline.
KEY_HIGH = 0xFFFFFFFF << 32
FLOW_TUPLE = slice(R_SRC, R_DPORT + 1)
_PORTS = struct.Struct(">HH")
_V4_SIZES = frozenset((V4.size, V4C.size))


def flow_key(row: Row) -> int:
    return hash(row[FLOW_TUPLE]) & KEY_HIGH | row[R_ID]  # type: ignore[no-any-return]


def record_key(rec: bytes) -> int:
    """:func:`flow_key` of a packed row, without unpacking it."""
    a = 4 if len(rec) in _V4_SIZES else 16
    ports = _PORTS.unpack_from(rec, 11 + 2 * a)
    return hash((rec[11:11 + a], rec[11 + a:11 + 2 * a], *ports)) & KEY_HIGH | int.from_bytes(rec[:4])

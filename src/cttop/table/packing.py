"""Rows packed into compact ``bytes`` for storage, and back.

A row as a tuple of Python objects costs ~500 bytes; packed it is 53–113 bytes
plus the 33-byte bytes header, which keeps a million flows within ~200 MB with
the dict. Four layouts: IPv4/IPv6, with and without counters, told apart by length.
Labels are rare and kept beside the table, not here.
"""

from __future__ import annotations

import struct

from cttop.model import AF_INET6, R_OPKTS, Row

# Fields in row order R_ID..R_USE, then R_START, then optionally the four counters.
_HEAD = "IBBBI{a}s{a}sHH{a}s{a}sHHIIHIQ"
V4 = struct.Struct(">" + _HEAD.format(a=4))
V6 = struct.Struct(">" + _HEAD.format(a=16))
V4C = struct.Struct(">" + _HEAD.format(a=4) + "QQQQ")
V6C = struct.Struct(">" + _HEAD.format(a=16) + "QQQQ")
_NONE4 = (None, None, None, None)
_BY_SIZE = {V4.size: (V4, False), V6.size: (V6, False), V4C.size: (V4C, True), V6C.size: (V6C, True)}
assert len(_BY_SIZE) == 4, "layout sizes must be distinct"


def pack(row: Row) -> bytes:
    v6 = row[1] == AF_INET6
    if row[R_OPKTS] is None:
        return (V6 if v6 else V4).pack(*row[:17], row[21])
    return (V6C if v6 else V4C).pack(*row[:17], row[21], *row[17:21])


def unpack(rec: bytes, labels: int = 0) -> Row:
    st, counted = _BY_SIZE[len(rec)]
    t = st.unpack(rec)
    if counted:
        return t[:17] + t[18:22] + (t[17], labels)
    return t[:17] + _NONE4 + (t[17], labels)

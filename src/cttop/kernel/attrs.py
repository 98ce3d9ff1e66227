"""Building netlink attributes for requests."""

from __future__ import annotations

import struct

from cttop.kernel import nlconst as C
from cttop.kernel.framing import NLA, align


def nla(typ: int, payload: bytes) -> bytes:
    n = len(payload)
    return NLA.pack(NLA.size + n, typ) + payload + b"\0" * (align(n) - n)


def nest(typ: int, *children: bytes) -> bytes:
    return nla(typ | C.NLA_F_NESTED, b"".join(children))


def be(fmt: str, v: int) -> bytes:
    return struct.pack(">" + fmt, v)

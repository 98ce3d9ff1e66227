"""Building netlink attributes for requests."""

from __future__ import annotations

import struct

from cttop.kernel import nlconst as C

NLA = struct.Struct("<HH")


def nla(typ: int, payload: bytes) -> bytes:
    return NLA.pack(4 + len(payload), typ) + payload + b"\0" * (-len(payload) % 4)


def nest(typ: int, *children: bytes) -> bytes:
    return nla(typ | C.NLA_F_NESTED, b"".join(children))


def be(fmt: str, v: int) -> bytes:
    return struct.pack(">" + fmt, v)

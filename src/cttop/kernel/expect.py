"""The expectation table: what conntrack helpers (FTP, SIP, TFTP...) told the kernel to let in next.

A helper that reads ``227 Entering Passive Mode (…)`` on an FTP control flow adds an
*expectation*: a tuple (with a mask) the next connection may match, and the flow it
belongs to (the master). It is dumped with IPCTNL_MSG_EXP_GET over the expectation
subsystem, as ``conntrack -L expect`` does. The table is small (``nf_conntrack_expect_max``,
a few thousand at most) and read on demand, so this is a plain attribute walk with
:func:`cttop.kernel.framing.attrs`, not the templated decoder of the flow hot path.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

from cttop.kernel import nlconst as C
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.framing import HEADER_LEN, NFGEN_FAMILY, DecodeError, attrs
from cttop.kernel.netns import NetnsSpec
from cttop.model import AF_INET, GRE, ICMP_PROTOS, addr_text, has_ports, proto_name

_BE16 = struct.Struct(">H")
_BE32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class CtTuple:
    """One direction's tuple, or a mask over one (a mask's fields are bit masks, not values)."""

    family: int
    proto: int
    src: bytes
    dst: bytes
    sport: int  # ICMP: the echo id; GRE: the source key
    dport: int  # ICMP: type << 8 | code; GRE: the destination key

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"src": addr_text(self.src), "dst": addr_text(self.dst)}
        if has_ports(self.proto) or self.proto == GRE:
            d["sport"], d["dport"] = self.sport, self.dport
        elif self.proto in ICMP_PROTOS:
            d["icmp_id"], d["icmp_type"], d["icmp_code"] = self.sport, self.dport >> 8, self.dport & 0xFF
        return d

    def text(self, prefix: str = "") -> str:
        """``src=… dst=… sport=… dport=…`` as conntrack prints a tuple, the addresses' keys prefixed."""
        out = f"{prefix}src={addr_text(self.src)} {prefix}dst={addr_text(self.dst)}"
        if has_ports(self.proto):
            out += f" sport={self.sport} dport={self.dport}"
        elif self.proto == GRE:
            out += f" srckey={self.sport:#x} dstkey={self.dport:#x}"
        elif self.proto in ICMP_PROTOS:
            out += f" type={self.dport >> 8} code={self.dport & 0xFF} id={self.sport}"
        return out


@dataclass(frozen=True, slots=True)
class Expectation:
    id: int
    family: int
    master: CtTuple  # the flow whose helper made it (its original direction)
    tuple: CtTuple  # what the expected connection will look like
    mask: CtTuple  # which bits of ``tuple`` must match (0 in a port: any port)
    timeout: int  # seconds left
    helper: str | None  # the master's helper, e.g. "ftp"
    klass: int  # the helper's expectation class (its policy index)
    flags: int  # NF_CT_EXPECT_* bits
    # Only when the kernel says (libnetfilter_conntrack reads CTA_EXPECT_ZONE); 6.18 does not dump it, even for
    # a master in a zone, and conntrack -L expect then prints none either.
    zone: int | None
    fn: str | None  # what runs when it is met, e.g. "nat-follow-master"

    @property
    def flag_names(self) -> list[str]:
        return [n for i, n in enumerate(C.EXPECT_FLAG_NAMES) if self.flags >> i & 1]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "family": "ipv4" if self.family == AF_INET else "ipv6",
            "proto": proto_name(self.tuple.proto), "timeout": self.timeout,
            "master": self.master.to_json(), "expected": self.tuple.to_json(), "mask": self.mask.to_json(),
            "helper": self.helper, "class": self.klass, "flags": self.flag_names, "zone": self.zone, "fn": self.fn,
        }

    def text(self) -> str:
        """One line in ``conntrack -L expect``'s layout, so the two can be read (and diffed) side by side."""
        parts = [f"{self.timeout} proto={self.tuple.proto}", self.tuple.text(), self.mask.text("mask-"),
                 self.master.text("master-")]
        if self.zone is not None:
            parts.append(f"zone={self.zone}")
        if self.flags:
            parts.append(",".join(self.flag_names))
        parts.append(f"class={self.klass}")
        if self.helper is not None:
            parts.append(f"helper={self.helper}")
        return " ".join(parts)


def _tuple(payload: bytes, family: int) -> CtTuple:
    src = dst = b""
    proto = sport = dport = 0
    icmp_type = icmp_code = 0
    for typ, val in attrs(payload, 0, len(payload)):
        if typ == C.CTA_TUPLE_IP:
            for t2, v2 in attrs(val, 0, len(val)):
                if t2 in (C.CTA_IP_V4_SRC, C.CTA_IP_V6_SRC):
                    src = v2
                elif t2 in (C.CTA_IP_V4_DST, C.CTA_IP_V6_DST):
                    dst = v2
        elif typ == C.CTA_TUPLE_PROTO:
            for t2, v2 in attrs(val, 0, len(val)):
                if t2 == C.CTA_PROTO_NUM:
                    proto = v2[0]
                elif t2 in (C.CTA_PROTO_SRC_PORT, C.CTA_PROTO_ICMP_ID, C.CTA_PROTO_ICMPV6_ID):
                    sport = _BE16.unpack(v2[:2])[0]
                elif t2 == C.CTA_PROTO_DST_PORT:
                    dport = _BE16.unpack(v2[:2])[0]
                elif t2 in (C.CTA_PROTO_ICMP_TYPE, C.CTA_PROTO_ICMPV6_TYPE):
                    icmp_type = v2[0]
                elif t2 in (C.CTA_PROTO_ICMP_CODE, C.CTA_PROTO_ICMPV6_CODE):
                    icmp_code = v2[0]
    if proto in ICMP_PROTOS:
        dport = icmp_type << 8 | icmp_code
    size = 4 if family == AF_INET else 16
    if len(src) != size or len(dst) != size:
        raise DecodeError(f"expectation: a tuple of family {family} has {len(src)}-byte addresses")
    return CtTuple(family, proto, src, dst, sport, dport)


def _string(val: bytes) -> str:
    return val.split(b"\0", 1)[0].decode("ascii", "backslashreplace")


def decode_expectation(buf: bytes | bytearray | memoryview, off: int, length: int) -> Expectation:
    """One IPCTNL_MSG_EXP_NEW message (nlmsghdr at ``off``); DecodeError if it lacks a part every one has."""
    family = buf[off + NFGEN_FAMILY]
    if family not in (socket.AF_INET, socket.AF_INET6):
        raise DecodeError(f"expectation: family {family}")
    parts: dict[int, bytes] = dict(attrs(buf, off + HEADER_LEN, off + length))
    try:
        master, tup, mask = (_tuple(parts[t], family)
                             for t in (C.CTA_EXPECT_MASTER, C.CTA_EXPECT_TUPLE, C.CTA_EXPECT_MASK))
    except KeyError:
        raise DecodeError("expectation: a tuple is missing") from None

    def u32(t: int) -> int:
        v = parts.get(t)
        return _BE32.unpack(v[:4])[0] if v is not None and len(v) >= 4 else 0

    zone = parts.get(C.CTA_EXPECT_ZONE)
    helper, fn = parts.get(C.CTA_EXPECT_HELP_NAME), parts.get(C.CTA_EXPECT_FN)
    return Expectation(
        id=u32(C.CTA_EXPECT_ID), family=family, master=master, tuple=tup, mask=mask,
        timeout=u32(C.CTA_EXPECT_TIMEOUT), helper=_string(helper) if helper is not None else None,
        klass=u32(C.CTA_EXPECT_CLASS), flags=u32(C.CTA_EXPECT_FLAGS),
        zone=_BE16.unpack(zone[:2])[0] if zone is not None and len(zone) >= 2 else None,
        fn=_string(fn) if fn is not None else None)


def list_expectations(ct: Ctnetlink, family: int = socket.AF_UNSPEC) -> list[Expectation]:
    """Every expectation of the socket's namespace (both families by default)."""
    out: list[Expectation] = []
    for buf, off, length in ct.dump_messages(C.exp_msg(C.IPCTNL_MSG_EXP_GET), "expectation dump", family):
        out.append(decode_expectation(buf, off, length))
    return out


def read_expectations(spec: NetnsSpec = NetnsSpec()) -> list[Expectation]:
    with Ctnetlink(spec) as ct:
        return list_expectations(ct)

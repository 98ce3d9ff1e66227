"""Helpers for the filter tests: row building and slow reference evaluators.

The references are written from the grammar's and the kernel's definitions using the
model's own helpers (state_name, nat_kind, total_bytes) and ipaddress, independently
of the generated code they check.
"""

from __future__ import annotations

import ipaddress
import operator
import socket

from cttop.filter import KernelFilter
from cttop.filter.ast import (
    Addr,
    All,
    And,
    Compare,
    Family,
    Flag,
    Mark,
    Node,
    Not,
    Or,
    Port,
    Proto,
    State,
    Zone,
)
from cttop.model import (
    IPS_ASSURED,
    IPS_CONFIRMED,
    IPS_SEEN_REPLY,
    NO_PSTATE,
    R_DPORT,
    R_DST,
    R_FAMILY,
    R_MARK,
    R_PROTO,
    R_RDST,
    R_RSRC,
    R_SPORT,
    R_SRC,
    R_STATUS,
    R_TIMEOUT,
    R_ZONE,
    ROW_LEN,
    Row,
    has_ports,
    nat_kind,
    state_name,
    total_bytes,
    total_packets,
)

Counters = tuple[int, int, int, int]  # orig packets, orig bytes, reply packets, reply bytes


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def row(src: str = "10.0.0.1", dst: str = "10.0.0.2", *, proto: int = 17, sport: int = 40000,
        dport: int = 53, pstate: int = NO_PSTATE, status: int = IPS_CONFIRMED,
        rsrc: str | None = None, rdst: str | None = None, rsport: int | None = None,
        rdport: int | None = None, timeout: int = 30, mark: int = 0, zone: int = 0,
        counters: Counters | None = None, flow_id: int = 1) -> Row:
    """A flow; the reply tuple is the inverse of the original unless given (NAT)."""
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    opkts, obytes, rpkts, rbytes = counters if counters is not None else (None, None, None, None)
    r = (flow_id, family, proto, pstate, status, ip(src), ip(dst), sport, dport,
         ip(rsrc or dst), ip(rdst or src), dport if rsport is None else rsport,
         sport if rdport is None else rdport, timeout, mark, zone, 1,
         opkts, obytes, rpkts, rbytes, 0, 0)
    assert len(r) == ROW_LEN
    return r


_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}


def reference(node: Node, r: Row) -> bool:
    """What ``node`` means for ``r``, the slow and obvious way."""
    match node:
        case All():
            return True
        case And(items):
            return all(reference(i, r) for i in items)
        case Or(items):
            return any(reference(i, r) for i in items)
        case Not(item):
            return not reference(item, r)
        case Addr(field, network, prefixlen, _family):
            net = ipaddress.ip_network((network, prefixlen))
            addrs = {"src": (r[R_SRC],), "dst": (r[R_DST],),
                     "host": (r[R_SRC], r[R_DST], r[R_RSRC], r[R_RDST])}[field]
            return any(len(a) == len(network) and ipaddress.ip_address(a) in net for a in addrs)
        case Port(field, lo, hi):
            ports = {"sport": (r[R_SPORT],), "dport": (r[R_DPORT],), "port": (r[R_SPORT], r[R_DPORT])}[field]
            return has_ports(r[R_PROTO]) and any(lo <= p <= hi for p in ports)
        case Proto(num):
            return r[R_PROTO] == num
        case Family(af):
            return r[R_FAMILY] == af
        case State(name):
            return state_name(r[R_PROTO], r[3], r[R_STATUS]) == name
        case Flag("assured"):
            return bool(r[R_STATUS] & IPS_ASSURED)
        case Flag("replied"):
            return bool(r[R_STATUS] & IPS_SEEN_REPLY)
        case Flag("unreplied"):
            return not r[R_STATUS] & IPS_SEEN_REPLY
        case Flag("snat"):
            return nat_kind(r) in ("snat", "both")
        case Flag("dnat"):
            return nat_kind(r) in ("dnat", "both")
        case Flag("nat"):
            return nat_kind(r) is not None
        case Mark(value, mask):
            return r[R_MARK] & mask == value
        case Zone(n):
            return r[R_ZONE] == n
        case Compare(field, op, value):
            v = {"timeout": r[R_TIMEOUT], "bytes": total_bytes(r), "packets": total_packets(r)}[field]
            return v is not None and _OPS[op](v, value)
    raise AssertionError(node)


def kernel_reference(kf: KernelFilter, r: Row) -> bool:
    """What ctnetlink_filter_match (Linux 6.18) returns for ``r`` under ``kf``."""
    if kf.family is not None and r[R_FAMILY] != kf.family:
        return False
    if kf.zone is not None and r[R_ZONE] != kf.zone:
        return False
    tuple_fields = (kf.proto, kf.src, kf.dst, kf.sport, kf.dport)
    if any(f is not None for f in tuple_fields):
        # The kernel takes CTA_FILTER tuple fields only with a family to parse them by,
        # and ports only with a protocol number; IPv6 addresses it matches inverted.
        assert kf.family is not None or (kf.src is None and kf.dst is None)
        assert kf.proto is not None or (kf.sport is None and kf.dport is None)
        assert kf.src is None or len(kf.src) == 4
        assert kf.dst is None or len(kf.dst) == 4
        if kf.src is not None and r[R_SRC] != kf.src:
            return False
        if kf.dst is not None and r[R_DST] != kf.dst:
            return False
        if kf.proto is not None and r[R_PROTO] != kf.proto:
            return False
        if r[R_PROTO] in (6, 17):
            if kf.sport is not None and r[R_SPORT] != kf.sport:
                return False
            if kf.dport is not None and r[R_DPORT] != kf.dport:
                return False
    mark, mark_mask = kf.mark or 0, kf.mark_mask or 0
    if r[R_MARK] & mark_mask != mark:
        return False
    status, status_mask = kf.status or 0, kf.status_mask or 0
    return r[R_STATUS] & status_mask == status

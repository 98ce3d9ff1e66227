"""What of a filter the kernel can apply itself in a conntrack dump or flush.

ctnetlink filters on the netfilter family (nfgen_family), CTA_MARK/CTA_MARK_MASK,
CTA_STATUS/CTA_STATUS_MASK, CTA_ZONE, and, through CTA_FILTER, on the original tuple:
protocol, addresses and ports. Each top-level conjunct that one of those captures
exactly is pushed down, so the kernel returns a superset of the matching flows, and
exactly them when every conjunct was pushed. Anything else (``or``, prefixes, ranges,
``host``, states, comparisons) stays with the Python predicate.

Kernel behaviour this relies on (Linux 6.18 ``ctnetlink_filter_match``; the first
three points were also confirmed by dump requests against this kernel):

- Tuple fields in CTA_FILTER are only accepted with a family (-EOPNOTSUPP with
  AF_UNSPEC): when ``family`` is None, issue the request once per family.
- Ports are compared for TCP and UDP only; for other protocols the kernel ignores
  them, so a port is pushed only together with ``tcp`` or ``udp``.
- IPv6 addresses are never pushed: the kernel's IPv6 address test is inverted
  (``!ipv6_addr_cmp``), so it returns the flows whose address *differs*.
- CTA_ZONE compares the zone id. A directional zone (rare) is missing from a row's
  CTA_ZONE, so for such flows a pushed ``zone N`` is not exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from cttop.filter.ast import Addr, And, Family, Flag, Mark, Node, Not, Port, Proto, Zone
from cttop.model import AF_INET, IPS_ASSURED, IPS_SEEN_REPLY

# Protocols whose ports the kernel's tuple filter compares (IPPROTO_TCP, IPPROTO_UDP).
KERNEL_PORT_PROTOS = frozenset({6, 17})

_STATUS_FLAGS = {"assured": (IPS_ASSURED, True), "replied": (IPS_SEEN_REPLY, True),
                 "unreplied": (IPS_SEEN_REPLY, False)}


@dataclass(frozen=True, slots=True)
class KernelFilter:
    """Fields for a filtered dump/flush; None means "don't filter on it".

    ``src``/``dst``/``sport``/``dport``/``proto`` are original-tuple fields for
    CTA_FILTER; ``exact`` says the kernel's answer is the whole filter's answer, so
    the Python predicate need not run (it stays correct to run it).
    """

    family: int | None = None
    proto: int | None = None
    src: bytes | None = None
    dst: bytes | None = None
    sport: int | None = None
    dport: int | None = None
    mark: int | None = None
    mark_mask: int | None = None
    zone: int | None = None
    status: int | None = None
    status_mask: int | None = None
    exact: bool = False


def pushdown(node: Node) -> KernelFilter | None:
    """The kernel's share of ``node``, or None when it can filter none of it."""
    items = node.items if isinstance(node, And) else (node,)
    got: dict[str, int | bytes] = {}
    pushed = 0
    # Ports last: whether one can be pushed depends on the protocol pushed.
    for item in sorted(items, key=lambda n: isinstance(n, Port)):
        merged = _conjunct(item, got)
        if merged is not None:
            got = merged
            pushed += 1
    if not pushed:
        return None
    return KernelFilter(**got, exact=pushed == len(items))  # type: ignore[arg-type]


def _conjunct(node: Node, got: dict[str, int | bytes]) -> dict[str, int | bytes] | None:
    """``got`` plus the fields that capture ``node`` exactly, or None if none do.

    None too when they conflict with fields already set (``tcp udp``): that conjunct
    is left to the Python predicate.
    """
    match node:
        case Family(af):
            return _set(got, family=af)
        case Proto(num):
            return _set(got, proto=num)
        case Addr(field="src", family=family, network=network, prefixlen=32) if family == AF_INET:
            return _set(got, family=family, src=network)
        case Addr(field="dst", family=family, network=network, prefixlen=32) if family == AF_INET:
            return _set(got, family=family, dst=network)
        case Port(field="sport", lo=lo, hi=hi) if lo == hi and got.get("proto") in KERNEL_PORT_PROTOS:
            return _set(got, sport=lo)
        case Port(field="dport", lo=lo, hi=hi) if lo == hi and got.get("proto") in KERNEL_PORT_PROTOS:
            return _set(got, dport=lo)
        case Mark(value, mask):
            return _set(got, mark=value, mark_mask=mask)
        case Zone(n):
            return _set(got, zone=n)
        case Flag(name) if name in _STATUS_FLAGS:
            return _status(got, *_STATUS_FLAGS[name])
        case Not(Flag(name)) if name in _STATUS_FLAGS:
            bit, on = _STATUS_FLAGS[name]
            return _status(got, bit, not on)
    return None


def _set(got: dict[str, int | bytes], **changes: int | bytes) -> dict[str, int | bytes] | None:
    if any(got.get(k, v) != v for k, v in changes.items()):
        return None
    return got | changes


def _status(got: dict[str, int | bytes], bit: int, on: bool) -> dict[str, int | bytes] | None:
    """Status bits accumulate: ``assured unreplied`` is ASSURED set and SEEN_REPLY clear."""
    status, mask = int(got.get("status", 0)), int(got.get("status_mask", 0))
    if mask & bit and bool(status & bit) != on:
        return None
    return got | {"status": status | bit if on else status & ~bit, "status_mask": mask | bit}

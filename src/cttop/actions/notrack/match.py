"""A filter expression turned into packet matches for NOTRACK rules, in nft and iptables syntax.

The filter speaks of flows; a NOTRACK rule sees single packets before conntrack
does. So only what a packet carries can be translated: addresses, ports,
protocol, family and the packet mark. A flow's original direction is matched
as written and the reply direction by the mirrored match (source and destination
swapped), so both directions of the flow go untracked. ``host`` and ``port``
(either side) become one match per side. A state, flag, zone, counter or timeout
exists only once conntrack tracks the flow, an owner (process, container) only once
a socket or an address is looked up, and ``or``/``not`` have no single-rule form:
those are refused with the reason.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from cttop.actions.errors import ActionError
from cttop.filter import Filter, compile_filter, parse
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
    Owned,
    Port,
    Proto,
    State,
    Zone,
)
from cttop.filter.parser import OWNER_WORDS
from cttop.model import AF_INET, AF_INET6, proto_name

# Protocols whose ports nft can name (``udp dport``) and iptables can match (``-m udp --dport``).
PORT_PROTOS = {6: "tcp", 17: "udp", 132: "sctp"}
# A port without a protocol: the protocols that carry one and that both backends can match.
ANY_PORT_PROTOS = (6, 17, 132)
# How the confirmation names them: what a port with no protocol is matched in.
ANY_PORT_PROTOS_TEXT = ", ".join(PORT_PROTOS[p].upper() for p in ANY_PORT_PROTOS[:-1]) \
    + f" and {PORT_PROTOS[ANY_PORT_PROTOS[-1]].upper()}"
NFT_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 58: "ipv6-icmp", 132: "sctp"}

_UNTRACKABLE = {
    State: "a flow's state",
    Flag: "a flow's status flags",
    Zone: "a conntrack zone",
    Compare: "counters and timeouts",
}


@dataclass(frozen=True)
class Match:
    """One packet match; None fields are not matched."""

    family: int | None = None
    proto: int | None = None
    saddr: tuple[bytes, int] | None = None
    daddr: tuple[bytes, int] | None = None
    sport: tuple[int, int] | None = None
    dport: tuple[int, int] | None = None
    mark: tuple[int, int] | None = None

    def mirrored(self) -> Match:
        """The same flow's reply direction."""
        return replace(self, saddr=self.daddr, daddr=self.saddr, sport=self.dport, dport=self.sport)

    @property
    def has_ports(self) -> bool:
        return self.sport is not None or self.dport is not None


def _conjuncts(node: Node) -> list[Node]:
    if isinstance(node, All):
        return []
    if isinstance(node, And):
        return [x for item in node.items for x in _conjuncts(item)]
    return [node]


def _put(m: Match, **fields: object) -> Match | None:
    """``m`` with ``fields`` set, or None when one is already set to something else (never matches)."""
    for k, v in fields.items():
        have = getattr(m, k)
        if have is not None and have != v:
            return None
    return replace(m, **fields)  # type: ignore[arg-type]


def _refuse(node: Node) -> ActionError:
    if isinstance(node, Or):
        return ActionError("NOTRACK cannot express 'or': add one rule per alternative")
    if isinstance(node, Not):
        return ActionError("NOTRACK cannot express 'not': a rule can only exempt what it matches")
    if isinstance(node, Owned):
        return ActionError(f"NOTRACK rules cannot match on owners ({', '.join(OWNER_WORDS)}): they match packets "
                           "by addresses, ports, protocol and mark, before any owner is known; "
                           "use the group's addresses instead (src ADDR, dst ADDR)")
    what = _UNTRACKABLE.get(type(node), type(node).__name__)
    return ActionError(f"NOTRACK cannot match {what}: a packet has none before conntrack sees it; "
                       "use addresses, ports, protocol, family or mark")


def matches(node: Node) -> list[Match]:
    """The packet matches that exempt the flows ``node`` selects, both directions, without duplicates."""
    items = _conjuncts(node)
    if not items:
        raise ActionError("NOTRACK needs a filter: an empty one would exempt all traffic from tracking")
    variants = [Match()]
    for item in items:
        step: list[Match | None] = []
        match item:
            case Addr(field, network, prefixlen, family):
                sides = {"src": ("saddr",), "dst": ("daddr",), "host": ("saddr", "daddr")}[field]
                step = [_put(v, family=family, **{side: (network, prefixlen)}) for v in variants for side in sides]
            case Port(field, lo, hi):
                sides = {"sport": ("sport",), "dport": ("dport",), "port": ("sport", "dport")}[field]
                step = [_put(v, **{side: (lo, hi)}) for v in variants for side in sides]
            case Proto(num):
                step = [_put(v, proto=num) for v in variants]
            case Family(af):
                step = [_put(v, family=af) for v in variants]
            case Mark(value, mask):
                step = [_put(v, mark=(value, mask)) for v in variants]
            case _:
                raise _refuse(item)
        # Two addresses and two ports at most, so this stays at four variants or fewer.
        variants = [v for v in step if v is not None]
    if not variants:
        raise ActionError("NOTRACK filter can match no packet (contradictory terms)")
    for v in variants:
        if v.has_ports and v.proto is not None and v.proto not in PORT_PROTOS:
            raise ActionError(f"NOTRACK: {proto_name(v.proto)} has no ports NOTRACK can match "
                              f"(only {', '.join(PORT_PROTOS.values())})")
        if v.proto == 1 and v.family == AF_INET6 or v.proto == 58 and v.family == AF_INET:
            raise ActionError(f"NOTRACK: {proto_name(v.proto)} does not exist in that address family")
    out: list[Match] = []
    for v in variants + [v.mirrored() for v in variants]:
        if v not in out:
            out.append(v)
    return out


def _net(addr: tuple[bytes, int]) -> str:
    network, prefixlen = addr
    net = ipaddress.ip_network((network, prefixlen))
    return str(net.network_address) if prefixlen == net.max_prefixlen else str(net)


def _range(r: tuple[int, int], sep: str) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}{sep}{r[1]}"


def nft_match(m: Match) -> str:
    """The match as nft rule expressions (without the ``notrack`` statement)."""
    parts: list[str] = []
    ip = "ip6" if m.family == AF_INET6 else "ip"
    if m.saddr is not None:
        parts.append(f"{ip} saddr {_net(m.saddr)}")
    if m.daddr is not None:
        parts.append(f"{ip} daddr {_net(m.daddr)}")
    if m.family is not None and m.saddr is None and m.daddr is None:
        parts.append(f"meta nfproto {'ipv6' if m.family == AF_INET6 else 'ipv4'}")
    if m.has_ports:
        if m.proto is not None:
            word = PORT_PROTOS[m.proto]
        else:
            parts.append("meta l4proto { " + ", ".join(PORT_PROTOS[p] for p in ANY_PORT_PROTOS) + " }")
            word = "th"
        if m.sport is not None:
            parts.append(f"{word} sport {_range(m.sport, '-')}")
        if m.dport is not None:
            parts.append(f"{word} dport {_range(m.dport, '-')}")
    elif m.proto is not None:
        parts.append(f"meta l4proto {NFT_PROTO_NAMES.get(m.proto, str(m.proto))}")
    if m.mark is not None:
        value, mask = m.mark
        parts.append(f"meta mark {value:#x}" if mask == 0xFFFFFFFF else f"meta mark & {mask:#x} == {value:#x}")
    return " ".join(parts)


def iptables_matches(m: Match) -> list[tuple[str, list[str]]]:
    """The match as (program, iptables arguments) pairs: one per family and, for a bare port, per protocol."""
    if m.family is not None:
        families = [m.family]
    elif m.proto == 1:
        families = [AF_INET]
    elif m.proto == 58:
        families = [AF_INET6]
    else:
        families = [AF_INET, AF_INET6]
    protos: list[int | None] = [m.proto] if m.proto is not None else list(ANY_PORT_PROTOS) if m.has_ports else [None]
    out: list[tuple[str, list[str]]] = []
    for family in families:
        prog = "ip6tables" if family == AF_INET6 else "iptables"
        for proto in protos:
            args: list[str] = []
            if m.saddr is not None:
                args += ["-s", _net(m.saddr)]
            if m.daddr is not None:
                args += ["-d", _net(m.daddr)]
            if proto is not None:
                args += ["-p", PORT_PROTOS.get(proto) or NFT_PROTO_NAMES.get(proto, str(proto))]
            if m.has_ports and proto is not None:
                args += ["-m", PORT_PROTOS[proto]]
                if m.sport is not None:
                    args += ["--sport", _range(m.sport, ":")]
                if m.dport is not None:
                    args += ["--dport", _range(m.dport, ":")]
            if m.mark is not None:
                value, mask = m.mark
                args += ["-m", "mark", "--mark", f"{value:#x}/{mask:#x}"]
            out.append((prog, args))
    return out


def alternatives_matches(node: Node) -> list[Match]:
    """:func:`matches` for each alternative of a top-level ``or``, in order, without duplicates.

    One rule set per alternative is what an ``or`` means to a rule list (any rule
    exempts the packet), so tagged flows of several services become one change.
    An ``or`` inside an ``and`` is still refused by :func:`matches`.
    """
    out: list[Match] = []
    for alt in node.items if isinstance(node, Or) else (node,):
        out += [m for m in matches(alt) if m not in out]
    return out


def notrack_filter(text: str) -> Filter:
    """``text`` compiled for NOTRACK rules. The owner words are parsed, to be refused for NOTRACK's own reason (a
    packet has no owner yet when the rule sees it), not the filter's (no sockets are read here to know owners)."""
    alternatives_matches(parse(text, owners=True))
    return compile_filter(text)

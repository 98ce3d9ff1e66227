"""The flow row: one conntrack entry as a flat tuple, and what can be derived from it.

Rows are plain tuples indexed by the ``R_*`` constants rather than objects because
the decoder builds hundreds of thousands per second and the filter compiles to code
that indexes them directly. Addresses are raw network-order ``bytes`` (4 or 16), so
prefix matching and sorting need no conversion; they are only turned into text
for display.
"""

from __future__ import annotations

import socket
from typing import Any, Final

Row = tuple[Any, ...]

R_ID: Final = 0
R_FAMILY: Final = 1  # socket.AF_INET / AF_INET6
R_PROTO: Final = 2  # IP protocol number
R_PSTATE: Final = 3  # TCP/SCTP/DCCP state number, NO_PSTATE for other protocols
R_STATUS: Final = 4  # IPS_* status bits
R_SRC: Final = 5
R_DST: Final = 6
R_SPORT: Final = 7  # ICMP: the echo id
R_DPORT: Final = 8  # ICMP: type << 8 | code
R_RSRC: Final = 9
R_RDST: Final = 10
R_RSPORT: Final = 11
R_RDPORT: Final = 12
R_TIMEOUT: Final = 13  # seconds left; 0 in DESTROY events
R_MARK: Final = 14
R_ZONE: Final = 15
R_USE: Final = 16
R_OPKTS: Final = 17  # the four counters are None when accounting was off
R_OBYTES: Final = 18
R_RPKTS: Final = 19
R_RBYTES: Final = 20
R_START: Final = 21  # CTA_TIMESTAMP_START in ns since the epoch, 0 if timestamps are off
R_LABELS: Final = 22  # connlabel bitmap as int, 0 if none
ROW_LEN: Final = 23

NO_PSTATE: Final = 255

# Event kinds as cttop.kernel.events reports them and the table applies them.
EV_NEW: Final = 1
EV_UPDATE: Final = 2
EV_DESTROY: Final = 3
# What `cttop events` and the event log call them (conntrack -E's [NEW], [UPDATE], [DESTROY]).
EVENT_NAMES: Final = {EV_NEW: "new", EV_UPDATE: "update", EV_DESTROY: "destroy"}

AF_INET: Final = socket.AF_INET
AF_INET6: Final = socket.AF_INET6

# IPS_* status bits (include/uapi/linux/netfilter/nf_conntrack_common.h)
IPS_EXPECTED: Final = 1 << 0
IPS_SEEN_REPLY: Final = 1 << 1
IPS_ASSURED: Final = 1 << 2
IPS_CONFIRMED: Final = 1 << 3
IPS_SRC_NAT: Final = 1 << 4
IPS_DST_NAT: Final = 1 << 5
IPS_DYING: Final = 1 << 9
IPS_OFFLOAD: Final = 1 << 14
STATUS_NAMES: Final = (
    "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "DST_NAT",
    "SEQ_ADJUST", "SRC_NAT_DONE", "DST_NAT_DONE", "DYING", "FIXED_TIMEOUT",
    "TEMPLATE", "NAT_CLASH", "HELPER", "OFFLOAD", "HW_OFFLOAD",
)

PROTO_NAMES: Final = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre",
                      58: "icmpv6", 132: "sctp", 136: "udplite"}
PROTO_NUMBERS: Final = {name: num for num, name in PROTO_NAMES.items()}
PORTED_PROTOS: Final = frozenset({6, 17, 33, 132, 136})
ICMP_PROTOS: Final = frozenset({1, 58})
GRE: Final = 47

TCP_STATES: Final = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
                     "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")
SCTP_STATES: Final = ("NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
                      "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT",
                      "HEARTBEAT_SENT", "HEARTBEAT_ACKED")
DCCP_STATES: Final = ("NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ",
                      "CLOSING", "TIMEWAIT", "IGNORE", "INVALID")
PSTATE_NAMES: Final = {6: TCP_STATES, 132: SCTP_STATES, 33: DCCP_STATES}
# Stateless protocols are classified by how far the exchange got, which is what
# decides whether early_drop may evict them.
STATUS_STATES: Final = ("UNREPLIED", "REPLIED", "ASSURED")


def proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


def state_name(proto: int, pstate: int, status: int) -> str:
    names = PSTATE_NAMES.get(proto)
    if names is not None and pstate != NO_PSTATE:
        return names[pstate] if pstate < len(names) else str(pstate)
    if status & IPS_ASSURED:
        return "ASSURED"
    if status & IPS_SEEN_REPLY:
        return "REPLIED"
    return "UNREPLIED"


# The status bits a state name reads, and the memo of state_key3 by (proto, pstate, status & STATE_BITS):
# public so the table's event loop can read it inline and call state_key3 only on a miss.
STATE_BITS: Final = IPS_ASSURED | IPS_SEEN_REPLY
STATE_KEYS: dict[tuple[int, int, int], str] = {}


def state_key3(proto: int, pstate: int, status: int) -> str:
    """``proto:STATE``, the key of the by-state aggregate; memoised since it is on the hot path."""
    k = (proto, pstate, status & STATE_BITS)
    s = STATE_KEYS.get(k)
    if s is None:
        s = STATE_KEYS[k] = f"{proto_name(proto)}:{state_name(*k)}"
    return s


def state_key(row: Row) -> str:
    return state_key3(row[R_PROTO], row[R_PSTATE], row[R_STATUS])


def has_ports(proto: int) -> bool:
    return proto in PORTED_PROTOS


def addr_text(addr: bytes) -> str:
    if len(addr) == 4:
        return socket.inet_ntop(AF_INET, addr)
    if len(addr) == 16:
        return socket.inet_ntop(AF_INET6, addr)
    return addr.hex()


_STATUS_NAMES: dict[int, list[str]] = {}


def status_names(status: int) -> list[str]:
    names = _STATUS_NAMES.get(status)
    if names is None:
        names = _STATUS_NAMES[status] = [n for i, n in enumerate(STATUS_NAMES) if status >> i & 1]
    return list(names)


def nat_kind(row: Row) -> str | None:
    """'snat', 'dnat', 'both' or None, from the tuples alone as conntrack -L shows them.

    Without NAT the reply tuple is the exact inverse of the original; a changed reply
    destination means the source was rewritten, a changed reply source the destination.
    """
    snat = row[R_RDST] != row[R_SRC] or (has_ports(row[R_PROTO]) and row[R_RDPORT] != row[R_SPORT])
    dnat = row[R_RSRC] != row[R_DST] or (has_ports(row[R_PROTO]) and row[R_RSPORT] != row[R_DPORT])
    if snat and dnat:
        return "both"
    return "snat" if snat else "dnat" if dnat else None


def total_bytes(row: Row) -> int | None:
    o, r = row[R_OBYTES], row[R_RBYTES]
    return None if o is None else int(o + r)


def total_packets(row: Row) -> int | None:
    o, r = row[R_OPKTS], row[R_RPKTS]
    return None if o is None else int(o + r)


def flow_dict(row: Row) -> dict[str, Any]:
    """The JSON shape of one flow, as documented in the README (``snapshot --flows``)."""
    proto = row[R_PROTO]
    ported = has_ports(proto)
    d: dict[str, Any] = {
        "id": row[R_ID],
        "family": "ipv4" if row[R_FAMILY] == AF_INET else "ipv6",
        "proto": proto_name(proto),
        "state": state_name(proto, row[R_PSTATE], row[R_STATUS]),
        "status": status_names(row[R_STATUS]),
        "src": addr_text(row[R_SRC]),
        "dst": addr_text(row[R_DST]),
        "sport": row[R_SPORT] if ported else None,
        "dport": row[R_DPORT] if ported else None,
        "reply_src": addr_text(row[R_RSRC]),
        "reply_dst": addr_text(row[R_RDST]),
        "reply_sport": row[R_RSPORT] if ported else None,
        "reply_dport": row[R_RDPORT] if ported else None,
        "timeout": row[R_TIMEOUT],
        "mark": row[R_MARK],
        "zone": row[R_ZONE],
        "use": row[R_USE],
        "bytes": total_bytes(row),
        "packets": total_packets(row),
        "orig_bytes": row[R_OBYTES],
        "orig_packets": row[R_OPKTS],
        "reply_bytes": row[R_RBYTES],
        "reply_packets": row[R_RPKTS],
        "nat": nat_kind(row),
        "start": row[R_START] or None,
        "labels": row[R_LABELS] or None,
    }
    if proto == GRE:  # the kernel keeps GRE keys where ports would be
        d["gre_srckey"] = row[R_SPORT]
        d["gre_dstkey"] = row[R_DPORT]
    if proto in ICMP_PROTOS:
        d["icmp_id"] = row[R_SPORT]
        d["icmp_type"] = row[R_DPORT] >> 8
        d["icmp_code"] = row[R_DPORT] & 0xFF
    return d


def event_dict(kind: int, t: float, row: Row) -> dict[str, Any]:
    """The JSON shape of one event (``cttop events --json``): its kind, when it was received (seconds since
    the epoch, to the microsecond, as `conntrack -E -o timestamp` prints it), and the flow's fields."""
    return {"event": EVENT_NAMES[kind], "time": round(t, 6)} | flow_dict(row)

"""Warnings for NOTRACK rules that are dangerous to the person adding them.

Exempting traffic from tracking is harmless until a stateful filter (``ct state
established accept; drop``) meets the untracked packets: then they are dropped.
If those packets are the operator's own SSH session, the next keystroke never
arrives. So before the rules go in, the session cttop runs under (``SSH_CONNECTION``)
is tested against the very filter the rules are made from, and a rule set that
matches every port and every address (all of ``tcp``, or ``src 0.0.0.0/0``) is called out as what it is.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

from cttop.actions.notrack.match import ANY_PORT_PROTOS_TEXT, Match
from cttop.filter import Filter
from cttop.kernel.netns import NetnsError, NetnsSpec
from cttop.model import AF_INET, AF_INET6, IPS_ASSURED, IPS_SEEN_REPLY, TCP_STATES, Row, proto_name

SSH_ENV = "SSH_CONNECTION"
_TCP = 6
_ESTABLISHED = TCP_STATES.index("ESTABLISHED")


def _packed(text: str) -> bytes:
    """An address as SSH_CONNECTION writes it, as the row holds it (an IPv4 client of a dual-stack sshd as IPv4)."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.packed


def _flow(src: bytes, sport: int, dst: bytes, dport: int) -> Row:
    family = AF_INET if len(src) == 4 else AF_INET6
    return (0, family, _TCP, _ESTABLISHED, IPS_ASSURED | IPS_SEEN_REPLY, src, dst, sport, dport,
            dst, src, dport, sport, 0, 0, 0, 1, None, None, None, None, 0, 0)


def ssh_session() -> tuple[str, list[Row]] | None:
    """The SSH session this process runs under: its label and its flow, both ways round; None outside SSH.

    Both orientations because the rules exempt a flow and its mirror: the packets of
    the session are caught if either the client's or the server's side reads as the
    original direction to the filter.
    """
    parts = os.environ.get(SSH_ENV, "").split()
    if len(parts) != 4:
        return None
    try:
        client, server = _packed(parts[0]), _packed(parts[2])
        cport, sport = int(parts[1]), int(parts[3])
    except ValueError:
        return None
    if len(client) != len(server) or not (0 < cport < 65536 and 0 < sport < 65536):
        return None
    host = ipaddress.ip_address(server)
    at = f"[{host}]:{sport}" if host.version == 6 else f"{host}:{sport}"
    label = f"{ipaddress.ip_address(client)} → {at}"
    return label, [_flow(client, cport, server, sport), _flow(server, sport, client, cport)]


def _runs_here(spec: NetnsSpec) -> bool:
    """Whether ``spec`` is the namespace cttop itself runs in, where its SSH session is."""
    if spec.is_own:
        return True
    try:
        return spec.inode() == NetnsSpec().inode()
    except NetnsError:
        return False  # a namespace that cannot be looked at is not this one; applying will say why


def _broad(m: Match) -> bool:
    # A /0 prefix, the whole port range or mark 0 under a zero mask narrow nothing: written out, they are still
    # "all". A packet mark that is compared narrows the rule to traffic someone chose to mark.
    return (all(a is None or a[1] == 0 for a in (m.saddr, m.daddr))
            and all(p is None or (p[0] <= 1 and p[1] >= 65535) for p in (m.sport, m.dport))
            and (m.mark is None or m.mark == (0, 0)))


def _traffic(m: Match) -> str:
    words = []
    if m.family is not None:
        words.append("IPv6" if m.family == AF_INET6 else "IPv4")
    if m.proto is not None:
        words.append(proto_name(m.proto).upper().replace("V6", "v6"))
    elif m.has_ports:  # a port with no protocol: the rules name the protocols that have ports
        words.append(ANY_PORT_PROTOS_TEXT)
    return " ".join(words)


def safety_warnings(spec: NetnsSpec, flt: Filter, matches: Sequence[Match]) -> list[str]:
    """The warnings that come first: the operator's own SSH session caught, and rules that match every port and
    address."""
    out: list[str] = []
    session = ssh_session()
    if session is not None and _runs_here(spec):
        label, rows = session
        if any(flt.match(r) for r in rows):
            out.append(f"this would stop tracking your own SSH session ({label}): "
                       "with a stateful firewall you may lock yourself out")
    broad = list(dict.fromkeys(_traffic(m) for m in matches if _broad(m)))
    if broad:
        # A rule naming no family and no protocol (mark 0/0) takes all traffic: said so, not "all  traffic".
        kinds = "all traffic" if "" in broad else f"all {' and all '.join(broad)} traffic"
        out.append(f"'{flt.text.strip()}' matches every port and every address: it exempts {kinds} from tracking, "
                   "to and from every host")
    return out

"""Which timeout sysctl keeps an entry of each state, and the mean lifetime a state mix implies.

An entry's timer is reset to its state's timeout on every packet, so the timeout in
force for a state is what an idle entry of it costs. This is the one map from a
state key (``udp:ASSURED``, as :func:`cttop.model.state_key` spells it) to the
per-namespace sysctl that sets it; doctor attributes entries with it, and the
forecast estimates lifetimes with it. Names are the files under
/proc/sys/net/netfilter; a state whose sysctl this kernel lacks (dccp on most
builds) has no timeout in force here, and nothing is guessed for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

PREFIX: Final = "nf_conntrack_"
# TCP states and their sysctl; SYN_SENT2 (simultaneous open) has a fixed 2 min timeout and no sysctl.
TCP: Final[dict[str, str]] = {
    "SYN_SENT": "tcp_timeout_syn_sent", "SYN_RECV": "tcp_timeout_syn_recv",
    "ESTABLISHED": "tcp_timeout_established", "FIN_WAIT": "tcp_timeout_fin_wait",
    "CLOSE_WAIT": "tcp_timeout_close_wait", "LAST_ACK": "tcp_timeout_last_ack",
    "TIME_WAIT": "tcp_timeout_time_wait", "CLOSE": "tcp_timeout_close",
}
# Caps on an ESTABLISHED entry's timer: data never acknowledged, or retransmitted past tcp_max_retrans.
TCP_CAPS: Final = ("nf_conntrack_tcp_timeout_unacknowledged", "nf_conntrack_tcp_timeout_max_retrans")
# UDP (and UDP-Lite, which shares its timeouts): one way, or replied within 2 s, versus a stream.
UDP: Final[dict[str, str]] = {"UNREPLIED": "udp_timeout", "REPLIED": "udp_timeout", "ASSURED": "udp_timeout_stream"}
GRE: Final[dict[str, str]] = {"UNREPLIED": "gre_timeout", "REPLIED": "gre_timeout_stream",
                              "ASSURED": "gre_timeout_stream"}
GENERIC: Final = "generic_timeout"


def timeout_name(key: str) -> str | None:
    """The sysctl (full name) whose value an idle entry in state ``key`` waits out; None if none sets it."""
    proto, _, state = key.partition(":")
    short: str | None
    if proto == "tcp":
        short = TCP.get(state)
    elif proto in ("udp", "udplite"):
        short = UDP.get(state)
    elif proto in ("icmp", "icmpv6"):
        short = f"{proto}_timeout"
    elif proto == "gre":
        short = GRE.get(state)
    elif proto in ("sctp", "dccp"):
        short = f"{proto}_timeout_{state.lower()}" if state != "NONE" else None
    else:
        short = GENERIC
    return PREFIX + short if short is not None else None


def in_force(name: str | None, sysctls: Mapping[str, str]) -> int | None:
    """The value of timeout ``name`` in the namespace whose sysctls are given; None if absent or unreadable."""
    if name is None:
        return None
    v = sysctls.get(name)
    return int(v) if v is not None and v.strip().isdigit() else None


def model_lifetime(by_state: Mapping[str, int], sysctls: Mapping[str, str]) -> float | None:
    """Mean lifetime (s) of the table's entries if each state's entries leave at its timeout.

    A state holding n entries under timeout T loses about n/T a second in a steady
    state, so the table loses sum(n/T) a second and its entries live N/sum(n/T) on
    average. States with no timeout in force are taken to stay. None when nothing
    in the table has a timeout to go by.
    """
    total, leaving = 0, 0.0
    for key, n in by_state.items():
        if n <= 0:
            continue
        total += n
        t = in_force(timeout_name(key), sysctls)
        if t:
            leaving += n / t
    return total / leaving if leaving > 0 else None

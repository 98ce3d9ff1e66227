"""The filter language: one grammar, one parser, one compiled predicate.

Used by the TUI's ``/``, ``--filter`` on every command, NOTRACK rule generation and
kernel-side pushdown. Familiar to tcpdump users::

    host ADDR              ADDR is any of the four addresses (both tuples); an address,
                           never ADDR/len (as in tcpdump: use net)
    src ADDR, dst ADDR     original tuple; also "src host ADDR"; "src CIDR" as "src net CIDR"
    net CIDR               like host, for a network; also "src net CIDR", "dst net CIDR".
                           As in tcpdump, its host bits must be clear (10.0.0.0/8, not 10.0.0.1/8)
    port N, sport N, dport N   original tuple; N, a range LO-HI or a service name
                           (https, domain: /etc/services); "src port N" = sport.
                           Only protocols with ports match (tcp udp sctp dccp udplite)
    tcp udp icmp icmpv6 (icmp6) sctp dccp gre udplite igmp, proto N
    ip / ipv4, ip6 / ipv6
    state NAME             as shown in the table: established, time_wait, syn_sent,
                           unreplied, replied, assured... (case-insensitive)
    assured                the kernel's ASSURED bit (never evicted early)
    replied, unreplied     a reply was (not) seen
    snat, dnat, nat        the tuples show source / destination / any NAT
    mark N, mark N/MASK    decimal or 0x hex; matches mark & MASK == N
    zone N
    timeout OP N, bytes OP N, packets OP N
                           OP is < <= > >= = == !=; N takes k M G (1000s) or Ki Mi Gi
                           (1024s); bytes and packets are both directions summed, and
                           never match a flow without counters (accounting off)
    pid N, process NAME    the process holding the flow's socket (name as shown,
                           case-sensitive): here, or for a flow routed through, in the
                           namespace of this host it comes from (or goes to after DNAT);
                           container NAME: that process's container, pod or unit, or that
                           namespace's; owned: a process or such a namespace holds it;
                           forwarded: no end is local and no namespace here holds it.
                           Only where the owners are known (the live view, snapshot,
                           flush, delete); elsewhere they are an error

Combine with ``and`` / ``&&``, ``or`` / ``||``, ``not`` / ``!`` and parentheses;
``not`` binds tightest, then ``and``, then ``or``. Terms side by side mean ``and``.
tcpdump reads ``and`` and ``or`` left to right instead, so an ``and`` after an ``or``
(``tcp or udp and port 53``) is refused until parentheses say which is meant::

    udp dport 53
    tcp port 80 and not src net 10.0.0.0/8
    unreplied and (bytes > 1M or timeout > 100)

Keywords are case-insensitive. Empty text matches everything.
"""

from cttop.filter.compile import Filter, OwnerSource, compile_filter, uses_owners
from cttop.filter.errors import FilterError
from cttop.filter.parser import parse
from cttop.filter.pushdown import KernelFilter

__all__ = ["Filter", "FilterError", "KernelFilter", "OwnerSource", "compile_filter", "parse", "uses_owners"]

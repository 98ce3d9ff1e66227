"""Ranking a whole table by owning process or container, straight from the packed records.

:class:`cttop.owners.owners.Tally` unpacks every row into a tuple first, which
is most of its cost (2.4 s for a million flows on these machines). The worker
ranks the table on every refresh while such a group is shown, so this does the
same matching as :meth:`Owners.owner_of` on byte slices of the records instead
(about a quarter of the time): the socket index is re-keyed once per owners
refresh by the same bytes a record holds its tuples in (see
:mod:`cttop.table.packing`). The results are the same GroupRows, key for key;
a unit test holds the two to that. A forwarded record is looked up in the host map
(another namespace by its source, or its reply source after DNAT) and then among that
namespace's sockets, keyed the same way.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable
from typing import Final

from cttop.owners.owners import (
    FORWARDED,
    LOCAL_NO_PROCESS,
    NO_CONTAINER,
    NO_PROCESS,
    OWNED_PROTOS,
    Neighbour,
    Owner,
    OwnerIndex,
    owner_filter,
)
from cttop.table.aggregates import GroupRow
from cttop.table.packing import COUNTER_VALUES, COUNTERS_AT, OFFSETS, PROTO_AT, V6_MIN

_PORT = struct.Struct(">H")
_PORTS = struct.Struct(">HH")
# Per address size, where a record's tuples lie: original src, dst, sport; reply src, sport; the reply's end.
_AT: Final = {a: (o["src"], o["dst"], o["sport"], o["rsrc"], o["rsport"], o["rdport"] + 2) for a, o in OFFSETS.items()}
_COLUMN: Final = {"entries": 0, "bytes": 1, "packets": 2}


class PackedOwners:
    """One :class:`OwnerIndex`, keyed by the bytes of packed records.

    In a record the original tuple is ``src dst sport dport`` (packing.ORIG_AT), and the
    reply tuple follows it in the same shape: exactly ``laddr raddr lport rport``
    of the socket that sees the flow from that side.
    """

    def __init__(self, ix: OwnerIndex) -> None:
        self.at = ix.at
        self.local = ix.local
        self.exact: dict[bytes, dict[int, Owner]] = {}
        for (proto, laddr, lport, raddr, rport), o in ix.exact.items():
            if o is not None:  # a socket nobody holds any more matches nothing (as in owner_of)
                self.exact.setdefault(laddr + raddr + _PORTS.pack(lport, rport), {})[proto] = o
        self.bound = {bytes([proto]) + addr + _PORT.pack(port): o for (proto, addr, port), o in ix.bound.items()}
        self.wild = {bytes([proto]) + _PORT.pack(port): o for (proto, port), o in ix.wild.items()}
        # Where a connected socket's own end can be (IP_FREEBIND and transparent sockets may sit on
        # an address the namespace does not have).
        self.here = ix.local | {laddr for (_p, laddr, _lp, _ra, _rp), o in ix.exact.items() if o is not None}
        self.hosts: dict[bytes, Neighbour] = ix.hosts.addrs if ix.hosts is not None else {}
        self._packed: dict[int, PackedOwners] = {}

    def match(self, rec: bytes) -> Owner | None:
        """The process of this index's namespace holding the record's flow, as Owners.owner_of matches."""
        a = 4 if len(rec) < V6_MIN else 16
        src_at, _dst_at, sport_at, reply, rsport_at, end = _AT[a]
        proto = rec[PROTO_AT]
        if proto not in OWNED_PROTOS:
            return None
        p = rec[PROTO_AT:PROTO_AT + 1]
        e = self.exact.get(rec[src_at:reply])
        o = e.get(proto) if e is not None else None
        if o is None:
            e = self.exact.get(rec[reply:end])
            o = e.get(proto) if e is not None else None
        for at, port_at in ((src_at, sport_at), (reply, rsport_at)):
            if o is not None:
                break
            addr = rec[at:at + a]
            if addr in self.local or (a == 4 and rec[at] == 127):
                port = rec[port_at:port_at + 2]
                o = self.bound.get(p + addr + port) or self.wild.get(p + port)
        return o

    def neighbour_key(self, n: Neighbour, rec: bytes, container: bool) -> object:
        """A forwarded record's group key, ``n`` being the namespace it is attributed to."""
        packed = self._packed.get(n.inode)
        if packed is None:
            packed = self._packed[n.inode] = PackedOwners(n.index)
        o = packed.match(rec)
        if o is None:
            return n.label if container else n.label + NO_PROCESS
        return (o.container or NO_CONTAINER) if container else o

    def top(self, records: Iterable[bytes], key: str = "process", n: int = 10, by: str = "entries") -> list[GroupRow]:
        """A :class:`Tally`'s ranking over packed records: the ``n`` heaviest processes or containers.

        Owners.owner_of and Owners.where, inlined on the records' bytes: at a million records
        every call and tuple costs a tenth of a second.
        """
        container = key == "container"
        if not container and key != "process":
            raise KeyError(key)
        agg: dict[object, list[int]] = {}
        counted = False
        exact, bound, wild, local, here = self.exact.get, self.bound.get, self.wild.get, self.local, self.here
        hosts = self.hosts.get if self.hosts else None
        owned, counted_at, unpack, layout = OWNED_PROTOS, COUNTERS_AT.get, COUNTER_VALUES.unpack_from, _AT
        for rec in records:
            a = 4 if len(rec) < V6_MIN else 16
            src_at, dst_at, sport_at, reply, rsport_at, end = layout[a]
            proto = rec[PROTO_AT]
            src, rsrc = rec[src_at:dst_at], rec[reply:reply + a]
            # A socket's own address is local (or at least one a socket here has): a flow whose
            # sources are neither can match no socket, which settles most of a router's flows at once.
            src_here = src in here or (a == 4 and rec[src_at] == 127)
            rsrc_here = rsrc in here or (a == 4 and rec[reply] == 127)
            o: Owner | None = None
            if (src_here or rsrc_here) and proto in owned:
                e = exact(rec[src_at:reply])
                if e is not None:
                    o = e.get(proto)
                if o is None:
                    e = exact(rec[reply:end])
                    if e is not None:
                        o = e.get(proto)
                if o is None and (src in local or (a == 4 and rec[src_at] == 127)):
                    port = rec[sport_at:sport_at + 2]
                    o = bound(rec[PROTO_AT:PROTO_AT + 1] + src + port) or wild(rec[PROTO_AT:PROTO_AT + 1] + port)
                if o is None and (rsrc in local or (a == 4 and rec[reply] == 127)):
                    port = rec[rsport_at:rsport_at + 2]
                    o = bound(rec[PROTO_AT:PROTO_AT + 1] + rsrc + port) or wild(rec[PROTO_AT:PROTO_AT + 1] + port)
            k: object
            if o is not None:
                k = (o.container or NO_CONTAINER) if container else o
            elif (src in local or rsrc in local or rec[dst_at:sport_at] in local
                  or (a == 4 and (rec[src_at] == 127 or rec[reply] == 127 or rec[dst_at] == 127))):
                k = LOCAL_NO_PROCESS
            elif hosts is not None and (nb := hosts(src) or hosts(rsrc)) is not None:
                k = self.neighbour_key(nb, rec, container)
            else:
                k = FORWARDED
            v = agg.get(k)
            if v is None:
                v = agg[k] = [0, 0, 0]
            v[0] += 1
            head = counted_at(len(rec))
            if head is not None:
                counted = True
                opkts, obytes, rpkts, rbytes = unpack(rec, head)
                v[1] += obytes + rbytes
                v[2] += opkts + rpkts
        col = _COLUMN[by]
        best = heapq.nlargest(n, agg.items(), key=lambda kv: kv[1][col])
        return [GroupRow(k, k.text() if isinstance(k, Owner) else str(k), v[0], v[1] if counted else None,
                         v[2] if counted else None, owner_filter(k)) for k, v in best]

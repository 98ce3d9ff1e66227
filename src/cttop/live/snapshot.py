"""One look at a namespace's table: the kernel's count and max, aggregates over the (filtered) flows,
the heaviest groups and the pressure counters. Backs ``cttop snapshot`` and its JSON schema.

With ``seconds`` it watches that long between two dumps: new flows a second per group come from NEW
events (or, where the kernel sends none, from the flows the second dump holds and the first did not),
bytes and packets a second from the two dumps' counters; the aggregates are the second dump's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TextIO

from cttop import config
from cttop.errors import CttopError
from cttop.host.datapath import Findings, look
from cttop.kernel import native, procstat, sysctl
from cttop.kernel import nlconst as C
from cttop.kernel.ctnetlink import NEEDS_CAP, Ctnetlink, KernelError, sum_cpus
from cttop.kernel.events import EventSocket
from cttop.kernel.netns import NetnsSpec
from cttop.live.heaviest import RANK_BY
from cttop.model import EV_NEW, R_OPKTS, Row, flow_dict, proto_name
from cttop.owners.groups import OWNER_GROUPS
from cttop.table.aggregates import Aggregates, GroupRow
from cttop.table.groups import GROUPS, GroupKey
from cttop.table.packing import flow_key, pack
from cttop.table.rates import FlowRate, NewFlowRate, flow_rates, group_rates, top_new, with_rates

if TYPE_CHECKING:
    from cttop.filter import Filter  # None for every flow: the parser loads only for a filter given
    from cttop.owners.owners import Owners  # the owners' machinery (psutil, sock_diag) loads only when asked for

NEW_RATE_SECONDS: Final = 5.0  # how long --by new-rate watches when not told
JSON_SEPARATORS: Final = (",", ":")  # compact: --flows runs to hundreds of megabytes
JSON_FLOWS_AT_ONCE: Final = 1000

GROUP_KEYS = (*GROUPS, *OWNER_GROUPS)


@dataclass
class Snapshot:
    netns: str
    count: int
    max: int
    buckets: int | None
    listed: int | None = None  # None when flows could not be read (no permission)
    matched: int | None = None
    agg: Aggregates | None = None
    stats: dict[str, int] | None = None
    stats_from: str | None = None  # "ctnetlink", or "/proc/net/stat/nf_conntrack" without CAP_NET_ADMIN
    flows: list[Row] = field(default_factory=list)
    group_by: str = config.DEFAULT_GROUP
    by: str = "entries"
    top_n: int = 10
    top: list[GroupRow] = field(default_factory=list)
    owners: Owners | None = None  # who owns the flows, when the group or the filter asked
    datapath: Findings | None = None  # eBPF conntrack maps and kube-proxy on the host
    problem: str | None = None  # why flows are missing, e.g. NEEDS_CAP
    seconds: float | None = None  # how long rates were measured over; None: no rates
    rate_source: str | None = None  # where new flows a second came from: "events" or "dumps"
    new_rates: dict[GroupKey, float] | None = None
    group_rates: dict[GroupKey, FlowRate] | None = None  # bytes and packets a second, with accounting on
    events_lost: bool = False  # the kernel dropped NEW events while measuring: new/s is a lower bound
    # --max-flows: the most flow records held (the listed flows, or the two dumps' counters for bytes a second);
    # what it left out. None: no bound.
    max_flows: int | None = None
    flows_left_out: int = 0  # matching flows not listed
    byte_rates_left_out: bool = False  # more counted flows than that: no bytes or packets a second

    def rows(self) -> list[GroupRow]:
        """The heaviest groups by ``by``, with their rates where measured."""
        assert self.agg is not None
        if self.by == "new-rate":
            rows = top_new(self.new_rates or {}, self.agg, self.group_by, self.top_n)
        else:
            rows = self.top
        return with_rates(rows, self.group_rates) if self.group_rates is not None else rows

    @property
    def fill(self) -> float:
        return self.count / self.max if self.max else 0.0

    def to_json(self) -> dict[str, Any]:
        """Everything but the flows, which :meth:`write_json` adds as it writes them."""
        agg = self.agg
        return {
            "netns": self.netns, "count": self.count, "max": self.max, "fill": round(self.fill, 6),
            "buckets": self.buckets, "listed": self.listed, "matched": self.matched,
            "by_proto": {proto_name(p): n for p, n in sorted(agg.by_proto.items())} if agg else None,
            "by_state": dict(sorted(agg.by_state.items())) if agg else None,
            "evictable": agg.evictable if agg else None,
            "top": {"key": self.group_by, "by": self.by, "seconds": self.seconds, "rate_source": self.rate_source,
                    "events_lost": self.events_lost, "rows": [
                        {"key": g.text, "entries": g.entries, "bytes": g.bytes, "packets": g.packets,
                         "filter": g.filter, "new_rate": _rate(g.new_rate), "bytes_rate": _rate(g.bytes_rate),
                         "packets_rate": _rate(g.packets_rate)}
                        for g in self.rows()]} if agg else None,
            "stats": self.stats, "stats_from": self.stats_from,
            "datapath": self.datapath.to_json() if self.datapath is not None else None,
            "error": self.problem,
            "bounded": {"max_flows": self.max_flows, "flows_left_out": self.flows_left_out,
                        "byte_rates_left_out": self.byte_rates_left_out},
        }

    def write_json(self, out: TextIO, with_flows: bool) -> None:
        """One JSON object and a newline, ``flows`` last (when asked) and written a thousand at a time: the
        whole list as dicts, then as one string, is ~2 kB a flow held at once (half a gigabyte at 262k flows),
        on a box whose memory may be what is short."""
        head = json.dumps(self.to_json(), separators=JSON_SEPARATORS)
        if not with_flows:
            out.write(head + "\n")
            return
        out.write(head[:-1] + ',"flows":[')
        owners, flows = self.owners, self.flows
        for i in range(0, len(flows), JSON_FLOWS_AT_ONCE):
            part = [flow_dict(r) if owners is None else flow_dict(r) | {"owner": owners.flow_json(r)}
                    for r in flows[i:i + JSON_FLOWS_AT_ONCE]]
            # dumps a part, not dump the whole: json.dump streams through the pure-Python encoder, 10x slower.
            out.write(("," if i else "") + json.dumps(part, separators=JSON_SEPARATORS)[1:-1])
        out.write("]}\n")


def _rate(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def take(spec: NetnsSpec, flt: Filter | None, group_by: str = config.DEFAULT_GROUP, by: str = "entries",
         top_n: int = 10, keep_flows: bool = False, owners: Owners | None = None, seconds: float | None = None,
         max_flows: int | None = None) -> Snapshot:
    """Read the table once (or, with ``seconds``, twice that far apart, for rates), the flows ``flt`` matches
    (None: every flow). Without permission, count and max still come from /proc/sys.

    The aggregates count every flow as the dump streams in, holding none; ``max_flows`` bounds the records
    held for what needs them: the flows kept (the first that many) and the counters bytes a second compare.

    ``owners`` (refreshed) is needed to group by process or container, and names each flow's owner. Rates
    are measured for the table's own group keys, not owners (whose lookup is per dump, not per event).
    """
    if group_by not in GROUP_KEYS or (group_by in OWNER_GROUPS and owners is None):
        raise KeyError(group_by)
    if by not in RANK_BY:
        raise KeyError(by)
    if by == "new-rate" and seconds is None:
        seconds = NEW_RATE_SECONDS
    names = ["nf_conntrack_count", "nf_conntrack_max", "nf_conntrack_buckets", "nf_conntrack_events"]
    values = sysctl.read(spec, names)
    count, mx, buckets = (sysctl.as_int(values.get(n)) for n in names[:3])
    snap = Snapshot(spec.label(), count or 0, mx or 0, buckets, group_by=group_by, by=by, top_n=top_n,
                    owners=owners, datapath=look(), max_flows=max_flows)
    try:
        ct = Ctnetlink(spec)
    except KernelError as e:
        snap.problem = str(e)
        return _with_proc_stats(snap, spec)
    with ct:
        try:
            agg = Aggregates([group_by] if group_by in GROUPS else [])
            tally = None
            if owners is not None and group_by in OWNER_GROUPS:
                from cttop.owners.owners import Tally

                tally = Tally(owners, group_by)
            watch = None
            if seconds is not None and group_by in GROUPS:
                watch = _Watch(ct, spec, flt, GROUPS[group_by].key, seconds,
                               events=values.get("nf_conntrack_events") != "0", max_flows=max_flows)
            listed = matched = 0
            if countable(flt, group_by) and watch is None and not keep_flows:  # (an owner group's tally: not countable)
                listed = matched = count_dump(ct, flt, agg, group_by)
            else:
                for n, rows in filtered_dump(ct, flt):
                    listed += n
                    matched += len(rows)
                    agg.add_rows(rows)
                    if tally is not None:
                        tally.add(rows)
                    if watch is not None:
                        watch.feed(rows)
                    if keep_flows:
                        room = len(rows) if max_flows is None else max(0, max_flows - len(snap.flows))
                        snap.flows += rows[:room]
                        snap.flows_left_out += len(rows) - min(room, len(rows))
            if watch is not None:
                watch.finish(snap)
            st = ct.stats()
            snap.stats, snap.stats_from = sum_cpus(ct.stats_cpu()), "ctnetlink"
        except KernelError as e:
            if e.permission:
                snap.problem = NEEDS_CAP
                return _with_proc_stats(snap, spec)
            raise
    # The dump and CT_GET_STATS both count; the netlink one is this namespace's
    # count at the same moment as the flows, so it wins over the sysctl read.
    snap.count, snap.max = st.count, st.max or snap.max
    snap.listed, snap.matched, snap.agg = listed, matched, agg
    if by != "new-rate":  # new-rate's ranking comes from the rates (Snapshot.rows)
        snap.top = tally.top(top_n, by) if tally is not None else agg.top(group_by, top_n, by)
    return snap


def countable(flt: Filter | None, group_by: str) -> bool:
    """Whether a dump can be counted for ``group_by`` without rows: the accelerator is built, the group's key
    reads only the row, and the kernel does all the filter's work."""
    return (native.DEFAULT is not None and group_by in GROUPS and GROUPS[group_by].reads is not None
            and (flt is None or flt.is_all or (flt.kernel is not None and flt.kernel.exact)))


def count_dump(ct: Ctnetlink, flt: Filter | None, agg: Aggregates, group_by: str) -> int:
    """One dump, narrowed by the kernel, counted into ``agg`` without a row a flow (kernel/_counts.c; see
    :func:`countable`): the flows counted."""
    reads = GROUPS[group_by].reads
    assert native.DEFAULT is not None and reads is not None  # countable() said so
    counts = native.DEFAULT.Counts(reads)
    kf = flt.kernel if flt is not None else None
    ct.dump_counts(counts, kf.family if kf is not None and kf.family is not None else 0, kf)
    agg.add_counts(counts)
    flows: int = counts.totals()[0]
    return flows


def filtered_dump(ct: Ctnetlink, flt: Filter | None) -> Generator[tuple[int, list[Row]], None, None]:
    """One dump, narrowed by the kernel where the filter allows: (rows listed, rows matching) a chunk."""
    kf = flt.kernel if flt is not None else None
    family = kf.family if kf is not None and kf.family is not None else 0
    for rows in ct.dump_chunks(family, kf):
        n = len(rows)
        if flt is not None and not flt.is_all and not (kf is not None and kf.exact):
            rows = flt.select(rows)
        yield n, rows


class _Watch:
    """The first dump and the wait of a measured snapshot; the second dump is fed in by :func:`take`.

    The NEW events socket is subscribed before the first dump, so a flow made while it runs is
    counted; the count covers the time from that subscription to the second dump.
    """

    def __init__(self, ct: Ctnetlink, spec: NetnsSpec, flt: Filter | None, key: Callable[[Row], GroupKey],
                 seconds: float, events: bool, max_flows: int | None = None) -> None:
        self.key, self.flt = key, flt
        self.most = max_flows  # counted flows whose records both dumps may hold; over it, no bytes a second
        self.too_many = False
        self.rate = NewFlowRate(key, window=seconds + 1)  # one window holding every span
        self.first: dict[int, bytes] = {}  # counted flows' packed records, for bytes and packets a second
        self.second: dict[int, bytes] = {}
        self.known: set[int] | None = None if events else set()  # without events: the first dump's flows
        self.new_rows: list[Row] = []
        self.lost = False
        sock = EventSocket(spec, (C.NFNLGRP_CONNTRACK_NEW,)) if events else None
        try:
            self.t0 = time.monotonic()
            self.rate.start(self.t0)
            for _n, rows in filtered_dump(ct, flt):
                self._hold(self.first, rows)
                if self.known is not None:
                    self.known.update(map(flow_key, rows))
            deadline = self.t0 + seconds
            while (left := deadline - time.monotonic()) > 0:
                if sock is None:
                    time.sleep(left)
                    continue
                batch = sock.read(min(left, 0.25))
                self.lost |= batch.lost
                match = None if flt is None or flt.is_all else flt.match
                self.rate.add(time.monotonic(), [r for k, r in batch.events
                                                 if k == EV_NEW and (match is None or match(r))])
        finally:
            if sock is not None:
                sock.close()
        self.t1 = time.monotonic()  # the second dump starts now

    def _hold(self, held: dict[int, bytes], rows: list[Row]) -> None:
        """The counted rows' records, for bytes a second; none at all once there are more than ``most``."""
        if self.too_many:
            return
        held.update((flow_key(r), pack(r)) for r in rows if r[R_OPKTS] is not None)
        if self.most is not None and len(held) > self.most:
            self.too_many = True
            self.first.clear()
            self.second.clear()

    def feed(self, rows: list[Row]) -> None:
        self._hold(self.second, rows)
        if self.known is not None:
            known = self.known
            self.new_rows += [r for r in rows if flow_key(r) not in known]

    def finish(self, snap: Snapshot) -> None:
        if self.known is not None:
            self.rate.add(self.t1, self.new_rows)
        snap.seconds = round(self.t1 - self.t0, 3)
        snap.rate_source = "dumps" if self.known is not None else "events"
        snap.new_rates = self.rate.rates()
        snap.events_lost = self.lost
        snap.byte_rates_left_out = self.too_many
        if self.first or self.second:
            rates = flow_rates(self.first, self.second, self.t1 - self.t0)
            snap.group_rates = group_rates(rates, self.second, self.key)


def _with_proc_stats(snap: Snapshot, spec: NetnsSpec) -> Snapshot:
    """The pressure counters without ctnetlink: /proc/net/stat/nf_conntrack is world-readable."""
    try:
        snap.stats = procstat.read(spec).as_cpu_totals()
    except CttopError:
        return snap  # no such file, or another namespace we may not enter: stats stay unknown (null)
    snap.stats_from = procstat.SOURCE
    return snap

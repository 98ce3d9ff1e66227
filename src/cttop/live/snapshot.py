"""One look at a namespace's table: the kernel's count and max, aggregates over the (filtered) flows,
the heaviest groups and the pressure counters. Backs ``cttop snapshot`` and its JSON schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cttop.errors import CttopError
from cttop.filter import Filter
from cttop.host.datapath import Findings, look
from cttop.kernel import procstat, sysctl
from cttop.kernel.ctnetlink import NEEDS_CAP, Ctnetlink, KernelError, sum_cpus
from cttop.kernel.netns import NetnsSpec
from cttop.live.owner_top import OWNER_GROUPS
from cttop.model import Row, flow_dict, proto_name
from cttop.owners.owners import Owners, Tally
from cttop.table.aggregates import Aggregates, GroupRow
from cttop.table.groups import GROUPS

GROUP_KEYS = (*GROUPS, *OWNER_GROUPS)


def group_title(key: str) -> str:
    return GROUPS[key].title if key in GROUPS else key


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
    group_by: str = "src"
    by: str = "entries"
    top_n: int = 10
    top: list[GroupRow] = field(default_factory=list)
    owners: Owners | None = None  # who owns the flows, when the group or the filter asked
    datapath: Findings | None = None  # eBPF conntrack maps and kube-proxy on the host
    problem: str | None = None  # why flows are missing, e.g. NEEDS_CAP

    @property
    def fill(self) -> float:
        return self.count / self.max if self.max else 0.0

    def to_json(self, with_flows: bool) -> dict[str, Any]:
        agg = self.agg
        out: dict[str, Any] = {
            "netns": self.netns, "count": self.count, "max": self.max, "fill": round(self.fill, 6),
            "buckets": self.buckets, "listed": self.listed, "matched": self.matched,
            "by_proto": {proto_name(p): n for p, n in sorted(agg.by_proto.items())} if agg else None,
            "by_state": dict(sorted(agg.by_state.items())) if agg else None,
            "evictable": agg.evictable if agg else None,
            "top": {"key": self.group_by, "by": self.by, "rows": [
                {"key": g.text, "entries": g.entries, "bytes": g.bytes, "packets": g.packets, "filter": g.filter}
                for g in self.top]} if agg else None,
            "stats": self.stats, "stats_from": self.stats_from,
            "datapath": self.datapath.to_json() if self.datapath is not None else None,
            "error": self.problem,
        }
        if with_flows:
            owners = self.owners
            out["flows"] = [flow_dict(r) if owners is None else flow_dict(r) | {"owner": owners.flow_json(r)}
                            for r in self.flows]
        return out


def take(spec: NetnsSpec, flt: Filter, group_by: str = "src", by: str = "entries", top_n: int = 10,
         keep_flows: bool = False, owners: Owners | None = None) -> Snapshot:
    """Read the table once. Without permission, count and max still come from /proc/sys.

    ``owners`` (refreshed) is needed to group by process or container, and names each flow's owner.
    """
    if group_by not in GROUP_KEYS or (group_by in OWNER_GROUPS and owners is None):
        raise KeyError(group_by)
    values = sysctl.read(spec, ["nf_conntrack_count", "nf_conntrack_max", "nf_conntrack_buckets"])
    count, mx, buckets = (sysctl.as_int(values.get(n)) for n in ("nf_conntrack_count", "nf_conntrack_max",
                                                                  "nf_conntrack_buckets"))
    snap = Snapshot(spec.label(), count or 0, mx or 0, buckets, group_by=group_by, by=by, top_n=top_n,
                    owners=owners, datapath=look())
    try:
        ct = Ctnetlink(spec)
    except KernelError as e:
        snap.problem = str(e)
        return _with_proc_stats(snap, spec)
    with ct:
        try:
            agg = Aggregates([group_by] if group_by in GROUPS else [])
            tally = Tally(owners, group_by) if owners is not None and group_by in OWNER_GROUPS else None
            listed = matched = 0
            kf = flt.kernel
            family = kf.family if kf is not None and kf.family is not None else 0
            for rows in ct.dump_chunks(family, kf):
                listed += len(rows)
                if not flt.is_all and not (kf is not None and kf.exact):
                    rows = [r for r in rows if flt.match(r)]
                matched += len(rows)
                agg.add_rows(rows)
                if tally is not None:
                    tally.add(rows)
                if keep_flows:
                    snap.flows += rows
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
    snap.top = tally.top(top_n, by) if tally is not None else agg.top(group_by, top_n, by)
    return snap


def _with_proc_stats(snap: Snapshot, spec: NetnsSpec) -> Snapshot:
    """The pressure counters without ctnetlink: /proc/net/stat/nf_conntrack is world-readable."""
    try:
        snap.stats = procstat.read(spec).as_cpu_totals()
    except CttopError:
        return snap  # no such file, or another namespace we may not enter: stats stay unknown (null)
    snap.stats_from = procstat.SOURCE
    return snap

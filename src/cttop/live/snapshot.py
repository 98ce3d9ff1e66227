"""One look at a namespace's table: the kernel's count and max, aggregates over the (filtered) flows,
the heaviest groups and the pressure counters. Backs ``cttop snapshot`` and its JSON schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cttop.filter import Filter
from cttop.kernel import sysctl
from cttop.kernel.ctnetlink import NEEDS_CAP, Ctnetlink, KernelError, sum_cpus
from cttop.kernel.netns import NetnsSpec
from cttop.model import Row, flow_dict, proto_name
from cttop.table.aggregates import Aggregates
from cttop.table.groups import GROUPS

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
    flows: list[Row] = field(default_factory=list)
    group_by: str = "src"
    by: str = "entries"
    top_n: int = 10
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
                for g in agg.top(self.group_by, self.top_n, self.by)]} if agg else None,
            "stats": self.stats,
            "error": self.problem,
        }
        if with_flows:
            out["flows"] = [flow_dict(r) for r in self.flows]
        return out


def take(spec: NetnsSpec, flt: Filter, group_by: str = "src", by: str = "entries", top_n: int = 10,
         keep_flows: bool = False) -> Snapshot:
    """Read the table once. Without permission, count and max still come from /proc/sys."""
    if group_by not in GROUPS:
        raise KeyError(group_by)
    values = sysctl.read(spec, ["nf_conntrack_count", "nf_conntrack_max", "nf_conntrack_buckets"])
    count, mx, buckets = (sysctl.as_int(values.get(n)) for n in ("nf_conntrack_count", "nf_conntrack_max",
                                                                  "nf_conntrack_buckets"))
    snap = Snapshot(spec.label(), count or 0, mx or 0, buckets, group_by=group_by, by=by, top_n=top_n)
    try:
        ct = Ctnetlink(spec)
    except KernelError as e:
        snap.problem = str(e)
        return snap
    with ct:
        try:
            agg = Aggregates([group_by])
            listed = matched = 0
            kf = flt.kernel
            family = kf.family if kf is not None and kf.family is not None else 0
            for rows in ct.dump_chunks(family, kf):
                listed += len(rows)
                if not flt.is_all and not (kf is not None and kf.exact):
                    rows = [r for r in rows if flt.match(r)]
                matched += len(rows)
                agg.add_rows(rows)
                if keep_flows:
                    snap.flows += rows
            st = ct.stats()
            snap.stats = sum_cpus(ct.stats_cpu())
        except KernelError as e:
            if e.permission:
                snap.problem = NEEDS_CAP
                return snap
            raise
    # The dump and CT_GET_STATS both count; the netlink one is this namespace's
    # count at the same moment as the flows, so it wins over the sysctl read.
    snap.count, snap.max = st.count, st.max or snap.max
    snap.listed, snap.matched, snap.agg = listed, matched, agg
    return snap

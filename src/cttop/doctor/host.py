"""Doctor on a container host: flushing a container's flows, and what else keeps the node's connections.

- A container's flows are selected by an owner filter, which no NOTRACK rule can say:
  its fix is a flush of exactly those flows (the owners are read again when the plan is made).
- An eBPF datapath with conntrack maps of its own (Cilium, Calico) means nf_conntrack is
  not the table that fills for pod traffic: said, with the command that lists theirs.
- kube-proxy rewrites conntrack sysctls when it starts: drift of one of those names it.
"""

from __future__ import annotations

from cttop.actions import FlushFlows
from cttop.actions.journal import Journal
from cttop.actions.plan import Plan
from cttop.doctor.collect import Observation
from cttop.doctor.report import Finding, Remedy
from cttop.filter import compile_filter
from cttop.host.containers import host_owners
from cttop.host.datapath import KUBE_PROXY_SYSCTLS, kube_proxy_name, kube_proxy_rewrites
from cttop.kernel.netns import NetnsSpec


def owner_flush_remedy(spec: NetnsSpec, expr: str) -> Remedy:
    def build(journal: Journal | None) -> Plan:
        owners = host_owners(spec)
        owners.refresh()
        return FlushFlows(spec, compile_filter(expr, owners), journal=journal)

    return Remedy(FlushFlows.kind, build)


def datapath(o: Observation) -> Finding | None:
    d = o.datapath
    if d is None or not d.datapaths:
        return None
    lines = []
    for dp in d.datapaths:
        shown = ", ".join(dp.maps[:3]) + (f" and {len(dp.maps) - 3} more" if len(dp.maps) > 3 else "")
        lines.append(f"{dp.name} keeps its own connection tracking in eBPF maps pinned under {d.bpffs}: {shown}")
    lines.append("for pod traffic on this node those maps are the table that fills, not nf_conntrack (this "
                 "table holds the host's own and non-pod flows); inspect theirs: "
                 + "; ".join(d.commands()))
    title = f"nf_conntrack is not the table for pod traffic: {d.names()} eBPF conntrack maps found"
    return Finding("ebpf-conntrack", "ok", title, "\n".join(lines), d.to_json(), d.commands())


def kube_proxy(o: Observation) -> Finding | None:
    d = o.datapath
    if d is None or not d.kube_proxy:
        return None
    pid, names = kube_proxy_rewrites(d.kube_proxy, (x.name for x in o.drifts), o.spec.inode())
    rewritten = [x for x in o.drifts if x.name in names]
    who = kube_proxy_name(pid) if pid is not None else d.kube_proxy_text()
    data: dict[str, object] = {"kube_proxy_pids": list(d.kube_proxy), "rewritten": names}
    sets = "it sets " + ", ".join(sorted(KUBE_PROXY_SYSCTLS)) + " when it starts (nf_conntrack_max from " \
           "--conntrack-max-per-core x CPUs, at least --conntrack-min)"
    if not rewritten:
        return Finding("kube-proxy", "ok", f"{who} runs on this host", sets + "; nothing cttop set was changed", data)
    evidence = (f"{', '.join(x.message() for x in rewritten)}\n"
                f"the cause: {who} runs on this host and {sets}; set these in kube-proxy's configuration "
                "(conntrack: maxPerCore, min, tcpEstablishedTimeout, tcpCloseWaitTimeout) or they come back "
                "at its next start")
    return Finding("kube-proxy", "warning", f"{who} rewrote {', '.join(x.name for x in rewritten)}", evidence, data)


HOST_CHECKS = (datapath, kube_proxy)

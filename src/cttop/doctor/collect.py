"""Watch a namespace's table for a few seconds and keep what the checks need, as plain data.

Two samples of the per-CPU pressure counters, ``seconds`` apart, give what rose
during the watch; one dump in between gives the states, the heaviest groups (with
the states inside each), which timeout keeps each entry, for how long it has
been idle and whether its timer is from a longer value (:mod:`cttop.doctor.held`),
the DNS flows, and where UDP was DNAT'd to and whether it was answered there. :class:`Observation` holds only numbers, strings
and arrays of them, so the checks can be tested on hand-made ones.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from cttop.actions import drift
from cttop.actions.journal import Journal
from cttop.doctor.held import Held
from cttop.errors import CttopError
from cttop.host.containers import host_owners
from cttop.host.datapath import Findings, look
from cttop.kernel import procstat, sysctl
from cttop.kernel.ctnetlink import NEEDS_CAP, Ctnetlink, KernelError, sum_cpus
from cttop.kernel.netns import NetnsSpec
from cttop.model import (
    IPS_OFFLOAD,
    IPS_SEEN_REPLY,
    PORTED_PROTOS,
    R_DPORT,
    R_DST,
    R_PROTO,
    R_RDPORT,
    R_RDST,
    R_RSPORT,
    R_RSRC,
    R_SPORT,
    R_SRC,
    R_START,
    R_STATUS,
    R_TIMEOUT,
    Row,
    state_key,
)
from cttop.owners.owners import FORWARDED, LOCAL_NO_PROCESS, NO_CONTAINER, Owners
from cttop.table.aggregates import Aggregates
from cttop.table.groups import GROUPS, GroupDef
from cttop.table.timeouts import TCP_CAPS, in_force, timeout_name

# The keys a culprit is named by, most specific first.
CULPRIT_KEYS: Final = ("container", "src-dport", "dport", "dst", "src")
# A container (when the owners could be read) comes first: it is what a person acts on, and where it
# explains nearly as much as its address or port, it is named instead.
OWNER_KEYS: Final = ("container",)
# Container group keys that name no container.
_NOT_CONTAINERS: Final = (FORWARDED, LOCAL_NO_PROCESS, NO_CONTAINER)


def title(key: str) -> str:
    """What a group key is called in a finding."""
    return GROUPS[key].title if key in GROUPS else key


TOP_N: Final = 3
UDP: Final = 17
DNS_PORT: Final = 53
ESTABLISHED: Final = "tcp:ESTABLISHED"
# (original destination, its port, where it was DNAT'd to, that port): a UDP service and one of its backends.
NatKey = tuple[bytes, int, bytes, int]


@dataclass(frozen=True)
class Group:
    """One heaviest group: its name, the filter selecting it, and its entries by state."""

    key: str  # the group-by name (src, dst, dport, src-dport)
    text: str
    filter: str | None
    entries: int
    states: dict[str, int]
    natted: int = 0  # entries NAT'd (either way): NOTRACK would break them

    def main_state(self) -> tuple[str, int]:
        return max(self.states.items(), key=lambda kv: kv[1]) if self.states else ("", 0)


@dataclass
class Observation:
    spec: NetnsSpec
    initial: bool  # the host's own namespace, where globals are written and the table-full log appears
    seconds: float  # how long the counters were watched
    count: int
    max: int
    buckets: int | None
    sysctls: dict[str, str] = field(default_factory=dict)
    before: dict[str, int] | None = None  # summed per-CPU counters at the start (None: not readable)
    after: dict[str, int] | None = None
    listed: int | None = None  # flows dumped; None when flows could not be read
    by_state: dict[str, int] = field(default_factory=dict)
    tops: dict[str, list[Group]] = field(default_factory=dict)  # group key -> heaviest groups, best first
    state_ports: dict[str, Group] = field(default_factory=dict)  # state key -> heaviest dest port in it
    held: dict[str, Held] = field(default_factory=dict)  # timeout sysctl -> the entries it keeps
    dns: int = 0  # UDP flows to port 53
    # UDP DNAT'd: (service, backend) -> [entries never answered, entries answered]
    nat: dict[NatKey, list[int]] = field(default_factory=dict)
    drifts: list[drift.Drift] = field(default_factory=list)
    drift_problem: str | None = None  # why drift could not be checked
    datapath: Findings | None = None  # eBPF conntrack maps and kube-proxy on the host
    want_bytes: bool = False
    problem: str | None = None  # why flows and counters are missing

    @property
    def fill(self) -> float:
        return self.count / self.max if self.max else 0.0

    def delta(self, name: str) -> int | None:
        if self.before is None or self.after is None:
            return None
        return max(self.after.get(name, 0) - self.before.get(name, 0), 0)

    def sysctl_int(self, name: str) -> int | None:
        return sysctl.as_int(self.sysctls.get(name))


class _Tally:
    """Everything taken from the dump, added up chunk by chunk."""

    def __init__(self, sysctls: dict[str, str], now: float, owners: Owners | None = None) -> None:
        self.agg = Aggregates()
        self.defs: dict[str, GroupDef] = {k: GROUPS[k] for k in CULPRIT_KEYS if k in GROUPS}
        if owners is not None:
            self.defs.update({k: owners.group_defs()[k] for k in OWNER_KEYS})
        # group key -> (group, state, NAT'd) -> entries
        self.pairs: dict[str, Counter[tuple[object, str, bool]]] = {k: Counter() for k in self.defs}
        self.listed = 0
        self.sysctls = sysctls
        self.now_ns = int(now * 1e9)
        self.held: dict[str, Held] = {}
        self._names: dict[str, str | None] = {}
        # An ESTABLISHED entry's timer is cut to these when data goes unacknowledged or is retransmitted
        # too often; shortest first, so an entry with less left than a cap is put down to the tightest one
        # (on a tie, unacknowledged: a peer that vanished mid-transfer is the common case).
        est = in_force(timeout_name(ESTABLISHED), sysctls)
        caps = [(t, c) for c in TCP_CAPS if (t := in_force(c, sysctls)) is not None and est is not None and t < est]
        self.caps = sorted(caps, key=lambda tc: tc[0])
        self.dns = 0
        self.nat: dict[NatKey, list[int]] = {}

    def add(self, rows: list[Row]) -> None:
        self.listed += len(rows)
        self.agg.add_rows(rows)
        states = list(map(state_key, rows))
        natted = [r[R_RSRC] != r[R_DST] or r[R_RDST] != r[R_SRC]
                  or (r[R_PROTO] in PORTED_PROTOS and (r[R_RSPORT] != r[R_DPORT] or r[R_RDPORT] != r[R_SPORT]))
                  for r in rows]
        for k, d in self.defs.items():
            self.pairs[k].update(zip(map(d.key, rows), states, natted))
        # One pass for the rest; written out inline, as a call per row doubles what the tally costs.
        names, held, caps, now, nat = self._names, self.held, self.caps, self.now_ns, self.nat
        for r, key in zip(rows, states, strict=True):
            # The timeout that keeps the entry, its idle time and its age (see cttop.doctor.held).
            name = names[key] if key in names else self._name(key)
            if name is not None:
                left = r[R_TIMEOUT]
                if key == ESTABLISHED and caps:
                    name = next((n for t, n in caps if left <= t), name)
                h = held.get(name) or self._new_held(name, key)
                if h is not None:
                    idle = float(max(h.timeout - left, 0))
                    start = r[R_START]
                    age = max(now - start, 0) / 1e9 if start else None
                    h.add(key, min(idle, age) if age is not None else idle, age)
                    if left > h.timeout:
                        h.outlives(left, bool(r[R_STATUS] & IPS_OFFLOAD))
            if r[R_PROTO] != UDP:
                continue
            if r[R_DPORT] == DNS_PORT:
                self.dns += 1
            if r[R_RSRC] != r[R_DST] or r[R_RSPORT] != r[R_DPORT]:
                svc = (r[R_DST], r[R_DPORT], r[R_RSRC], r[R_RSPORT])
                seen = nat.get(svc)
                if seen is None:
                    seen = nat[svc] = [0, 0]
                seen[1 if r[R_STATUS] & IPS_SEEN_REPLY else 0] += 1

    def _name(self, key: str) -> str | None:
        name = self._names[key] = timeout_name(key)
        return name

    def _new_held(self, name: str, key: str) -> Held | None:
        t = in_force(name, self.sysctls)
        if t is None:  # this kernel has no such sysctl (dccp, mostly): no timeout in force to blame
            self._names[key] = None
            return None
        h = self.held[name] = Held(name, t)
        return h

    def tops(self) -> tuple[dict[str, list[Group]], dict[str, Group]]:
        tops: dict[str, list[Group]] = {}
        for k, pairs in self.pairs.items():
            totals: Counter[object] = Counter()
            for (g, _st, _nat), n in pairs.items():
                if k not in OWNER_KEYS or g not in _NOT_CONTAINERS:
                    totals[g] += n
            # States are gathered for the winners only: a storm has a group per tuple.
            states: dict[object, dict[str, int]] = {g: {} for g, _n in totals.most_common(TOP_N)}
            natted: Counter[object] = Counter()
            for (g, st, nat), n in pairs.items():
                if g in states:
                    states[g][st] = states[g].get(st, 0) + n
                    natted[g] += n if nat else 0
            tops[k] = [_group(self.defs[k], g, st, natted[g]) for g, st in states.items()]
        by_port: Counter[tuple[object, str]] = Counter()
        natted_port: Counter[tuple[object, str]] = Counter()
        for (g, st, nat), n in self.pairs["dport"].items():
            by_port[(g, st)] += n
            natted_port[(g, st)] += n if nat else 0
        ports: dict[str, tuple[object, int]] = {}
        for (g, st), n in by_port.items():
            if g is not None and n > ports.get(st, (None, 0))[1]:
                ports[st] = (g, n)
        state_ports = {st: _group(GROUPS["dport"], g, {st: n}, natted_port[(g, st)]) for st, (g, n) in ports.items()}
        return tops, state_ports


def _group(d: GroupDef, g: object, states: dict[str, int], natted: int = 0) -> Group:
    return Group(d.name, d.text(g), d.filter(g), sum(states.values()), dict(states), natted)


def observe(spec: NetnsSpec, seconds: float = 3.0, *, want_bytes: bool = False,
            journal: Journal | None = None) -> Observation:
    """Watch the table for ``seconds``. Without CAP_NET_ADMIN, count and max still come from /proc/sys."""
    values = sysctl.read(spec)

    def num(name: str) -> int | None:
        v = values.get(name)
        return int(v) if v is not None and v.isdigit() else None

    o = Observation(spec, spec.is_initial(), 0.0, num("nf_conntrack_count") or 0, num("nf_conntrack_max") or 0,
                    num("nf_conntrack_buckets"), values, want_bytes=want_bytes)
    try:
        o.drifts = drift.check(spec, journal)
    except CttopError as e:
        o.drift_problem = str(e)
    o.datapath = look()
    host = host_owners(spec)
    owners: Owners | None = host
    try:
        host.refresh()
    except CttopError:
        owners = None  # the flows are still judged, without their owners
    try:
        ct = Ctnetlink(spec)
    except KernelError as e:
        o.problem = str(e)
        return o
    with ct:
        try:
            _watch(ct, o, seconds, owners)
        except KernelError as e:
            if not e.permission:
                raise
            o.problem = NEEDS_CAP
            _watch_proc(o, seconds)
    return o


def _watch_proc(o: Observation, seconds: float) -> None:
    """The pressure counters without CAP_NET_ADMIN, from world-readable /proc/net/stat/nf_conntrack."""
    start = time.monotonic()
    try:
        o.before = procstat.read(o.spec).as_cpu_totals()
        time.sleep(seconds)
        after = procstat.read(o.spec)
    except CttopError:
        o.before = None  # no such file, or a namespace we may not enter: the counters stay unknown
        return
    o.after, o.seconds, o.count = after.as_cpu_totals(), time.monotonic() - start, after.count


def _watch(ct: Ctnetlink, o: Observation, seconds: float, owners: Owners | None = None) -> None:
    start = time.monotonic()
    o.before = sum_cpus(ct.stats_cpu())
    tally = _dump(ct, o.sysctls, owners)
    time.sleep(max(start + seconds - time.monotonic(), 0.0))
    if tally is not None and any(h.too_young for h in tally.held.values()):
        # Entries all under MIN_AGE old (doctor opened right after a burst) say nothing of how fast they come;
        # by the watch's end they are as old as the watch, so that dump tells a burst from a flood.
        tally = _dump(ct, o.sysctls, owners)
    if tally is None:
        o.problem = "flows could not be dumped: the table kept changing under two dumps in a row"
    else:
        o.listed, o.by_state = tally.listed, dict(tally.agg.by_state)
        o.tops, o.state_ports = tally.tops()
        o.held, o.dns, o.nat = tally.held, tally.dns, tally.nat
    o.after = sum_cpus(ct.stats_cpu())
    o.seconds = time.monotonic() - start
    st = ct.stats()
    # The netlink count is this namespace's at the end of the watch, as the counters are.
    o.count, o.max = st.count, st.max or o.max


def _dump(ct: Ctnetlink, sysctls: dict[str, str], owners: Owners | None = None) -> _Tally | None:
    """One dump's tally; a dump the kernel interrupted (table changed) is tried once more."""
    for _ in range(2):
        # Ages are taken against the wall clock, as the kernel's start timestamps are.
        tally = _Tally(sysctls, time.time(), owners)
        try:
            for rows in ct.dump_chunks():
                tally.add(rows)
        except KernelError as e:
            if e.permission:
                raise
            continue
        return tally
    return None

"""Watch a namespace's table for a few seconds and keep what the checks need, as plain data.

Two samples of the per-CPU pressure counters, ``seconds`` apart, give what rose
during the watch; one dump in between gives the states, the heaviest groups (with
the states inside each) and how long ESTABLISHED entries have been idle.
:class:`Observation` holds only numbers and strings, so the checks can be tested on
hand-made ones.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from cttop.actions import drift
from cttop.actions.journal import Journal
from cttop.actions.shell import is_initial
from cttop.errors import CttopError
from cttop.kernel import sysctl
from cttop.kernel.ctnetlink import Ctnetlink, KernelError, sum_cpus
from cttop.kernel.netns import NetnsSpec
from cttop.model import R_PROTO, R_PSTATE, R_TIMEOUT, Row, state_key
from cttop.kernel.ctnetlink import NEEDS_CAP
from cttop.table.aggregates import Aggregates
from cttop.table.groups import GROUPS

# The keys a culprit is named by, most specific first.
GROUP_KEYS: Final = ("src-dport", "dport", "dst", "src")
TOP_N: Final = 3
TCP: Final = 6
TCP_ESTABLISHED: Final = 3
EST_TIMEOUT: Final = "nf_conntrack_tcp_timeout_established"
# An ESTABLISHED entry idle this long is past what a NAT must keep: RFC 5382 REQ-5 says the
# established idle-timeout MUST NOT be less than 2 h 4 min (OpenWrt ships exactly this).
IDLE_SECONDS: Final = 7440


@dataclass(frozen=True)
class Group:
    """One heaviest group: its name, the filter selecting it, and its entries by state."""

    key: str  # the group-by name (src, dst, dport, src-dport)
    text: str
    filter: str | None
    entries: int
    states: dict[str, int]

    def main_state(self) -> tuple[str, int]:
        return max(self.states.items(), key=lambda kv: kv[1]) if self.states else ("", 0)


@dataclass(frozen=True)
class Idle:
    """ESTABLISHED TCP entries and how many have been idle longer than ``threshold`` seconds.

    Idle time is the established timeout minus the time left: every packet resets
    the timer to the timeout, so what has run down is the time since the last one.
    """

    established: int
    idle: int
    longest: int  # seconds, of the idlest entry
    timeout: int  # nf_conntrack_tcp_timeout_established when read
    threshold: int = IDLE_SECONDS


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
    idle: Idle | None = None
    drifts: list[drift.Drift] = field(default_factory=list)
    drift_problem: str | None = None  # why drift could not be checked
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

    def __init__(self, est_timeout: int | None) -> None:
        self.agg = Aggregates()
        self.pairs: dict[str, Counter[tuple[object, str]]] = {k: Counter() for k in GROUP_KEYS}
        self.listed = 0
        self.est_timeout = est_timeout
        self.established = self.idle = 0
        self.min_left: int | None = None

    def add(self, rows: list[Row]) -> None:
        self.listed += len(rows)
        self.agg.add_rows(rows)
        states = list(map(state_key, rows))
        for k in GROUP_KEYS:
            self.pairs[k].update(zip(map(GROUPS[k].key, rows), states))
        left = [r[R_TIMEOUT] for r in rows if r[R_PSTATE] == TCP_ESTABLISHED and r[R_PROTO] == TCP]
        if left and self.est_timeout is not None:
            self.established += len(left)
            cut = self.est_timeout - IDLE_SECONDS
            self.idle += sum(1 for t in left if t < cut)
            low = min(left)
            self.min_left = low if self.min_left is None else min(self.min_left, low)

    def tops(self) -> tuple[dict[str, list[Group]], dict[str, Group]]:
        tops: dict[str, list[Group]] = {}
        for k, pairs in self.pairs.items():
            totals: Counter[object] = Counter()
            for (g, _st), n in pairs.items():
                totals[g] += n
            # States are gathered for the winners only: a storm has a group per tuple.
            states: dict[object, dict[str, int]] = {g: {} for g, _n in totals.most_common(TOP_N)}
            for (g, st), n in pairs.items():
                if g in states:
                    states[g][st] = n
            tops[k] = [_group(k, g, st) for g, st in states.items()]
        ports: dict[str, tuple[object, int]] = {}
        for (g, st), n in self.pairs["dport"].items():
            if g is not None and n > ports.get(st, (None, 0))[1]:
                ports[st] = (g, n)
        state_ports = {st: _group("dport", g, {st: n}) for st, (g, n) in ports.items()}
        return tops, state_ports

    def idle_summary(self) -> Idle | None:
        if self.est_timeout is None:
            return None
        longest = max(self.est_timeout - self.min_left, 0) if self.min_left is not None else 0
        return Idle(self.established, self.idle, longest, self.est_timeout)


def _group(key: str, g: object, states: dict[str, int]) -> Group:
    d = GROUPS[key]
    return Group(key, d.text(g), d.filter(g), sum(states.values()), dict(states))


def observe(spec: NetnsSpec, seconds: float = 3.0, *, want_bytes: bool = False,
            journal: Journal | None = None) -> Observation:
    """Watch the table for ``seconds``. Without CAP_NET_ADMIN, count and max still come from /proc/sys."""
    values = sysctl.read(spec)

    def num(name: str) -> int | None:
        v = values.get(name)
        return int(v) if v is not None and v.isdigit() else None

    o = Observation(spec, is_initial(spec), 0.0, num("nf_conntrack_count") or 0, num("nf_conntrack_max") or 0,
                    num("nf_conntrack_buckets"), values, want_bytes=want_bytes)
    try:
        o.drifts = drift.check(spec, journal)
    except CttopError as e:
        o.drift_problem = str(e)
    try:
        ct = Ctnetlink(spec)
    except KernelError as e:
        o.problem = str(e)
        return o
    with ct:
        try:
            _watch(ct, o, seconds)
        except KernelError as e:
            if not e.permission:
                raise
            o.problem = NEEDS_CAP
    return o


def _watch(ct: Ctnetlink, o: Observation, seconds: float) -> None:
    start = time.monotonic()
    o.before = sum_cpus(ct.stats_cpu())
    tally = _dump(ct, o.sysctl_int(EST_TIMEOUT))
    if tally is None:
        o.problem = "flows could not be dumped: the table kept changing under two dumps in a row"
    else:
        o.listed, o.by_state = tally.listed, dict(tally.agg.by_state)
        o.tops, o.state_ports = tally.tops()
        o.idle = tally.idle_summary()
    time.sleep(max(start + seconds - time.monotonic(), 0.0))
    o.after = sum_cpus(ct.stats_cpu())
    o.seconds = time.monotonic() - start
    st = ct.stats()
    # The netlink count is this namespace's at the end of the watch, as the counters are.
    o.count, o.max = st.count, st.max or o.max


def _dump(ct: Ctnetlink, est_timeout: int | None) -> _Tally | None:
    """One dump's tally; a dump the kernel interrupted (table changed) is tried once more."""
    for _ in range(2):
        tally = _Tally(est_timeout)
        try:
            for rows in ct.dump_chunks():
                tally.add(rows)
        except KernelError as e:
            if e.permission:
                raise
            continue
        return tally
    return None

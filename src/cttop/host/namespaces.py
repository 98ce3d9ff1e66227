"""Every network namespace on the host, with its conntrack count and pressure counters.

The count is per namespace but nf_conntrack_max is one for the host, so a
node's real pressure is the sum of the counts against the one max. Namespaces
are found where they can live: named ones bind-mounted under ``/run/netns``, and
those held only by processes (containers, pods), through ``/proc/*/ns/net``.
Both are deduplicated by the namespace's inode.

Reading another namespace's counters means entering it (CAP_SYS_ADMIN) and
asking its ctnetlink (CAP_NET_ADMIN). Without those, the caller's own namespace
is still read from ``/proc`` (world-readable); the others are marked ``denied``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil

from cttop.errors import CttopError
from cttop.owners.cgroup import placement_of
from cttop.kernel import procstat, sysctl
from cttop.kernel.ctnetlink import Ctnetlink, sum_cpus
from cttop.kernel.netns import NETNS_RUN_DIR, NetnsId, NetnsSpec
from cttop.kernel.netns import PROC_NET_INIT_INO
from cttop.kernel.perms import CAP_NET_ADMIN, CAP_SYS_ADMIN, has_caps

# The initial pid namespace's fixed inode (PROC_PID_INIT_INO): in it, pid 1 is the host's init.
PROC_PID_INIT_INO = 0xEFFFFFFC


@dataclass
class Namespace:
    """One namespace; ``count``... are None (and ``error`` says why) if it could not be read."""

    inode: int
    names: list[str] = field(default_factory=list)  # as `ip netns list` shows them
    pids: list[int] = field(default_factory=list)  # processes in it, ascending
    initial: bool = False  # the host's own (init_net)
    own: bool = False  # the one cttop runs in
    process: str | None = None  # representative process: name of the lowest pid
    container: str | None = None  # its container, pod or unit
    count: int | None = None
    max: int | None = None
    drop: int | None = None
    early_drop: int | None = None
    error: str | None = None
    denied: bool = False  # unread because the caller lacks the capabilities (not a kernel failure)
    twin: bool = False  # another namespace has the same container: the label names its process too

    @property
    def pid(self) -> int | None:
        return self.pids[0] if self.pids else None

    @property
    def label(self) -> str:
        if self.names:
            return self.names[0]
        if self.initial:
            return "init"
        if self.container and not self.container.endswith((".service", ".scope")):
            return f"{self.container} pid:{self.pid}" if self.twin else self.container
        return f"pid:{self.pid}"

    @property
    def spec(self) -> NetnsSpec:
        """How to open it: by name when it has one, else through a process in it; held to this namespace, not
        whichever the name or pid names when it is opened."""
        pin = NetnsId(self.inode, None, None, self.initial)
        if self.names:
            return NetnsSpec(name=self.names[0], pin=pin)
        if self.own:
            return NetnsSpec()
        return NetnsSpec(pid=self.pid, pin=pin)

    @property
    def share(self) -> float | None:
        """This namespace's part of the shared max."""
        return self.count / self.max if self.count is not None and self.max else None

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "inode": self.inode, "names": self.names, "initial": self.initial,
                "own": self.own, "pid": self.pid, "processes": len(self.pids), "process": self.process,
                "container": self.container, "count": self.count, "max": self.max, "share": self.share,
                "drop": self.drop, "early_drop": self.early_drop, "error": self.error, "denied": self.denied}


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def discover() -> list[Namespace]:
    """Every namespace visible from here, without touching the kernel's tables."""
    found: dict[int, Namespace] = {}
    try:
        named = sorted(os.listdir(NETNS_RUN_DIR))
    except OSError:
        named = []
    for name in named:
        ino = _inode(os.path.join(NETNS_RUN_DIR, name))
        if ino is not None:
            found.setdefault(ino, Namespace(ino)).names.append(name)
    for pid in sorted(psutil.pids()):
        ino = _inode(f"/proc/{pid}/ns/net")
        if ino is not None:
            found.setdefault(ino, Namespace(ino)).pids.append(pid)
    initial = _inode("/proc/1/ns/net")
    if initial is None:
        initial = PROC_NET_INIT_INO
        if _inode("/proc/self/ns/pid") == PROC_PID_INIT_INO:
            # pid 1's link is unreadable (sandboxes, non-root) but the host's init lives in init_net; without
            # it the lowest readable pid (kthreadd) would stand for the host, or the host would be missing.
            found.setdefault(initial, Namespace(initial)).pids.insert(0, 1)
    own = _inode("/proc/self/ns/net")
    for ns in found.values():
        ns.initial = ns.inode == initial
        ns.own = ns.inode == own
        if ns.pids:
            try:
                ns.process = psutil.Process(ns.pids[0]).name()
            except psutil.Error:
                ns.process = None
            placement = placement_of(ns.pids[0])
            ns.container = placement.text() if placement is not None else None
    # A container's process can make namespaces of its own (a sandboxing browser, docker in docker, any
    # `unshare -n`): each is labelled by its process too, so no two are one row, or one exporter series.
    unnamed = Counter(ns.container for ns in found.values() if not ns.names and not ns.initial)
    for ns in found.values():
        ns.twin = not ns.names and not ns.initial and unnamed[ns.container] > 1
    return sorted(found.values(), key=lambda n: (not n.initial, n.label))


def _read_proc() -> tuple[int, int | None, int, int]:
    """The caller's own namespace's count, max, drop and early_drop from /proc: readable without privilege."""
    mx = sysctl.read_int(NetnsSpec(), "nf_conntrack_max")
    stat = procstat.read(NetnsSpec())
    totals = stat.as_cpu_totals()
    return stat.count, mx, totals["drop"], totals["early_drop"]


def read_counters(ns: Namespace) -> None:
    """Fill in count, max, drop and early_drop from the namespace's own ctnetlink (/proc for our own)."""
    try:
        with Ctnetlink(ns.spec) as ct:
            stats = ct.stats()
            cpu = sum_cpus(ct.stats_cpu())
    except CttopError as e:
        if ns.own:
            try:
                ns.count, ns.max, ns.drop, ns.early_drop = _read_proc()
                return
            except (CttopError, ValueError, KeyError):
                pass
        ns.error = str(e)
        ns.denied = not (has_caps(CAP_NET_ADMIN) if ns.own else has_caps(CAP_NET_ADMIN, CAP_SYS_ADMIN))
        return
    ns.count, ns.max = stats.count, stats.max
    ns.drop, ns.early_drop = cpu["drop"], cpu["early_drop"]


def list_namespaces() -> list[Namespace]:
    """Every namespace with its counters: initial one first, then by label."""
    out = discover()
    for ns in out:
        read_counters(ns)
    return out


@dataclass(frozen=True)
class Totals:
    """Sums over the readable namespaces; with ``unreadable`` > 0 they are only lower bounds."""

    namespaces: int
    count: int
    max: int | None
    drop: int
    early_drop: int
    unreadable: int = 0
    denied: int = 0  # of the unreadable, those for lack of privilege

    @property
    def share(self) -> float | None:
        return self.count / self.max if self.max else None

    def to_json(self) -> dict[str, Any]:
        """Unknown totals are null, the readable namespaces' sums are under ``at_least``."""
        known = not self.unreadable
        return {"namespaces": self.namespaces, "max": self.max, "unreadable": self.unreadable,
                "denied": self.denied, "count": self.count if known else None,
                "share": self.share if known else None, "drop": self.drop if known else None,
                "early_drop": self.early_drop if known else None,
                "at_least": {"count": self.count, "drop": self.drop, "early_drop": self.early_drop}}


def totals(namespaces: Iterable[Namespace]) -> Totals:
    """The node's total: the counts summed (each namespace is held to the max on its own)."""
    ns = list(namespaces)
    maxes = [n.max for n in ns if n.max]
    return Totals(len(ns), sum(n.count or 0 for n in ns), maxes[0] if maxes else None,
                  sum(n.drop or 0 for n in ns), sum(n.early_drop or 0 for n in ns),
                  sum(n.count is None for n in ns), sum(n.denied for n in ns))

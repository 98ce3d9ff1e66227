"""When nf_conntrack is not the table: eBPF datapaths with conntrack maps of their own, and kube-proxy.

Cilium, and Calico in eBPF mode, track pod traffic in BPF hash maps they pin under
the BPF filesystem (``/sys/fs/bpf``): Cilium's ``cilium_ct4_global``,
``cilium_ct_any4_global``… (``cilium_ct*``), Calico's ``cali_v4_ct3``… On such a node
the maps are what fills for pod traffic, and nf_conntrack only holds the host's own
flows, so every view says so and gives the command that shows theirs.

kube-proxy writes nf_conntrack_max (per core), the hash size and the TCP established
and close-wait timeouts when it starts (and newer versions tcp_be_liberal and the UDP
timeouts): a value cttop set and kube-proxy rewrote is drift with a known cause. It is
found by its process name in ``/proc``.

The BPF filesystem's root can be moved with ``CTTOP_BPFFS`` (a test mounts its own).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from cttop.kernel.sysctl import GLOBAL_NAMES

BPFFS: Final = "/sys/fs/bpf"
BPFFS_ENV: Final = "CTTOP_BPFFS"
# A walk of the BPF filesystem stops after this many entries: Cilium pins a few hundred maps at most.
WALK_LIMIT: Final = 5000
WALK_DEPTH: Final = 6
KUBE_PROXY: Final = "kube-proxy"
# What kube-proxy writes at start (pkg/proxy/conntrack, cmd/kube-proxy); the names as cttop's sysctl module has them.
KUBE_PROXY_SYSCTLS: Final = frozenset({
    "nf_conntrack_max", "hashsize", "nf_conntrack_tcp_timeout_established", "nf_conntrack_tcp_timeout_close_wait",
    "nf_conntrack_tcp_be_liberal", "nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"})


@dataclass(frozen=True)
class Datapath:
    """One eBPF datapath's conntrack maps found pinned."""

    name: str  # "Cilium", "Calico (eBPF)"
    maps: tuple[str, ...]  # their pinned paths
    tool: str  # its own command listing the entries, where it runs
    pod: str  # how to run that from outside its pod

    def commands(self) -> list[str]:
        return [f"bpftool map dump pinned {shlex.quote(self.maps[0])}", f"{self.pod} -- {self.tool}"]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "maps": list(self.maps), "commands": self.commands()}


# (datapath, pinned-name pattern, its own listing command, the pod that command runs in).
_KNOWN: Final = (
    ("Cilium", re.compile(r"cilium_ct"), "cilium bpf ct list global", "kubectl -n kube-system exec ds/cilium"),
    ("Calico (eBPF)", re.compile(r"cali_v[46]_ct\d*$"), "calico-node -bpf conntrack dump",
     "kubectl -n calico-system exec ds/calico-node"),
)


@dataclass(frozen=True)
class Findings:
    """What the host says about its tables beyond nf_conntrack."""

    datapaths: tuple[Datapath, ...] = ()
    kube_proxy: tuple[int, ...] = ()  # pids
    bpffs: str = BPFFS
    unreadable: str | None = None  # why the BPF filesystem could not be looked at

    def names(self) -> str:
        return " and ".join(d.name for d in self.datapaths)

    def headline(self) -> str | None:
        """One line for a status bar, or None when there is nothing to say."""
        if self.datapaths:
            return f"{self.names()} eBPF CT tracks pod traffic, not this table: {self.datapaths[0].tool}"
        return None

    def commands(self) -> list[str]:
        """The commands that list the eBPF datapaths' own entries."""
        return [c for d in self.datapaths for c in d.commands()]

    def kube_proxy_text(self) -> str | None:
        if not self.kube_proxy:
            return None
        return kube_proxy_name(self.kube_proxy[0])

    def to_json(self) -> dict[str, Any]:
        return {"bpffs": self.bpffs, "ebpf_conntrack": [d.to_json() for d in self.datapaths],
                "nf_conntrack_is_the_table": not self.datapaths, "kube_proxy_pids": list(self.kube_proxy),
                "unreadable": self.unreadable}


def bpffs_root() -> str:
    return os.environ.get(BPFFS_ENV) or BPFFS


def pinned_ct_maps(root: str) -> tuple[list[Datapath], str | None]:
    """Each known datapath's conntrack maps pinned under ``root``; and why it could not be read, if so."""
    found: dict[str, list[str]] = {}
    seen = 0
    try:
        if not os.path.isdir(root):
            return [], None  # no BPF filesystem: nothing pinned
        os.listdir(root)
    except OSError as e:
        return [], f"{root}: {e.strerror}"
    base = root.rstrip("/").count("/")
    for top, dirs, files in os.walk(root):  # does not follow symlinks
        if top.count("/") - base >= WALK_DEPTH:
            dirs[:] = []
        for f in files:
            seen += 1
            for name, pattern, _tool, _pod in _KNOWN:
                if pattern.match(f):
                    found.setdefault(name, []).append(os.path.join(top, f))
        if seen > WALK_LIMIT:
            break
    return [Datapath(name, tuple(sorted(found[name])), tool, pod) for name, _p, tool, pod in _KNOWN if name in found], \
        None


def kube_proxy_name(pid: int) -> str:
    return f"{KUBE_PROXY}[{pid}]"


def kube_proxy_pids() -> tuple[int, ...]:
    """Processes named kube-proxy, lowest pid first.

    Each one's comm read straight from /proc: psutil's process objects cost ~50 µs a process (and its import
    ~7 ms of every snapshot), and a node runs hundreds. By file descriptor, not a file object: ~5 µs a process
    against ~11. "kube-proxy" fits in comm's 15 characters untruncated."""
    want = f"{KUBE_PROXY}\n".encode()
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{pid}/comm", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # gone meanwhile
            continue
        try:
            if os.read(fd, len(want) + 1) == want:
                out.append(int(pid))
        except OSError:
            continue
        finally:
            os.close(fd)
    return tuple(sorted(out))


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def kube_proxy_rewrites(kube_proxy: Iterable[int], drifted: Iterable[str], inode: int) -> tuple[int | None, list[str]]:
    """Which of the drifted sysctl names kube-proxy explains in namespace ``inode``, and the kube-proxy that
    does: a value it writes at start, per-namespace only by one running in that namespace, a global by any.
    (None, []) when none: the status line and doctor blame it only for these."""
    pids = tuple(kube_proxy)
    here = [pid for pid in pids if netns_inode(pid) == inode]
    names = [n for n in drifted if n in KUBE_PROXY_SYSCTLS and (here or n in GLOBAL_NAMES)]
    if not names:
        return None, []
    return (here or pids)[0], names


def look(root: str | None = None) -> Findings:
    root = root or bpffs_root()
    datapaths, unreadable = pinned_ct_maps(root)
    return Findings(tuple(datapaths), kube_proxy_pids(), root, unreadable)

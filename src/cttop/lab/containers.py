"""The ``containers`` lab: a container host whose table is all forwarded, NAT'd container traffic.

    outside 198.18.61.2 ── 198.18.61.1 host ── br0 10.61.0.1/24 ─┬─ web   10.61.0.2  docker-<id>.scope
                           (MASQUERADE out,                       ├─ api   10.61.0.3  kubepods…pod<uid>…/cri-containerd-<id>.scope
                            service 10.96.61.10 DNAT → api)       └─ spray 10.61.0.4  docker-<id>.scope

The host namespace forwards its containers' traffic out with MASQUERADE and runs a
kube-proxy-style service: 10.96.61.10 is DNAT'd to the api pod (and masqueraded on
the way back onto the bridge, as kube-proxy does for hairpin traffic, so the reply
comes through the host). Each container namespace's processes sit in a cgroup named
the way Docker or the kubelet name theirs, created under the cgroup2 filesystem, with
the metadata cttop reads names from: Docker's ``config.v2.json`` and the pod's
``/etc/hostname`` (``/etc/netns/NS/hostname``, which `ip netns exec` mounts over it).
``spray`` misbehaves: unanswered UDP to ever-new addresses, so it holds most of the
host's table. All of it (namespaces, cgroups, metadata) is removed on exit and by
``cttop lab --cleanup TAG``.

Docker's state directory is dockerd's own: it loads every container directory there
when it starts, so on a host where it exists the lab writes nothing in it (its docker
containers then show by short id). Where it, or /etc/netns, is missing the lab makes
it, notes so in a record under /run before writing in it, and removes only what the
record names, only while empty: a cleanup from another process knows the same.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final

from cttop.lab import topology
from cttop.lab.scenarios import Generator, Scenario
from cttop.lab.session import LabSession, die_with_parent
from cttop.lab.topology import PREFIX, Lab, LabError, run, write_proc_sys
from cttop.owners.cgroup import DOCKER_CONTAINERS, Placement
from cttop.safefs import OPEN_FLAGS, untrusted

HOST4, OUTSIDE4 = "198.18.61.1", "198.18.61.2"
BRIDGE4 = "10.61.0.1"
VIP4 = "10.96.61.10"
SPRAY_NET = "203.0.113.0/24"  # what spray aims at; the outside drops it unanswered
SPRAY_PORT = 9999
SPRAY_RATE = 1000
CALL_RATE = 10
NETNS_ETC = "/etc/netns"
RECORD_DIR = "/run"  # the lab's record of the directories it made: gone at reboot, like its namespaces and cgroups
RECORD_SUFFIX = ".made"
RECORD_MAX = 4096  # bytes read of a record: a handful of paths
RMDIR_WAIT = 5.0  # seconds for a cgroup's last process to be gone after it was killed


@dataclass(frozen=True)
class Container:
    role: str
    kind: str  # "docker" or "pod"
    name: str  # the docker container's name, or the pod's
    address: str


CONTAINERS: Final = (Container("web", "docker", "web", "10.61.0.2"),
                     Container("api", "pod", "api-7d9f8b6c5-x2k4q", "10.61.0.3"),
                     Container("spray", "docker", "spray", "10.61.0.4"))
API = CONTAINERS[1]

_RULES = {
    "host": f"""table inet cttop-lab {{
  chain dstnat {{ type nat hook prerouting priority dstnat;
    ip daddr {VIP4} tcp dport {{ 80, 7, 8000-8015 }} dnat ip to {API.address}
    ip daddr {VIP4} udp dport 53 dnat ip to {API.address}; }}
  chain srcnat {{ type nat hook postrouting priority srcnat;
    oifname "to-outside" masquerade
    oifname "br0" ct status dnat masquerade; }}
}}
""",
    "outside": f"""table inet cttop-lab {{
  chain raw_in {{ type filter hook prerouting priority raw; ip daddr {SPRAY_NET} drop; }}
}}
""",
}


def cgroup_root() -> str:
    """Where the cgroup2 hierarchy is mounted (``/sys/fs/cgroup``, or ``…/unified`` on a hybrid host)."""
    try:
        with open("/proc/self/mounts", "rb") as f:  # other mounts' paths need not be UTF-8
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == b"cgroup2":
                    return os.fsdecode(parts[1])
    except OSError:
        pass
    raise LabError("no cgroup2 filesystem is mounted: the containers lab places its processes in cgroup2 cgroups")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ContainerLab(Lab):
    """One containers lab: its names, ids and cgroups all derive from the tag, so a cleanup by tag finds them."""

    roles: ClassVar[tuple[str, ...]] = ("host", "outside", *(c.role for c in CONTAINERS))
    prefix: ClassVar[str] = PREFIX  # tests build theirs under a prefix of their own

    def ns(self, role: str) -> str:
        return f"{self.prefix}{self.tag}-{role}"

    @property
    def router(self) -> str:
        return self.ns("host")

    def container_id(self, c: Container) -> str:
        return _digest(f"{self.ns(c.role)}/container")

    def pod_uid(self, c: Container) -> str:
        return str(uuid.UUID(_digest(f"{self.ns(c.role)}/pod")[:32]))

    @property
    def slice(self) -> str:
        """The lab's own cgroup, under which its containers' are made."""
        return f"{self.prefix}{self.tag}.slice"

    def cgroup(self, c: Container) -> str:
        """The container's cgroup path under the cgroup2 root, named as its runtime names it."""
        cid = self.container_id(c)
        if c.kind == "docker":
            return f"{self.slice}/docker-{cid}.scope"
        uid = self.pod_uid(c).replace("-", "_")
        return (f"{self.slice}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/"
                f"cri-containerd-{cid}.scope")

    def docker_config(self, c: Container) -> str:
        """Where Docker keeps the container's name: the lab writes it only where it made Docker's state directory."""
        return os.path.join(DOCKER_CONTAINERS, self.container_id(c), "config.v2.json")

    @property
    def record(self) -> str:
        """The file naming the shared directories the lab made (/var/lib/docker, /etc/netns), one per line: the
        only ones its cleanup removes."""
        return os.path.join(RECORD_DIR, f"{self.prefix}{self.tag}{RECORD_SUFFIX}")

    def label(self, c: Container) -> str:
        """What cttop calls the container (cttop.owners.cgroup.Placement.text): a docker container whose name the
        lab did not write (on a Docker host) by its short id."""
        if c.kind == "docker" and not os.path.isfile(self.docker_config(c)):
            return Placement(c.kind, self.container_id(c)).text()
        return f"{c.kind}:{c.name}"


# --- building and removing ---------------------------------------------------------------------------

def docker_state() -> str:
    """Docker's state directory (``/var/lib/docker``), whose ``containers`` cttop reads names from."""
    return os.path.dirname(DOCKER_CONTAINERS)


def create(lab: ContainerLab) -> bool:
    """Build the lab; False if Docker's state directory was already there, so its docker containers go unnamed.
    On any failure remove what was made and re-raise."""
    try:
        return _build(lab)
    except BaseException:
        destroy(lab)
        raise


def _build(lab: ContainerLab) -> bool:
    host, outside = lab.ns("host"), lab.ns("outside")
    for ns in lab.namespaces():
        run("ip", "netns", "add", ns)
        run("ip", "link", "set", "lo", "up", netns=ns)
    run("ip", "link", "add", "to-outside", "type", "veth", "peer", "name", "to-host", "netns", outside, netns=host)
    run("ip", "addr", "add", f"{HOST4}/30", "dev", "to-outside", netns=host)
    run("ip", "link", "set", "to-outside", "up", netns=host)
    run("ip", "addr", "add", f"{OUTSIDE4}/30", "dev", "to-host", netns=outside)
    run("ip", "link", "set", "to-host", "up", netns=outside)
    run("ip", "route", "add", "default", "via", OUTSIDE4, netns=host)
    run("ip", "link", "add", "br0", "type", "bridge", netns=host)
    run("ip", "addr", "add", f"{BRIDGE4}/24", "dev", "br0", netns=host)
    run("ip", "link", "set", "br0", "up", netns=host)
    for c in CONTAINERS:
        ns, port = lab.ns(c.role), f"v-{c.role}"
        run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", host, netns=ns)
        run("ip", "link", "set", port, "master", "br0", "up", netns=host)
        run("ip", "addr", "add", f"{c.address}/24", "dev", "eth0", netns=ns)
        run("ip", "link", "set", "eth0", "up", netns=ns)
        run("ip", "route", "add", "default", "via", BRIDGE4, netns=ns)
    write_proc_sys(host, "net.ipv4.ip_forward", "1")
    write_proc_sys(host, "net.netfilter.nf_conntrack_acct", "1")
    write_proc_sys(host, "net.netfilter.nf_conntrack_timestamp", "1")
    for role, rules in _RULES.items():
        run("nft", "-f", "-", netns=lab.ns(role), input=rules)
    root = cgroup_root()
    for c in CONTAINERS:
        path = os.path.join(root, lab.cgroup(c))
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:  # a read-only or foreign cgroup filesystem: say which, not a traceback
            raise LabError(f"cannot create the cgroup {path}: {e.strerror}") from None
    # A Docker state directory the lab did not make is dockerd's: nothing of the lab's goes in it.
    named = _make_dir(lab, docker_state())
    if named:
        _make_dir(lab, DOCKER_CONTAINERS)
    _make_dir(lab, NETNS_ETC)
    for c in CONTAINERS:
        if named or c.kind != "docker":
            _write_metadata(lab, c)
    return named


def _make_dir(lab: ContainerLab, path: str) -> bool:
    """Make ``path`` and its missing parents, each noted in the lab's record before anything goes in it (so that
    the lab removes these and no other); False if ``path`` was there already."""
    parent = os.path.dirname(path)
    if parent != path and not os.path.isdir(parent):
        _make_dir(lab, parent)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        return False
    except OSError as e:  # e.g. a read-only /var/lib: say where, not a traceback
        raise LabError(f"cannot write the container's metadata in {path}: {e.strerror}") from None
    try:
        fd = os.open(lab.record, os.O_WRONLY | os.O_CREAT | os.O_APPEND | OPEN_FLAGS, 0o600)
        try:
            os.write(fd, os.fsencode(path) + b"\n")
        finally:
            os.close(fd)
    except OSError as e:
        os.rmdir(path)  # unrecorded, nobody would know to remove it
        raise LabError(f"cannot record in {lab.record} that the lab made {path}: {e.strerror}") from None
    return True


def _write_metadata(lab: ContainerLab, c: Container) -> None:
    """What the runtime would have written, where cttop looks for the container's name."""
    if c.kind == "docker":
        d = os.path.dirname(lab.docker_config(c))
        name, text = "config.v2.json", f'{{"ID": "{lab.container_id(c)}", "Name": "/{c.name}"}}\n'
    else:
        d = os.path.join(NETNS_ETC, lab.ns(c.role))
        name, text = "hostname", c.name + "\n"
    try:
        os.mkdir(d)
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    except OSError as e:  # e.g. a read-only /var/lib: say where, not a traceback
        raise LabError(f"cannot write the container's metadata in {d}: {e.strerror}") from None


def destroy(lab: ContainerLab) -> None:
    """Remove the namespaces (and whatever runs in them), then the cgroups and the metadata."""
    for ns in lab.namespaces():
        if os.path.exists(os.path.join(topology.NETNS_RUN_DIR, ns)):
            topology.remove_namespace(ns)
    remove_leftovers(lab)


def remove_leftovers(lab: ContainerLab) -> list[str]:
    """A containers lab's cgroups and metadata (its namespaces are removed by name); what went."""
    gone: list[str] = []
    try:
        root: str | None = cgroup_root()
    except LabError:
        root = None
    if root is not None and os.path.isdir(os.path.join(root, lab.slice)):
        _remove_cgroups(os.path.join(root, lab.slice))
        gone.append(os.path.join(root, lab.slice))
    for c in CONTAINERS:
        d = os.path.dirname(lab.docker_config(c)) if c.kind == "docker" else os.path.join(NETNS_ETC, lab.ns(c.role))
        if os.path.isdir(d):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    # The directories the metadata went in, the ones the lab made (by its record): last made first, only while
    # empty (what someone else put there since is theirs).
    for d in reversed(_made(lab)):
        try:
            os.rmdir(d)
            gone.append(d)
        except OSError:
            pass
    try:
        os.unlink(lab.record)
        gone.append(lab.record)
    except FileNotFoundError:
        pass
    return gone


def _made(lab: ContainerLab) -> list[str]:
    """The directories the lab's record says it made, of those it can make (a record names no other path)."""
    can = {p for top in (DOCKER_CONTAINERS, NETNS_ETC) for p in _ancestors(top)}
    try:
        fd = os.open(lab.record, os.O_RDONLY | OPEN_FLAGS)
    except OSError:
        return []
    try:
        if untrusted(os.fstat(fd)) is not None:
            return []
        lines = os.fsdecode(os.read(fd, RECORD_MAX)).splitlines()
    finally:
        os.close(fd)
    return [p for p in lines if p in can]


def _ancestors(path: str) -> list[str]:
    """``path`` and its parents, short of ``/``."""
    out = []
    while os.path.dirname(path) != path:
        out.append(path)
        path = os.path.dirname(path)
    return out


def leftover_tags() -> set[str]:
    """Tags of containers labs whose cgroups, metadata or record are still there (their namespaces may be gone)."""
    found: list[str] = []
    try:
        found += [n.removesuffix(".slice") for n in os.listdir(cgroup_root()) if n.endswith(".slice")]
    except (LabError, OSError):
        pass
    try:
        found += os.listdir(NETNS_ETC)
    except OSError:
        pass
    try:
        found += [n.removesuffix(RECORD_SUFFIX) for n in os.listdir(RECORD_DIR) if n.endswith(RECORD_SUFFIX)]
    except OSError:
        pass
    return {topology.tag_of(n) for n in found if n.startswith(PREFIX)}


def _remove_cgroups(top: str) -> None:
    """rmdir a cgroup tree bottom-up; processes killed just before may take a moment to leave."""
    dirs = [d for d, _subs, _files in os.walk(top)]
    end = time.monotonic() + RMDIR_WAIT
    for d in sorted(dirs, key=len, reverse=True):
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > end:
                    raise LabError(f"cannot remove the cgroup {d}: {e.strerror}") from None
                _kill_members(d)
                time.sleep(0.05)


def _kill_members(cgroup: str) -> None:
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def enter_cgroup(path: str) -> Callable[[], None]:
    """A preexec_fn: the child joins ``path`` (before `ip netns exec`, which remounts /sys) and dies
    with its parent."""
    procs = os.path.join(path, "cgroup.procs")

    def setup() -> None:
        die_with_parent()
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    return setup


# --- the scenario ------------------------------------------------------------------------------------

def _traffic(role: str, lab: Lab, seconds: float, kind: str, *args: str) -> Generator:
    argv = (sys.executable, "-m", "cttop.lab.traffic", kind, "--lab", lab.tag, "--seconds", f"{seconds:g}", *args)
    return Generator(f"{role}: {kind}", role, argv)


def generators(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    return [
        _traffic("outside", lab, seconds, "serve", "--syn-port", "8443"),
        _traffic("api", lab, seconds, "serve", "--syn-port", "8443"),
        _traffic("web", lab, seconds, "churn", "--dst", VIP4, "--rate", str(CALL_RATE)),
        _traffic("web", lab, seconds, "churn", "--dst", OUTSIDE4, "--rate", str(CALL_RATE)),
        _traffic("spray", lab, seconds, "udp-flood", "--dst-net", SPRAY_NET, "--port", str(SPRAY_PORT),
                 "--rate", str(SPRAY_RATE)),
    ]


@dataclass(frozen=True)
class _OwnTopology(Scenario):
    """A scenario whose namespaces are all its own: no router lab's server or background under it."""

    def generators(self, lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
        return self.pressure(lab, seconds, max_entries)


SCENARIO: Final = _OwnTopology(
    "containers", "a container host: docker and kubepods containers behind a bridge, MASQUERADE and a DNAT'd "
    "service; the 'spray' container sends unanswered UDP, the rest talk through the service and out "
    "(watch: g container)", generators, background=False)


class ContainersSession(LabSession):
    """A LabSession on the containers topology: generators run in their container's cgroup."""

    lab: ContainerLab

    def __init__(self, scenario: Scenario, seconds: float) -> None:
        super().__init__(scenario, seconds)
        self.lab = ContainerLab.new()
        self._root = cgroup_root()

    def build(self) -> None:
        if not create(self.lab):
            unnamed = ", ".join(f"{c.role} {self.lab.label(c)}" for c in CONTAINERS if c.kind == "docker")
            self.notes.append(f"{docker_state()} is there (a Docker host): the lab writes nothing in it, so its "
                              f"docker containers show by short id ({unnamed})")

    def teardown(self) -> None:
        destroy(self.lab)

    def child_setup(self, gen: Generator) -> Callable[[], None]:
        c = next((c for c in CONTAINERS if c.role == gen.role), None)
        if c is None:
            return die_with_parent
        return enter_cgroup(os.path.join(self._root, self.lab.cgroup(c)))

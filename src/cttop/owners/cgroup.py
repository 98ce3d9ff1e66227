"""Which container, pod or systemd unit a process runs in, from its ``/proc/PID/cgroup``.

Runtimes name their cgroups after the container id in a handful of patterns
(cgroup v1 and v2, systemd and cgroupfs drivers). A readable name is looked up
where it costs one small file read: docker's ``config.v2.json`` for containers,
the container's own ``/etc/hostname`` for pods (the kubelet writes the pod name
there). Anything else falls back to the innermost systemd unit.

Some subtrees are delegated: below a user's systemd manager (``user@UID.service``), an LXC or an nspawn
container, every cgroup and unit name is the user's or the container's to choose (``systemd-run --user
--unit=nginx`` needs no privilege). A placement found below one is said as inside it
(``user@1000.service/docker:3f2a…``, ``lxc:web1/docker:…``) and never named from the host's runtime state:
an unprivileged user who named a cgroup ``docker-<the id of the host's container web>.scope`` had its flows
shown as ``docker:web``.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

_HEX_ID: Final = r"([0-9a-f]{64})"
# (runtime, pattern on one cgroup path); the first match wins, so pod patterns come first.
_POD: Final = re.compile(r"kubepods.*?pod([0-9a-f]{8}[-_][0-9a-f_-]{27})(?:\.slice)?/(?:[a-z-]+-)?" + _HEX_ID)
_RUNTIMES: Final = (
    ("docker", re.compile(r"(?:/docker/|docker-)" + _HEX_ID)),
    ("cri-o", re.compile(r"crio-" + _HEX_ID)),
    ("containerd", re.compile(r"cri-containerd-" + _HEX_ID)),
    ("podman", re.compile(r"libpod-" + _HEX_ID)),
    ("containerd", re.compile(r"^/[A-Za-z0-9_.-]+/" + _HEX_ID + "$")),  # containerd/nerdctl namespace
)
_LXC: Final = re.compile(r"/lxc(?:\.payload)?[./]([A-Za-z0-9_.-]+)")
_MACHINE: Final = re.compile(r"machine-([A-Za-z0-9_.\\-]+)\.scope")
_UNIT: Final = re.compile(r"([^/]+\.(?:service|scope))$")
DOCKER_CONTAINERS: Final = "/var/lib/docker/containers"


@dataclass(frozen=True)
class Placement:
    """Where a process runs: ``kind`` is docker/containerd/cri-o/podman/pod/lxc/machine/unit."""

    kind: str
    ident: str  # container id, pod uid, lxc or machine name, or systemd unit
    name: str | None = None  # docker container name or pod name, when found
    within: str | None = None  # the delegated subtree it was found below (a user's manager, a container)

    def text(self) -> str:
        own = self.ident if self.kind == "unit" else f"{self.kind}:{self.name or self.ident[:12]}"
        return own if self.within is None else f"{self.within}/{own}"


# The subtrees root hands over (a user's systemd manager, an LXC or nspawn container), with the kind of placement
# each is: every cgroup below one is named by its user or container.
_DELEGATED: Final = ((re.compile(r"/(user@\d+\.service)(?=/|$)"), "unit"), (_LXC, "lxc"), (_MACHINE, "machine"))


def cgroup_paths(text: str) -> list[str]:
    """The cgroup paths of a ``/proc/PID/cgroup`` text, v2 unified first."""
    unified: list[str] = []
    legacy: list[str] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            (unified if parts[0] == "0" else legacy).append(parts[2])
    return unified + legacy


def _within(path: str, at: int) -> str | None:
    """The outermost delegated subtree of ``path`` if it ends before position ``at``, as its placement's text;
    None where only root named the cgroups above ``at``."""
    bounds = [(m.start(), m.end(), Placement(kind, m.group(1), m.group(1)).text())
              for rx, kind in _DELEGATED if (m := rx.search(path))]
    if not bounds:
        return None
    _, end, text = min(bounds)
    return text if end <= at else None


def classify(text: str) -> Placement | None:
    """The container, pod or unit named by a ``/proc/PID/cgroup`` text; None if nothing fits."""
    paths = cgroup_paths(text)
    for p in paths:
        m = _POD.search(p)
        if m:
            return Placement("pod", m.group(1).replace("_", "-"), None, _within(p, m.start()))
    for p in paths:
        for kind, rx in _RUNTIMES:
            m = rx.search(p)
            if m:
                return Placement(kind, m.group(1), None, _within(p, m.start()))
        m = _LXC.search(p)
        if m:
            return Placement("lxc", m.group(1), m.group(1), _within(p, m.start()))
        m = _MACHINE.search(p)
        if m:
            return Placement("machine", m.group(1), m.group(1), _within(p, m.start()))
    for p in paths:
        p = p.rstrip("/")
        m = _UNIT.search(p)
        if m:
            return Placement("unit", m.group(1), None, _within(p, m.start()))
    return None


# Bytes read of Docker's config.v2.json: tens of KB with a long environment and many labels. A bigger one
# is no container's config to parse on every owner refresh: read as a bad file is, with no name.
DOCKER_CONFIG_MAX: Final = 1 << 20


@lru_cache(maxsize=4096)
def _docker_name(container_id: str) -> str | None:
    try:
        with open(f"{DOCKER_CONTAINERS}/{container_id}/config.v2.json", "rb") as f:
            data = f.read(DOCKER_CONFIG_MAX + 1)
        name = json.loads(data).get("Name") if len(data) <= DOCKER_CONFIG_MAX else None
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return name.lstrip("/") if isinstance(name, str) and name else None


# Each component opened from the one before it without following a link; never blocking (a FIFO), no tty.
_IN_ROOT: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
HOSTNAME_MAX: Final = 256  # bytes read of a pod's /etc/hostname (a hostname is at most 64)


def _pod_name(pid: int) -> str | None:
    """The pod's name from its own /etc/hostname, read inside the pod's root: the pod's files are the pod's to
    make, and a link there would be resolved against cttop's root, the host's (/etc/hostname -> /etc/shadow
    printed the host's file as a pod's name). So no link is followed on the way, and only a regular file is
    read (a FIFO would hang every owner refresh)."""
    try:
        root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            etc = os.open("etc", _IN_ROOT | os.O_DIRECTORY, dir_fd=root)
        finally:
            os.close(root)
        try:
            fd = os.open("hostname", _IN_ROOT, dir_fd=etc)
        finally:
            os.close(etc)
        try:
            data = os.read(fd, HOSTNAME_MAX) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        finally:
            os.close(fd)
    except OSError:
        return None
    return data.decode(errors="surrogateescape").strip() or None


def placement_of(pid: int) -> Placement | None:
    """Where process ``pid`` runs, with a readable name where one is cheap to find."""
    try:
        # Cgroup names are bytes anyone with a delegated subtree picks; a non-UTF-8 one must not end the refresh.
        with open(f"/proc/{pid}/cgroup", errors="surrogateescape") as f:
            p = classify(f.read())
    except OSError:
        return None
    if p is None or p.within is not None:  # names chosen there are not looked up in the host's runtimes
        return p
    if p.kind == "docker":
        return Placement(p.kind, p.ident, _docker_name(p.ident))
    if p.kind == "pod":
        return Placement(p.kind, p.ident, _pod_name(pid))
    return p

"""Which container, pod or unit each namespace of the host belongs to, and the Owners that use it.

:func:`host_map` finds every namespace (:func:`cttop.host.namespaces.discover`), names
each by its owner and reads its addresses and sockets (:mod:`cttop.owners.netmap`),
so forwarded flows in the viewed namespace are attributed to the container they come
from. :func:`host_owners` is the :class:`~cttop.owners.owners.Owners` every view uses.
"""

from __future__ import annotations

import os
from typing import Final

from cttop.host.namespaces import Namespace, discover
from cttop.kernel.netns import NetnsSpec
from cttop.owners.cgroup import placement_of
from cttop.owners.netmap import HostMap, NsRef, build_map
from cttop.owners.owners import DEFAULT_INTERVAL, Owners

HOST: Final = "host"  # the initial namespace's owner
# Processes of a namespace asked for their cgroup before settling for a unit or the namespace's name:
# a pod's first process may be its pause container, a named namespace's the shell that entered it.
PLACEMENT_PROBES: Final = 16


def label_of(ns: Namespace) -> str:
    """What owns a namespace: a container or pod from its processes' cgroups, else its name
    (``netns:NAME``), else the unit its first process runs in, else its first process."""
    if ns.initial:
        return HOST
    unit: str | None = None
    for pid in ns.pids[:PLACEMENT_PROBES]:
        p = placement_of(pid)
        if p is None:
            continue
        if p.kind != "unit":
            return p.text()
        unit = unit or p.text()
    if ns.names:
        return f"netns:{shown(ns.names[0])}"
    return unit or f"pid:{ns.pid}"


def shown(name: str) -> str:
    """A namespace's file name as text: names are bytes, and one that is no UTF-8 is shown with U+FFFD."""
    return os.fsencode(name).decode("utf-8", "replace")


def refs() -> list[NsRef]:
    """Every namespace of the host, as the map reads them."""
    return [NsRef(ns.inode, ns.spec, tuple(ns.pids), label_of(ns),
                  shown(ns.names[0]) if ns.names else f"pid:{ns.pid}") for ns in discover()]


def host_map(viewed: NetnsSpec) -> HostMap:
    """The host's other namespaces by address, seen from ``viewed``."""
    return build_map(viewed, refs())


def host_owners(spec: NetnsSpec, interval: float = DEFAULT_INTERVAL) -> Owners:
    """Owners of ``spec``'s flows, forwarded ones included (not yet refreshed)."""
    return Owners(spec, interval, hosts=host_map)

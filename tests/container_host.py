"""A container host with known forwarded flows, for the kernel and UI tests of container attribution.

The containers lab's topology (cttop.lab.containers: host namespace with a bridge,
MASQUERADE out, a DNAT'd service, docker- and kubepods-style cgroups and their
metadata) under a fresh tag, without the lab's traffic. Instead one process per
container, placed in the container's cgroup from outside `ip netns exec`, holds a
known number of connected UDP sockets that each sent one unanswered datagram:

- web (docker:web): WEB_OUT flows out to 203.0.113.0/24, and one to the service VIP, DNAT'd to api;
- spray (docker:spray): SPRAY flows out;
- api (pod:…): a socket bound to the service's port, the backend.

The host's UDP timeout is raised so the entries outlive a slow test. Everything (the
processes, namespaces, cgroups and metadata) is removed on the way out, failure or not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

from cttop.lab import containers as lab
from cttop.lab.containers import CONTAINERS, Container, ContainerLab, cgroup_root, enter_cgroup
from cttop.lab.topology import write_proc_sys
from tests.conftest import sh

WEB_OUT = 7
SPRAY = 12
SERVICE_PORT = 53
SPRAY_PORT, WEB_PORT = 9999, 9998  # apart, so that spray's port is no bigger a group than spray
SETTLE_CAP = 20.0  # seconds for the entries to appear (they do in milliseconds)


def by_role(role: str) -> Container:
    """The lab's container that plays ``role`` (web, spray, api)."""
    return next(c for c in CONTAINERS if c.role == role)

HOLD = """
import socket, sys, time
targets = [(a, int(p)) for a, p in (t.split(":") for t in sys.argv[1:])]
held = []
for addr, port in targets:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((addr, port))
    s.send(b"cttop-test")
    held.append(s)
print("READY", flush=True)
time.sleep(600)
"""
SERVE = f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", {SERVICE_PORT}))
print("READY", flush=True)
time.sleep(600)
"""


@dataclass(frozen=True)
class TestLab(ContainerLab):
    """The lab's topology under the tests' prefix: lab tests running meanwhile remove cttop-lab-* they did not
    expect, and must not take these."""

    __test__ = False
    prefix: ClassVar[str] = "cttop-test-"


@dataclass
class ContainerHost:
    lab: ContainerLab
    pids: dict[str, int]  # role -> the pid of its process
    comm: dict[str, str]  # role -> that process's name

    @property
    def host(self) -> str:
        return self.lab.ns("host")

    def label(self, role: str) -> str:
        return self.lab.label(by_role(role))

    def process(self, role: str) -> str:
        return f"{self.comm[role]}[{self.pids[role]}]"

    def kernel_lines(self, *args: str) -> list[str]:
        return [ln for ln in sh("conntrack", "-L", *args, netns=self.host).splitlines() if ln.strip()]

    def kernel_by_src(self, role: str) -> list[str]:
        return self.kernel_lines("-s", by_role(role).address)


def _start(lab_: ContainerLab, role: str, code: str, *args: str) -> subprocess.Popen[str]:
    c = by_role(role)
    proc = subprocess.Popen(["ip", "netns", "exec", lab_.ns(role), sys.executable, "-c", code, *args],
                            stdout=subprocess.PIPE, text=True,
                            preexec_fn=enter_cgroup(os.path.join(cgroup_root(), lab_.cgroup(c))))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY", f"{role} did not start"
    return proc


@contextmanager
def container_host() -> Iterator[ContainerHost]:
    lab_ = TestLab.new()
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        lab.create(lab_)
        write_proc_sys(lab_.ns("host"), "net.netfilter.nf_conntrack_udp_timeout", "600")
        procs["api"] = _start(lab_, "api", SERVE)
        out = [f"203.0.113.{i}:{WEB_PORT}" for i in range(1, WEB_OUT + 1)]
        procs["web"] = _start(lab_, "web", HOLD, *out, f"{lab.VIP4}:{SERVICE_PORT}")
        procs["spray"] = _start(lab_, "spray", HOLD, *(f"203.0.113.{100 + i}:{SPRAY_PORT}" for i in range(SPRAY)))
        comm = {}
        for role, p in procs.items():
            with open(f"/proc/{p.pid}/comm") as f:
                comm[role] = f.read().strip()
        ch = ContainerHost(lab_, {r: p.pid for r, p in procs.items()}, comm)
        end = time.monotonic() + SETTLE_CAP
        while (len(ch.kernel_by_src("web")), len(ch.kernel_by_src("spray"))) != (WEB_OUT + 1, SPRAY):
            if time.monotonic() > end:
                raise AssertionError(f"the flows did not appear:\n{sh('conntrack', '-L', netns=ch.host)}")
            time.sleep(0.05)
        yield ch
    finally:
        for p in procs.values():
            p.kill()
            p.wait()
        lab.destroy(lab_)

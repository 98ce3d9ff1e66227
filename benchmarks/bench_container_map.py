"""What attributing forwarded flows to containers costs, on a host of 100 container namespaces.

Builds a host namespace with a bridge and --containers namespaces behind it (a veth
each, an address, a process in a docker-style cgroup holding --sockets sockets of its
namespace: a TCP listener and UDP sockets), and fills the host's table with --entries forwarded flows from those
addresses (a tenth DNAT'd to them, as through a service). Then, medians of --runs,
alternated:

- the host map: every namespace found, its addresses over rtnetlink, its sockets over
  sock_diag, its processes' descriptors and cgroups (what each owners refresh adds);
- the whole owners refresh (the viewed namespace's own index plus the map);
- ranking the table by container from the packed records (the TUI's `g container`),
  against ranking it by source address (a plain group key);
- `cttop snapshot --group-by container --json` against `--group-by src` and `conntrack -L`.

Usage: sudo python benchmarks/bench_container_map.py [--containers 100] [--entries 200000] [--runs 5]
Everything it makes (namespaces, processes, cgroups) is removed at the end, failure or not; the
global nf_conntrack_max is raised only if --entries exceeds it, and restored.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import alternate, sh
from cttop.host.containers import host_map, host_owners
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.lab.containers import cgroup_root, enter_cgroup
from cttop.live.owner_top import PackedOwners
from cttop.model import AF_INET, NO_PSTATE, Row
from cttop.table.store import FlowTable

CTTOP = os.path.join(os.path.dirname(sys.executable), "cttop")
VIP = bytes([10, 96, 0, 10])
MAX = "/proc/sys/net/netfilter/nf_conntrack_max"


def address(i: int) -> str:
    return f"10.70.{i // 250}.{i % 250 + 2}"


def forwarded(n: int, containers: int) -> list[Row]:
    """UDP flows from the containers' addresses out to 198.18.0.0/15, every tenth to the VIP, DNAT'd to one."""
    rows = []
    for i in range(n):
        c = socket.inet_aton(address(i % containers))
        far = bytes([198, 18 + (i >> 16 & 1), i >> 8 & 0xFF, i & 0xFF])
        sport, dport = 10000 + i % 50000, 53
        if i % 10 == 0:  # client far away, backend a container: attributed by the reply's source
            rows.append((0, AF_INET, 17, NO_PSTATE, 0, far, VIP, sport, dport, c, far, dport, sport,
                         600, 0, 0, 0, None, None, None, None, 0, 0))
        else:
            rows.append((0, AF_INET, 17, NO_PSTATE, 0, c, far, sport, dport, far, c, dport, sport,
                         600, 0, 0, 0, None, None, None, None, 0, 0))
    return rows


class Host:
    def __init__(self, containers: int, sockets: int) -> None:
        tag = uuid.uuid4().hex[:6]
        self.host = f"cttop-bench-{tag}-host"
        self.names = [f"cttop-bench-{tag}-c{i:03}" for i in range(containers)]
        self.slice = os.path.join(cgroup_root(), f"cttop-bench-{tag}.slice")
        self.sockets = sockets
        self.procs: list[subprocess.Popen[bytes]] = []

    def build(self) -> None:
        sh(["ip", "netns", "add", self.host])
        ip = ["ip", "-n", self.host]
        sh([*ip, "link", "add", "br0", "type", "bridge"])
        sh([*ip, "addr", "add", "10.70.255.1/16", "dev", "br0"])
        sh([*ip, "link", "set", "br0", "up"])
        os.makedirs(self.slice)
        for i, ns in enumerate(self.names):
            sh(["ip", "netns", "add", ns])
            sh([*ip, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns])
            sh([*ip, "link", "set", f"v{i}", "master", "br0", "up"])
            sh(["ip", "-n", ns, "addr", "add", f"{address(i)}/16", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            cgroup = os.path.join(self.slice, f"docker-{uuid.uuid4().hex}{uuid.uuid4().hex}.scope")
            os.makedirs(cgroup)
            # Sockets of its namespace, handed to a small process that lives there: a container's process.
            socks = run_in(NetnsSpec(name=ns), lambda i=i: self._sockets(i))
            self.procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "3600"],
                                               pass_fds=[s.fileno() for s in socks],
                                               preexec_fn=enter_cgroup(cgroup)))
            for s in socks:
                s.close()

    def _sockets(self, i: int) -> list[socket.socket]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # a server, as most containers run
        listener.bind((address(i), 8080))
        listener.listen(16)
        out = [listener]
        for k in range(self.sockets - 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((address(i), 20000 + k))
            out.append(s)
        return out

    def destroy(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in [self.host, *self.names]:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        if os.path.isdir(self.slice):
            for d in sorted((d for d, _s, _f in os.walk(self.slice)), key=len, reverse=True):
                for _ in range(100):
                    try:
                        os.rmdir(d)
                        break
                    except OSError:
                        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--containers", type=int, default=100)
    ap.add_argument("--sockets", type=int, default=8, help="sockets each container's process holds")
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if shutil.which("conntrack") is None:
        sys.exit("needs the conntrack command")
    old_max = int(open(MAX).read())
    raise_max = a.entries > old_max
    h = Host(a.containers, a.sockets)
    try:
        if raise_max:
            with open(MAX, "w") as f:
                f.write(str(a.entries + 1024))
        t = time.perf_counter()
        h.build()
        print(f"built {a.containers} container namespaces in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        spec = NetnsSpec(name=h.host)
        with Ctnetlink(spec) as ct:
            made = ct.create(forwarded(a.entries, a.containers))
            rows = [r for chunk in ct.dump_chunks() for r in chunk]
        assert made == a.entries, made
        owners = host_owners(spec)
        owners.refresh()
        m = owners.index.hosts
        assert m is not None
        table = FlowTable()
        table.extend(rows)
        records = table.records()
        packed = PackedOwners(owners.index)
        top = packed.top(records, "container", 3)
        attributed = sum(g.entries for g in packed.top(records, "container", a.containers + 5)
                         if g.text.startswith("docker:"))
        refresh = alternate(a.runs, host_map=lambda: host_map(spec), owners_refresh=owners.refresh)
        rank = alternate(a.runs, by_container=lambda: packed.top(records, "container"),
                         by_source=lambda: table.top("src", 10),
                         rekey=lambda: PackedOwners(owners.index))
        def run(*args: str) -> None:
            r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
            if r.returncode:
                raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr[-2000:]}")

        cmd = alternate(a.runs,
                        conntrack_L=lambda: run("ip", "netns", "exec", h.host, "conntrack", "-L"),
                        snapshot_src=lambda: run(CTTOP, "snapshot", "--netns", h.host, "--group-by", "src", "--json"),
                        snapshot_container=lambda: run(CTTOP, "snapshot", "--netns", h.host, "--group-by",
                                                       "container", "--json"))
    finally:
        h.destroy()
        if raise_max:
            with open(MAX, "w") as f:
                f.write(str(old_max))
    n = len(rows)
    print(f"\n{a.containers} container namespaces ({m.namespaces} read on this host, {len(m.addrs)} addresses, "
          f"{m.failed} unreadable), {a.sockets} sockets each; {n} forwarded flows, {attributed} attributed; "
          f"medians of {a.runs}")
    print(f"heaviest: {', '.join(f'{g.text} {g.entries}' for g in top)}")
    print(f"{'what':<34} {'seconds':>8}")
    for k, v in refresh.items():
        print(f"{k:<34} {v:>8.3f}")
    for k, v in rank.items():
        print(f"{'rank ' + k:<34} {v:>8.3f}   {v / n * 1e6:.2f} us/flow")
    base = cmd["conntrack_L"]
    for k, v in cmd.items():
        print(f"{k:<34} {v:>8.3f}   ratio {v / base:.2f}")


if __name__ == "__main__":
    main()

"""The lab's three namespaces (client, router, server), their links, addresses, routes and rules.

Every link is a veth pair created directly between two lab namespaces, so the
host's own namespace never gets an interface, an address, a route or a rule:
deleting the three namespaces removes everything the lab made.

    client 10.77.1.2 ── 10.77.1.1 router 10.77.2.1 ── 10.77.2.2 server
           fd77:1::2 ── fd77:1::1        fd77:2::1 ── fd77:2::2

The router forwards and masquerades towards the server, so its table shows
SNAT'd flows. 10.77.128.0/17 is the "sink": the router routes it to the server,
which drops it before tracking, so traffic to it leaves entries (UNREPLIED)
only in the router, the table the lab is about.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
from dataclasses import dataclass
from typing import ClassVar, Self

from cttop.errors import CttopError
from cttop.kernel.netns import NETNS_RUN_DIR, NetnsSpec, run_in

PREFIX = "cttop-lab-"
ROLES = ("client", "router", "server")

CLIENT4, ROUTER_C4, ROUTER_S4, SERVER4 = "10.77.1.2", "10.77.1.1", "10.77.2.1", "10.77.2.2"
CLIENT6, ROUTER_C6, ROUTER_S6, SERVER6 = "fd77:1::2", "fd77:1::1", "fd77:2::1", "fd77:2::2"
SINK4 = "10.77.128.0/17"
_IFA_F_NODAD = 0x02
# The port the SYN flood aims at; the client drops the server's answers from it
# before its own stack sees them, so it never completes or resets the handshake.
SYN_PORT = 8443

# Each namespace gets one table of its own; `nft list ruleset` in it shows all the lab added.
_TRACK = """
  chain track_in { type filter hook prerouting priority filter; ct state new counter; }
  chain track_out { type filter hook output priority filter; ct state new counter; }
"""
_RULES = {
    "client": f"""table inet cttop-lab {{{_TRACK}
  chain raw_out {{ type filter hook output priority raw; ip daddr {SINK4} notrack; }}
  chain raw_in {{ type filter hook prerouting priority raw; tcp sport {SYN_PORT} drop; }}
}}
""",
    "router": f"""table inet cttop-lab {{{_TRACK}
  chain srcnat {{ type nat hook postrouting priority srcnat; oifname "to-server" masquerade; }}
}}
""",
    "server": f"""table inet cttop-lab {{{_TRACK}
  chain raw_in {{ type filter hook prerouting priority raw; ip daddr {SINK4} drop; }}
}}
""",
}


class LabError(CttopError):
    """The lab could not be built or removed; the message says which step and why."""


@dataclass(frozen=True)
class Lab:
    """One lab's namespace names, all sharing a random tag."""

    tag: str
    roles: ClassVar[tuple[str, ...]] = ROLES

    @classmethod
    def new(cls) -> Self:
        return cls(secrets.token_hex(3))

    def ns(self, role: str) -> str:
        return f"{PREFIX}{self.tag}-{role}"

    @property
    def client(self) -> str:
        return self.ns("client")

    @property
    def router(self) -> str:
        return self.ns("router")

    @property
    def server(self) -> str:
        return self.ns("server")

    def namespaces(self) -> list[str]:
        return [self.ns(r) for r in self.roles]


def run(*args: str, netns: str | None = None, input: str | None = None) -> str:
    """Run a command, inside ``netns`` if given; a failure becomes a one-line LabError."""
    cmd = (["ip", "netns", "exec", netns] if netns else []) + list(args)
    try:
        r = subprocess.run(cmd, check=False, capture_output=True, text=True, input=input, timeout=30)
    except FileNotFoundError:
        raise LabError(f"`{cmd[0]}` is not installed (the lab needs iproute2 and nftables)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"`{' '.join(cmd)}` did not finish in 30 s") from None
    if r.returncode != 0:
        err = " ".join(r.stderr.split()) or f"exit {r.returncode}"
        raise LabError(f"`{' '.join(cmd)}` failed: {err}")
    return r.stdout


def write_proc_sys(netns: str, key: str, value: str) -> None:
    """Set a per-namespace sysctl (dotted key) from inside ``netns``."""
    path = "/proc/sys/" + key.replace(".", "/")

    def write() -> None:
        with open(path, "w") as f:
            f.write(value)

    try:
        run_in(NetnsSpec(name=netns), write)
    except OSError as e:
        raise LabError(f"{key}={value} in {netns}: {e.strerror}") from None


def create(lab: Lab) -> None:
    """Build the lab; on any failure, remove what was made and re-raise."""
    try:
        _build(lab)
    except BaseException:
        destroy(lab)
        raise


def _build(lab: Lab) -> None:
    for ns in lab.namespaces():
        run("ip", "netns", "add", ns)
    # In order: a veth pair is created from one side, and the other side's addresses come after.
    _configure(lab.client, veth=("to-router", "to-client", lab.router),
               addresses=[("to-router", CLIENT4, CLIENT6)], routes=[("default", ROUTER_C4), ("default", ROUTER_C6)])
    _configure(lab.router, veth=("to-server", "to-router", lab.server),
               addresses=[("to-client", ROUTER_C4, ROUTER_C6), ("to-server", ROUTER_S4, ROUTER_S6)],
               routes=[(SINK4, SERVER4)])
    _configure(lab.server, veth=None, addresses=[("to-router", SERVER4, SERVER6)], routes=[])
    write_proc_sys(lab.router, "net.ipv4.ip_forward", "1")
    write_proc_sys(lab.router, "net.ipv6.conf.all.forwarding", "1")
    # Byte counters and start times make the router's table show what cttop can do.
    write_proc_sys(lab.router, "net.netfilter.nf_conntrack_acct", "1")
    write_proc_sys(lab.router, "net.netfilter.nf_conntrack_timestamp", "1")
    for role in ROLES:
        run("nft", "-f", "-", netns=lab.ns(role), input=_RULES[role])


def _configure(ns: str, veth: tuple[str, str, str] | None, addresses: list[tuple[str, str, str]],
               routes: list[tuple[str, str]]) -> None:
    """Links, addresses and routes of one namespace, over rtnetlink (pyroute2) from inside it.

    pyroute2 opens its socket lazily on the calling thread, so the whole session runs
    inside :func:`run_in`. (Its own NetNS forks a helper per namespace, which hung
    here once a test had sent the process a signal.)
    """
    from pyroute2 import IPRoute  # imported only to build a lab (it costs ~130 ms)
    from pyroute2.netlink.exceptions import NetlinkError

    step = ""

    def session() -> None:
        nonlocal step
        with IPRoute() as ipr:
            step = "bring lo up"
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            if veth is not None:
                name, peer, peer_ns = veth
                step = f"create the veth pair {name} / {peer} in {peer_ns}"
                ipr.link("add", ifname=name, kind="veth", peer={"ifname": peer, "net_ns_fd": peer_ns})
            for dev, v4, v6 in addresses:
                step = f"address {dev} with {v4} and {v6}"
                index = ipr.link_lookup(ifname=dev)[0]
                ipr.addr("add", index=index, address=v4, prefixlen=24)
                # nodad: the IPv6 address is usable at once instead of after duplicate detection.
                ipr.addr("add", index=index, address=v6, prefixlen=64, flags=_IFA_F_NODAD)
                ipr.link("set", index=index, state="up")
            for dst, gateway in routes:
                step = f"route {dst} via {gateway}"
                family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
                ipr.route("add", dst=dst, gateway=gateway, family=family)

    try:
        run_in(NetnsSpec(name=ns), session)
    except NetlinkError as e:
        raise LabError(f"lab: {ns}: cannot {step}: {os.strerror(e.code)}") from None


def existing() -> list[str]:
    """Every lab namespace present now, this lab's or any other's."""
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith(PREFIX))


def tag_of(name: str) -> str:
    """The lab tag in a lab namespace's name (``cttop-lab-2f1007-router`` -> ``2f1007``); a bare tag is itself.

    Tags are hex (:meth:`Lab.new`), so the tag ends at the first dash whatever the role (a containers
    lab has roles of its own)."""
    return name.removeprefix(PREFIX).split("-", 1)[0]


def remove_namespace(name: str) -> None:
    """Kill whatever still runs in ``name`` (it would keep the namespace alive), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", name], check=False, capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def destroy(lab: Lab) -> None:
    """Delete the lab's namespaces; their links, addresses, rules and entries go with them."""
    for ns in lab.namespaces():
        if os.path.exists(os.path.join(NETNS_RUN_DIR, ns)):
            remove_namespace(ns)

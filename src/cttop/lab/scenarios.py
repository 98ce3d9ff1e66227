"""What each lab scenario runs: which generators, where, how fast, and which router settings.

Every scenario but ``mixed`` runs a light ``mixed`` background under its own
pressure maker, so the table looks like a real box with one problem, and the
heaviest group is the problem.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cttop.lab.topology import CLIENT4, SERVER4, SERVER6, SINK4, SYN_PORT, Lab, LabError, run

STORM_PORT = 9999
FILL_PORT = 7777
FILL_TIMEOUT = 600
# Fill-and-overflow: the filler first makes all but this share of the max ASSURED (see cttop.lab.fill).
# It must finish before the flood starts: past the max, each of its creates could evict only from the
# same few buckets (ctnetlink's early_drop starts at bucket 0), so most would fail. The flood's first
# burst is twice this share, so the table is surely full, then new flows keep coming: early_drop evicts
# the flood's own entries where it finds one near, and drop rises where not.
FILL_EVICTABLE = 1 / 16
# Past this max the fill costs more kernel memory than a lab should take by surprise.
FILL_LIMIT = 1 << 20
# An nf_conn is a 256-byte slab object on 6.x x86-64, plus NAT and accounting extensions (as doctor counts it).
ENTRY_BYTES = 320
# The burst's cap is above what one Python sender reaches (about 100k packets/s here),
# so filling is as fast as the machine allows yet still bounded.
FILL_BURST_RATE = 300_000
FILL_RATE_AFTER = 2000
STORM_RATE = 3000
SYN_RATE = 2000
CHURN_RATE = 800
# udp-timeouts: short UDP streams (ASSURED) under a 600 s stream timeout, 5 times the kernel's 120 s.
STREAM_RATE = 300
LONG_UDP_TIMEOUT = "600"
# idle-established: sessions silent for hours, this share of the max (doctor cares from 5 %).
IDLE_SHARE = 0.10
EST_DEFAULT = 432000
# stale-nat: a DNS service address the router DNATs, first to a backend that is gone, then to a live one.
VIP4 = "10.77.3.53"
OLD_BACKEND4, NEW_BACKEND4 = "10.77.2.10", "10.77.2.11"
RETARGET_AFTER = 3.0
STUCK_RESOLVERS = 64
LOOKUP_RATE = 20
# levels-off: unanswered UDP at this rate under this udp_timeout levels off near their product.
LEVEL_RATE = 500
LEVEL_TIMEOUT = 15
LEVEL_PORT = 6666


@dataclass(frozen=True)
class Generator:
    """One traffic process: where it runs and its command line (after ``ip netns exec NS``)."""

    label: str
    role: str
    argv: tuple[str, ...]
    # Runs to its end before the others start (the table-full filler: see cttop.lab.fill).
    first: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    # (lab, seconds the generators may run, the table's max) -> the generators
    pressure: Callable[[Lab, float, int], list[Generator]]
    background: bool = True
    # Per-namespace sysctls set in the router before any traffic starts.
    router_sysctls: Mapping[str, str] = field(default_factory=dict)
    # More of the lab to build (addresses, rules) once it exists, before any traffic starts.
    setup: Callable[[Lab], None] | None = None
    server_args: tuple[str, ...] = ()

    def generators(self, lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
        gens = [_py("server", "server", lab, seconds, "serve", "--syn-port", str(SYN_PORT), *self.server_args)]
        if self.background:
            gens.append(_mixed(lab, seconds, light=True))
        return gens + self.pressure(lab, seconds, max_entries)


def _module(label: str, role: str, lab: Lab, seconds: float, command: tuple[str, ...], *args: str,
            first: bool = False) -> Generator:
    """``python -m COMMAND --lab TAG --seconds S ARGS``, run by this very interpreter."""
    argv = (sys.executable, "-m", *command, "--lab", lab.tag, "--seconds", f"{seconds:g}")
    return Generator(label, role, argv + args, first)


def _py(label: str, role: str, lab: Lab, seconds: float, kind: str, *args: str) -> Generator:
    """A ``cttop.lab.traffic`` generator of ``kind``."""
    return _module(label, role, lab, seconds, ("cttop.lab.traffic", kind), *args)


def _mixed(lab: Lab, seconds: float, light: bool) -> Generator:
    rates = (("--sessions", "6"), ("--http-rate", "2"), ("--dns-rate", "5"), ("--ping-interval", "1")) if light \
        else (("--sessions", "24"), ("--http-rate", "10"), ("--dns-rate", "20"), ("--ping-interval", "0.5"))
    flat = [x for pair in rates for x in pair]
    return _py("background traffic" if light else "mixed traffic", "client", lab, seconds,
               "mixed", "--server4", SERVER4, "--server6", SERVER6, *flat)


def _mixed_full(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    return [_mixed(lab, seconds, light=False)]


def _storm(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    return [_py("udp storm", "client", lab, seconds, "udp-flood", "--dst-net", SINK4,
                "--port", str(STORM_PORT), "--rate", str(STORM_RATE))]


def _syn(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    if shutil.which("hping3"):
        interval = f"u{1_000_000 // SYN_RATE}"
        count = str(int(SYN_RATE * seconds))
        return [Generator("syn flood (hping3)", "client",
                          ("hping3", "-q", "-S", "-p", str(SYN_PORT), "-i", interval, "-c", count, SERVER4))]
    return [_py("syn flood", "client", lab, seconds, "syn", "--src", CLIENT4, "--dst", SERVER4,
                "--port", str(SYN_PORT), "--rate", str(SYN_RATE))]


def _churn(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    return [_py("short connections", "client", lab, seconds, "churn", "--dst", SERVER4, "--rate", str(CHURN_RATE))]


def check_fill(max_entries: int, force: bool) -> None:
    """Refuse a table-full lab that cannot fill, or whose fill would take a surprising amount of kernel memory."""
    if max_entries <= 0:
        raise LabError("nf_conntrack_max is 0 (no limit) on this host: the table cannot fill")
    if max_entries > FILL_LIMIT and not force:
        raise LabError(f"table-full fills the router's table to nf_conntrack_max {max_entries}, about "
                       f"{max_entries * ENTRY_BYTES / 2**20:.0f} MiB of kernel memory (~{ENTRY_BYTES} B an entry): "
                       f"lower nf_conntrack_max to {FILL_LIMIT} or less first, or pass --force to take that memory")


def _fill(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    evictable = int(max_entries * FILL_EVICTABLE)
    return [_module("table filler (ASSURED)", "router", lab, seconds, ("cttop.lab.fill",),
                    "--entries", str(max_entries - evictable), "--port", str(FILL_PORT),
                    "--timeout", str(FILL_TIMEOUT), first=True),
            _py("new flows", "client", lab, seconds, "udp-flood", "--dst-net", SINK4,
                "--port", str(FILL_PORT), "--sockets", "64", "--burst", str(2 * evictable),
                "--burst-rate", str(FILL_BURST_RATE), "--rate", str(FILL_RATE_AFTER))]


def _streams(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    return [_py("short UDP streams", "client", lab, seconds, "udp-streams", "--dst", SERVER4,
                "--rate", str(STREAM_RATE))]


def _idle(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    return [_module("idle sessions (ESTABLISHED)", "router", lab, seconds, ("cttop.lab.fill",),
                    "--kind", "idle-established", "--entries", str(int(max_entries * IDLE_SHARE)),
                    "--timeout", str(EST_DEFAULT), first=True)]


def _stale_nat_setup(lab: Lab) -> None:
    # The new backend lives on the server; the old one is gone (nobody has its address): what is sent there is lost.
    run("ip", "addr", "add", f"{NEW_BACKEND4}/24", "dev", "to-router", netns=lab.server)
    run("nft", "-f", "-", netns=lab.router, input=(
        "add chain inet cttop-lab dstnat { type nat hook prerouting priority dstnat; }\n"
        f"add rule inet cttop-lab dstnat ip daddr {VIP4} udp dport 53 dnat ip to {OLD_BACKEND4}\n"))


def _stale_nat(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    return [_py("resolvers", "client", lab, seconds, "resolvers", "--dst", VIP4, "--keep", str(STUCK_RESOLVERS),
                "--rate", str(LOOKUP_RATE)),
            _py("DNAT target change", "router", lab, seconds, "retarget", "--vip", VIP4, "--to", NEW_BACKEND4,
                "--after", f"{RETARGET_AFTER:g}")]


def _levels(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    return [_py("unanswered UDP", "client", lab, seconds, "udp-flood", "--dst-net", SINK4, "--port", str(LEVEL_PORT),
                "--rate", str(LEVEL_RATE))]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("mixed", "steady TCP sessions, short HTTP-like connections, DNS-like UDP and pings",
             _mixed_full, background=False),
    Scenario("udp-storm", f"unique UDP flows to port {STORM_PORT} that are never answered: UNREPLIED piles up",
             _storm),
    Scenario("syn-flood", f"SYNs to port {SYN_PORT} whose handshakes never complete: half-open TCP", _syn),
    Scenario("time-wait", "short TCP connections closed by the client: TIME_WAIT piles up", _churn),
    Scenario("table-full", f"ASSURED UDP flows to port {FILL_PORT} fill the router's table to nf_conntrack_max, "
             "then new flows keep coming: early_drop evicts what little it may, and drop rises "
             "(the kernel's 'table full, dropping packet')", _fill,
             # Long UDP timeouts keep the filled entries alive for the whole run.
             router_sysctls={"net.netfilter.nf_conntrack_udp_timeout": LONG_UDP_TIMEOUT,
                             "net.netfilter.nf_conntrack_udp_timeout_stream": LONG_UDP_TIMEOUT}),
    Scenario("udp-timeouts", f"short UDP streams ({STREAM_RATE}/s: a query and its answer, another 2.5 s later) "
             f"under udp_timeout and udp_timeout_stream {LONG_UDP_TIMEOUT}: ASSURED UDP piles up", _streams,
             router_sysctls={"net.netfilter.nf_conntrack_udp_timeout": LONG_UDP_TIMEOUT,
                             "net.netfilter.nf_conntrack_udp_timeout_stream": LONG_UDP_TIMEOUT}),
    Scenario("idle-established", f"TCP sessions silent for 2 h to 4 days ({IDLE_SHARE:.0%} of the max, made over "
             "ctnetlink as a box that saw them would hold them) under the 5-day established default", _idle,
             # Start times would date the made sessions to now; without them idle time is read from time left.
             router_sysctls={"net.netfilter.nf_conntrack_timestamp": "0"}),
    Scenario("stale-nat", f"DNS to {VIP4} DNAT'd to {OLD_BACKEND4}, a backend that is gone; after "
             f"{RETARGET_AFTER:g} s the rule moves to {NEW_BACKEND4}, but {STUCK_RESOLVERS} resolvers that keep "
             "their socket keep the old entry", _stale_nat, setup=_stale_nat_setup,
             server_args=("--answer-from", NEW_BACKEND4)),
    Scenario("levels-off", f"unanswered UDP at {LEVEL_RATE}/s under udp_timeout {LEVEL_TIMEOUT}: the table rises, "
             f"then levels off near {LEVEL_RATE * LEVEL_TIMEOUT}", _levels,
             router_sysctls={"net.netfilter.nf_conntrack_udp_timeout": str(LEVEL_TIMEOUT)}),
)}

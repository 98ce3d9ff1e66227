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

from cttop.lab.topology import CLIENT4, SERVER4, SERVER6, SINK4, SYN_PORT, Lab

STORM_PORT = 9999
FILL_PORT = 7777
# Fill-and-overflow: the first burst goes a little past the max so the table is
# surely full, then new flows keep coming so drop/early_drop keep rising.
FILL_OVERSHOOT = 1 / 8
# The burst's cap is above what one Python sender reaches (about 100k packets/s here),
# so filling is as fast as the machine allows yet still bounded.
FILL_BURST_RATE = 300_000
FILL_RATE_AFTER = 2000
STORM_RATE = 3000
SYN_RATE = 2000
CHURN_RATE = 800


@dataclass(frozen=True)
class Generator:
    """One traffic process: where it runs and its command line (after ``ip netns exec NS``)."""

    label: str
    role: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    # (lab, seconds the generators may run, the table's max) -> the generators
    pressure: Callable[[Lab, float, int], list[Generator]]
    background: bool = True
    # Per-namespace sysctls set in the router before any traffic starts.
    router_sysctls: Mapping[str, str] = field(default_factory=dict)

    def generators(self, lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
        gens = [_py("server", "server", lab, seconds, "serve", "--syn-port", str(SYN_PORT))]
        if self.background:
            gens.append(_mixed(lab, seconds, light=True))
        return gens + self.pressure(lab, seconds, max_entries)


def _py(label: str, role: str, lab: Lab, seconds: float, kind: str, *args: str) -> Generator:
    """A ``cttop.lab.traffic`` generator of ``kind``, run by this very interpreter."""
    argv = (sys.executable, "-m", "cttop.lab.traffic", kind, "--lab", lab.tag, "--seconds", f"{seconds:g}")
    return Generator(label, role, argv + args)


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


def _fill(lab: Lab, seconds: float, max_entries: int) -> list[Generator]:
    burst = max_entries + int(max_entries * FILL_OVERSHOOT)
    return [_py("table filler", "client", lab, seconds, "udp-flood", "--dst-net", SINK4, "--port", str(FILL_PORT),
                "--sockets", "64", "--burst", str(burst), "--burst-rate", str(FILL_BURST_RATE),
                "--rate", str(FILL_RATE_AFTER))]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("mixed", "steady TCP sessions, short HTTP-like connections, DNS-like UDP and pings",
             _mixed_full, background=False),
    Scenario("udp-storm", f"unique UDP flows to port {STORM_PORT} that are never answered: UNREPLIED piles up",
             _storm),
    Scenario("syn-flood", f"SYNs to port {SYN_PORT} whose handshakes never complete: half-open TCP", _syn),
    Scenario("time-wait", "short TCP connections closed by the client: TIME_WAIT piles up", _churn),
    Scenario("table-full", f"UDP flows to port {FILL_PORT} fill the router's table to nf_conntrack_max, "
             "then new flows keep coming: drop/early_drop rise", _fill,
             # Long UDP timeouts keep the filled entries alive for the whole run.
             router_sysctls={"net.netfilter.nf_conntrack_udp_timeout": "600",
                             "net.netfilter.nf_conntrack_udp_timeout_stream": "600"}),
)}

"""`cttop lab`, headless: each scenario's signature in the router's own table, and nothing left after.

The oracle is the kernel: `conntrack -L/-C/-S` run inside the lab's router
namespace, `ip netns`, /proc and the host's `nft list ruleset`. Each lab runs as a
subprocess bounded by its --duration; a check samples the table until the
signature shows or the lab ends, then asserts on the last sample.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import typer

from cttop.kernel.netns import NetnsSpec
from cttop.lab import topology
from cttop.lab.scenarios import (
    EST_DEFAULT,
    IDLE_SHARE,
    LEVEL_RATE,
    LEVEL_TIMEOUT,
    NEW_BACKEND4,
    OLD_BACKEND4,
    STORM_PORT,
    STUCK_RESOLVERS,
    VIP4,
)
from cttop.lab.topology import CLIENT4, SERVER4, SYN_PORT, Lab
from tests.conftest import delete_netns, sh
from tests.oracle import conntrack_list

pytestmark = pytest.mark.kernel

T = TypeVar("T")
# Bounds on waiting for a misbehaving lab, so a broken one fails the test instead of hanging it.
SETUP_BOUND = 60.0  # table-full fills the router before the lab prints its names
EXIT_MARGIN = 20.0
SAMPLE_MARGIN = 1.0


@dataclass
class Flow:
    line: str
    proto: str
    state: str
    unreplied: bool
    src: str
    reply_dst: str


@dataclass
class RunningLab:
    proc: subprocess.Popen[str]
    names: dict[str, str]
    # When the lab starts tearing itself down; sampling stops a little before.
    ends_at: float
    seen_pids: set[int] = field(default_factory=set)

    @property
    def router(self) -> str:
        return self.names["router"]

    @property
    def tag(self) -> str:
        return self.router.removeprefix("cttop-lab-").removesuffix("-router")

    def note_pids(self) -> None:
        for ns in self.names.values():
            self.seen_pids.update(int(p) for p in sh("ip", "netns", "pids", ns, check=False).split())

    def sample(self, probe: Callable[[str], T], done: Callable[[T], bool]) -> T:
        """Probe the router until ``done`` says the signature is there or the lab is about to end."""
        while True:
            self.note_pids()
            value = probe(self.router)
            if done(value) or time.monotonic() > self.ends_at - SAMPLE_MARGIN or self.proc.poll() is not None:
                return value
            time.sleep(0.3)


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=30)


def cttop_lab(*args: str) -> list[str]:
    return ["cttop", "lab", *args]


def lab_namespaces() -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith("cttop-lab-")) \
        if os.path.isdir("/run/netns") else []


def host_ruleset() -> str:
    return sh("nft", "list", "ruleset")


def flows(ns: str) -> list[Flow]:
    out = []
    for line in sh("conntrack", "-L", netns=ns).splitlines():
        tok = line.split()
        if not tok:
            continue
        srcs = [t[4:] for t in tok if t.startswith("src=")]
        dsts = [t[4:] for t in tok if t.startswith("dst=")]
        out.append(Flow(line, tok[0], tok[3] if tok[0] == "tcp" else "", "[UNREPLIED]" in tok, srcs[0], dsts[1]))
    return out


def count(ns: str) -> int:
    return int(sh("conntrack", "-C", netns=ns).strip())


def stat_sum(ns: str, name: str) -> int:
    total = 0
    for line in sh("conntrack", "-S", netns=ns).splitlines():
        for tok in line.split():
            key, _, value = tok.partition("=")
            if key == name:
                total += int(value)
    return total


def read_names(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The `ROLE NAME` lines the lab prints once its namespaces exist."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    names: dict[str, str] = {}
    end = time.monotonic() + SETUP_BOUND
    while len(names) < 3:
        try:
            line = lines.get(timeout=max(0.0, end - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        role, name = line.split()
        names[role] = name
    return names


@contextmanager
def lab_running(scenario: str, duration: float, *extra: str) -> Iterator[RunningLab]:
    """Start `cttop lab --no-ui`; whatever happens, nothing of it outlives the test.

    Only this lab's namespaces are removed: other runs on the host make labs of their own meanwhile.
    """
    proc = subprocess.Popen(cttop_lab("--scenario", scenario, "--no-ui", "--duration", str(duration), *extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    names: dict[str, str] = {}
    try:
        names = read_names(proc)
        if sorted(names) != ["client", "router", "server"]:
            proc.kill()
            proc.wait()
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"the lab did not print its namespaces ({names}); it said: {err.strip()}")
        yield RunningLab(proc, names, time.monotonic() + duration)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(duration + EXIT_MARGIN)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        tags = {topology.tag_of(n) for n in names.values()}
        for ns in lab_namespaces():
            if topology.tag_of(ns) in tags:
                delete_netns(ns)


def finish(lab: RunningLab, duration: float) -> str:
    """Wait for the lab to end on its own; returns its stderr (a few lines, never enough to fill the pipe)."""
    lab.proc.wait(duration + EXIT_MARGIN)
    return lab.proc.stderr.read() if lab.proc.stderr else ""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            # A zombie is dead, only not yet reaped by whoever adopted it.
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# Host sysctls the lab sets inside its router; the host's own values must not move.
LAB_SYSCTLS = ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/netfilter/nf_conntrack_acct",
               "net/netfilter/nf_conntrack_timestamp", "net/netfilter/nf_conntrack_udp_timeout",
               "net/netfilter/nf_conntrack_udp_timeout_stream", "net/netfilter/nf_conntrack_max")
LAB_ADDRESSES = ("10.77.", "fd77:")


@dataclass(frozen=True)
class HostState:
    """What of the host a lab could change: its ruleset, its sysctls and its links and addresses.

    Other tests may run at the same time, so the host's conntrack table and its namespace
    list are not compared; the lab's own namespaces are checked by tag instead.
    """

    ruleset: str
    sysctls: tuple[str, ...]
    lab_addresses: tuple[str, ...]

    @classmethod
    def now(cls) -> HostState:
        sysctls = []
        for key in LAB_SYSCTLS:
            with open(f"/proc/sys/{key}") as f:
                sysctls.append(f.read().strip())
        addrs = tuple(line for line in sh("ip", "-o", "addr").splitlines() if any(a in line for a in LAB_ADDRESSES))
        return cls(host_ruleset(), tuple(sysctls), addrs)


def assert_nothing_left(lab: RunningLab, host_before: HostState) -> None:
    assert not [n for n in lab_namespaces() if lab.tag in n]
    assert lab.seen_pids, "the test never saw a generator running"
    assert not [p for p in lab.seen_pids if alive(p)]
    tagged = run(["pgrep", "-f", f"--lab {lab.tag}"]).stdout.split()
    assert not tagged
    assert HostState.now() == host_before


def global_max() -> int:
    with open("/proc/sys/net/netfilter/nf_conntrack_max") as f:
        return int(f.read())


def states(fs: list[Flow]) -> Counter[str]:
    return Counter(f.state if f.proto == "tcp" else f.proto for f in fs)


def test_udp_storm_leaves_an_unreplied_majority() -> None:
    host = HostState.now()
    with lab_running("udp-storm", 6) as lab:
        fs = lab.sample(flows, lambda fs: len(fs) > 1000 and 2 * sum(f.unreplied for f in fs) > len(fs))
        assert len(fs) > 1000
        assert 2 * sum(f.unreplied for f in fs) > len(fs), states(fs)
        err = finish(lab, 6)
    assert lab.proc.returncode == 0, err
    assert_nothing_left(lab, host)


def test_time_wait_leaves_a_time_wait_majority() -> None:
    host = HostState.now()
    with lab_running("time-wait", 6) as lab:
        fs = lab.sample(flows, lambda fs: len(fs) > 500 and 2 * states(fs)["TIME_WAIT"] > len(fs))
        assert len(fs) > 500
        assert 2 * states(fs)["TIME_WAIT"] > len(fs), states(fs)
        err = finish(lab, 6)
    assert lab.proc.returncode == 0, err
    assert_nothing_left(lab, host)


def test_syn_flood_leaves_half_open_tcp() -> None:
    host = HostState.now()
    with lab_running("syn-flood", 6) as lab:
        def half_open(fs: list[Flow]) -> int:
            return sum(f.state in ("SYN_SENT", "SYN_RECV") for f in fs)

        fs = lab.sample(flows, lambda fs: len(fs) > 1000 and 2 * half_open(fs) > len(fs))
        assert len(fs) > 1000
        assert 2 * half_open(fs) > len(fs), states(fs)
        err = finish(lab, 6)
    assert lab.proc.returncode == 0, err
    assert_nothing_left(lab, host)


def test_mixed_shows_sessions_udp_pings_and_nat() -> None:
    host = HostState.now()

    def looks_busy(fs: list[Flow]) -> bool:
        s = states(fs)
        return s["ESTABLISHED"] > 0 and s["udp"] > 0 and s["icmp"] > 0 and s["icmpv6"] > 0 \
            and any(f.reply_dst != f.src for f in fs)

    with lab_running("mixed", 8) as lab:
        fs = lab.sample(flows, looks_busy)
        s = states(fs)
        assert s["ESTABLISHED"] > 0 and s["udp"] > 0 and s["icmp"] > 0 and s["icmpv6"] > 0, s
        # SNAT: the reply goes to the router's own address, not back to the client's.
        nat = [f for f in fs if f.reply_dst != f.src]
        assert nat and {f.reply_dst for f in nat} <= {"10.77.2.1", "fd77:2::1"}
        err = finish(lab, 8)
    assert lab.proc.returncode == 0, err
    assert_nothing_left(lab, host)


def test_table_full_reaches_the_max_and_really_drops() -> None:
    host = HostState.now()
    max_entries = global_max()

    def pressure(ns: str) -> tuple[int, int]:
        return count(ns), stat_sum(ns, "drop")

    with lab_running("table-full", 15) as lab:
        # Most of the table is ASSURED, which early_drop may not evict: new flows are dropped, not only evicted.
        n, dropped = lab.sample(pressure, lambda p: p[0] == max_entries and p[1] > 0)
        assert n == max_entries
        assert dropped > 0
        assured = sum("[ASSURED]" in f.line for f in flows(lab.router))
        assert assured > max_entries // 2
        err = finish(lab, 15)
    assert lab.proc.returncode == 0, err
    assert "reached nf_conntrack_max" in err
    assert_nothing_left(lab, host)
    assert global_max() == max_entries


def router_sysctl(ns: str, name: str) -> int:
    return int(sh("cat", f"/proc/sys/net/netfilter/{name}", netns=ns))


def test_udp_timeouts_piles_up_assured_udp_under_the_routers_long_timeouts() -> None:
    host = HostState.now()

    def assured(fs: list[Flow]) -> int:
        return sum(f.proto == "udp" and "[ASSURED]" in f.line for f in fs)

    with lab_running("udp-timeouts", 12) as lab:
        fs = lab.sample(flows, lambda fs: assured(fs) > 1000 and 2 * assured(fs) > len(fs))
        assert assured(fs) > 1000 and 2 * assured(fs) > len(fs), states(fs)
        assert router_sysctl(lab.router, "nf_conntrack_udp_timeout_stream") == 600
        assert router_sysctl(lab.router, "nf_conntrack_udp_timeout") == 600
        err = finish(lab, 12)
    assert lab.proc.returncode == 0, err
    assert_nothing_left(lab, host)


def test_idle_established_holds_sessions_silent_for_hours() -> None:
    host = HostState.now()
    want = int(global_max() * IDLE_SHARE)

    def idle(ns: str) -> list[dict[str, Any]]:
        # A listing taken while the sessions are still being made may show one twice (the kernel's dump is no
        # snapshot: CI once counted 26,215 of 26,214): each counts once, by its id and original tuple.
        held: dict[tuple[Any, ...], dict[str, Any]] = {}
        for e in conntrack_list(ns):
            if e["state"] == "ESTABLISHED" and e["timeout"] < EST_DEFAULT - 7440:
                held.setdefault((e["id"], *sorted(e["orig"].items())), e)
        return list(held.values())

    with lab_running("idle-established", 8) as lab:
        sessions = lab.sample(idle, lambda es: len(es) >= want)
        assert len(sessions) == want
        assert all("ASSURED" in e["flags"] for e in sessions)
        assert router_sysctl(lab.router, "nf_conntrack_tcp_timeout_established") == EST_DEFAULT
        assert router_sysctl(lab.router, "nf_conntrack_timestamp") == 0
        err = finish(lab, 8)
    assert lab.proc.returncode == 0, err
    assert_nothing_left(lab, host)


def test_stale_nat_keeps_the_resolvers_on_the_old_backend_after_the_rule_moves() -> None:
    host = HostState.now()

    def split(ns: str) -> tuple[int, int]:
        fs = [e for e in conntrack_list(ns) if e["orig"].get("dst") == VIP4]
        old = sum(e["reply"]["src"] == OLD_BACKEND4 and "UNREPLIED" in e["flags"] for e in fs)
        new = sum(e["reply"]["src"] == NEW_BACKEND4 and "UNREPLIED" not in e["flags"] for e in fs)
        return old, new

    with lab_running("stale-nat", 10) as lab:
        old, new = lab.sample(split, lambda s: s[0] >= STUCK_RESOLVERS and s[1] > 10)
        assert old >= STUCK_RESOLVERS and new > 10
        rules = sh("nft", "list", "chain", "inet", "cttop-lab", "dstnat", netns=lab.router)
        assert f"dnat ip to {NEW_BACKEND4}" in rules and OLD_BACKEND4 not in rules
        err = finish(lab, 10)
    assert lab.proc.returncode == 0, err
    assert_nothing_left(lab, host)


def test_levels_off_settles_near_rate_times_timeout() -> None:
    host = HostState.now()
    level = LEVEL_RATE * LEVEL_TIMEOUT
    with lab_running("levels-off", LEVEL_TIMEOUT + 12) as lab:
        rising = lab.sample(count, lambda n: n > level // 4)
        # Once the oldest entries expire (one timeout in), it stays near the level.
        time.sleep(LEVEL_TIMEOUT + 3)
        # Listed, not conntrack -C: the count keeps expired entries until the kernel's GC reaps them (seen 47%
        # over on a loaded machine); a dump skips and evicts them, so it holds what the timeout keeps.
        settled = [len(conntrack_list(lab.router)) for _ in range(3)]
        err = finish(lab, LEVEL_TIMEOUT + 12)
    assert rising < level
    assert all(0.8 * level <= n <= 1.25 * level for n in settled), (level, settled)
    assert lab.proc.returncode == 0, err
    assert_nothing_left(lab, host)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_removes_the_lab(signum: int) -> None:
    host = HostState.now()
    with lab_running("syn-flood", 60) as lab:
        lab.sample(count, lambda n: n > 100)
        lab.proc.send_signal(signum)
        err = finish(lab, 0)
    assert lab.proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert_nothing_left(lab, host)


@contextmanager
def bystander_lab() -> Iterator[Lab]:
    """Another lab on the same host (another user's, a parallel run's), which cleanups must leave alone."""
    other = Lab.new()
    topology.create(other)
    try:
        yield other
    finally:
        topology.destroy(other)


def test_keep_leaves_the_namespaces_and_cleanup_tag_removes_only_them() -> None:
    host = HostState.now()
    with bystander_lab() as other, lab_running("udp-storm", 2, "--keep") as lab:
        lab.note_pids()
        err = finish(lab, 2)
        assert lab.proc.returncode == 0, err
        kept = [n for n in lab_namespaces() if lab.tag in n]
        assert kept == sorted(lab.names.values())
        # The generators are gone but the entries they made are still in the kept router.
        assert not [p for p in lab.seen_pids if alive(p)]
        assert count(lab.router) > 0
        assert f"cttop lab --cleanup {lab.tag} " in err
        r = run(cttop_lab("--cleanup", lab.tag))
        assert r.returncode == 0, r.stderr
        assert sorted(r.stdout.split("\n")[:-1]) == [f"removed {n}" for n in kept]
        assert not [n for n in lab_namespaces() if lab.tag in n]
        assert [n for n in lab_namespaces() if other.tag in n] == sorted(other.namespaces())
    assert_nothing_left(lab, host)


def test_cleanup_of_a_tag_not_there_is_one_line_and_removes_nothing() -> None:
    with bystander_lab() as other:
        r = run(cttop_lab("--cleanup", "0badc0"))
        assert r.returncode == 2
        [line] = r.stderr.strip().splitlines()
        assert "no lab tagged '0badc0'" in line and other.tag in line
        assert [n for n in lab_namespaces() if other.tag in n] == sorted(other.namespaces())


def test_cleanup_all_removes_every_lab_and_says_so() -> None:
    # `all` really removes every lab on the host, so it runs in a mount namespace of its own whose
    # /run/netns holds only the labs made there: labs of parallel runs are out of its reach.
    script = ("mount -t tmpfs cttop-test /run/netns && "
              f"for t in a1a1a1 b2b2b2; do for r in client router server; do ip netns add cttop-lab-$t-$r; done; done "
              f"&& {' '.join(cttop_lab('--cleanup', 'all'))} && ls /run/netns")
    with bystander_lab() as other:
        r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script])
        assert [n for n in lab_namespaces() if other.tag in n] == sorted(other.namespaces())
    assert r.returncode == 0, r.stderr
    [said] = r.stderr.strip().splitlines()
    assert "every lab on this host" in said and "a1a1a1, b2b2b2" in said
    removed = [line.removeprefix("removed ") for line in r.stdout.splitlines() if line.startswith("removed ")]
    assert removed == sorted(f"cttop-lab-{t}-{role}" for t in ("a1a1a1", "b2b2b2")
                             for role in ("client", "router", "server"))
    # `ls /run/netns` after it: nothing left.
    assert [line for line in r.stdout.splitlines() if not line.startswith("removed ")] == []


def test_sigkill_takes_the_generators_with_it() -> None:
    with lab_running("udp-storm", 60) as lab:
        lab.sample(count, lambda n: n > 100)
        lab.note_pids()
        lab.proc.kill()
        lab.proc.wait()
        # The parent-death signal is sent as the lab dies; the generators' own exits take a moment.
        end = time.monotonic() + EXIT_MARGIN
        while [p for p in lab.seen_pids if alive(p)] and time.monotonic() < end:
            time.sleep(0.1)
        assert lab.seen_pids
        assert not [p for p in lab.seen_pids if alive(p)]


def test_unknown_scenario_is_one_line_listing_the_names() -> None:
    before = lab_namespaces()
    r = run(cttop_lab("--scenario", "nope", "--no-ui"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    for name in ("mixed", "udp-storm", "syn-flood", "time-wait", "table-full", "udp-timeouts", "idle-established",
                 "stale-nat", "levels-off"):
        assert name in lines[0]
    assert lab_namespaces() == before


def test_not_root_is_one_line() -> None:
    # In a fresh user namespace with no mapping the process runs as the overflow uid (nobody),
    # yet still owns the files it could read as root.
    r = run(["unshare", "--user", *cttop_lab("--no-ui")])
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "root" in r.stderr


def test_the_python_syn_generator_makes_half_open_flows() -> None:
    # The syn-flood scenario uses hping3 where installed; this is the generator used where it is not.
    lab = Lab.new()
    topology.create(lab)
    procs: list[subprocess.Popen[str]] = []
    try:
        for role, args in (("server", ["serve", "--syn-port", str(SYN_PORT)]),
                           ("client", ["syn", "--src", CLIENT4, "--dst", SERVER4, "--port", str(SYN_PORT),
                                       "--rate", "1000"])):
            procs.append(subprocess.Popen(["ip", "netns", "exec", lab.ns(role), sys.executable, "-m",
                                           "cttop.lab.traffic", *args, "--seconds", "5"], text=True))
        running = RunningLab(procs[1], {"router": lab.router}, time.monotonic() + 5)
        fs = running.sample(flows, lambda fs: len(fs) > 500)
        assert len(fs) > 500
        assert Counter(f.state for f in fs)["SYN_RECV"] == len(fs), states(fs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        topology.destroy(lab)
    assert not [n for n in lab_namespaces() if lab.tag in n]


def test_notrack_on_the_storm_port_stops_its_entries() -> None:
    # What the TUI's NOTRACK remediation does, done by hand: the storm keeps coming, its entries stop.
    notrack = "add table inet cttoptest; " \
        "add chain inet cttoptest pre { type filter hook prerouting priority raw; }; " \
        f"add rule inet cttoptest pre udp dport {STORM_PORT} counter notrack"
    with lab_running("udp-storm", 10) as lab:
        lab.sample(count, lambda n: n > 1000)
        sh("nft", notrack, netns=lab.router)
        sh("conntrack", "-D", "-p", "udp", "--dport", str(STORM_PORT), netns=lab.router, check=False)

        def storm(ns: str) -> tuple[int, int]:
            rules = sh("nft", "list", "chain", "inet", "cttoptest", "pre", netns=ns)
            packets = int(rules.split("packets ")[1].split()[0])
            return packets, sum(f.proto == "udp" and f"dport={STORM_PORT}" in f.line for f in flows(ns))

        packets, entries = lab.sample(storm, lambda s: s[0] > 1000)
        assert packets > 1000
        assert entries == 0
        finish(lab, 10)


class FakeTui:
    """Stands in for cttop.ui.run_tui: checks what the lab hands it, then quits, crashes or hangs up."""

    def __init__(self, then: Callable[[], None]) -> None:
        self.then = then
        self.calls: list[tuple[str | None, bool, str | None]] = []
        self.router_count = 0
        self.notes: list[str] | None = None

    def __call__(self, spec: NetnsSpec, *, read_only: bool = False, title: str | None = None,
                 notes: Sequence[str] = ()) -> None:
        self.calls.append((spec.name, read_only, title))
        self.notes = list(notes)
        assert spec.name is not None
        end = time.monotonic() + SETUP_BOUND
        while self.router_count == 0 and time.monotonic() < end:
            self.router_count = count(spec.name)
            time.sleep(0.2)
        self.then()


def hang_up() -> None:
    os.kill(os.getpid(), signal.SIGHUP)
    time.sleep(5)


def crash() -> None:
    raise RuntimeError("the TUI crashed")


@pytest.mark.parametrize("then, expect", [(lambda: None, None), (crash, RuntimeError), (hang_up, typer.Exit)])
def test_the_tui_gets_the_router_and_every_way_out_cleans_up(
        monkeypatch: pytest.MonkeyPatch, then: Callable[[], None], expect: type[BaseException] | None) -> None:
    import cttop.ui
    from cttop.cli.lab import lab as lab_command

    host = HostState.now()
    tui = FakeTui(then)
    monkeypatch.setattr(cttop.ui, "run_tui", tui, raising=False)
    try:
        if expect is None:
            lab_command(scenario="mixed", keep=False, no_ui=False, duration=30, cleanup=None)
        else:
            with pytest.raises(expect):
                lab_command(scenario="mixed", keep=False, no_ui=False, duration=30, cleanup=None)
    finally:
        # This lab's namespaces only (the TUI was handed its router): other runs make labs meanwhile.
        tags = {topology.tag_of(name) for name, _r, _t in tui.calls if name}
        left = [ns for ns in lab_namespaces() if topology.tag_of(ns) in tags]
        for ns in left:
            delete_netns(ns)
    assert not left
    [(name, read_only, title)] = tui.calls
    assert name is not None and name.startswith("cttop-lab-") and name.endswith("-router")
    assert read_only is False and title == "cttop lab: mixed"  # the header names the namespace after it
    assert tui.notes == []  # the mixed lab has nothing to say before the screen comes
    assert tui.router_count > 0
    assert not run(["pgrep", "-f", f"--lab {name.removeprefix('cttop-lab-').removesuffix('-router')}"]).stdout
    assert HostState.now() == host

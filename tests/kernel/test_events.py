"""`cttop events` against `conntrack -E` on the same injected, updated and deleted entries, event by event.

Both listen in one namespace at once; the test waits until the kernel lists both sockets as subscribed
(/proc/net/netlink, read inside the namespace), so neither can miss the first event. Also: the event
mask joins exactly the groups `conntrack -E -e` joins, each event names the flow's owner as `ss -p` and
`snapshot --flows` do, Ctrl-C and a closed pipe end the stream cleanly,
and events the kernel dropped (its own drop counter says so) are said on stderr, after the events queued ahead of
the drop.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from benchmarks.common import synthetic_rows
from cttop.kernel import native
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.events import EVENT_BATCH, EventSocket
from cttop.kernel.netns import NetnsSpec
from cttop.model import EV_DESTROY, EV_NEW, R_DPORT, R_ID, R_MARK
from tests.conftest import CLI, run_cttop, sh
from tests.oracle import assert_same_tuple, nat_kind, parse_line

pytestmark = pytest.mark.kernel

NETLINK_NETFILTER = "12"
WAIT = 30.0  # seconds a step may take on a loaded machine before the test gives up (never asserted on)

INJECT = [
    ["-p", "tcp", "-s", "10.5.0.1", "-d", "10.5.0.2", "--sport", "3", "--dport", "80", "--state", "SYN_SENT",
     "-t", "300", "-m", "17"],
    ["-p", "udp", "-s", "10.5.0.1", "-d", "10.5.0.2", "--sport", "1", "--dport", "53", "-t", "300", "-w", "7",
     "--dst-nat", "10.99.0.2"],
    ["-p", "icmp", "-s", "10.5.0.1", "-d", "10.5.0.3", "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "77",
     "-t", "300"],
    ["-p", "tcp", "-s", "fd00::1", "-d", "fd00::2", "--sport", "5", "--dport", "443", "--state", "ESTABLISHED",
     "-u", "SEEN_REPLY,ASSURED", "-t", "300"],
    ["-p", "gre", "-s", "10.6.0.1", "-d", "10.6.0.2", "--srckey", "5", "--dstkey", "6", "-t", "300"],
]
UPDATE = [
    ["-p", "tcp", "-s", "10.5.0.1", "-d", "10.5.0.2", "--sport", "3", "--dport", "80", "-m", "18"],
    # (conntrack 1.4.7 cannot update an entry in a zone: ENOENT)
    ["-p", "icmp", "-s", "10.5.0.1", "-d", "10.5.0.3", "--icmp-type", "8", "--icmp-code", "0", "--icmp-id", "77",
     "-m", "5"],
]
DELETE = [
    ["-p", "tcp", "-s", "10.5.0.1"], ["-p", "udp", "-s", "10.5.0.1", "-w", "7"], ["-p", "icmp", "-s", "10.5.0.1"],
    ["-f", "ipv6", "-p", "tcp", "-s", "fd00::1"], ["-p", "gre", "-s", "10.6.0.1"],
]
KINDS = ["new"] * len(INJECT) + ["update"] * len(UPDATE) + ["destroy"] * len(DELETE)


class Stream:
    """A process whose stdout lines are collected by a thread as they come."""

    def __init__(self, ns: str | None, *cmd: str, merge: bool = False) -> None:
        """``merge``: stderr's lines among stdout's, in the order they were written."""
        prefix = ["ip", "netns", "exec", ns] if ns else []
        self.proc = subprocess.Popen([*prefix, *cmd], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT if merge else subprocess.PIPE)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_lines(self, n: int) -> None:
        deadline = time.monotonic() + WAIT
        while len(self.lines) < n and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)

    def wait_for(self, pred: Callable[[str], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not any(pred(ln) for ln in self.lines[-100:]) and time.monotonic() < deadline \
                and self.proc.poll() is None:
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(WAIT)
        return self.proc.returncode, self.proc.stderr.read() if self.proc.stderr is not None else ""


def cttop_events(ns: str, *args: str) -> Stream:
    return Stream(None, *CLI, "events", "--netns", ns, *args)


def subscribed(ns: str) -> list[dict[str, int]]:
    """The namespace's netfilter netlink sockets that joined a multicast group, as the kernel lists them."""
    out = []
    for line in sh("cat", "/proc/net/netlink", netns=ns).splitlines()[1:]:
        f = line.split()
        if f[1] == NETLINK_NETFILTER and int(f[3], 16):
            out.append({"groups": int(f[3], 16), "rmem": int(f[4]), "drops": int(f[8]), "inode": int(f[9])})
    return out


def wait_subscribed(ns: str, n: int) -> list[dict[str, int]]:
    deadline = time.monotonic() + WAIT
    while len(subs := subscribed(ns)) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {subs} subscribed in {ns}")
        time.sleep(0.05)
    return subs


def sentinel_after_the_queue(ns: str, inode: int, mine: Stream) -> None:
    """Insert a last entry once cttop has emptied its socket's queue (else that event is dropped too), and
    wait for it: when its event is printed, everything queued before it was read."""
    deadline = time.monotonic() + WAIT
    while next(s["rmem"] for s in subscribed(ns) if s["inode"] == inode) and time.monotonic() < deadline:
        time.sleep(0.05)
    sh("conntrack", "-I", *SENTINEL, netns=ns)
    mine.wait_for(lambda ln: '"mark":4242' in ln)


@pytest.fixture
def ns(netns: str) -> str:
    return netns


@pytest.fixture(params=[True, False], ids=["compiled-receive", "python-receive"])
def receive(request: pytest.FixtureRequest) -> bool:
    """Events received in batches by the compiled accelerator, or one datagram a call in Python (its fallback)."""
    return bool(request.param)


def subscribe(ns: str, compiled: bool, rcvbuf: int = 16 << 20) -> EventSocket:
    sock = EventSocket(NetnsSpec(name=ns), rcvbuf=rcvbuf)
    sock.native = native.BUILT if compiled else None
    return sock


def parse_event(line: str) -> tuple[float, str, dict[str, Any]]:
    """One `conntrack -E -o extended,id,timestamp` line: "[secs.usecs]  [KIND] <a conntrack -L line> id=N …".

    Whatever follows the id (``[USERSPACE] portid=…``: who made the change) is not part of the entry.
    """
    stamp, _, rest = line.partition("]")
    kind, _, entry = rest.strip().partition(" ")
    tok = entry.split()
    last = max(i for i, t in enumerate(tok) if t.startswith("id="))
    return float(stamp.lstrip("[")), kind.strip("[]").lower(), parse_line(" ".join(tok[:last + 1]))


def assert_same_event(o: dict[str, Any], m: dict[str, Any]) -> None:
    """One event's flow as conntrack printed it and as cttop gave it: every field both show."""
    assert m["id"] == o["id"]
    assert m["timeout"] == o["timeout"]  # the same message: the same value, to the second
    assert_same_tuple(o, m)
    # conntrack leaves out mark=0 in some DESTROY lines
    assert m["mark"] == int(o["extra"].get("mark", 0))
    assert ("ASSURED" in m["status"]) == ("ASSURED" in o["flags"])
    assert ("SEEN_REPLY" not in m["status"]) == ("UNREPLIED" in o["flags"])
    assert m["nat"] == nat_kind(o), (o, m)


def run_changes(ns: str) -> tuple[float, float]:
    """Inject, update and delete the entries; the wall-clock span it took."""
    t0 = time.time()
    for args in INJECT:
        sh("conntrack", "-I", *args, netns=ns)
    for args in UPDATE:
        sh("conntrack", "-U", *args, netns=ns)
    for args in DELETE:
        sh("conntrack", "-D", *args, netns=ns)
    return t0, time.time()


def test_events_json_equal_conntrack_e_event_by_event(ns: str) -> None:
    theirs = Stream(ns, "conntrack", "-E", "-o", "extended,id,timestamp")
    mine = cttop_events(ns, "--json")
    try:
        subs = wait_subscribed(ns, 2)
        assert [s["groups"] for s in subs] == [0b111, 0b111]  # NEW, UPDATE and DESTROY, both
        t0, t1 = run_changes(ns)
        theirs.wait_lines(len(KINDS))
        mine.wait_lines(len(KINDS))
    finally:
        code, err = mine.stop()
        theirs.stop()
    assert code == 0 and "Traceback" not in err, err  # Ctrl-C ends it cleanly...
    oracle = [parse_event(ln) for ln in theirs.lines if ln.startswith("[")]
    got = [json.loads(ln) for ln in mine.lines]
    assert [k for _, k, _ in oracle] == KINDS  # the changes really made these events, in this order
    assert [m["event"] for m in got] == KINDS
    assert err.strip() == f"cttop: {len(KINDS)} events have been shown.", err  # ...with a count, as conntrack's
    for (stamp, _, o), m in zip(oracle, got):
        assert_same_event(o, m)
        assert t0 <= m["time"] <= time.time() and t0 <= stamp
    assert [m["time"] for m in got] == sorted(m["time"] for m in got)
    # the mix is really there: NAT, a zone, a mark change, ICMP, GRE, IPv6
    assert {m["proto"] for m in got} == {"tcp", "udp", "icmp", "gre"} and {m["family"] for m in got} == {"ipv4", "ipv6"}
    assert any(m["nat"] == "dnat" and m["zone"] == 7 for m in got)
    assert [m["mark"] for m in got if m["event"] == "update"] == [18, 5]
    assert t1 >= t0


def test_event_mask_joins_what_conntrack_e_joins(ns: str) -> None:
    theirs = Stream(ns, "conntrack", "-E", "-e", "NEW,DESTROY", "-o", "extended,id,timestamp")
    mine = cttop_events(ns, "--json", "--event", "new,destroy")
    want = [k for k in KINDS if k != "update"]
    try:
        subs = wait_subscribed(ns, 2)
        # bit N-1 is group N: NEW (1) and DESTROY (3), not UPDATE (2), for both
        assert [s["groups"] for s in subs] == [0b101, 0b101]
        run_changes(ns)
        theirs.wait_lines(len(want))
        mine.wait_lines(len(want))
    finally:
        mine.stop()
        theirs.stop()
    oracle = [parse_event(ln) for ln in theirs.lines if ln.startswith("[")]
    got = [json.loads(ln) for ln in mine.lines]
    assert [k for _, k, _ in oracle] == [m["event"] for m in got] == want
    for (_, _, o), m in zip(oracle, got):
        assert_same_event(o, m)


def test_filter_and_text_stream(ns: str) -> None:
    mine = cttop_events(ns, "--filter", "udp or ipv6")
    try:
        wait_subscribed(ns, 1)
        run_changes(ns)
        mine.wait_lines(4)  # udp: new, destroy; ipv6: new, destroy
    finally:
        code, err = mine.stop(signal.SIGTERM)
    assert code == 0 and "Traceback" not in err, err
    kinds = [ln.split()[1] for ln in mine.lines]
    assert kinds == ["[NEW]", "[NEW]", "[DESTROY]", "[DESTROY]"], mine.lines
    assert all(("udp" in ln and "10.5.0.1:1 → 10.5.0.2:53" in ln) or "fd00::1:5 → fd00::2:443" in ln
               for ln in mine.lines), mine.lines


def test_closed_pipe_ends_the_stream_without_a_traceback(ns: str) -> None:
    # `cttop events | head -n 2`: head exits after two events; cttop must end too, quietly, even though the
    # table then goes quiet (no further write would ever fail)
    cmd = shlex.join([*CLI, "events", "--netns", ns]) + " | head -n 2"
    shell = subprocess.Popen(["bash", "-o", "pipefail", "-c", cmd], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_subscribed(ns, 1)
        for args in INJECT[:3]:
            sh("conntrack", "-I", *args, netns=ns)
        out, err = shell.communicate(timeout=WAIT)
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    assert len(out.splitlines()) == 2 and "Traceback" not in err and "Broken pipe" not in err, err
    assert shell.returncode == 0  # with pipefail: cttop's own status was 0 too
    assert subscribed(ns) == []  # and it is gone: no socket left listening


SENTINEL = ["-p", "tcp", "-s", "10.9.0.1", "-d", "10.9.0.2", "--sport", "1", "--dport", "1", "--state", "SYN_SENT",
            "-t", "60", "-m", "4242"]
FLOOD = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in range(1, int(sys.argv[1]) + 1):
    try:
        s.sendto(b"x", ("127.0.0.1", port))
    except OSError:  # a refused or dropped datagram still made its entry
        pass
"""


def test_lost_events_are_said_on_stderr(ns: str) -> None:
    mine = cttop_events(ns, "--json")
    try:
        sub = wait_subscribed(ns, 1)[0]
        os.kill(mine.proc.pid, signal.SIGSTOP)  # a reader too slow: the kernel's queue for it overflows
        try:
            for _ in range(2):  # each round: 40k NEW (real UDP flows), then 40k DESTROY (the flush)
                sh(sys.executable, "-c", FLOOD, "40000", netns=ns)
                sh("conntrack", "-F", netns=ns, check=False)
            drops = next(s["drops"] for s in subscribed(ns) if s["inode"] == sub["inode"])
        finally:
            os.kill(mine.proc.pid, signal.SIGCONT)
        assert drops > 0  # the kernel says it dropped events for this socket
        sentinel_after_the_queue(ns, sub["inode"], mine)
    finally:
        code, err = mine.stop()
    assert code == 0 and "Traceback" not in err, err
    assert "cttop: events lost here: the kernel's queue for cttop overflowed (ENOBUFS)" in err
    assert ", with " in err.splitlines()[-1] and "losses." in err.splitlines()[-1]
    got = [json.loads(ln) for ln in mine.lines]
    assert 0 < len(got) < 160_000 and got[-1]["mark"] == 4242  # some came through, not all, and the last
    assert all(m["event"] in ("new", "destroy") for m in got)
    shown = int(err.splitlines()[-1].split()[1])
    assert shown == len(got)


def test_either_receive_reads_every_event_the_kernel_sent(ns: str, receive: bool) -> None:
    """Many batches' worth queued (the compiled receive takes EVENT_BATCH a call): each NEW and DESTROY once,
    in the kernel's order, none bad, and the kernel's drop counter still at nought."""
    n = 3 * EVENT_BATCH + 100
    sock = subscribe(ns, receive)
    try:
        with Ctnetlink(NetnsSpec(name=ns)) as ct:
            assert ct.create(synthetic_rows(n)) == n
            ids = sorted(r[R_ID] for r in ct.dump())
        sh("conntrack", "-F", netns=ns)
        batch = sock.read(WAIT)
        while len(batch.events) < 2 * n and (more := sock.read(WAIT).events):
            batch.events += more
        kinds = [k for k, _ in batch.events]
        assert kinds == [EV_NEW] * n + [EV_DESTROY] * n and not batch.bad and not batch.lost
        assert sorted(r[R_ID] for _, r in batch.events[:n]) == ids == sorted(r[R_ID] for _, r in batch.events[n:])
        assert subscribed(ns)[0]["drops"] == 0
    finally:
        sock.close()


def test_a_loss_is_marked_after_the_events_queued_ahead_of_it(ns: str, receive: bool) -> None:
    # The kernel reports ENOBUFS before the events it had queued ahead of the drop, and drops every event
    # until that queue is read empty: the gap is after them, however the error came first.
    sock = subscribe(ns, receive, rcvbuf=64 << 10)
    try:
        sh(sys.executable, "-c", FLOOD, "3000", netns=ns)  # 3,000 NEW events, none read: far over 64 KiB
        drops = subscribed(ns)[0]["drops"]
        batch = sock.read()
        ports = [row[R_DPORT] for _, row in batch.events]
        assert 0 < len(ports) < 3000 and drops == 3000 - len(ports)  # what came through and what the kernel dropped
        assert ports == list(range(1, len(ports) + 1))  # the first ones, in order: the queue held them
        assert batch.lost and batch.lost_at == [len(ports)]  # so the loss is after them
        sh("conntrack", "-I", *SENTINEL, netns=ns)
        after = sock.read(WAIT)
        assert not after.lost and [row[R_MARK] for _, row in after.events] == [4242]
    finally:
        sock.close()


def test_a_loss_read_in_pieces_is_still_after_the_queued_events(ns: str, receive: bool) -> None:
    # One event a read: each read stops with the queue maybe just run dry, and the gap must still be placed
    # there, by the next read, at once (not after waiting for an event that would then come before it).
    sock = subscribe(ns, receive, rcvbuf=64 << 10)
    try:
        sh(sys.executable, "-c", FLOOD, "3000", netns=ns)
        ports: list[int] = []
        lost_at: list[int] = []
        for _ in range(3000):
            batch = sock.read(0.5, max_events=1)
            lost_at += [len(ports) + i for i in batch.lost_at]
            ports += [row[R_DPORT] for _, row in batch.events]
            if batch.lost:
                break
        assert 0 < len(ports) < 3000 and ports == list(range(1, len(ports) + 1)) and lost_at == [len(ports)]
    finally:
        sock.close()


def test_the_loss_line_is_where_the_events_were_lost(ns: str) -> None:
    # stdout and stderr in one pipe: the loss is said after the events that came before it, not ahead of them
    mine = Stream(None, *CLI, "events", "--netns", ns, "--json", merge=True)
    try:
        sub = wait_subscribed(ns, 1)[0]
        os.kill(mine.proc.pid, signal.SIGSTOP)
        try:
            sh(sys.executable, "-c", FLOOD, "40000", netns=ns)
            sh("conntrack", "-F", netns=ns, check=False)
            drops = next(s["drops"] for s in subscribed(ns) if s["inode"] == sub["inode"])
        finally:
            os.kill(mine.proc.pid, signal.SIGCONT)
        assert drops > 0
        sentinel_after_the_queue(ns, sub["inode"], mine)
    finally:
        code, _ = mine.stop()
    assert code == 0
    lost = [i for i, ln in enumerate(mine.lines) if ln.startswith("cttop: events lost here")]
    events = [i for i, ln in enumerate(mine.lines) if ln.startswith("{")]
    # one gap (the reader was stopped once), after every event queued ahead of it, and only the sentinel after
    assert len(lost) == 1 and 0 < lost[0] == len(events) - 1, mine.lines[:3]
    assert '"mark":4242' in mine.lines[events[-1]] and events[-1] > lost[0]


HOLDER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(600)
"""


def test_each_event_names_the_flows_owner_as_snapshot_flows_does(ns: str) -> None:
    holder = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", HOLDER], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())
        # the kernel's word on who holds that port: ss, inside the namespace (users:(("python3",pid=N,fd=3)))
        users = sh("ss", "-Hunap", f"sport = :{port}", netns=ns)
        name, pid = re.search(r'users:\(\("([^"]+)",pid=(\d+),', users).groups()  # type: ignore[union-attr]
        held = ["-p", "udp", "-s", "127.0.0.1", "-d", "127.0.0.1", "--sport", str(port), "--dport", "9"]
        nobodys = ["-p", "udp", "-s", "10.5.0.1", "-d", "10.5.0.2", "--sport", "1", "--dport", "53"]
        mine = cttop_events(ns, "--json")
        try:
            wait_subscribed(ns, 1)
            for flow in (held, nobodys):
                sh("conntrack", "-I", *flow, "-t", "300", netns=ns)
            mine.wait_lines(2)
        finally:
            mine.stop()
        r = run_cttop("snapshot", "--netns", ns, "--flows", "--json")
    finally:
        holder.kill()
        holder.wait()
    got = [json.loads(ln) for ln in mine.lines]
    assert [(m["sport"], m["owner"]["pid"], m["owner"]["process"]) for m in got] == \
        [(port, int(pid), name), (1, None, None)] and int(pid) == holder.pid
    flows = {f["id"]: f for f in json.loads(r.stdout)["flows"]}
    for m in got:  # the same fields as snapshot --flows, the owner with them
        assert set(m) - {"event", "time"} == set(flows[m["id"]]) and m["owner"] == flows[m["id"]]["owner"]

"""The screen agrees with the kernel, checked against the kernel itself (`conntrack -C/-L/-S`):

- flows that end or begin without an event leave or join the collector's table within one refresh;
- lost events (ENOBUFS) resync, and the table converges to the kernel's;
- timeouts count down between dumps; counters no dump has shown yet read "?", not "-";
- without root (uid 65534), the pressure counters still come from /proc/net/stat/nf_conntrack in
  `snapshot --json`, `doctor` and the TUI's pressure panel.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pytest

import cttop
from benchmarks.common import synthetic_rows
from cttop.kernel import nlconst as C
from cttop.kernel import procstat
from cttop.kernel.ctnetlink import Ctnetlink, open_socket
from cttop.kernel.events import EventBatch
from cttop.kernel.netns import NetnsSpec, run_in
from cttop.lab.fill import fill
from cttop.live import dump_schedule
from cttop.live.collector import Collector
from cttop.live.frame import LIVE, Frame
from cttop.model import EV_UPDATE, NO_PSTATE, R_PROTO, R_PSTATE, R_SPORT, Row
from cttop.sources.live import LiveSource
from cttop.table.store import FlowTable
from cttop.ui.app import CttopApp
from tests.conftest import delete_netns, make_netns, sh
from tests.oracle import conntrack_count, conntrack_stats
from tests.ui.helpers import screen_text, wait_for, wait_live

if TYPE_CHECKING:
    from cttop.kernel._ctdecode import Counts
    from cttop.kernel.decode import Holder

T = TypeVar("T")

pytestmark = pytest.mark.kernel

SRC, DST = "10.77.0.1", "10.77.1.1"
CAP = 30.0  # seconds before giving up on a state that should come within a refresh or two
ENTRIES = 20_000  # dumped in ~120 chunks
SLOW_CHUNKS = 40
NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def insert(ns: str, sports: range | list[int], dport: int, timeout: int = 300) -> None:
    """UDP entries made with `conntrack -I`, as an admin or a tool would."""
    for sp in sports:
        sh("conntrack", "-I", "-s", SRC, "-d", DST, "-p", "udp", "--sport", str(sp), "--dport", str(dport),
           "-t", str(timeout), netns=ns)


def kernel_sports(ns: str) -> set[int]:
    text = sh("conntrack", "-L", "-p", "udp", netns=ns)
    return {int(m.group(1)) for m in re.finditer(r"^udp .*? sport=(\d+) ", text, re.MULTILINE)}


class Recorder:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.cv = threading.Condition()

    def frame(self, f: Frame) -> None:
        with self.cv:
            self.frames.append(f)
            self.cv.notify_all()

    def until(self, cond: Callable[[], bool], what: str) -> None:
        with self.cv:
            if not self.cv.wait_for(cond, CAP):
                raise AssertionError(f"gave up waiting for {what}; last frame: {self.frames[-1:]}")

    def after(self, t: float) -> list[Frame]:
        """Frames built after ``t`` (their count was read after it, too)."""
        with self.cv:
            return [f for f in self.frames if f.time > t]


def converges(rec: Recorder, c: Collector, ns: str, change: Callable[[], None]) -> list[Frame]:
    """Make ``change`` in the kernel; wait until the table is the kernel's again; return the frames since.

    Asserts what "within one refresh" means: at most one frame built after the change shows a table
    that differs from the kernel's count, and the table then holds exactly the kernel's flows.
    The change comes three frames after the last, so it is not in the DRIFT_DUTY spacing that follows
    a dump (a table that keeps drifting is resynced no more often than that).
    """
    with rec.cv:
        seen = len(rec.frames)
    rec.until(lambda: len(rec.frames) >= seen + 3, "three frames")
    change()
    done = time.time()
    want = conntrack_count(ns)
    rec.until(lambda: any(f.flows == want for f in rec.after(done)), f"the table at the kernel's {want}")
    after = rec.after(done)
    first_right = next(i for i, f in enumerate(after) if f.flows == want)
    assert first_right <= 1, [(f.seq, f.flows, f.count, f.note) for f in after]
    assert after[first_right].count == want
    assert {r[R_SPORT] for r in c.table.rows()} == kernel_sports(ns)
    return after


def test_flows_that_come_and_go_without_events_are_reconciled_within_one_refresh(netns: str) -> None:
    # Events off in this namespace: entries made now carry no event cache, their NEW and DESTROY never come.
    sh("sysctl", "-qw", "net.netfilter.nf_conntrack_events=0", netns=netns)
    insert(netns, range(1000, 1060), 5300)
    insert(netns, range(2000, 2040), 5301)
    rec = Recorder()
    c = Collector(LiveSource(NetnsSpec(name=netns)), on_frame=rec.frame, on_index=lambda _: None, interval=0.3)
    c.start()
    try:
        rec.until(lambda: bool(rec.frames) and rec.frames[-1].phase == LIVE and rec.frames[-1].flows == 100, "live")
        dumped = rec.frames[-1].refreshed
        gone = converges(rec, c, netns, lambda: sh("conntrack", "-D", "-p", "udp", "--dport", "5301", netns=netns))
        assert gone[-1].flows == 60 and gone[-1].refreshed != dumped  # a resync did it: no event could
        dumped = gone[-1].refreshed
        new = converges(rec, c, netns, lambda: insert(netns, range(3000, 3030), 5302))
        assert new[-1].flows == 90 and new[-1].refreshed != dumped
        assert new[-1].lost == 0  # nothing was lost: these flows never had events
    finally:
        c.stop()


TCP_PAIRS = 5
# A server and TCP_PAIRS clients on loopback; each client sends a byte whenever a line comes on stdin.
TCP_TALK = """
import socket, sys
srv = socket.create_server(("127.0.0.1", 7007))
pairs = [(socket.create_connection(("127.0.0.1", 7007)), srv.accept()[0]) for _ in range(int(sys.argv[1]))]
print("READY", flush=True)
for _ in sys.stdin:
    for c, a in pairs:
        c.send(b"x"); a.recv(1); a.send(b"y"); c.recv(1)
    print("SENT", flush=True)
"""


def test_tcp_flows_tracked_again_after_a_flush_keep_their_state_through_updates(netns: str) -> None:
    """After a flush, established TCP connections are picked up again mid-stream; the UPDATE that marks each
    ASSURED carries no TCP state (the kernel sends it only when it moves). The table the kernel's events build
    must say ESTABLISHED, as `conntrack -L` does, not fall back to the status ("ASSURED") until a dump."""
    talk = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", TCP_TALK, str(TCP_PAIRS)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert talk.stdin is not None and talk.stdout is not None
    src = LiveSource(NetnsSpec(name=netns))
    try:
        assert talk.stdout.readline().strip() == "READY"
        src.subscribe()
        sh("conntrack", "-F", netns=netns)
        table = FlowTable()
        table.extend(src.dump())
        for _ in range(3):  # picked up again, replied to, then ASSURED: each a step the kernel reports
            talk.stdin.write("\n")
            talk.stdin.flush()
            assert talk.stdout.readline().strip() == "SENT"
        kernel = [ln for ln in sh("conntrack", "-L", "-p", "tcp", netns=netns).splitlines() if "dport=7007" in ln]
        assert len(kernel) == TCP_PAIRS and all(" ESTABLISHED " in ln and "[ASSURED]" in ln for ln in kernel), kernel
        events: list[tuple[int, Row]] = []
        while (batch := src.events(0.3)).events:
            events += batch.events
        assert not batch.lost
        table.apply_events(events)
        # The case itself: updates that left the state out came (else this proves nothing).
        assert any(k == EV_UPDATE and r[R_PSTATE] == NO_PSTATE for k, r in events if r[R_PROTO] == 6), events
        assert dict(table.agg.by_state) == {"tcp:ESTABLISHED": TCP_PAIRS}, dict(table.agg.by_state)
    finally:
        src.close()
        talk.kill()
        talk.wait()


class Gated(LiveSource):
    """The kernel, with a gate on the event reads: while closed the collector falls behind, as a busy one would."""

    def __init__(self, spec: NetnsSpec) -> None:
        super().__init__(spec)
        self.open = threading.Event()
        self.open.set()

    def events(self, timeout: float) -> EventBatch:
        self.open.wait()
        return super().events(timeout)


def test_destroys_lost_to_an_overflowing_event_socket_are_resynced(netns: str) -> None:
    src = Gated(NetnsSpec(name=netns))
    src.subscribe()
    assert src.ev is not None
    # A tiny receive buffer: a handful of events fill it (the collector grows it on each loss).
    src.ev.rcvbuf = 4096
    src.ev.sock.setsockopt(socket.SOL_SOCKET, C.SO_RCVBUFFORCE, src.ev.rcvbuf)
    rec = Recorder()
    c = Collector(src, on_frame=rec.frame, on_index=lambda _: None, interval=0.3)
    c.start()
    try:
        rec.until(lambda: bool(rec.frames) and rec.frames[-1].phase == LIVE, "live")
        insert(netns, range(1000, 1060), 5300)
        insert(netns, range(2000, 2040), 5301)
        rec.until(lambda: rec.frames[-1].flows == 100, "the inserted flows")
        lost = rec.frames[-1].lost

        def delete_unread() -> None:
            src.open.clear()
            time.sleep(0.5)  # let the collector block on its next read
            sh("conntrack", "-D", "-p", "udp", "--dport", "5301", netns=netns)  # 40 DESTROYs: the buffer overflows
            src.open.set()

        after = converges(rec, c, netns, delete_unread)
        assert after[-1].flows == 60 and after[-1].lost > lost
    finally:
        src.open.set()
        c.stop()


class SlowDump(LiveSource):
    """The kernel, its dump read slowly once asked to (as a big table's is, under load)."""

    def __init__(self, spec: NetnsSpec) -> None:
        super().__init__(spec)
        self.slow = threading.Event()
        self.dumping = threading.Event()

    def dump_chunks(self) -> Iterator[list[Row]]:
        return self._slowed(super().dump_chunks())

    def dump_held(self, counts: Counts, hold: Holder) -> Iterator[None]:
        return self._slowed(super().dump_held(counts, hold))  # (the collector's way where the walk holds flows)

    def _slowed(self, chunks: Iterator[T]) -> Iterator[T]:
        slow = self.slow.is_set()
        if slow:
            self.dumping.set()
        try:
            for i, chunk in enumerate(chunks):
                if slow and i < SLOW_CHUNKS:
                    time.sleep(0.05)  # 2 s in all: ten frame intervals
                yield chunk
        finally:
            self.dumping.clear()
            self.slow.clear()


def test_frames_during_a_long_dump_show_the_events_that_keep_coming(netns: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with Ctnetlink(NetnsSpec(name=netns)) as ct:
        assert ct.create(synthetic_rows(ENTRIES)) == ENTRIES
    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 0.5)  # periodic dumps soon, one of them slow...
    monkeypatch.setattr(dump_schedule, "REFRESH_REST_MAX", 0.5)  # ...though the table rests (accounting off)
    src = SlowDump(NetnsSpec(name=netns))
    during: list[Frame] = []
    rec = Recorder()

    def on_frame(f: Frame) -> None:
        if src.dumping.is_set():
            during.append(f)
        rec.frame(f)

    c = Collector(src, on_frame=on_frame, on_index=lambda _: None, interval=0.2)
    c.start()
    try:
        rec.until(lambda: bool(rec.frames) and rec.frames[-1].phase == LIVE, "live")
        src.slow.set()
        assert src.dumping.wait(CAP), "no slow dump came"
        insert(netns, range(1000, 1030), 5300)  # while it is read: their NEW events
        n = len(during)
        with rec.cv:
            assert rec.cv.wait_for(lambda: len(during) > n and during[-1].flows == ENTRIES + 30, CAP), \
                [(f.seq, f.flows) for f in during]
        rec.until(lambda: not src.dumping.is_set() and rec.frames[-1].flows == ENTRIES + 30, "the dump's end")
        assert conntrack_count(netns) == len(c.table) == ENTRIES + 30
        assert {1000 + i for i in range(30)} <= {r[R_SPORT] for r in c.table.rows()}  # in the fresh table too
        assert rec.frames[-1].lost == 0
    finally:
        c.stop()


def _parse_duration(text: str) -> int:
    """fmt.duration's text back to seconds (42s, 4m58)."""
    if m := re.fullmatch(r"(\d+)s", text):
        return int(m.group(1))
    if m := re.fullmatch(r"(\d+)m(\d\d)", text):
        return int(m.group(1)) * 60 + int(m.group(2))
    raise AssertionError(f"not a short duration: {text!r}")


def _flow_line(app: CttopApp, sport: int) -> list[str]:
    lines = [line for line in screen_text(app).splitlines() if f"{SRC}:{sport} " in line]
    assert len(lines) == 1, screen_text(app)
    return lines[0].split()


@dataclass(frozen=True)
class Shown:
    frame: Frame
    timeout: int  # what the screen shows
    kernel: int  # what `conntrack -L` says just after


def test_timeouts_count_down_between_dumps(netns: str) -> None:
    insert(netns, [4000], 5300, timeout=300)

    async def run() -> tuple[Shown, Shown]:
        app = CttopApp(LiveSource(NetnsSpec(name=netns)), interval=0.25)
        async with app.run_test(size=(90, 30)) as pilot:  # the line ends: timeout, bytes
            await wait_live(pilot, app)

            async def shown() -> Shown:
                await pilot.pause()
                assert app.shown_frame is not None
                frame, line = app.shown_frame, _flow_line(app, 4000)
                kernel = int(sh("conntrack", "-L", "-p", "udp", "--sport", "4000", netns=netns).split()[2])
                return Shown(frame, _parse_duration(line[-2]), kernel)  # timeout, then bytes, end the line

            first = await shown()
            await wait_for(pilot, lambda: app.shown_frame is not None
                           and int(app.shown_frame.time) >= int(first.frame.time) + 3, "three seconds of frames")
            return first, await shown()

    first, second = asyncio.run(run())
    assert second.frame.refreshed == first.frame.refreshed  # no dump in between: the countdown did it
    assert second.timeout < first.timeout
    for s in (first, second):  # the kernel's timeout, to the second either side of the reading
        assert abs(s.timeout - s.kernel) <= 2, (s.timeout, s.kernel)


def test_counters_not_read_yet_show_a_question_mark_until_a_dump(netns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sh("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=0", netns=netns)
    insert(netns, [4100], 5300)  # begun with accounting off: it has no counters, ever
    sh("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1", netns=netns)
    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 3.0)  # a periodic dump soon after the flow comes

    async def run() -> tuple[list[str], list[str], list[str]]:
        app = CttopApp(LiveSource(NetnsSpec(name=netns)), interval=0.25)
        async with app.run_test(size=(90, 30)) as pilot:  # the line ends: timeout, bytes
            await wait_live(pilot, app)
            frame = app.shown_frame
            assert frame is not None
            dumped = frame.refreshed
            await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.refreshed != dumped,
                           "a periodic dump")  # the next one is a whole REFRESH_MIN away
            dumped = app.shown_frame.refreshed
            insert(netns, [4200], 5300)  # a NEW event, which carries no counters
            await wait_for(pilot, lambda: f"{SRC}:4200 " in screen_text(app), "the new flow")
            fresh = _flow_line(app, 4200)
            assert app.shown_frame.refreshed == dumped, "a dump came first: the event's row was not shown"
            await wait_for(pilot, lambda: app.shown_frame is not None and app.shown_frame.refreshed != dumped,
                           "the next dump")
            await pilot.pause(0.5)
            return fresh, _flow_line(app, 4200), _flow_line(app, 4100)

    fresh, dumped_line, unaccounted = asyncio.run(run())
    assert fresh[-1] == "?"  # bytes: not known yet
    assert dumped_line[-1] == "0"  # the dump brought them
    assert unaccounted[-1] == "-"  # accounting was off when it began: never any


# --- without root ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nobody:
    """How to run cttop's Python as uid 65534."""

    python: str
    env: dict[str, str]

    def run(self, ns: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *NOBODY, self.python, *args], capture_output=True,
                              text=True, env=os.environ | self.env, stdin=subprocess.DEVNULL, timeout=timeout,
                              check=False)


PROBE = "import cttop.cli, cttop.ui.app"


def _nobody_runs(argv: list[str], env: dict[str, str] | None = None) -> bool:
    return subprocess.run([*NOBODY, *argv], capture_output=True, env=os.environ | (env or {}),
                          check=False).returncode == 0


def _interpreters() -> list[str]:
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    found = [getattr(sys, "_base_executable", ""), shutil.which(ver) or "", f"/usr/bin/{ver}", f"/usr/local/bin/{ver}"]
    return [p for p in dict.fromkeys(found) if p and os.access(p, os.X_OK)]


@pytest.fixture(scope="module")
def nobody() -> Iterator[Nobody]:
    """This interpreter if nobody may run it; else a readable copy of cttop and its site-packages."""
    if _nobody_runs([sys.executable, "-c", PROBE]):
        yield Nobody(sys.executable, {})
        return
    # The venv sits under a directory nobody may not enter (e.g. /root, mode 700, in CI).
    python = next((p for p in _interpreters() if _nobody_runs([p, "-c", "pass"])), None)
    if python is None:
        pytest.skip(f"no Python {sys.version_info.major}.{sys.version_info.minor} that uid 65534 may run "
                    f"(tried {', '.join(_interpreters())}): cannot test cttop without root")
    tmp = tempfile.mkdtemp(prefix="cttop-nobody-")
    try:
        os.chmod(tmp, 0o755)
        site = os.path.join(tmp, "site")
        for path in dict.fromkeys((sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])):
            shutil.copytree(path, site, dirs_exist_ok=True)
        shutil.copytree(os.path.dirname(cttop.__file__), os.path.join(tmp, "src", "cttop"))
        subprocess.run(["chmod", "-R", "a+rX", tmp], check=True)
        env = {"PYTHONPATH": f"{tmp}/src{os.pathsep}{site}"}
        assert _nobody_runs([python, "-c", PROBE], env), f"{python} cannot import the copy in {tmp}"
        yield Nobody(python, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


CLI = ("-c", "import sys; sys.argv[0] = 'cttop'; from cttop.cli import main; main()")


def _echo_replies(n: int) -> None:
    """ICMP echo replies nobody asked for: conntrack counts each as invalid (a reply cannot start a flow)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    with s:
        for i in range(n):
            msg = struct.pack("!BBHHH", 0, 0, 0, 0x77, i) + b"cttop!"  # type 0 (echo reply), an even length
            total = sum(struct.unpack(f"!{len(msg) // 2}H", msg))
            total = (total >> 16) + (total & 0xFFFF)
            csum = ~(total + (total >> 16)) & 0xFFFF
            s.sendto(msg[:2] + struct.pack("!H", csum) + msg[4:], ("127.0.0.1", 0))


def _new_flows(n: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        for i in range(n):
            try:
                s.sendto(b"x", (f"127.0.9.{i % 250 + 1}", 3000 + i))
            except OSError:
                pass  # the table is full: the kernel dropped it, which is what we want counted


@pytest.fixture(scope="module")
def full() -> Iterator[str]:
    """A namespace with 7 unsolicited echo replies (invalid rises), then its table at nf_conntrack_max with
    ASSURED entries early_drop may not evict, then 100 new flows (dropped: drop rises)."""
    with open("/proc/sys/net/netfilter/nf_conntrack_max") as f:
        maximum = int(f.read())
    if not 0 < maximum <= 1 << 20:
        pytest.skip(f"nf_conntrack_max is {maximum}: filling a namespace to it is not bounded here")
    ns = make_netns()
    try:
        spec = NetnsSpec(name=ns)
        run_in(spec, lambda: _echo_replies(7))  # first: once the table is full they are dropped instead
        with run_in(spec, lambda: open_socket(1 << 20)) as sock:
            made = fill(sock, maximum, 7000, 600)
        assert made == {0: maximum}, made
        run_in(spec, lambda: _new_flows(100))
        yield ns
    finally:
        delete_netns(ns)


def _same_as_conntrack_s(stats: dict[str, int], ns: str) -> None:
    kernel = conntrack_stats(ns)
    assert kernel["drop"] >= 100 and kernel["invalid"] >= 7, kernel  # the fixture's doing: not all zeros
    for name, value in kernel.items():
        assert stats[name] == value, (name, stats[name], value)


def test_as_nobody_snapshot_json_keeps_the_pressure_counters(full: str, nobody: Nobody) -> None:
    r = nobody.run(full, *CLI, "snapshot", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "cttop: flows need CAP_NET_ADMIN (run with sudo)"
    snap = json.loads(r.stdout)
    assert snap["stats_from"] == "/proc/net/stat/nf_conntrack" and snap["stats"] is not None
    _same_as_conntrack_s(snap["stats"], full)
    assert snap["count"] == conntrack_count(full) == snap["max"]
    assert snap["listed"] is None  # flows still need the capability
    # The same file read as root says the same.
    assert procstat.read(NetnsSpec(name=full)).as_cpu_totals() == snap["stats"]


def test_as_nobody_doctor_judges_drops_from_proc(full: str, nobody: Nobody) -> None:
    state = tempfile.mkdtemp(prefix="cttop-nobody-state-")  # nobody reads it (empty), never writes it
    try:
        os.chmod(state, 0o755)
        r = nobody.run(full, *CLI, "doctor", "--json", "--seconds", "0.5", "--state-dir", state)
    finally:
        shutil.rmtree(state)
    doc = json.loads(r.stdout)
    [drops] = [f for f in doc["findings"] if f["code"] == "drops"]
    kernel = conntrack_stats(full)
    assert drops["data"]["drop_total"] == kernel["drop"] >= 100
    assert drops["data"]["early_drop_total"] == kernel["early_drop"]
    assert any(f["code"] == "permission" for f in doc["findings"])  # flows were still not read


TUI = r"""
import asyncio, json
from cttop.sources.live import LiveSource
from cttop.ui.app import CttopApp
from cttop.ui.flows import FlowsPanel
from cttop.ui.pressure import PressurePanel

async def main():
    app = CttopApp(LiveSource(), interval=0.25)
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(600):
            f = app.shown_frame
            if f is not None and f.pressure and all(p.rate is not None for p in f.pressure):
                break
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        panel = app.main.query_one(PressurePanel)
        print(json.dumps({"phase": f.phase, "title": str(panel.border_title), "text": panel.render().plain,
                          "totals": {p.name: p.total for p in f.pressure},
                          "flows": str(app.main.query_one(FlowsPanel).border_title)}))

asyncio.run(main())
"""


def test_as_nobody_the_pressure_panel_shows_the_counters_from_proc(full: str, nobody: Nobody) -> None:
    r = nobody.run(full, "-c", TUI)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    kernel = conntrack_stats(full)
    assert out["phase"] == "limited" and out["title"] == "Pressure /s · from /proc"
    assert out["totals"]["drop"] == kernel["drop"] >= 100
    for name, total in out["totals"].items():
        assert total == kernel.get(name, 0), name
    # On screen: the drop line with its total; no rate is "?" any more after two readings.
    assert re.search(rf"drop\s+0/s\s+total {kernel['drop']}\b", out["text"]), out["text"]
    assert "?" not in out["text"]
    assert out["flows"].startswith("Flows ? ")  # which flows, and so how many, only CAP_NET_ADMIN may see

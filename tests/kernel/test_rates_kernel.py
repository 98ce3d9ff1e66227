"""Bytes and packets a second, with accounting on: per group (`snapshot --seconds`) and per flow (the live
view's rate columns, and its sort by them), on a namespace where one flow carries a known rate.

A sender inside the namespace sends 1,000-byte UDP datagrams on a clock, 20 a second, to a socket of its
own; the kernel counts each as 1,028 bytes (IP and UDP headers in), which conntrack -L confirms. Every
packet being the same size, bytes/s over packets/s must be exactly that size, whatever the timing; the
packets a second must be the sender's rate within a tolerance. A flow that carries nothing has no rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.live.collector import Collector
from cttop.live.frame import LIVE, Frame
from cttop.live.index import FlowIndex, ViewSpec
from cttop.sources.live import LiveSource
from cttop.table.packing import flow_key
from tests.conftest import delete_netns, make_netns, run_cttop, sh
from tests.oracle import conntrack_list

pytestmark = pytest.mark.kernel

RATE = 20.0  # datagrams a second
PAYLOAD = 1000
TOLERANCE = 0.35  # a loaded two-core machine delays the sender's wake-ups; the figures must not care
IDLE = ["-p", "udp", "-s", "10.20.0.3", "-d", "10.0.0.9", "--dport", "53", "-t", "600"]  # 20 of them, each --sport

SENDER = f"""
import socket, time
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 9999))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
print("START", flush=True)
i = 0
while True:
    time.sleep(max(0.0, start + i / {RATE} - time.monotonic()))
    tx.sendto(b"x" * {PAYLOAD}, ("127.0.0.1", 9999))
    i += 1
"""


@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns()
    sender = None
    try:
        sh("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1", netns=name)
        for port in range(5, 25):
            sh("conntrack", "-I", *IDLE, "--sport", str(port), netns=name)
        sender = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-c", SENDER],
                                  stdout=subprocess.PIPE, text=True)
        assert sender.stdout is not None and sender.stdout.readline().strip() == "START"
        yield name
    finally:
        if sender is not None:
            sender.kill()
            sender.wait()
        delete_netns(name)


def packet_size(ns: str) -> tuple[int, int]:
    """The sending flow's conntrack id and bytes per packet, as the kernel counts them."""
    (f,) = [f for f in conntrack_list(ns) if f["orig"].get("dport") == "9999"]
    assert int(f["orig"]["bytes"]) == int(f["orig"]["packets"]) * (PAYLOAD + 28) and f["reply"]["packets"] == "0"
    return f["id"], PAYLOAD + 28


def within(got: float, want: float) -> bool:
    return abs(got - want) <= TOLERANCE * want


def test_snapshot_gives_each_groups_bytes_and_packets_a_second(ns: str) -> None:
    r = run_cttop("snapshot", "--netns", ns, "--seconds", "3", "--json")
    assert r.returncode == 0, r.stderr
    _, size = packet_size(ns)
    rows = {row["key"]: row for row in json.loads(r.stdout)["top"]["rows"]}
    sending, idle = rows["127.0.0.1"], rows["10.20.0.3"]
    # (the JSON rounds each to 3 decimals)
    assert sending["bytes_rate"] == pytest.approx(sending["packets_rate"] * size, abs=size * 1e-3)
    assert within(sending["packets_rate"], RATE), sending
    assert (idle["bytes_rate"], idle["packets_rate"]) == (0.0, 0.0) and idle["bytes"] == 0


def test_the_live_view_gives_each_flows_bytes_and_packets_a_second(ns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cttop.live import dump_schedule

    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 1.0)  # dumps every second, not every ten
    frames: list[Frame] = []
    indexes: list[FlowIndex] = []
    by_rate: list[FlowIndex] = []
    c = Collector(LiveSource(NetnsSpec(name=ns)), on_frame=frames.append, on_index=indexes.append, interval=0.25)
    c.set_view(ViewSpec(sort="bytes-rate"))  # the flow list sorted by its B/s column
    c.start()
    try:
        deadline = time.monotonic() + 30
        while not (frames and frames[-1].phase == LIVE and frames[-1].flow_rates) and time.monotonic() < deadline:
            time.sleep(0.05)
        last = frames[-1]
        for view in (ViewSpec(sort="packets-rate"), ViewSpec(sort="packets-rate", reverse=True)):
            c.set_view(view)  # indexed at once, with the rates now known
            while not (indexes and indexes[-1].spec == view) and time.monotonic() < deadline:
                time.sleep(0.05)
            by_rate.append(indexes[-1])
    finally:
        c.stop()
    with Ctnetlink(NetnsSpec(name=ns)) as ct:
        keys = {flow_key(row) & 0xFFFFFFFF: flow_key(row) for row in ct.dump()}
    ct_id, size = packet_size(ns)
    assert set(last.flow_rates) <= set(keys.values())  # rates only for flows the kernel holds
    moving = {k: v for k, v in last.flow_rates.items() if v.packets}
    assert list(moving) == [keys[ct_id]]  # the sending flow, and not the idle one
    rate = moving[keys[ct_id]]
    assert rate.bytes == pytest.approx(rate.packets * size) and within(rate.packets, RATE), rate
    # sorted by packets a second, the moving flow leads the list, the idle ones after it; reversed, it ends it
    desc, asc = by_rate
    assert int.from_bytes(desc.records[0][:4]) == ct_id == int.from_bytes(asc.records[-1][:4])
    assert len(desc.records) == len(asc.records) == len(keys)


FLOOD = f"""
import socket, time
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 9998))
start = time.monotonic()
print("START", flush=True)
i = 0
while True:
    time.sleep(max(0.0, start + i / {RATE} - time.monotonic()))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.bind(("127.0.0.2", 20000 + i))  # a port of its own (not the kernel's pick, which may repeat): a new flow
    tx.sendto(b"x" * {PAYLOAD}, ("127.0.0.1", 9998))
    tx.close()
    i += 1
"""


def test_a_groups_rate_counts_the_flows_it_opened_between_the_dumps(ns: str) -> None:
    """A flood is new flows: each carries what it carried since it began, inside the interval (the rate once
    counted only flows held at both dumps, and a source opening 20 flows a second read 0 p/s)."""
    flood = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", FLOOD], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert flood.stdout is not None and flood.stdout.readline().strip() == "START"
        r = run_cttop("snapshot", "--netns", ns, "--seconds", "3", "--json")
        assert r.returncode == 0, r.stderr
        rows = {row["key"]: row for row in json.loads(r.stdout)["top"]["rows"]}
        flooding = rows["127.0.0.2"]
        assert flooding["bytes_rate"] == pytest.approx(flooding["packets_rate"] * (PAYLOAD + 28), abs=PAYLOAD)
        assert within(flooding["packets_rate"], RATE), flooding
        kernel = [f for f in conntrack_list(ns) if f["orig"].get("src") == "127.0.0.2"]
        assert len(kernel) >= 3 * RATE * (1 - TOLERANCE) and all(f["orig"]["packets"] == "1" for f in kernel)
    finally:
        flood.kill()
        flood.wait()


def test_the_live_views_group_rate_counts_the_flood_its_events_brought_in(ns: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """In the live view a flood's flows arrive by NEW events, which carry no counters, before the next dump
    shows them: each is measured from zero there too (the heaviest panel read `udp/9999 96,077 100% 0B 0p/s`
    for a storm of 3,000 new flows a second)."""
    from cttop.live import dump_schedule

    monkeypatch.setattr(dump_schedule, "REFRESH_MIN", 1.0)  # dumps every second, not every ten
    flood = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", FLOOD], stdout=subprocess.PIPE,
                             text=True)
    frames: list[Frame] = []
    c = Collector(LiveSource(NetnsSpec(name=ns)), on_frame=frames.append, on_index=lambda _i: None, interval=0.25)
    try:
        assert flood.stdout is not None and flood.stdout.readline().strip() == "START"
        c.start()
        deadline = time.monotonic() + 30
        # Three dumps with rates after the first, events applied between them.
        while len({f.refreshed for f in frames if f.phase == LIVE and f.flow_rates}) < 3:
            assert time.monotonic() < deadline, "no rates in 30 s"
            time.sleep(0.25)
        last = frames[-1]
    finally:
        c.stop()
        flood.kill()
        flood.wait()
    assert last.new_rate is not None and last.new_rate > 0  # the flows came by events, not only by dumps
    rows = {r.key: r for r in last.top}
    flooding = next(r for k, r in rows.items() if k == bytes([127, 0, 0, 2]))
    assert flooding.packets_rate is not None and within(flooding.packets_rate, RATE), flooding
    assert flooding.bytes_rate == pytest.approx(flooding.packets_rate * (PAYLOAD + 28), rel=0.01)

"""Delete and flush against the kernel: entries injected with `conntrack -I`, checked with `conntrack -L`."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cttop.actions.errors import ActionError
from cttop.actions.flows import DeleteFlows, FlushFlows
from cttop.actions.journal import Journal
from cttop.actions.plan import set_read_only
from cttop.actions.undo import undo_plan
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.model import R_SRC, addr_text
from tests.conftest import delete_netns, make_netns, sh

pytestmark = pytest.mark.kernel

FLOWS = [  # proto, src, dst, sport, dport
    ("udp", "10.0.0.1", "10.1.0.1", 1001, 53),
    ("udp", "10.0.0.2", "10.1.0.1", 1002, 53),
    ("udp", "10.0.0.3", "10.1.0.1", 1003, 53),
    ("udp", "10.0.0.2", "10.1.0.2", 1004, 123),
    ("tcp", "10.0.0.1", "10.1.0.1", 1005, 80),
    ("tcp", "10.0.0.2", "10.1.0.1", 1006, 443),
]
LINE = re.compile(r"^(\w+)\s.*?src=(\S+) dst=(\S+) sport=\d+ dport=(\d+)")
Flow = tuple[str, str, str, int]


@pytest.fixture(autouse=True)
def writable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    set_read_only(False)
    yield
    set_read_only(False)  # a test that switched it on must not leave it on for the rest of the run


def inject(netns: str) -> None:
    for proto, src, dst, sport, dport in FLOWS:
        extra = ["--state", "ESTABLISHED"] if proto == "tcp" else []
        sh("conntrack", "-I", "-p", proto, "-s", src, "-d", dst, "--sport", str(sport), "--dport", str(dport),
           "-t", "300", *extra, netns=netns)


def _flows(listing: str) -> set[Flow]:
    """(proto, orig src, orig dst, orig dport) of every entry in a conntrack -L listing."""
    return {(m.group(1), m.group(2), m.group(3), int(m.group(4)))
            for m in map(LINE.match, listing.splitlines()) if m}


def table(netns: str) -> set[Flow]:
    return _flows(sh("conntrack", "-L", netns=netns))


def all_flows() -> set[Flow]:
    return {(p, s, d, dp) for p, s, d, _, dp in FLOWS}


@pytest.mark.parametrize("expr, method", [
    ("udp dport 53", "kernel-filter"),
    ("udp and src 10.0.0.2", "kernel-filter"),
    ("udp and host 10.0.0.2", "delete"),
    ("dport 53-123", "delete"),
    ("tcp dport 443 or udp dport 123", "delete"),
])
def test_filtered_flush_removes_exactly_the_matching_flows(netns: str, tmp_path: Path, expr: str,
                                                          method: str) -> None:
    inject(netns)
    assert table(netns) == all_flows()
    j = Journal(str(tmp_path))
    plan = FlushFlows(NetnsSpec(name=netns), expr, journal=j)
    assert plan.method == method
    expected_gone = {f for f in all_flows() if _matches(expr, f)}
    assert plan.count == len(expected_gone) > 0
    res = plan.apply()
    assert table(netns) == all_flows() - expected_gone
    assert res.count == len(expected_gone)
    [rec] = j.records()
    assert rec.kind == "flush" and not rec.undoable and rec.after["removed"] == len(expected_gone)
    with pytest.raises(ActionError, match="cannot be undone"):
        undo_plan(NetnsSpec(name=netns), rec.id, j)


def _matches(expr: str, f: Flow) -> bool:
    """The filter's meaning written out by hand, independent of cttop's compiler."""
    proto, src, dst, dport = f
    return {
        "udp dport 53": proto == "udp" and dport == 53,
        "udp and src 10.0.0.2": proto == "udp" and src == "10.0.0.2",
        "udp and host 10.0.0.2": proto == "udp" and "10.0.0.2" in (src, dst),
        "dport 53-123": 53 <= dport <= 123,
        "tcp dport 443 or udp dport 123": (proto, dport) in (("tcp", 443), ("udp", 123)),
    }[expr]


V6_FLOWS = [  # proto, src, dst, sport, dport
    ("udp", "fd00::1", "fd00:1::1", 2001, 53),
    ("udp", "fd00::2", "fd00:1::1", 2002, 123),
]


def inject_both_families(netns: str) -> None:
    inject(netns)
    for proto, src, dst, sport, dport in V6_FLOWS:
        sh("conntrack", "-I", "-p", proto, "-s", src, "-d", dst, "--sport", str(sport), "--dport", str(dport),
           "-t", "300", netns=netns)


def both_tables(netns: str) -> set[Flow]:
    # Older conntrack-tools list IPv4 only unless told -f ipv6.
    return table(netns) | _flows(sh("conntrack", "-L", "-f", "ipv6", netns=netns))


@pytest.mark.parametrize("expr", ["udp dport 53", "udp"])
def test_shown_commands_do_exactly_what_the_flush_does_in_both_families(netns: str, tmp_path: Path,
                                                                       expr: str) -> None:
    inject_both_families(netns)
    everything = both_tables(netns)
    gone = {f for f in everything if f[0] == "udp" and (expr == "udp" or f[3] == 53)}
    assert {f[1] for f in gone} >= {"10.0.0.1", "fd00::1"}  # an IPv4 and an IPv6 flow match
    plan = FlushFlows(NetnsSpec(name=netns), expr, journal=Journal(str(tmp_path)))
    shown = plan.commands()
    copy = make_netns()  # the same situation again, for the shown commands to act on
    try:
        inject_both_families(copy)
        for line in shown:
            argv = shlex.split(line)
            assert argv[:4] == ["ip", "netns", "exec", netns] and argv[4:6] == ["conntrack", "-D"], line
            sh(*argv[4:], netns=copy, check=False)  # conntrack exits 1 when a command finds nothing
        by_hand = both_tables(copy)
    finally:
        delete_netns(copy)
    assert plan.apply().count == len(gone)
    assert both_tables(netns) == by_hand == everything - gone


def test_kernel_filtered_flush_counts_only_the_matching_flows_it_removed(netns: str, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy table: while the kernel flushes, unrelated flows expire and a matching one arrives."""
    inject(netns)
    real_flush = Ctnetlink.flush
    busy: list[str] = []

    def flush_on_a_busy_table(self: Ctnetlink, *args: Any, **kwargs: Any) -> None:
        real_flush(self, *args, **kwargs)
        if not busy:
            busy.append("done")
            sh("conntrack", "-D", "-p", "tcp", "-s", "10.0.0.1", netns=netns)
            sh("conntrack", "-D", "-p", "udp", "--dport", "123", netns=netns)
            sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.9", "-d", "10.1.0.1", "--sport", "1009",
               "--dport", "53", "-t", "300", netns=netns)

    monkeypatch.setattr(Ctnetlink, "flush", flush_on_a_busy_table)
    j = Journal(str(tmp_path))
    plan = FlushFlows(NetnsSpec(name=netns), "udp dport 53", journal=j)
    assert plan.method == "kernel-filter" and plan.count == 3
    res = plan.apply()
    assert busy and table(netns) == {("udp", "10.0.0.9", "10.1.0.1", 53), ("tcp", "10.0.0.2", "10.1.0.1", 443)}
    assert res.count == 3  # the table count fell by 4 (6 -> 2): 3 flushed, 2 expired, 1 arrived
    [rec] = j.records()
    assert rec.after["removed"] == 3 and "flushed 3 flows matching 'udp dport 53'" in rec.summary


def test_whole_table_flush_warns_with_the_count(netns: str, tmp_path: Path) -> None:
    inject(netns)
    plan = FlushFlows(NetnsSpec(name=netns), "", journal=Journal(str(tmp_path)))
    assert plan.method == "flush" and plan.count == len(FLOWS)
    [w] = plan.warnings()
    assert f"ALL {len(FLOWS)} flows" in w and "NAT'd sessions will break" in w
    assert plan.commands() == [f"ip netns exec {netns} conntrack -F"]
    assert plan.apply().count == len(FLOWS)
    assert table(netns) == set()


def test_delete_selected_rows(netns: str, tmp_path: Path) -> None:
    inject(netns)
    spec = NetnsSpec(name=netns)
    with Ctnetlink(spec) as ct:
        rows = [r for r in ct.dump() if addr_text(r[R_SRC]) == "10.0.0.1"]
    assert len(rows) == 2
    plan = DeleteFlows(spec, rows, journal=Journal(str(tmp_path)))
    assert not plan.undoable and len(plan.commands()) == 2
    res = plan.apply()
    assert res.count == 2
    assert table(netns) == {f for f in all_flows() if f[1] != "10.0.0.1"}
    # Deleting the same rows again: the kernel no longer has them, and says so by count.
    assert DeleteFlows(spec, rows, journal=Journal(str(tmp_path))).apply().count == 0


def test_read_only_refuses_flush(netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inject(netns)
    monkeypatch.setenv("CTTOP_READ_ONLY", "1")
    with pytest.raises(ActionError, match="read-only"):
        FlushFlows(NetnsSpec(name=netns), None, journal=Journal(str(tmp_path))).apply()
    assert table(netns) == all_flows()


@pytest.mark.parametrize("expr", ["mark 0/0", "ip or ip6", "timeout >= 0", "net 0.0.0.0/0 or net ::/0", "udp or tcp"])
def test_a_filter_matching_every_flow_warns_as_a_whole_flush_does(netns: str, tmp_path: Path, expr: str) -> None:
    """`mark 0/0` deletes the table as surely as no filter: the ALL warning and the whole-table headline, not
    only 'cannot be undone'."""
    from cttop.ui.apply import headline

    inject(netns)
    plan = FlushFlows(NetnsSpec(name=netns), expr, journal=Journal(str(tmp_path)))
    assert not plan.whole and plan.everything and plan.count == len(FLOWS)
    [warning] = plan.warnings()
    assert warning.startswith(f"'{expr}' matches every flow there is now, so this deletes ALL {len(FLOWS)} flows")
    assert headline(plan).startswith("This deletes the whole table: the filter matches every flow")
    part = FlushFlows(NetnsSpec(name=netns), "udp", journal=Journal(str(tmp_path)))
    assert not part.everything and not any("ALL" in w for w in part.warnings())
    assert table(netns) == all_flows()  # only plans: nothing deleted

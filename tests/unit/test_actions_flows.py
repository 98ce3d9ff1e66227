"""Flush/delete plumbing that needs no kernel: conntrack -D equivalents, the kernel-version gate, families."""

from __future__ import annotations

import socket
import sys
import tracemalloc

import pytest

from cttop.actions.flows import _families, conntrack_args, kernel_flushes_with_filter, matching_rows, row_command
from cttop.filter import KernelFilter, compile_filter
from cttop.kernel.netns import NetnsSpec
from cttop.model import AF_INET, AF_INET6, NO_PSTATE, ROW_LEN


def args(text: str) -> list[list[str]] | None:
    return conntrack_args(compile_filter(text).ast)


def both(*opts: str) -> list[list[str]]:
    """conntrack-tools only looks at IPv4 unless told: a family-free filter is one command per family."""
    return [[*opts, "-f", "ipv4"], [*opts, "-f", "ipv6"]]


@pytest.mark.parametrize("text, expected", [
    ("udp dport 53", both("-p", "udp", "--dport", "53")),
    ("src 10.0.0.1 and tcp", [["-s", "10.0.0.1", "-p", "tcp"]]),
    ("dst net 10.1.0.0/16", [["-d", "10.1.0.0/16"]]),
    ("udp and src fd00::1", [["-p", "udp", "-s", "fd00::1"]]),
    ("ipv6", [["-f", "ipv6"]]),
    ("ipv4 and udp dport 53", [["-f", "ipv4", "-p", "udp", "--dport", "53"]]),
    ("icmp", [["-p", "icmp", "-f", "ipv4"]]),
    ("icmpv6", [["-p", "icmpv6", "-f", "ipv6"]]),
    ("mark 5/0xff", both("-m", "5/0xff")),
    ("zone 3", both("-w", "3")),
    ("tcp and state established", both("-p", "tcp", "--state", "ESTABLISHED")),
    ("assured", both("-u", "ASSURED")),
])
def test_conntrack_equivalents(text: str, expected: list[list[str]]) -> None:
    assert args(text) == expected


@pytest.mark.parametrize("text", ["host 10.0.0.1", "udp port 53", "udp dport 1-2", "tcp or udp", "not tcp",
                                  "timeout < 5", "unreplied", "dport 53", "state established",
                                  "ipv4 and src fd00::1"])
def test_no_conntrack_equivalent(text: str) -> None:
    assert args(text) is None


def test_kernel_filtered_flush_gate() -> None:
    assert kernel_flushes_with_filter("6.18.44-fc-v669")
    assert kernel_flushes_with_filter("6.12.0")
    assert not kernel_flushes_with_filter("6.11.9-arch1")
    assert not kernel_flushes_with_filter("5.15.0-91-generic")
    assert not kernel_flushes_with_filter("weird")


def test_tuple_filters_go_once_per_family() -> None:
    assert _families(None) == [socket.AF_UNSPEC]
    assert _families(KernelFilter(proto=17, dport=53)) == [AF_INET, AF_INET6]
    assert _families(KernelFilter(family=AF_INET6, proto=17)) == [AF_INET6]
    assert _families(KernelFilter(mark=1, mark_mask=1)) == [socket.AF_UNSPEC]


def make_row(proto: int, sport: int, dport: int, zone: int = 0) -> tuple[object, ...]:
    r: list[object] = [0] * ROW_LEN
    r[1], r[2], r[3] = AF_INET, proto, NO_PSTATE
    r[5], r[6] = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")
    r[7], r[8], r[15] = sport, dport, zone
    return tuple(r)


def test_row_commands() -> None:
    ns = NetnsSpec(name="web1")
    assert row_command(ns, make_row(17, 1000, 53)) == \
        "ip netns exec web1 conntrack -D -p udp -s 10.0.0.1 -d 10.0.0.2 --sport 1000 --dport 53"
    assert row_command(NetnsSpec(), make_row(1, 77, 8 << 8, zone=2)) == \
        "conntrack -D -p icmp -s 10.0.0.1 -d 10.0.0.2 --icmp-type 8 --icmp-code 0 --icmp-id 77 -w 2"
    assert row_command(NetnsSpec(pid=42), make_row(47, 0, 0)).startswith("nsenter -t 42 -n conntrack -D -p gre")


def test_matching_rows_holds_the_matches_not_the_table() -> None:
    """A filter the kernel cannot narrow (a TCP state) picks from each dump chunk as it comes: the peak is the
    matches and a chunk, not the whole table as rows."""
    chunks, per_chunk = 200, 500

    def chunk(c: int) -> list[tuple[object, ...]]:
        return [(c * per_chunk + i, AF_INET, 6, 3 if i == 0 else 7, 0, bytes([10, 0, c % 256, i % 256]),
                 b"\xc0\x00\x02\x01", 1024 + i, 443) + (None,) * (ROW_LEN - 9) for i in range(per_chunk)]

    class Dump:
        def dump_chunks(self, family: int, kfilter: object) -> object:
            return (chunk(c) for c in range(chunks))  # made as read, as the kernel's arrive

    flt = compile_filter("state ESTABLISHED")
    assert flt.kernel is None or not flt.kernel.exact  # Python picks: the case that held everything
    one = chunk(0)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        got = matching_rows(Dump(), flt)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert [r[0] for r in got] == [c * per_chunk for c in range(chunks)]
    whole = chunks * sum(map(_size, one))
    assert peak < whole / 10, (peak, whole)


def _size(row: tuple[object, ...]) -> int:
    return sys.getsizeof(row) + sum(sys.getsizeof(v) for v in row if v is not None)

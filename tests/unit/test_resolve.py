"""The reverse-DNS resolver: queries on its own fixed ports, a TTL cache, a bounded queue, never a blocking call."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.live import resolve
from cttop.live.resolve import Resolver, nameservers, parse_answer, ptr_name, query
from cttop.table.packing import pack
from tests.dns_server import FakeDNS
from tests.ui.fixed_source import row, v4, v6

NAMES = {"192.0.2.7": "web.example.", "2001:db8::7": "v6.example."}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def wait_name(r: Resolver, addr: bytes) -> str | None:
    """Ask until the answer is cached (the first asks only queue the lookup)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if (name := r.name(addr)) is not None or addr not in r._pending:
            return name if name is not None else r.name(addr)
        time.sleep(0.01)
    raise AssertionError("no answer")


@pytest.fixture
def dns() -> Iterator[FakeDNS]:
    server = FakeDNS(NAMES)
    try:
        yield server
    finally:
        server.close()


def test_ptr_names() -> None:
    assert ptr_name(v4("192.0.2.7")) == "7.2.0.192.in-addr.arpa"
    assert ptr_name(v6("2001:db8::7")).startswith("7.0.0.0.") and ptr_name(v6("2001:db8::7")).endswith(
        ".8.b.d.0.1.0.0.2.ip6.arpa")


def test_names_come_from_the_cache_and_each_address_is_asked_once(dns: FakeDNS) -> None:
    clock = Clock()
    r = Resolver(["127.0.0.1"], port=dns.port, clock=clock)
    try:
        assert r.name(v4("192.0.2.7")) is None  # not known yet: queued, never waited for
        assert wait_name(r, v4("192.0.2.7")) == "web.example"
        assert wait_name(r, v6("2001:db8::7")) == "v6.example"
        assert wait_name(r, v4("192.0.2.99")) is None  # NXDOMAIN: no name, remembered as such
        for _ in range(5):
            r.name(v4("192.0.2.7"))
            r.name(v4("192.0.2.99"))
        assert dns.queries["7.2.0.192.in-addr.arpa"] == 1 and dns.queries["99.2.0.192.in-addr.arpa"] == 1
        clock.t += 121  # past the answer's TTL: asked again
        assert r.name(v4("192.0.2.7")) is None
        assert wait_name(r, v4("192.0.2.7")) == "web.example"
        assert dns.queries["7.2.0.192.in-addr.arpa"] == 2
        # every query came from one of the resolver's own ports
        assert {port for _host, port in dns.clients} <= r.own_ports
    finally:
        r.close()


def test_the_queue_is_bounded_and_name_never_waits_for_an_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolve, "QUEUE_MAX", 4)
    gate = threading.Event()
    held = FakeDNS(NAMES, gate=gate)  # answers nothing until the gate opens
    r = Resolver(["127.0.0.1"], port=held.port, workers=1)
    answers: list[str | None] = []
    try:
        asker = threading.Thread(target=lambda: answers.extend(r.name(bytes([10, 0, 0, i])) for i in range(50)))
        asker.start()
        asker.join(10)  # a liveness guard: a name() that waited for the held answer would never finish
        assert not asker.is_alive() and answers == [None] * 50 and not gate.is_set()
        assert r.dropped >= 50 - 4 - 1  # the queue holds four, the worker one
    finally:
        gate.set()
        r.close()
        held.close()


def test_own_lookups_are_recognised_by_port_server_and_protocol(dns: FakeDNS) -> None:
    r = Resolver(["127.0.0.1", "::1"], port=dns.port)
    try:
        mine = next(iter(r.own_ports))
        server = v4("127.0.0.1")
        own = row(1, 17, v4("127.0.0.1"), server, mine, dns.port)
        assert r.own_flow(own) and r.own_record(pack(own))
        own6 = row(2, 17, v6("::1"), v6("::1"), mine, dns.port)
        assert r.own_flow(own6) and r.own_record(pack(own6))
        others = [row(3, 17, v4("127.0.0.1"), server, 40000, dns.port),  # another process's query
                  row(4, 6, v4("127.0.0.1"), server, mine, dns.port),  # TCP
                  row(5, 17, v4("127.0.0.1"), v4("192.0.2.1"), mine, dns.port),  # not a nameserver
                  row(6, 17, v4("127.0.0.1"), server, mine, 5353)]  # not the DNS port
        for o in others:
            assert not r.own_flow(o) and not r.own_record(pack(o)), o
    finally:
        r.close()


def test_answers_that_are_not_ours_or_broken_are_ignored() -> None:
    q = query(7, "7.2.0.192.in-addr.arpa")
    assert parse_answer(q, 7) is None  # a query, not a response
    reply = bytearray(q)
    struct.pack_into(">H", reply, 2, 0x8180)
    assert parse_answer(bytes(reply), 8) is None  # another id
    assert parse_answer(bytes(reply), 7) == (None, resolve.NEGATIVE_TTL)  # no answer records
    loop = bytes(reply[:4]) + struct.pack(">HHHH", 1, 1, 0, 0) + b"\xc0\x0c" + b"\0\x0c\0\x01"
    with pytest.raises(ValueError):
        parse_answer(loop, 7)  # a name pointing at itself


def test_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver bogus\n"
                    "nameserver 10.0.0.3\nnameserver 10.0.0.4\n")
    assert nameservers(str(conf)) == ["10.0.0.2", "fe80::1", "10.0.0.3"]
    conf.write_text("# none\n")
    assert nameservers(str(conf)) == ["127.0.0.1"]
    assert socket.inet_pton(socket.AF_INET, nameservers(str(tmp_path / "missing"))[0])

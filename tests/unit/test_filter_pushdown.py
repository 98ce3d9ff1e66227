"""KernelFilter: what the kernel can filter itself, and that it never loses a flow."""

from __future__ import annotations

import pytest

from cttop.filter import KernelFilter, compile_filter
from cttop.model import AF_INET, AF_INET6, IPS_ASSURED, IPS_CONFIRMED, IPS_SEEN_REPLY
from tests.unit.test_filter_support import ip, kernel_reference, row

REPLIED = IPS_CONFIRMED | IPS_SEEN_REPLY


@pytest.mark.parametrize("text, expected", [
    ("tcp", KernelFilter(proto=6, exact=True)),
    ("ipv6", KernelFilter(family=AF_INET6, exact=True)),
    ("udp dport 53", KernelFilter(proto=17, dport=53, exact=True)),
    ("dport 53 and udp", KernelFilter(proto=17, dport=53, exact=True)),
    ("tcp sport 1234 dport 80", KernelFilter(proto=6, sport=1234, dport=80, exact=True)),
    ("src 10.0.0.1", KernelFilter(family=AF_INET, src=ip("10.0.0.1"), exact=True)),
    ("ipv4 dst 10.0.0.2 udp", KernelFilter(family=AF_INET, dst=ip("10.0.0.2"), proto=17, exact=True)),
    ("mark 0x10/0xf0", KernelFilter(mark=0x10, mark_mask=0xF0, exact=True)),
    ("mark 5", KernelFilter(mark=5, mark_mask=0xFFFFFFFF, exact=True)),
    ("zone 7", KernelFilter(zone=7, exact=True)),
    ("assured", KernelFilter(status=IPS_ASSURED, status_mask=IPS_ASSURED, exact=True)),
    ("not assured", KernelFilter(status=0, status_mask=IPS_ASSURED, exact=True)),
    ("unreplied", KernelFilter(status=0, status_mask=IPS_SEEN_REPLY, exact=True)),
    ("replied assured", KernelFilter(status=IPS_SEEN_REPLY | IPS_ASSURED,
                                     status_mask=IPS_SEEN_REPLY | IPS_ASSURED, exact=True)),
    ("!replied", KernelFilter(status=0, status_mask=IPS_SEEN_REPLY, exact=True)),
    # Partly pushed: the rest is left to the predicate.
    ("udp and bytes > 1M", KernelFilter(proto=17, exact=False)),
    ("tcp port 80 and not src net 10.0.0.0/8", KernelFilter(proto=6, exact=False)),
    ("mark 1 and (tcp or udp)", KernelFilter(mark=1, mark_mask=0xFFFFFFFF, exact=False)),
    ("sctp dport 5", KernelFilter(proto=132, exact=False)),  # kernel compares tcp/udp ports only
    ("udp dport 53-54", KernelFilter(proto=17, exact=False)),
    ("src net 10.0.0.0/8 zone 1", KernelFilter(zone=1, exact=False)),
    ("src fd00::1 ipv6", KernelFilter(family=AF_INET6, exact=False)),  # kernel inverts IPv6 matches
    ("tcp udp", KernelFilter(proto=6, exact=False)),  # conflict: the second stays in Python
    ("ipv6 src 10.0.0.1", KernelFilter(family=AF_INET6, exact=False)),
    ("replied unreplied", KernelFilter(status=IPS_SEEN_REPLY, status_mask=IPS_SEEN_REPLY, exact=False)),
])
def test_pushdown(text: str, expected: KernelFilter) -> None:
    assert compile_filter(text).kernel == expected


@pytest.mark.parametrize("text", [
    "", "tcp or udp", "not tcp", "host 10.0.0.1", "port 53", "dport 53", "src net 10.0.0.0/8",
    "src fd00::1", "state established", "snat", "nat", "bytes > 5", "timeout < 10",
    "not (tcp and dport 53)", "(udp or tcp) dport 53",
])
def test_not_pushdownable(text: str) -> None:
    assert compile_filter(text).kernel is None


def test_exact_pushdown_agrees_with_the_predicate_on_sample_rows() -> None:
    rows = [row(proto=p, dport=d, sport=s, mark=m, zone=z, status=st, src=src)
            for p in (6, 17, 132) for d in (53, 80) for s in (1234, 5) for m in (0, 0x15, 0x25)
            for z in (0, 7) for st in (IPS_CONFIRMED, REPLIED, REPLIED | IPS_ASSURED)
            for src in ("10.0.0.1", "10.0.0.9")]
    for text in ("udp dport 53", "tcp sport 1234 dport 80", "mark 0x10/0xf0 zone 7", "not assured replied",
                 "src 10.0.0.1 udp", "zone 0 unreplied"):
        f = compile_filter(text)
        assert f.kernel is not None and f.kernel.exact
        hits = [r for r in rows if f.match(r)]
        assert hits, text  # the sample must exercise the filter
        assert [r for r in rows if kernel_reference(f.kernel, r)] == hits, text

"""table.rates: new flows a second over counted spans, and bytes/packets a second between two dumps."""

from __future__ import annotations

from cttop.model import Row
from cttop.table.aggregates import Aggregates
from cttop.table.groups import GROUPS
from cttop.table.packing import UNREAD, flow_key, pack
from cttop.table.rates import FlowRate, NewFlowRate, flow_rates, group_rates, top_new, with_rates
from tests.ui.fixed_source import row, v4, v6

A, B, C = v4("10.0.0.1"), v4("10.0.0.2"), v6("fd00::1")
DST = v4("192.0.2.1")
SRC_KEY = GROUPS["src"].key


def flows(*specs: tuple[int, bytes, tuple[int, int, int, int] | None], flags: int = 0) -> dict[int, bytes]:
    """A table of packed records by key: (id, source, counters as opkts, obytes, rpkts, rbytes)."""
    out = {}
    for fid, src, counters in specs:
        r: Row = row(fid, 17, src, v6("fd00::2") if len(src) == 16 else DST, 1000 + fid, 53, counters=counters)
        out[flow_key(r)] = pack(r, 0, flags)
    return out


def test_new_flow_rate_is_counts_over_the_time_the_spans_cover() -> None:
    nf = NewFlowRate(SRC_KEY, window=10)
    assert nf.rates() == {} and nf.seconds == 0
    nf.start(100.0)
    nf.add(101.0, [row(1, 17, A, DST, 1, 53), row(2, 17, A, DST, 2, 53), row(3, 17, B, DST, 3, 53)])
    nf.add(102.0, [])  # a quiet second lowers the rate
    nf.add(104.0, [row(4, 17, A, DST, 4, 53)])
    assert nf.seconds == 4.0
    assert nf.rates() == {A: 3 / 4, B: 1 / 4}
    # spans ending before the window are dropped: only 104 → 120 and what ended after 110 stay
    nf.add(120.0, [row(5, 17, B, DST, 5, 53)])
    assert nf.seconds == 16.0 and nf.rates() == {B: 1 / 16}


def test_a_first_add_without_start_opens_the_first_span() -> None:
    nf = NewFlowRate(SRC_KEY)
    nf.add(5.0, [row(1, 17, A, DST, 1, 53)])  # when counting began is unknown: not a span
    assert nf.rates() == {}
    nf.add(7.0, [row(2, 17, A, DST, 2, 53), row(3, 17, A, DST, 3, 53)])
    assert nf.rates() == {A: 1.0}


def test_flow_rates_between_two_dumps() -> None:
    old = flows((1, A, (10, 1000, 10, 5000)), (2, A, (1, 100, 0, 0)), (3, B, (5, 500, 5, 500)), (4, C, None),
                (6, C, (1, 80, 1, 80)))
    new = flows((1, A, (30, 3000, 20, 10000)),  # moved 30 packets, 7000 bytes
                (2, A, (1, 100, 0, 0)),  # idle
                (3, B, (0, 0, 0, 0)),  # zeroed (conntrack -L -z): no rate, not a negative one
                (4, C, None),  # no accounting
                (5, B, (2, 200, 2, 200)),  # begun since: all it moved, it moved in these 2 s
                (7, B, (0, 0, 0, 0)),  # begun since, nothing moved yet
                (6, C, (3, 1080, 3, 1080)))  # IPv6 counters
    rates = flow_rates(old, new, 2.0)
    by_id = {k & 0xFFFFFFFF: v for k, v in rates.items()}
    assert by_id == {1: FlowRate(3500.0, 15.0), 5: FlowRate(200.0, 2.0), 6: FlowRate(1000.0, 2.0)}
    assert flow_rates(old, new, 0) == {}
    sums = group_rates(rates, new, SRC_KEY)
    # A flood is new flows: its source's rate is theirs (it read 0 B/s, 0 p/s while it sent 3,300 packets a second).
    assert sums == {A: FlowRate(3500.0, 15.0), B: FlowRate(200.0, 2.0), C: FlowRate(1000.0, 2.0)}


def test_flows_known_only_from_their_new_event_are_measured_from_zero() -> None:
    # The live table between two dumps: a flood's flows came by NEW events, which carry no counters (UNREAD).
    # The next dump shows each one's single packet: the flood's rate, not 0 B/s.
    old = flows(*((i, A, None) for i in range(1, 11)), flags=UNREAD) | flows((20, B, None))  # 20: accounting off
    new = flows(*((i, A, (1, 37, 0, 0)) for i in range(1, 11))) | flows((20, B, None))
    rates = flow_rates(old, new, 2.0)
    assert group_rates(rates, new, SRC_KEY) == {A: FlowRate(10 * 37 / 2, 10 / 2)}


def test_top_new_ranks_only_creators_and_keeps_what_they_hold() -> None:
    held = [row(i, 6, C, DST, i, 80, counters=(1, 10, 1, 10)) for i in range(5)] + [row(9, 17, A, DST, 9, 53)]
    agg = Aggregates(["src"])
    agg.add_rows(held)
    top = top_new({A: 4.0, B: 9.0, C: 0.0}, agg, "src", 10)
    assert [(g.key, g.entries, g.new_rate) for g in top] == [(B, 0, 9.0), (A, 1, 4.0)]
    assert top[0].filter == "src 10.0.0.2"
    filled = with_rates(top, {A: FlowRate(10.0, 1.0)})
    assert [(g.bytes_rate, g.packets_rate) for g in filled] == [(0.0, 0.0), (10.0, 1.0)]
    assert top_new({}, agg, "src", 10) == []

"""The flow list's bytes/s and packets/s sorts: moving flows by their rate, idle ones after, in either direction."""

from __future__ import annotations

from cttop.live.index import ViewSpec, build_index
from cttop.table.packing import flow_key, pack
from cttop.table.rates import FlowRate
from tests.ui.fixed_source import row, v4

A, DST = v4("10.0.0.1"), v4("192.0.2.1")


def test_rate_sorts() -> None:
    rows = [row(i, 6, A, DST, 1000 + i, 80, counters=(i, i * 100, i, i * 100)) for i in range(1, 7)]
    recs = [pack(r) for r in rows]
    rates = {flow_key(rows[1]): FlowRate(500.0, 1.0), flow_key(rows[4]): FlowRate(900.0, 0.5),
             flow_key(rows[2]): FlowRate(100.0, 3.0)}
    ids = lambda idx: [int.from_bytes(r[:4]) for r in idx.records]  # noqa: E731
    by_bytes = build_index(recs, ViewSpec(sort="bytes-rate"), rates=rates)
    assert by_bytes is not None and ids(by_bytes)[:3] == [5, 2, 3] and sorted(ids(by_bytes)[3:]) == [1, 4, 6]
    by_pkts = build_index(recs, ViewSpec(sort="packets-rate"), rates=rates)
    assert by_pkts is not None and ids(by_pkts)[:3] == [3, 2, 5]
    rev = build_index(recs, ViewSpec(sort="bytes-rate", reverse=True), rates=rates)
    assert rev is not None and ids(rev)[-3:] == [3, 2, 5] and len(rev.records) == 6
    # no rates yet (one dump so far): every flow listed, none first
    none = build_index(recs, ViewSpec(sort="bytes-rate"))
    assert none is not None and sorted(ids(none)) == [1, 2, 3, 4, 5, 6]
    # a filter and the rates together
    f = build_index(recs, ViewSpec(filter="sport 1002 or sport 1005", sort="bytes-rate"), rates=rates)
    assert f is not None and ids(f) == [5, 2]

"""The flow index: sort keys read from packed records agree with the rows, filters select what they say."""

from __future__ import annotations

import pytest

from cttop.filter import compile_filter
from cttop.live import index as ix
from cttop.live.index import SORTS, ViewSpec, build_index
from cttop.model import (
    R_DPORT,
    R_DST,
    R_FAMILY,
    R_MARK,
    R_OBYTES,
    R_OPKTS,
    R_PROTO,
    R_RBYTES,
    R_RPKTS,
    R_SPORT,
    R_SRC,
    R_TIMEOUT,
    R_ZONE,
)
from cttop.table.packing import flow_key, pack, record_key, unpack
from tests.ui.fixed_source import busy_rows, fixed_rows

ROWS = fixed_rows()
RECS = [pack(r) for r in ROWS]


def python_key(name: str, r: tuple) -> object:
    """The same orders computed from unpacked rows, independently of the byte offsets."""
    if name == "src":
        return (r[R_FAMILY], r[R_SRC], r[R_SPORT])
    if name == "dst":
        return (r[R_FAMILY], r[R_DST], r[R_DPORT])
    if name == "proto":
        return r[R_PROTO]
    if name == "timeout":
        return r[R_TIMEOUT]
    if name == "mark":
        return (r[R_MARK], r[R_ZONE])
    if name == "bytes":
        return -1 if r[R_OBYTES] is None else r[R_OBYTES] + r[R_RBYTES]
    if name == "packets":
        return -1 if r[R_OPKTS] is None else r[R_OPKTS] + r[R_RPKTS]
    raise KeyError(name)


@pytest.mark.parametrize("name", [n for n in SORTS if n != "state" and SORTS[n].rate is None])  # rates: test_rate_sort
@pytest.mark.parametrize("reverse", [False, True])
def test_sort_matches_row_order(name: str, reverse: bool) -> None:
    rows = ROWS + busy_rows(300, counters=False)[:50] + busy_rows(300)[50:]
    idx = build_index([pack(r) for r in rows], ViewSpec("", name, reverse))
    assert idx is not None
    got = [python_key(name, unpack(r)) for r in idx.records]
    desc = SORTS[name].descending != reverse
    assert got == sorted(got, reverse=desc)
    assert sorted(record_key(r) for r in idx.records) == sorted(map(flow_key, rows))


def test_state_sort_groups_each_state_together() -> None:
    idx = build_index(RECS, ViewSpec("", "state"))
    assert idx is not None
    from cttop.model import state_key

    keys = [state_key(unpack(r)) for r in idx.records]
    seen: list[str] = []
    for k in keys:
        if not seen or seen[-1] != k:
            assert k not in seen, f"{k} appears in two runs: {keys}"
            seen.append(k)


def test_chunked_sort_equals_plain_sort(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ix, "CHUNK", 64)
    recs = [pack(r) for r in busy_rows(1000)]
    idx = build_index(recs, ViewSpec("", "bytes"))
    assert idx is not None
    assert list(idx.records) == sorted(recs, key=SORTS["bytes"].key, reverse=True)


@pytest.mark.parametrize("text", ["udp", "tcp dport 443", "src net 10.0.1.0/24 and not assured", "snat", "ip6",
                                  "mark 0x10", "zone 7", "bytes > 10k"])
def test_filter_selects_exactly_the_matching_flows(text: str) -> None:
    idx = build_index(RECS, ViewSpec(text, "src"))
    assert idx is not None
    want = {flow_key(r) for r in ROWS if compile_filter(text).match(r)}
    assert want, "the fixed rows should hold some matches for every case"
    assert {record_key(r) for r in idx.records} == want
    assert idx.total == len(RECS)


def test_cancelled_build_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ix, "CHUNK", 16)
    recs = [pack(r) for r in busy_rows(200)]
    assert build_index(recs, ViewSpec("udp", "src"), cancelled=lambda: True) is None
    assert build_index(recs, ViewSpec("", "src"), cancelled=lambda: True) is None


def test_anchor_position_follows_the_flow() -> None:
    key = flow_key(next(r for r in ROWS if r[0] == 1016))
    idx = build_index(RECS, ViewSpec("", "timeout"), anchor=key)
    assert idx is not None and idx.anchor_pos is not None
    assert record_key(idx.records[idx.anchor_pos]) == key
    gone = build_index(RECS, ViewSpec("tcp", "timeout"), anchor=key)
    assert gone is not None and gone.anchor_pos is None

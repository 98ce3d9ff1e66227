"""The event log: matching events in order, losses marked where they happened, rates, a bounded ring."""

from __future__ import annotations

import pytest

from cttop.filter import compile_filter
from cttop.kernel.events import EventBatch
from cttop.live import eventlog
from cttop.live.eventlog import LOST, EventLog
from cttop.model import EV_DESTROY, EV_NEW, EV_UPDATE
from tests.ui.fixed_source import row, v4

A, B, DST = v4("10.0.0.1"), v4("10.0.0.2"), v4("192.0.2.1")


def test_entries_in_order_with_losses_where_they_happened() -> None:
    log = EventLog()
    rows = [row(i, 17, A if i % 2 else B, DST, i, 53) for i in range(6)]
    # the kernel dropped events twice while this batch queued: after the 2nd event, and after the 5th
    log.add(EventBatch(events=[(EV_NEW, r) for r in rows[:5]] + [(EV_DESTROY, rows[5])], lost=True,
                       lost_at=[2, 5]), 10.0)
    v = log.view(10.0)
    kinds = [k for _t, k, _r in v.entries]
    assert kinds == [EV_NEW, EV_NEW, LOST, EV_NEW, EV_NEW, EV_NEW, LOST, EV_DESTROY]
    assert [r[0] for _t, k, r in v.entries if r is not None] == [0, 1, 2, 3, 4, 5]
    assert (v.total, v.matched, v.lost) == (6, 6, 2)
    # a loss known without a place (a replay's) is marked before the batch
    log.add(EventBatch(events=[(EV_UPDATE, rows[0])], lost=True), 11.0)
    assert [k for _t, k, _r in log.view(11.0).entries][-2:] == [LOST, EV_UPDATE]


def test_filter_hide_and_rates() -> None:
    log = EventLog()
    log.set_filter(compile_filter("src 10.0.0.1"))
    own = row(99, 17, A, DST, 5353, 53)
    batch = [(EV_NEW, row(i, 17, A if i % 2 else B, DST, i, 53)) for i in range(10)] + [(EV_NEW, own)]
    log.view(0.0)  # the rates' first reading
    log.add(EventBatch(events=batch), 1.0, hide=lambda r: r[0] == 99)
    v = log.view(2.0)
    assert [r[0] for _t, _k, r in v.entries if r is not None] == [1, 3, 5, 7, 9]  # matched, own lookup hidden
    assert v.rates[EV_NEW] == 11 / 2 and v.rates[EV_UPDATE] == 0  # every event counts in the rate line
    assert v.matched_rate == 5 / 2 and v.filter == "src 10.0.0.1"


def test_the_ring_and_the_view_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventlog, "SHOWN", 10)
    log = EventLog(keep=50)
    log.add(EventBatch(events=[(EV_NEW, row(i, 17, A, DST, i, 53)) for i in range(200)]), 1.0)
    v = log.view(1.0)
    assert len(v.entries) == 10 and [r[0] for _t, _k, r in v.entries if r] == list(range(190, 200))
    assert v.total == 200

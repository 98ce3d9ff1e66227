"""The event log: events in order, losses marked where they happened, a filter over what it holds, rates."""

from __future__ import annotations

import pytest

from cttop.filter import compile_filter
from cttop.kernel.events import EventBatch
from cttop.live import eventlog
from cttop.live.eventlog import LOST, EventLog
from cttop.model import EV_DESTROY, EV_NEW, EV_UPDATE
from tests.ui.fixed_source import row, v4

A, B, DST = v4("10.0.0.1"), v4("10.0.0.2"), v4("192.0.2.1")


def ids(view: eventlog.LogView) -> list[int | None]:
    return [r[0] if r is not None else None for _t, _k, r in view.entries]


def test_entries_in_order_with_losses_where_they_happened() -> None:
    log = EventLog()
    rows = [row(i, 17, A if i % 2 else B, DST, i, 53) for i in range(6)]
    # the kernel dropped events twice while this batch queued: after the 2nd event, and after the 5th
    log.add(EventBatch(events=[(EV_NEW, r) for r in rows[:5]] + [(EV_DESTROY, rows[5])], lost=True,
                       lost_at=[2, 5]), 10.0)
    v = log.view(10.0)
    assert [k for _t, k, _r in v.entries] == [EV_NEW, EV_NEW, LOST, EV_NEW, EV_NEW, EV_NEW, LOST, EV_DESTROY]
    assert ids(v) == [0, 1, None, 2, 3, 4, None, 5]
    assert (v.total, v.lost, v.held) == (6, 2, 8)
    # a loss known without a place (a replay's) is marked before the batch
    log.add(EventBatch(events=[(EV_UPDATE, rows[0])], lost=True), 11.0)
    assert [k for _t, k, _r in log.view(11.0).entries][-2:] == [LOST, EV_UPDATE]


def test_the_filter_finds_what_was_logged_before_it_was_typed() -> None:
    log = EventLog()
    own = row(99, 17, A, DST, 5353, 53)
    batch = [(EV_NEW, row(i, 17, A if i % 2 else B, DST, i, 53)) for i in range(10)] + [(EV_NEW, own)]
    log.view(0.0)  # the rates' first reading
    log.add(EventBatch(events=batch, lost=True, lost_at=[4]), 1.0, hide=lambda r: r[0] == 99)
    log.set_filter(compile_filter("src 10.0.0.1"))
    v = log.view(2.0)
    assert ids(v) == [1, 3, None, 5, 7, 9]  # matching (and the loss), the own lookup hidden
    assert v.rates[EV_NEW] == 11 / 2 and v.rates[EV_UPDATE] == 0  # every event counts in the rate line
    assert v.filter == "src 10.0.0.1" and v.held == 11
    log.set_filter(compile_filter(""))
    assert len(log.view(2.0).entries) == 11


def test_the_ring_and_the_view_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventlog, "SHOWN", 10)
    log = EventLog(keep=50)
    log.add(EventBatch(events=[(EV_NEW, row(i, 17, A if i % 2 else B, DST, i, 53)) for i in range(200)]), 1.0)
    v = log.view(1.0)
    assert ids(v) == list(range(190, 200)) and v.total == 200 and v.held == 50
    log.set_filter(compile_filter("src 10.0.0.2"))
    assert ids(log.view(1.0)) == list(range(180, 200, 2))

"""Decoding and applying events is pinned on the recorded event bytes the benchmark replays.

benchmarks/data/events.bin.gz holds real event buffers (bench_events.py --record: NEW, UPDATEs through
the TCP state machine, DESTROY). tests/fixtures/events_replay.state.json holds, per scenario below, the
table state at checkpoints as the code before the event-path speed-ups left it: its size, created and
destroyed counts, generation, the aggregates in dict order (top() breaks ties by it), and digests of
the packed records (with when each was read and its UNREAD flag), the labels and every tracked group's
totals. A faster path that decodes or applies anything differently, or only reorders the aggregates' dicts,
fails here.

Regenerate the pins only from a tree known to be right:
``PYTHONPATH=OLD_TREE/src:. python -m tests.unit.test_events_pinned > tests/fixtures/events_replay.state.json``
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pytest

from benchmarks.bench_events import DATA, load
from cttop.kernel.decode import Decoder
from cttop.kernel.events import decode_events
from cttop.model import AF_INET, AF_INET6, EV_DESTROY, EV_NEW, EV_UPDATE, NO_PSTATE, R_ID, R_OPKTS, R_START, Row
from cttop.table.groups import GROUPS
from cttop.table.packing import UNREAD, record_meta
from cttop.table.store import FlowTable
from tests.accelerated import accelerator  # noqa: F401 (autouse: every test with the compiled store and the dict)

PINS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "events_replay.state.json")
EVERY = 10_000  # events between checkpoints


@cache
def recorded() -> list[list[tuple[int, Row]]]:
    """The recorded buffers' events, one list per buffer, decoded as EventSocket.read does."""
    dec = Decoder()
    out = []
    for buf in load(DATA):
        batch: list[tuple[int, Row]] = []
        assert decode_events(dec, memoryview(buf), batch) == 0
        out.append(batch)
    return out


def _digest(items: Any) -> str:
    return hashlib.sha256(repr(list(items)).encode()).hexdigest()[:16]


def state(t: FlowTable) -> dict[str, Any]:
    agg = t.agg
    return {
        "flows": len(t), "created": t.created, "destroyed": t.destroyed, "generation": t.generation,
        "by_proto": [[p, n] for p, n in agg.by_proto.items()],
        "by_state": [[s, n] for s, n in agg.by_state.items()],
        "evictable": agg.evictable, "counted": agg.counted, "bytes": agg.bytes, "packets": agg.packets,
        # Sorted: the compiled store holds them in another order than a dict's (by key would not do either: str
        # and bytes hashes vary by process).
        "records": _digest(sorted(t.records())),
        "rows": _digest(sorted(t.rows(), key=repr)),  # with their labels
        "unread": sum(record_meta(r)[1] & UNREAD for r in t.records()),
        "groups": {name: [len(entries), _digest(entries.items()), _digest(nbytes.items()), _digest(npkts.items())]
                   for name, (entries, nbytes, npkts) in agg.groups.items()},
    }


def replay(t: FlowTable, batches: Iterator[tuple[float, list[tuple[int, Row]]]]) -> list[dict[str, Any]]:
    """Apply each (received at, events) batch; the state after every EVERY events and at the end."""
    out, done, mark = [], 0, EVERY
    for at, events in batches:
        t.apply_events(events, at)
        done += len(events)
        if done >= mark:
            out.append(state(t))
            mark += EVERY
    out.append(state(t))
    return out


def as_collected() -> list[dict[str, Any]]:
    """What the collector does: one batch per received buffer, the shown group tracked."""
    return replay(FlowTable(track=["src"]), ((1000 + i // 500, b) for i, b in enumerate(recorded())))


def over_a_counted_dump() -> list[dict[str, Any]]:
    """The recorded events over a dump that showed counters (and some labels) for their flows, every
    group tracked: updates keep the counters the dump showed, destroys take them out of the totals."""
    events = [e for b in recorded() for e in b]
    seeded = {}
    for i, (kind, r) in enumerate(events):
        if kind == EV_NEW and r[R_ID] not in seeded:
            labels = 1 << (i % 70) if i % 7 == 0 else 0
            seeded[r[R_ID]] = r[:R_OPKTS] + (i % 13, 100 * i, i // 2, 50 * i) + (r[R_START], labels)
    t = FlowTable(track=GROUPS)
    t.extend(list(seeded.values()), at=900.0)
    return replay(t, ((1000 + n // 10, events[at:at + 64]) for n, at in enumerate(range(0, len(events), 64))))


def random_row(fid: int, rnd: random.Random, counted: bool | None = None) -> Row:
    """A flow of any shape; kept here, not shared, so the pins never move with another test's generator."""
    alen = 16 if rnd.random() < 0.2 else 4
    src, dst = bytes(rnd.randrange(4) for _ in range(alen)), bytes(rnd.randrange(4) for _ in range(alen))
    proto = rnd.choice([6, 17, 1, 132, 47])
    pstate = rnd.randrange(10) if proto in (6, 132) else NO_PSTATE
    status = rnd.choice([0, 2, 6]) | 8  # none, SEEN_REPLY, SEEN_REPLY|ASSURED; CONFIRMED
    counted = rnd.random() < 0.5 if counted is None else counted
    c = tuple(rnd.randrange(10**6) for _ in range(4)) if counted else (None,) * 4
    sp, dp = rnd.randrange(65536), rnd.choice([53, 80, 443, 8080])
    return (fid, AF_INET6 if alen == 16 else AF_INET, proto, pstate, status, src, dst, sp, dp, dst, src, dp, sp,
            rnd.randrange(1000), rnd.choice([0, 1, 0x10]), rnd.choice([0, 0, 7]), 1, *c,
            rnd.choice([0, 1_700_000_000_000_000_000]), rnd.choice([0, 0, 0, 1 << 70]))


def mixed() -> list[dict[str, Any]]:
    """Random flows (IPv6, counters on and off, labels, every protocol) and events on them: NEW for
    flows held and not, UPDATEs that change counters, state, mark or nothing, DESTROYs of unknown flows."""
    rnd = random.Random(11)
    held = {i: random_row(i, rnd) for i in range(400)}
    t = FlowTable(track=GROUPS)
    t.extend(held.values())

    def batches() -> Iterator[tuple[float, list[tuple[int, Row]]]]:
        for b in range(600):
            events: list[tuple[int, Row]] = []
            for _ in range(rnd.randrange(1, 40)):
                op, fid = rnd.random(), rnd.choice(list(held)) if held else 0
                if op < 0.3 or not held:
                    r = random_row(10_000 + len(held) + b * 40 + len(events), rnd)
                    events.append((EV_NEW, r))
                    held[r[R_ID]] = r
                elif op < 0.75:
                    r = random_row(fid, rnd, None if op < 0.5 else held[fid][R_OPKTS] is not None)
                    if op > 0.7:
                        r = held[fid][:13] + r[13:14] + held[fid][14:]  # only the timeout moved
                    # An update never changes the tuples, and says a TCP or SCTP state (here: the one held, where
                    # the random row drew none) as the kernel does, with the protocol's own state.
                    pstate = held[fid][3] if r[3] == NO_PSTATE else r[3]
                    r = held[fid][:3] + (pstate, r[4]) + held[fid][5:13] + r[13:]
                    events.append((EV_UPDATE, r))
                    held[fid] = r
                elif op < 0.95:
                    events.append((EV_DESTROY, held.pop(fid)))
                else:
                    events.append((EV_DESTROY, random_row(999_999, rnd)))  # a flow never seen
            yield 2000 + b / 3, events

    return replay(t, batches())


SCENARIOS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "as_collected": as_collected, "over_a_counted_dump": over_a_counted_dump, "mixed": mixed}


@pytest.fixture(scope="module")
def pins() -> dict[str, list[dict[str, Any]]]:
    with open(PINS) as f:
        return json.load(f)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_table_after_the_recorded_events_is_what_it_was(name: str, pins: dict[str, Any]) -> None:
    got = json.loads(json.dumps(SCENARIOS[name]()))  # tuples as lists, as the pins were stored
    want = pins[name]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{name}: checkpoint {i} differs"


def test_the_scenarios_reach_the_paths_they_pin() -> None:
    """The pins are only as good as what the replays exercise: counted and uncounted flows, UNREAD flags."""
    c = over_a_counted_dump()
    assert max(s["counted"] for s in c) > 10_000 and max(s["flows"] for s in c) > 10_000
    a = as_collected()
    assert a[-1]["created"] == sum(1 for b in recorded() for k, _ in b if k == EV_NEW)
    assert max(s["unread"] for s in a) > 10_000 and max(s["unread"] for s in c) == 0
    m = mixed()
    assert min(s["counted"] for s in m) > 0 and max(s["unread"] for s in m) > 0


if __name__ == "__main__":
    print(json.dumps({name: run() for name, run in SCENARIOS.items()}, indent=1))

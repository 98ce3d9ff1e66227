"""Events applied in C (kernel/_apply.c) leave the table as FlowTable._apply_rows leaves it: the same records in the
same order, the same labels, the same aggregates with their dicts in the same order (it breaks ties in top()), the
same created and destroyed counts; an event C leaves to Python fails, or is applied, as Python applies it."""

from __future__ import annotations

import enum
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_events import DATA, load
from cttop.kernel import native
from cttop.kernel.decode import Decoder
from cttop.kernel.events import decode_events
from cttop.model import (
    EV_DESTROY,
    EV_NEW,
    EV_UPDATE,
    IPS_ASSURED,
    IPS_SEEN_REPLY,
    R_LABELS,
    R_MARK,
    R_OPKTS,
    R_PROTO,
    R_PSTATE,
    R_RBYTES,
    R_START,
    R_STATUS,
    R_ZONE,
    Row,
)
from cttop.table.groups import GROUPS
from cttop.table.packing import flow_key
from cttop.table.store import FlowTable
from cttop.table.tally import FlowTally
from tests.unit.test_table import churn, make_row, rows

Events = list[tuple[int, Row]]
BIG = 2**64 - 1


@pytest.fixture(autouse=True)
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled store, whatever CTTOP_PURE_PYTHON says: its C path is what is tested, against Python's."""
    assert native.BUILT is not None, "the accelerator was not built: scripts/setup.sh builds it"
    monkeypatch.setattr(native, "DEFAULT", native.BUILT)


@pytest.fixture(params=[FlowTable, FlowTally])
def make(request: pytest.FixtureRequest) -> type[FlowTable]:
    """The held table (records) and the bounded one (digests): C applies the events of both."""
    return request.param  # type: ignore[no-any-return]


def pair(make: type[FlowTable], track: list[str], start: list[Row] = ()) -> tuple[FlowTable, FlowTable]:  # type: ignore[assignment]
    """A table whose events go to C, and one whose go to Python (its reference), both holding ``start``."""
    c, py = make(track), make(track)
    py._compiled = lambda: None  # type: ignore[method-assign]
    assert c._compiled() is (c._flows if make is FlowTable else c._digests)  # type: ignore[attr-defined]
    for t in (c, py):
        t.extend(list(start), 3)
    c.seen_rows = py.seen_rows = list(start)  # type: ignore[attr-defined]
    return c, py


def state(t: FlowTable) -> tuple:
    """Everything the events move: the records (a tally's digests of every flow seen), labels, the aggregates
    with their dicts' order, the counts."""
    a = t.agg
    held = list(t.by_key().items()) if not t.bounded else \
        [t._digests.get(flow_key(r)) for r in t.seen_rows]  # type: ignore[attr-defined]
    return (held, list(t._labels.items()), list(a.by_proto.items()),
            list(a.by_state.items()), a.evictable, a.counted, a.bytes, a.packets,
            [[list(d.items()) for d in g] for g in a.groups.values()], t.created, t.destroyed, len(t))


def apply_both(c: FlowTable, py: FlowTable, events: Events, per: int, at: float = 9.0) -> None:
    c.seen_rows += [r for _k, r in events if isinstance(r, tuple)]  # type: ignore[attr-defined]
    for i in range(0, len(events), per):
        c.apply_events(events[i:i + per], at)
        py.apply_events(events[i:i + per], at)
    py.seen_rows = c.seen_rows  # type: ignore[attr-defined]
    assert state(c) == state(py)


def without_counters(events: Events, rnd: random.Random, share: float) -> Events:
    """Some updates as the kernel sends them: no counters, while the flow has some (they are carried over)."""
    return [(k, r[:R_OPKTS] + (None,) * 4 + r[R_START:]) if k == EV_UPDATE and rnd.random() < share else (k, r)
            for k, r in events]


def recorded() -> Events:
    dec, out = Decoder(), []
    for buf in load(DATA):
        decode_events(dec, buf, out)
    return out


@pytest.mark.parametrize("per", [1, 7, 256])
def test_recorded_events_apply_as_python_applies_them(make: type[FlowTable], per: int) -> None:
    events = recorded()
    assert {k for k, _ in events} == {EV_NEW, EV_UPDATE, EV_DESTROY}
    c, py = pair(make, list(GROUPS))
    apply_both(c, py, events, per)
    assert c.created == sum(k == EV_NEW for k, _ in events) and c.destroyed == sum(k == EV_DESTROY for k, _ in events)


def test_the_c_path_does_the_work(make: type[FlowTable], monkeypatch: pytest.MonkeyPatch) -> None:
    """Not Python behind its back: with Python's loop refused, every event of a churn is still applied."""
    rnd = random.Random(3)
    truth = {r[0]: r for r in rows(300)}
    events = churn(truth, rnd, 2000)
    c, py = pair(make, ["src", "dport"], list(truth.values()))

    def refused(*_a: object) -> None:
        raise AssertionError("an event left to Python")

    monkeypatch.setattr(c, "_apply_rows", refused)
    apply_both(c, py, events, 50)


@settings(max_examples=60, deadline=None)
@given(make=st.sampled_from([FlowTable, FlowTally]), seed=st.integers(0, 2**32 - 1), n=st.integers(0, 200), steps=st.integers(0, 600),
       per=st.integers(1, 80), groups=st.lists(st.sampled_from(list(GROUPS)), unique=True, max_size=10),
       bare=st.floats(0, 1))
def test_random_churn_applies_alike(make: type[FlowTable], seed: int, n: int, steps: int, per: int, groups: list[str], bare: float) -> None:
    rnd = random.Random(seed)
    start = rows(n, seed)
    truth = {r[0]: r for r in start}
    events = without_counters(churn(truth, rnd, steps), rnd, bare)
    c, py = pair(make, groups, start)
    apply_both(c, py, events, per, at=rnd.randrange(2**32))


def test_counters_past_64_bits_sum_exactly(make: type[FlowTable]) -> None:
    rnd = random.Random(5)
    flows = [r[:R_OPKTS] + (BIG,) * 4 + r[R_START:] for r in (make_row(i, rnd, acct=True) for i in range(40))]
    events = [(EV_NEW, r) for r in flows] + [(EV_UPDATE, r[:R_OPKTS] + (BIG, 0, BIG, 0) + r[R_START:])
                                             for r in flows[::2]] + [(EV_DESTROY, r) for r in flows[1::3]]
    c, py = pair(make, ["src", "pair"])
    apply_both(c, py, events, 9)
    if make is FlowTable:  # (a tally keeps no counters)
        assert c.agg.bytes > BIG and c.agg.bytes == sum(r[18] + r[20] for r in c.rows())


def test_updates_of_state_mark_labels_and_counters_alone(make: type[FlowTable]) -> None:
    """Each thing an update can move, alone: what Aggregates.replace touches for it, and the labels dict."""
    rnd = random.Random(11)
    base = [make_row(i, rnd, acct=i % 2 == 0) for i in range(30)]
    c, py = pair(make, list(GROUPS), base)
    moves = [
        lambda r: r[:R_STATUS] + (r[R_STATUS] ^ IPS_ASSURED,) + r[R_STATUS + 1:],
        lambda r: r[:R_STATUS] + (r[R_STATUS] | IPS_SEEN_REPLY,) + r[R_STATUS + 1:],
        lambda r: r[:R_MARK] + (r[R_MARK] + 1,) + r[R_MARK + 1:],
        lambda r: r[:R_LABELS] + (1 << 100,),
        lambda r: r[:R_LABELS] + (0,),
        lambda r: r[:R_ZONE] + (r[R_ZONE] + 1,) + r[R_ZONE + 1:],
        *(lambda r, i=i: r if r[R_OPKTS] is None else r[:i] + (r[i] + 1,) + r[i + 1:]
          for i in range(R_OPKTS, R_RBYTES + 1)),
        lambda r: r[:R_OPKTS] + (1, 2, 3, 4) + r[R_START:],  # counters where there were none yet
        lambda r: r,  # nothing moved: a key of one flow still goes last in its dict, as out-then-in puts it
        # No kernel moves a flow's protocol; Python names both states with the old one, and so does C.
        lambda r: r[:R_PROTO] + (17 if r[R_PROTO] != 17 else 6, r[R_PSTATE], r[R_STATUS] ^ IPS_ASSURED)
        + r[R_STATUS + 1:],
    ]
    for move in moves:
        base = [move(r) for r in base]
        apply_both(c, py, [(EV_UPDATE, r) for r in base], 4)


class Family(enum.IntEnum):
    INET = 2


@pytest.mark.parametrize("odd", [
    lambda r: (9, r),                                   # a kind no kernel sends: applied as an update is
    lambda r: (True, r),                                # a bool is an int
    lambda r: (EV_NEW, r[:1] + (Family.INET,) + r[2:]),  # an int subclass packs as its value
    lambda r: (EV_NEW, list(r)),                        # not a tuple: Python's to apply
    lambda r: (EV_NEW, r, 0),                           # not a pair
])
def test_odd_events_are_applied_as_python_applies_them(make: type[FlowTable], odd) -> None:  # type: ignore[no-untyped-def]
    rnd = random.Random(2)
    fresh = [make_row(i, rnd) for i in range(5)]
    c, py = pair(make, ["src"])
    events = [(EV_NEW, r) for r in fresh[:3]] + [odd(fresh[3]), (EV_NEW, fresh[4])]
    c.seen_rows = py.seen_rows = fresh  # type: ignore[attr-defined]
    outcomes = []
    for t in (c, py):
        try:
            t.apply_events(events, 4)
            outcomes.append(None)
        except Exception as e:  # noqa: BLE001 (the same error either way is what is held)
            outcomes.append((type(e), str(e)))
    assert outcomes[0] == outcomes[1]
    assert state(c) == state(py)


@pytest.mark.parametrize("bad, error", [
    (lambda r: r[:R_MARK] + ("x",) + r[R_MARK + 1:], "required argument is not an integer"),
    (lambda r: r[:R_MARK] + (2**40,) + r[R_MARK + 1:], "format requires"),
    (lambda r: r[:5] + ([1],) + r[6:], "unhashable"),
    (lambda r: (-1,) + r[1:], "negative"),
    (lambda r: r[:R_RBYTES] + (None,) + r[R_RBYTES + 1:], "required argument is not an integer"),
    (lambda r: r[:R_MARK] + ([1],) + r[R_MARK + 1:], "required argument is not an integer"),  # tally: unhashable
    (lambda r: r[:R_PSTATE] + (300,) + r[R_PSTATE + 1:], "format requires"),  # tally: Python names its state
])
def test_a_bad_event_fails_as_in_python_after_those_before_it(make: type[FlowTable], bad, error: str) -> None:  # type: ignore[no-untyped-def]
    rnd = random.Random(4)
    fresh = [make_row(i, rnd, acct=True) for i in range(6)]
    c, py = pair(make, ["src", "dport"], fresh[:2])
    c.seen_rows = py.seen_rows = fresh  # type: ignore[attr-defined]
    events = [(EV_UPDATE, fresh[0]), (EV_NEW, fresh[2]), (EV_DESTROY, fresh[1]), (EV_NEW, bad(fresh[3])),
              (EV_NEW, fresh[4])]
    errors = []
    for t in (c, py):
        try:
            t.apply_events(events, 4)
            errors.append(None)
        except Exception as e:  # noqa: BLE001 (held to Python's own error below)
            errors.append((type(e), str(e)))
    assert errors[0] == errors[1]
    assert state(c) == state(py)
    if make is FlowTable:  # (a tally packs nothing: only what it counts or hashes can fail there)
        assert errors[0] is not None and error in errors[0][1], errors
        assert len(c) == 2 and c.destroyed == 1  # the events before it, not those after (2 held, 1 gone, 1 made)


def test_any_iterable_of_events_is_taken(make: type[FlowTable]) -> None:
    rnd = random.Random(8)
    events = [(EV_NEW, make_row(i, rnd)) for i in range(20)]
    c, py = pair(make, ["dst"])
    c.seen_rows = py.seen_rows = [r for _k, r in events]  # type: ignore[attr-defined]
    c.apply_events(iter(events), 1)
    py.apply_events(iter(events), 1)
    assert state(c) == state(py) and len(c) == 20


def test_what_apply_events_refuses() -> None:
    apply = native.BUILT.apply_events  # type: ignore[union-attr]
    t = FlowTable(["src"])
    with pytest.raises(TypeError, match="apply_events"):
        apply({}, [], 0, 0, {}, t.agg, {}, print)
    with pytest.raises(TypeError, match="apply_events"):
        apply(t._flows, (), 0, 0, {}, t.agg, {}, print)
    with pytest.raises(AttributeError):
        apply(t._flows, [], 0, 0, {}, object(), {}, print)

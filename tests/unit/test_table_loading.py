"""A dump read straight into the held table (FlowTable.loading: the compiled walk packs and counts each flow, no
row made) against the same dump made into rows and added with FlowTable.extend, the reference: the same records
under the same keys in the same order, the same labels, and the same aggregates with their dicts in the same order.
The collector reads a dump this way where it can; tests/kernel/test_collector_kernel.py checks it on a real table.
"""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.kernel import native
from cttop.kernel.decode import DecodeError, Decoder
from cttop.model import R_DPORT, R_LABELS, R_RDPORT, R_RSRC, R_SPORT, R_SRC, Row
from cttop.table.groups import GROUPS
from cttop.table.packing import flow_key
from cttop.table.store import FlowTable
from cttop.table.tally import FlowTally
from tests.unit.test_counts import COUNTED, chunked, message, ordered, tie_heavy_rows
from tests.unit.test_decode import messages
from tests.unit.test_table import churn


@pytest.fixture(autouse=True)
def compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled store and walk, whatever CTTOP_PURE_PYTHON says: they are what is tested here, against rows."""
    assert native.BUILT is not None, "the accelerator was not built: scripts/setup.sh builds it"
    monkeypatch.setattr(native, "DEFAULT", native.BUILT)


def tracked(group: str | list[str] | None) -> list[str]:
    return group if isinstance(group, list) else [group] if group else []


def by_rows(chunks: list[bytes], group: str | list[str] | None, seen: int = 7,
            make: type[FlowTable] = FlowTable) -> FlowTable:
    dec, table = Decoder(), make(tracked(group))
    for c in chunks:
        rows: list[Row] = []
        done = dec.decode_chunk(c, rows)
        table.extend(rows, seen)
        if done:
            break
    return table


def by_walk(chunks: list[bytes], group: str | list[str] | None, seen: int = 7,
            make: type[FlowTable] = FlowTable) -> FlowTable:
    """The table loaded by the walk; ``table.left`` is what it left to Python, the rows of it."""
    dec, table = Decoder(), make(tracked(group))
    hold = table.loading()
    assert hold is not None
    hold.seen = seen
    left: list[Row] = []
    take = hold.row
    hold.row = lambda row: (left.append(row), take(row))  # type: ignore[method-assign]
    for c in chunks:
        if dec.count_chunk(c, hold.counts, hold):
            break
    hold.done()
    table.left = left  # type: ignore[attr-defined]
    return table


def held(table: FlowTable) -> tuple:
    return list(table.by_key().items()), dict(table._labels), ordered(table.agg), len(table)


def alike(chunks: list[bytes], group: str | list[str] | None) -> FlowTable:
    want, got = by_rows(chunks, group), by_walk(chunks, group)
    assert held(got) == held(want)
    return got


def natted(rows: list[Row], seed: int) -> list[Row]:
    """Some rows with a reply tuple that does not mirror the original (NAT), held whole rather than cut."""
    rnd = random.Random(seed)
    return [r[:R_RSRC] + (bytes(len(r[R_SRC])),) + r[R_RSRC + 1:R_RDPORT] + (rnd.randrange(65536),) + r[R_RDPORT + 1:]
            if rnd.random() < 0.3 else r for r in rows]


def test_a_real_dump_is_held_as_its_rows_are() -> None:
    """The recorded kernel dump (TCP in its states, UDP, ICMP, IPv6): every flow under the key flow_key gives."""
    chunks = messages("dump_realistic.bin.gz")
    for group in (None, *COUNTED):
        table = alike(chunks, group)
    rows: list[Row] = []
    for c in chunks:
        Decoder().decode_chunk(c, rows)
    assert sorted(table.by_key()) == sorted(map(flow_key, rows)) and len(table) == len(rows) > 1000
    assert table.left == []  # type: ignore[attr-defined]  # every flow packed by the walk


@pytest.mark.parametrize("group", [None, *COUNTED])
def test_every_group_is_held_as_rows_are(group: str | None) -> None:
    rows = natted(tie_heavy_rows(1500, 17), 4)
    table = alike(chunked(rows), group)
    # Only a labelled flow is left to Python (the walk does not read labels).
    assert len(table) == 1500 and table.left == [r for r in rows if r[R_LABELS]]  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), per=st.integers(1, 60),
       group=st.sampled_from(COUNTED))
def test_random_tables_are_held_alike(seed: int, n: int, per: int, group: str) -> None:
    alike(chunked(natted(tie_heavy_rows(n, seed), seed), per), group)


@pytest.mark.parametrize("make", [FlowTable, FlowTally])
def test_every_tracked_group_is_counted_in_the_one_walk(make: type[FlowTable]) -> None:
    """A view that has shown several groups tracks them all; its next dump is still read by the walk."""
    chunks = chunked(natted(tie_heavy_rows(1500, 43), 2), 53)
    rows = decoded(chunks)
    want, got = by_rows(chunks, COUNTED, make=make), by_walk(chunks, COUNTED, make=make)
    assert list(got.agg.groups) == COUNTED
    assert (tallied(got, rows) == tallied(want, rows)) if make is FlowTally else (held(got) == held(want))


def test_a_flow_with_labels_is_held_in_its_place() -> None:
    """The walk leaves a labelled flow to Python: its row is held and counted where it came, its labels kept."""
    rows = [r[:R_LABELS] + ((1 << 70) if i % 7 == 0 else 0,) for i, r in enumerate(tie_heavy_rows(300, 5))]
    table = alike(chunked(rows, 30), "src")
    assert table._labels and all(table.get(flow_key(r))[R_LABELS] == r[R_LABELS] for r in rows)  # type: ignore[index]
    assert table.left == [r for r in rows if r[R_LABELS]]  # type: ignore[attr-defined]


def test_keys_with_hashes_of_every_kind() -> None:
    """The walk's key is CPython's hash of (src, dst, sport, dport): addresses of every length the decoder gives
    (none, IPv4, IPv6), ports from 0 to 65535 and ICMP's type << 8 | code."""
    rows = tie_heavy_rows(400, 23)
    edge = [r[:R_SPORT] + (p, q) + r[R_DPORT + 1:] for r, (p, q) in
            zip(rows, [(0, 0), (65535, 65535), (1, 0), (0, 1), (2**15, 2**16 - 2)] * 80)]
    alike(chunked(edge, 37), None)


def test_when_seen_cannot_be_packed_python_says_so() -> None:
    """A time out of the record's range: the walk leaves each flow to Python, which refuses it as pack does."""
    chunks = chunked(tie_heavy_rows(20, 1))
    for seen in (-1, 2**32):
        for load in (by_rows, by_walk):
            with pytest.raises(struct.error):
                load(chunks, "src", seen)


def test_a_broken_dump_fails_as_the_rows_do() -> None:
    rows = tie_heavy_rows(40, 9)
    broken = b"".join(map(message, rows))[:-3]
    errors = []
    for load in (by_rows, by_walk):
        with pytest.raises(DecodeError) as e:
            load([broken], "src")
        errors.append(str(e.value))
    assert errors[0] == errors[1]


def test_loading_is_offered_only_where_the_walk_can_do_it() -> None:
    assert FlowTable(["src"]).loading() is not None
    assert FlowTable([]).loading() is not None
    assert FlowTable(["src", "dst", "state"]).loading() is not None  # every tracked group counted in one walk
    own = FlowTable(["src"], own=(lambda r: False, lambda rec: False))
    assert own.loading() is None  # cttop's own flows are recognised on rows
    full = FlowTable(["src"])
    full.extend(tie_heavy_rows(3, 1))
    assert full.loading() is None  # only an empty table is loaded
    assert all(GROUPS[g].reads is not None for g in COUNTED)


# A bounded view's table (table.tally.FlowTally): the walk puts each flow's digest, counts its timeout and the
# aggregates without counters, as FlowTally.extend does with the rows.

def tallied(table: FlowTable, rows: list[Row]) -> tuple:
    assert isinstance(table, FlowTally)
    return (len(table), [table._digests.get(flow_key(r)) for r in rows], table.timeouts(), ordered(table.agg))


def decoded(chunks: list[bytes]) -> list[Row]:
    rows: list[Row] = []
    for c in chunks:
        if Decoder().decode_chunk(c, rows):
            break
    return rows


@pytest.mark.parametrize("group", [None, *COUNTED])
def test_a_bounded_table_is_tallied_as_from_its_rows(group: str | None) -> None:
    chunks = chunked(natted(tie_heavy_rows(1200, 29), 8), 41)
    rows = decoded(chunks)
    want, got = by_rows(chunks, group, make=FlowTally), by_walk(chunks, group, make=FlowTally)
    assert tallied(got, rows) == tallied(want, rows)
    assert got.left == [r for r in rows if r[R_LABELS]]  # type: ignore[attr-defined]
    assert got.counted == 0 and got.agg.bytes == 0  # a tally keeps no counters
    # The digests answer updates and ends as the rows' do: a churn of events moves both tables alike.
    events = churn({r[0]: r for r in rows}, random.Random(3), 2000)
    for table in (want, got):
        table.apply_events(events, 9)
    assert tallied(got, rows) == tallied(want, rows)


def test_a_real_dump_is_tallied_as_its_rows_are() -> None:
    chunks = messages("dump_realistic.bin.gz")
    rows = decoded(chunks)
    want, got = by_rows(chunks, "src", make=FlowTally), by_walk(chunks, "src", make=FlowTally)
    assert tallied(got, rows) == tallied(want, rows) and len(got) == len(rows)
    assert got.left == []  # type: ignore[attr-defined]


def test_a_bounded_table_is_loaded_by_the_walk_only_where_it_can_be() -> None:
    assert FlowTally(["src"]).loading() is not None
    assert FlowTally(["src", "dst"]).loading() is not None
    assert FlowTally(["src"], owners=GROUPS["src"]).loading() is None  # owners are read from rows
    assert FlowTally(["src"], own=(lambda r: False, lambda rec: False)).loading() is None


def test_the_pure_python_tables_are_read_as_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "DEFAULT", None)
    assert FlowTable(["src"]).loading() is None and FlowTally(["src"]).loading() is None


@settings(max_examples=300, deadline=None)
@given(msgs=st.lists(st.sampled_from(messages("dump_mix.bin")), min_size=1, max_size=4), data=st.data(),
       bounded=st.booleans())
def test_mutated_real_bytes_are_held_as_they_decode(msgs: list[bytes], data: st.DataObject, bounded: bool) -> None:
    """Real kernel messages with bytes flipped (a hostile or broken dump): the walk holds what the rows hold, or
    fails with the rows' error, for the held table and the bounded one."""
    buf = bytearray(b"".join(m + b"\0" * (-len(m) % 4) for m in msgs))
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    make = FlowTally if bounded else FlowTable
    outcomes = []
    for load in (by_rows, by_walk):
        try:
            table = load([bytes(buf)], "src-dport", make=make)
            rows = decoded([bytes(buf)])
            outcomes.append(tallied(table, rows) if bounded else held(table))
        except (DecodeError, TypeError, struct.error) as e:
            outcomes.append((type(e), str(e)) if isinstance(e, DecodeError) else (type(e),))
    assert outcomes[0] == outcomes[1]

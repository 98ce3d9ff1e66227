"""A dump counted in C without rows (kernel/_counts.c, Aggregates.add_counts) against the same dump made into rows
and counted by Aggregates.add_rows, the reference: the same counts, and the dicts in the same order (it breaks ties
in top()). Dumps are built here from rows as the kernel lays them out (checked: the decoder gives the rows back);
a real table's is in tests/kernel/test_snapshot.py.
"""

from __future__ import annotations

import random
import struct
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.kernel import nlconst as C
from cttop.kernel._ctdecode import Counts
from cttop.kernel.attrs import be, nest, nla
from cttop.kernel.ctnetlink import row_tuples
from cttop.kernel.decode import DecodeError, Decoder
from cttop.kernel.framing import NLH
from cttop.model import (
    R_FAMILY,
    R_ID,
    R_LABELS,
    R_MARK,
    R_OBYTES,
    R_OPKTS,
    R_PROTO,
    R_PSTATE,
    R_RBYTES,
    R_RPKTS,
    R_SRC,
    R_START,
    R_STATUS,
    R_TIMEOUT,
    R_USE,
    R_ZONE,
    ROW_LEN,
    Row,
)
from cttop.table.aggregates import Aggregates
from cttop.table.groups import GROUPS
from tests.unit.test_decode import messages
from tests.unit.test_table import make_row, snapshot_of

COUNTED = [name for name, g in GROUPS.items() if g.reads is not None]
HUGE = 2**64 - 1


def message(row: Row) -> bytes:
    """``row`` as one message of a conntrack dump (labels in their bitmap of 64-bit words, as the kernel sends)."""
    attrs = row_tuples(row) + nla(C.CTA_STATUS, be("I", row[R_STATUS])) + nla(C.CTA_TIMEOUT, be("I", row[R_TIMEOUT]))
    attrs += nla(C.CTA_MARK, be("I", row[R_MARK])) + nla(C.CTA_USE, be("I", row[R_USE]))
    attrs += nla(C.CTA_ID, be("I", row[R_ID])) + nla(C.CTA_ZONE, be("H", row[R_ZONE]))
    if row[R_PSTATE] != 255:
        attrs += nest(C.CTA_PROTOINFO, nest(C.CTA_PROTOINFO_TCP,
                                            nla(C.CTA_PROTOINFO_TCP_STATE, bytes([row[R_PSTATE]]))))
    if row[R_OPKTS] is not None:
        for typ, pk, by in ((C.CTA_COUNTERS_ORIG, R_OPKTS, R_OBYTES), (C.CTA_COUNTERS_REPLY, R_RPKTS, R_RBYTES)):
            attrs += nest(typ, *(nla(kind, be("Q", row[f])) for kind, f in
                                 ((C.CTA_COUNTERS_PACKETS, pk), (C.CTA_COUNTERS_BYTES, by)) if row[f] is not None))
    if row[R_START]:
        attrs += nest(C.CTA_TIMESTAMP, nla(C.CTA_TIMESTAMP_START, be("Q", row[R_START])))
    if row[R_LABELS]:
        words = (row[R_LABELS].bit_length() + 63) // 64
        attrs += nla(C.CTA_LABELS, struct.pack(f"={words}Q", *((row[R_LABELS] >> 64 * i) & HUGE
                                                               for i in range(words))))
    body = struct.pack("BBH", row[R_FAMILY], 0, 0) + attrs
    typ = C.NFNL_SUBSYS_CTNETLINK << 8 | C.IPCTNL_MSG_CT_NEW
    return NLH.pack(NLH.size + len(body), typ, C.NLM_F_MULTI, 1, 0) + body


def chunked(rows: list[Row], per: int = 50, done: bool = True) -> list[bytes]:
    """The rows' messages in chunks of ``per``, the last ending in NLMSG_DONE (as a dump's does)."""
    chunks = [b"".join(map(message, rows[i:i + per])) for i in range(0, len(rows), per)] or [b""]
    if done:
        chunks[-1] += NLH.pack(NLH.size + 4, C.NLMSG_DONE, C.NLM_F_MULTI, 1, 0) + b"\0" * 4
    return chunks


def by_rows(chunks: list[bytes], group: str | None) -> Aggregates:
    dec, agg = Decoder(), Aggregates([group] if group else [])
    for c in chunks:
        rows: list[Row] = []
        done = dec.decode_chunk(c, rows)
        agg.add_rows(rows)
        if done:
            break
    return agg


def by_counts(chunks: list[bytes], group: str | None) -> Aggregates:
    dec, agg = Decoder(), Aggregates([group] if group else [])
    counts = Counts(*([GROUPS[group].reads] if group else []))  # type: ignore[list-item]
    for c in chunks:
        if dec.count_chunk(c, counts):
            break
    agg.add_counts(counts)
    return agg


def ordered(agg: Aggregates) -> tuple:
    """Everything add_rows sets, the dicts as lists: their order counts."""
    return (*snapshot_of(agg), [[list(d.items()) for d in g] for g in agg.groups.values()])


def alike(chunks: list[bytes], group: str | None) -> Aggregates:
    want, got = by_rows(chunks, group), by_counts(chunks, group)
    assert ordered(got) == ordered(want)
    return got


def tie_heavy_rows(n: int, seed: int) -> list[Row]:
    """Rows over few distinct keys and counters, many of them zero: ties everywhere, keys whose bytes start late."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        r = make_row(i + 1, rnd)
        if r[R_OPKTS] is not None:
            c = [rnd.choice([0, 0, 1, 5, HUGE]) for _ in range(4)]
            r = r[:R_OPKTS] + tuple(c) + r[R_START:]
        out.append(r)
    return out


def test_the_messages_built_here_decode_to_their_rows() -> None:
    rows = tie_heavy_rows(300, 3)
    got: list[Row] = []
    for c in chunked(rows):
        Decoder().decode_chunk(c, got)
    assert got == rows


@pytest.mark.parametrize("group", [None, *COUNTED])
def test_every_group_is_counted_as_rows_are(group: str | None) -> None:
    agg = alike(chunked(tie_heavy_rows(2000, 11)), group)
    assert sum(agg.by_proto.values()) == 2000
    assert agg.bytes > 2**64  # sums past 64 bits, as Python's ints hold them


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), per=st.integers(1, 60),
       group=st.sampled_from(COUNTED))
def test_random_tables_count_alike(seed: int, n: int, per: int, group: str) -> None:
    alike(chunked(tie_heavy_rows(n, seed), per), group)


def test_a_flow_with_labels_is_counted_in_its_place() -> None:
    """The walk leaves labels to Python, which counts that row with add_row: its key keeps its place in the order."""
    rows = tie_heavy_rows(200, 5)
    labelled = [r[:R_LABELS] + ((1 << 70) if i % 7 == 0 else 0,) for i, r in enumerate(rows)]
    assert any(r[R_LABELS] for r in labelled)
    for group in COUNTED:
        alike(chunked(labelled, 30), group)


def test_what_the_dump_ends_with_is_python_s_to_say() -> None:
    """NLMSG_DONE ends the count; an error or a broken message raises what the row path raises."""
    rows = tie_heavy_rows(40, 9)
    chunks = chunked(rows, 40)
    assert Decoder().count_chunk(chunks[0], Counts()) is True
    broken = chunked(rows, 40, done=False)[0][:-3]
    with pytest.raises(DecodeError) as by_rows_err:
        Decoder().decode_chunk(broken, [])
    with pytest.raises(DecodeError) as by_counts_err:
        Decoder().count_chunk(broken, Counts())
    assert str(by_counts_err.value) == str(by_rows_err.value)


@settings(max_examples=600, deadline=None)
@given(msgs=st.lists(st.sampled_from(messages("dump_mix.bin")), min_size=1, max_size=4), data=st.data())
def test_mutated_real_bytes_count_as_they_decode(msgs: list[bytes], data: st.DataObject) -> None:
    """Real kernel messages with bytes flipped: counted as their rows would be, or the same error."""
    buf = bytearray(b"".join(m + b"\0" * (-len(m) % 4) for m in msgs))
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
    outcomes = []
    for count in (by_rows, by_counts):
        try:
            outcomes.append(ordered(count([bytes(buf)], "src-dport")))
        except (DecodeError, TypeError) as e:
            outcomes.append((type(e), str(e)) if isinstance(e, DecodeError) else (TypeError,))
    assert outcomes[0] == outcomes[1]


def test_counters_half_there_are_refused_after_a_later_broken_message_is() -> None:
    """Rows are counted once their chunk is decoded: a broken message after a flow with half its counters is the
    error either way (hypothesis found this order differing on mutated kernel bytes)."""
    rows = tie_heavy_rows(40, 13)
    counted = next(i for i, r in enumerate(rows) if r[R_OPKTS] is not None)
    half = rows[counted][:R_RBYTES] + (None,) + rows[counted][R_RBYTES + 1:]
    good = b"".join(message(r) for r in rows[:counted]) + message(half)
    for tail, error in ((b"", TypeError), (message(rows[-1])[:-3], DecodeError)):
        for count in (by_rows, by_counts):
            with pytest.raises(error):
                count([good + tail], "src")


def test_add_row_counts_as_the_walk_does() -> None:
    rows = tie_heavy_rows(500, 21)
    for group in COUNTED:
        counts, walked = Counts(GROUPS[group].reads), Counts(GROUPS[group].reads)  # type: ignore[arg-type]
        for r in rows:
            counts.add_row(r)
        for c in chunked(rows):
            Decoder().count_chunk(c, walked)
        assert counts.totals() == walked.totals()
        assert counts.states() == walked.states()
        assert [g[1:] for g in counts.groups()] == [g[1:] for g in walked.groups()]
        assert [g[0] for g in counts.groups()] == [g[0] for g in walked.groups()]


@pytest.mark.parametrize("name", COUNTED)
def test_a_group_key_reads_only_what_it_says(name: str) -> None:
    """GroupDef.reads is what the C side keys on: rows alike in those fields must share the group's key."""
    g = GROUPS[name]
    assert g.reads is not None
    for a, b in pairwise(tie_heavy_rows(400, 31)):
        mixed = tuple(a[i] if i in g.reads else b[i] for i in range(ROW_LEN))
        assert g.key(mixed) == g.key(a), (name, a, b)


@pytest.mark.parametrize("reads, error", [((ROW_LEN,), ValueError), ((-1,), ValueError), ((1, 2, 3, 4, 5), ValueError),
                                          (("5",), TypeError), ([5], TypeError), ((), ValueError)])
def test_a_bad_key_is_refused(reads: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        Counts(reads)  # type: ignore[arg-type]
    with pytest.raises(error):
        Counts((R_PROTO,), reads)  # type: ignore[arg-type]


def test_at_most_16_groups_and_no_keywords() -> None:
    assert Counts(*[(R_PROTO,)] * 16).ngroups() == 16
    with pytest.raises(ValueError):
        Counts(*[(R_PROTO,)] * 17)
    with pytest.raises(TypeError):
        Counts(reads=(R_PROTO,))  # type: ignore[call-arg]
    with pytest.raises(IndexError):
        Counts((R_PROTO,)).groups(1)


@pytest.mark.parametrize("row, words", [
    (("x",) * ROW_LEN, "a row field of type str"),
    ((0,) * (ROW_LEN - 1), "a tuple of model.ROW_LEN fields"),
    (tuple(None if i == R_PROTO else 0 for i in range(ROW_LEN)), "protocol, state and status are ints"),
    (tuple(None if i == R_RBYTES else 0 for i in range(ROW_LEN)), "packets counted without bytes"),
])
def test_a_bad_row_is_refused_and_nothing_counted(row: tuple, words: str) -> None:
    counts = Counts((R_PROTO,))
    with pytest.raises(TypeError, match=words):
        counts.add_row(row)
    assert counts.totals() == (0, 0, 0, 0) and counts.states() == [] and counts.groups() == []


def test_counts_not_initialised_refuse_work() -> None:
    counts = Counts.__new__(Counts)
    with pytest.raises(RuntimeError):
        counts.dump(b"", 0)
    with pytest.raises(RuntimeError):
        counts.add_row((0,) * ROW_LEN)


def test_add_counts_takes_the_groups_it_was_made_with() -> None:
    with pytest.raises(ValueError):
        Aggregates(["src", "dst"]).add_counts(Counts(GROUPS["src"].reads))  # type: ignore[arg-type]


@pytest.mark.parametrize("groups", [COUNTED, ["src", "dst"], ["state", "src-dport", "pair"]])
def test_several_groups_are_counted_at_once_as_rows_are(groups: list[str]) -> None:
    """The live view's load counts every tracked group in one walk: each as add_rows counts it, in order."""
    chunks = chunked(tie_heavy_rows(1500, 41), 37)
    dec, want, got = Decoder(), Aggregates(groups), Aggregates(groups)
    counts = Counts(*(GROUPS[g].reads for g in groups))  # type: ignore[misc]
    for c in chunks:
        rows: list[Row] = []
        done = dec.decode_chunk(c, rows)
        want.add_rows(rows)
        if Decoder().count_chunk(c, counts) or done:
            break
    got.add_counts(counts)
    assert ordered(got) == ordered(want) and len(got.groups) == len(groups)


def test_a_field_longer_than_an_attribute_can_be_is_refused_not_mistaken() -> None:
    """A key's bytes field carries its length in 2 bytes (a netlink attribute's payload is at most 65,535 bytes):
    a longer one, which only a row Python made could hold, is refused, never counted under another's key."""
    row = list(tie_heavy_rows(1, 5)[0])
    counts = Counts(GROUPS["src"].reads)  # type: ignore[arg-type]
    row[R_SRC] = b"\x01" * 0xFFFF
    counts.add_row(tuple(row))
    row[R_SRC] = b"\x01" * 0x10000
    with pytest.raises(ValueError, match="65535"):
        counts.add_row(tuple(row))
    assert counts.totals()[0] == 1

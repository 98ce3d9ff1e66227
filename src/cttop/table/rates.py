"""Rates: who creates flows now (new flows a second, by group), and how fast flows move bytes and packets.

New flows are counted as they are seen: from NEW events, or, where the kernel sends none
(``nf_conntrack_events=0``), from the flows a dump holds that the previous one did not (which
misses flows born and gone between the two). Either way a count covers a span of time; the rate
is the counts of the spans inside a sliding window over the time they cover.

Bytes and packets a second come from two dumps' counters (events carry none, bar DESTROY's), on
the packed records themselves: the counters are a record's last 32 bytes, so a flow that moved
nothing since the last dump is skipped by comparing that slice, without decoding anything.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Final

from cttop.model import Row
from cttop.table.aggregates import Aggregates, GroupRow
from cttop.table.groups import GROUPS, GroupKey
from cttop.table.packing import FLAGS_AT, O4, O6, UNREAD, V4C, V6C, unpack

WINDOW: Final = 10.0  # seconds of new flows a rate is taken over
COUNTERS_LEN: Final = 32  # opkts, obytes, rpkts, rbytes: 4 × 8 bytes, the tail of a counted record
assert V4C.size - O4["opkts"] == V6C.size - O6["opkts"] == COUNTERS_LEN
_TAIL4, _TAIL6 = V4C.size - COUNTERS_LEN, V6C.size - COUNTERS_LEN


class NewFlowRate:
    """New flows a second per group key, over the last ``window`` seconds of counted spans."""

    def __init__(self, key: Callable[[Row], GroupKey], window: float = WINDOW) -> None:
        self.key = key
        self.window = window
        self._spans: deque[tuple[float, float, Counter[GroupKey]]] = deque()
        self._last: float | None = None  # where the next span starts

    def start(self, t: float) -> None:
        """Counting starts now (subscribed, or the first dump was read)."""
        if self._last is None:
            self._last = t

    def add(self, t: float, rows: Iterable[Row]) -> None:
        """The new flows seen since the last call (or :meth:`start`), up to time ``t``."""
        if self._last is None:
            self._last = t
            return  # no span yet: a first batch has no known start
        t = max(self._last, t)
        self._spans.append((self._last, t, Counter(map(self.key, rows))))
        self._last = t
        while len(self._spans) > 1 and self._spans[0][1] < t - self.window:
            self._spans.popleft()

    @property
    def seconds(self) -> float:
        """How much time the rates cover (0 before the first span)."""
        return self._spans[-1][1] - self._spans[0][0] if self._spans else 0.0

    def rates(self) -> dict[GroupKey, float]:
        span = self.seconds
        if span <= 0:
            return {}
        total: Counter[GroupKey] = Counter()
        for _t0, _t1, counts in self._spans:
            total.update(counts)
        return {k: n / span for k, n in total.items()}


@dataclass(frozen=True, slots=True)
class FlowRate:
    bytes: float  # a second, both directions
    packets: float


def _counters(rec: bytes) -> tuple[int, int] | None:
    """(bytes, packets) of a packed record, both directions; None without accounting."""
    n = len(rec)
    if n == V4C.size:
        tail = _TAIL4
    elif n == V6C.size:
        tail = _TAIL6
    else:
        return None
    opkts, obytes, rpkts, rbytes = (int.from_bytes(rec[tail + i:tail + i + 8]) for i in (0, 8, 16, 24))
    return obytes + rbytes, opkts + rpkts


def _unread(rec: bytes) -> bool:
    """Whether no dump has shown this record's counters yet (packing.UNREAD: it came from events)."""
    return bool(rec[FLAGS_AT[len(rec)]] & UNREAD)


def flow_rates(old: Mapping[int, bytes], new: Mapping[int, bytes], seconds: float) -> dict[int, FlowRate]:
    """Per-flow bytes and packets a second between two tables of packed records (keyed alike), for the
    flows that moved something; flows only in ``new`` are measured from the counters they were first seen
    with, if any. A counter that went down (the flow was zeroed) gives no rate."""
    if seconds <= 0:
        return {}
    out: dict[int, FlowRate] = {}
    before: tuple[int, int] | None
    get = old.get
    for key, rec in new.items():
        prev = get(key)
        if prev is None:
            # Begun since the last dump: all it moved, it moved in these seconds. (Left out, a flood's groups
            # read 0 B/s: a flood is new flows.)
            now, before = _counters(rec), (0, 0)
        elif prev[-COUNTERS_LEN:] == rec[-COUNTERS_LEN:]:
            continue
        else:
            now, before = _counters(rec), _counters(prev)
            if before is None and _unread(prev):
                # Known only from its NEW event, which carries no counters: begun since the last dump too. (Asked
                # only of a flow that moved and had no counters, not of every flow of every dump.)
                before = (0, 0)
        if now is None or before is None:
            continue
        db, dp = now[0] - before[0], now[1] - before[1]
        if db >= 0 and dp >= 0 and (db or dp):
            out[key] = FlowRate(db / seconds, dp / seconds)
    return out


def group_rates(rates: Mapping[int, FlowRate], records: Mapping[int, bytes],
                key: Callable[[Row], GroupKey]) -> dict[GroupKey, FlowRate]:
    """Per-flow rates summed by group key (only the moving flows are unpacked)."""
    sums: dict[GroupKey, tuple[float, float]] = {}
    for fid, r in rates.items():
        rec = records.get(fid)
        if rec is None:
            continue
        k = key(unpack(rec))
        b, p = sums.get(k, (0.0, 0.0))
        sums[k] = (b + r.bytes, p + r.packets)
    return {k: FlowRate(b, p) for k, (b, p) in sums.items()}


def top_new(rates: Mapping[GroupKey, float], agg: Aggregates, name: str, n: int) -> list[GroupRow]:
    """The ``n`` groups of a tracked key creating the most flows a second (only those that created any),
    with what they hold now beside it."""
    entries, nbytes, npkts = agg.groups[name]
    g = GROUPS[name]
    have = agg.counted > 0
    best = heapq.nlargest(n, ((k, r) for k, r in rates.items() if r > 0), key=itemgetter(1))
    return [GroupRow(k, g.text(k), entries.get(k, 0), nbytes.get(k, 0) if have else None,
                     npkts.get(k, 0) if have else None, g.filter(k), new_rate=r) for k, r in best]


def with_rates(rows: Iterable[GroupRow], rates: Mapping[GroupKey, FlowRate]) -> list[GroupRow]:
    """The rows with their groups' bytes and packets a second filled in (0 for groups that moved nothing)."""
    zero = FlowRate(0.0, 0.0)
    return [replace(r, bytes_rate=(fr := rates.get(r.key, zero)).bytes, packets_rate=fr.packets) for r in rows]

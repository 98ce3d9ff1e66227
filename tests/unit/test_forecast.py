"""The forecast's flow model on simulated tables: arrivals, timeouts and departures as the kernel has them.

Each simulation steps a table the way conntrack runs it: flows arrive at a rate, each
entry leaves when its timeout runs out (or sooner, for connections that close), and
the history sees what cttop sees once a second: the kernel's count, the NEW events
so far, and the timeout model's lifetime for the state mix.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

import pytest

from cttop.table.history import MIN_SPAN, WINDOW, FillHistory, Forecast, LiveCount
from cttop.table.timeouts import in_force, model_lifetime, timeout_name

MAX = 262144
UDP = {"nf_conntrack_udp_timeout": "30", "nf_conntrack_udp_timeout_stream": "120"}


class Table:
    """Entries that each leave ``life`` seconds after they came; new ones arrive at ``rate`` a second."""

    def __init__(self, life: float, preload: int = 0) -> None:
        self.life = life
        # A preloaded table as a steady one leaves it: its entries' ends spread evenly over one lifetime.
        self.leaving: deque[float] = deque(life * (i + 1) / preload for i in range(preload))
        self.created = 0
        self.t = 0.0

    def step(self, rate: float, dt: float = 1.0) -> None:
        n = int(rate * dt)
        self.t += dt
        self.created += n
        self.leaving.extend([self.t + self.life] * n)
        while self.leaving and self.leaving[0] <= self.t:
            self.leaving.popleft()

    @property
    def count(self) -> int:
        return len(self.leaving)


def run(table: Table, rates: list[float], lifetime: float | None, seen: bool = True) -> FillHistory:
    h = FillHistory()
    for r in rates:
        table.step(r)
        h.add(table.t, table.count, table.created if seen else None, lifetime)
    return h


def test_a_storm_that_levels_off_says_so_long_before_it_does() -> None:
    # 3700 new UDP flows a second, 30 s each: the table heads for about 111k, far below the max.
    t = Table(30)
    f = run(t, [3700] * 12, 30.0).forecast(MAX)
    assert t.count < 0.5 * 111000
    assert f.kind == "levels-off" and f.level == pytest.approx(111000, rel=0.05)
    assert f.text() == "levels off near 110k (42% of max)"


def test_filling_past_the_max_says_when() -> None:
    t = Table(600)
    f = run(t, [2000] * 20, 600.0).forecast(MAX)
    assert f.kind == "full-in" and f.seconds == pytest.approx((MAX - t.count) / 2000, rel=0.05)
    assert f.text().startswith("full in 1m")


def test_a_table_filling_faster_than_its_events_arrive_is_not_draining() -> None:
    # Events lost: NEW counted at a tenth of the real rate. The kernel's count still rises at 10k/s.
    h = FillHistory()
    t = Table(600)
    for _ in range(12):
        t.step(10000)
        h.add(t.t, t.count, t.created // 10, 600.0)
    f = h.forecast(MAX)
    assert f.kind == "full-in" and f.seconds is not None and f.seconds < 60


def test_draining_when_what_comes_cannot_hold_what_is_there() -> None:
    # 90k entries from a storm that stopped; 50 new flows a second stay: it drains to about 1500.
    t = Table(30, preload=90000)
    f = run(t, [50] * 12, 30.0).forecast(MAX)
    assert f.kind == "draining" and f.level == pytest.approx(1500, rel=0.05)
    assert f.text() == "draining to 1.5k"


def test_steady_sessions_under_a_5_day_timeout_level_off_where_they_are() -> None:
    # 10 sessions a second, each closed after an hour: the 5-day timeout would say "full", the departures say level.
    t = Table(3600, preload=36000)
    f = run(t, [10] * 12, 432000.0).forecast(MAX)
    assert f.kind == "levels-off" and f.level == pytest.approx(36000, rel=0.05)


@pytest.mark.parametrize("rates, lifetime, seen, why", [
    ([100] * 2, 30.0, True, "under MIN_SPAN of history"),
    ([100] * 12, None, True, "no timeout known for the table's states"),
    ([100] * 12, 30.0, False, "no events: no arrival rate"),
])
def test_unknown_rather_than_a_guess(rates: list[float], lifetime: float | None, seen: bool, why: str) -> None:
    assert len(rates) < MIN_SPAN + 1 or why
    assert run(Table(30), rates, lifetime, seen).forecast(MAX).kind == "unknown", why


def test_a_model_that_contradicts_the_count_is_unknown() -> None:
    # The model says the table would drain (short lifetimes), yet the kernel's count keeps climbing.
    h = FillHistory()
    for i in range(12):
        h.add(float(i), 50000 + 1000 * i, 100 * i, 5.0)
    assert h.forecast(MAX).kind == "unknown"


def test_at_the_max_it_is_full() -> None:
    # New flows still get in (early_drop makes room), but the table cannot grow: full, not "levels off".
    h = FillHistory()
    for i in range(12):
        h.add(float(i), MAX, 2000 * i, 600.0)
    assert h.forecast(MAX).text() == "full"


@pytest.mark.parametrize("level, text", [(9000, "levels off near 9.0k (3% of max)"), (42, "levels off near 42 (0% of max)"),
                                         (1_234_567, "levels off near 1.2M (471% of max)")])
def test_levels_are_shown_to_two_figures(level: float, text: str) -> None:
    assert Forecast("levels-off", level, maximum=MAX).text() == text


def test_the_model_lifetime_weighs_each_state_by_its_timeout() -> None:
    sysctls = {**UDP, "nf_conntrack_tcp_timeout_time_wait": "120", "nf_conntrack_tcp_timeout_established": "432000"}
    # 1200 TIME_WAIT leave 10/s, 600 UDP 20/s, 24 sessions ~0/s: 1824 entries leaving ~30/s.
    by_state = {"tcp:TIME_WAIT": 1200, "udp:UNREPLIED": 600, "tcp:ESTABLISHED": 24}
    assert model_lifetime(by_state, sysctls) == pytest.approx(1824 / (10 + 20 + 24 / 432000))
    assert model_lifetime({"tcp:SYN_SENT2": 5}, sysctls) is None  # no sysctl keeps it
    assert model_lifetime({}, sysctls) is None


@pytest.mark.parametrize("key, name", [
    ("tcp:ESTABLISHED", "nf_conntrack_tcp_timeout_established"), ("tcp:CLOSE", "nf_conntrack_tcp_timeout_close"),
    ("tcp:LAST_ACK", "nf_conntrack_tcp_timeout_last_ack"), ("tcp:SYN_SENT2", None), ("tcp:NONE", None),
    ("udp:UNREPLIED", "nf_conntrack_udp_timeout"), ("udp:REPLIED", "nf_conntrack_udp_timeout"),
    ("udp:ASSURED", "nf_conntrack_udp_timeout_stream"), ("udplite:ASSURED", "nf_conntrack_udp_timeout_stream"),
    ("icmp:REPLIED", "nf_conntrack_icmp_timeout"), ("icmpv6:UNREPLIED", "nf_conntrack_icmpv6_timeout"),
    ("gre:UNREPLIED", "nf_conntrack_gre_timeout"), ("gre:ASSURED", "nf_conntrack_gre_timeout_stream"),
    ("sctp:COOKIE_WAIT", "nf_conntrack_sctp_timeout_cookie_wait"), ("dccp:OPEN", "nf_conntrack_dccp_timeout_open"),
    ("igmp:UNREPLIED", "nf_conntrack_generic_timeout"), ("253:UNREPLIED", "nf_conntrack_generic_timeout"),
])
def test_every_state_maps_to_the_timeout_that_keeps_it(key: str, name: str | None) -> None:
    assert timeout_name(key) == name


def test_a_timeout_this_kernel_lacks_is_not_in_force() -> None:
    assert in_force("nf_conntrack_dccp_timeout_open", UDP) is None
    assert in_force("nf_conntrack_udp_timeout", UDP) == 30


def test_a_table_that_holds_is_not_draining_even_if_the_model_says_lower() -> None:
    # Entries outlive their 15 s timeout (traffic renews their timers): the live count holds about 15 % above
    # rate × timeout. What leaves is what comes, so it levels off where it is; not "draining".
    h = FillHistory()
    for i in range(12):
        h.add(float(i), 8600 + (i % 2) * 20, 500 * i, 15.0)
    f = h.forecast(MAX)
    assert f.kind == "levels-off" and f.level == pytest.approx(8620, rel=0.01)


class Kernel:
    """A conntrack table as the kernel keeps it: an entry is live until its timeout runs out, and counted
    (nf_conntrack_count) until the GC worker's next scan, every ``gc_every`` seconds, reaps it."""

    def __init__(self, life: float, gc_every: float, ends: list[float] | None = None) -> None:
        self.life, self.gc_every = life, gc_every
        self.ends = sorted(ends or [])  # every counted entry's end; appended in order as entries come
        self.head = 0  # those before it were reaped
        self.t = 0.0
        self.created = 0

    def step(self, rate: float, dt: float) -> None:
        self.t += dt
        n = round(rate * dt)
        self.created += n
        self.ends += [self.t + self.life] * n
        if self.t % self.gc_every < dt - 1e-9:
            self.head = bisect_right(self.ends, self.t, self.head)

    @property
    def count(self) -> int:
        return len(self.ends) - self.head

    @property
    def live(self) -> int:
        return len(self.ends) - bisect_right(self.ends, self.t, self.head)

    def dump(self) -> list[tuple[int, int]]:
        """What a dump lists: the live entries, each with (second read, whole seconds of timeout left)."""
        return [(int(self.t), int(e - self.t)) for e in self.ends[bisect_right(self.ends, self.t, self.head):]]


# Frames every 0.5 s and a dump every 10 s, as the collector has them.
FRAME = 0.5
DUMP_EVERY = 10.0


def watch(k: Kernel, rates: list[float], live: bool = True) -> list[tuple[float, int, int, Forecast]]:
    """Each frame's (time, kernel's count, live entries, forecast); ``live``: the history is told the live count."""
    h, lc, out = FillHistory(), LiveCount(), []
    lc.dumped(k.live, k.created, k.dump(), k.t, k.t)
    for r in rates:
        k.step(r, FRAME)
        if k.t % DUMP_EVERY < FRAME - 1e-9:
            lc.dumped(k.live, k.created, k.dump(), k.t, k.t)
        if live:
            h.add(k.t, k.count, k.created, k.life, lc.at(k.t, k.count, k.created), lc.ending(k.t))
        else:
            h.add(k.t, k.count, k.created, k.life)
        out.append((k.t, k.count, k.live, h.forecast(MAX)))
    return out


def frames(seconds: float) -> int:
    return round(seconds / FRAME)


def test_a_steady_table_under_the_gc_sawtooth_levels_off_at_its_live_level_every_frame() -> None:
    # 500 new flows a second, 15 s each: 7500 live. Expired entries stay counted until the GC's scan every 8 s,
    # so the kernel's count saw-tooths up to half as much again.
    seen = watch(Kernel(15.0, 8.0), [500] * frames(90))
    steady = [s for s in seen if s[0] > 30]
    assert max(kernel / live for _t, kernel, live, _f in steady) > 1.4  # the sawtooth is there
    for t, kernel, live, f in steady:
        assert f.kind == "levels-off" and f.level == pytest.approx(live, rel=0.10), (t, kernel, live, f)
    # Told only the kernel's count, the same table reads as rising or draining between scans.
    misread = watch(Kernel(15.0, 8.0), [500] * frames(90), live=False)
    assert any(f.kind != "levels-off" for t, *_rest, f in misread if t > 30)


def test_a_table_rising_under_the_gc_sawtooth_is_forecast_to_level_off_above() -> None:
    # Steady at 100/s × 30 s, then 300/s: it rises to 9000. Once the window holds only the new rate, and while
    # the table is still on its way (under 80 % of it), every frame says it levels off near 9000.
    seen = watch(Kernel(30.0, 8.0), [100] * frames(60) + [300] * frames(40))
    rising = [s for s in seen if s[0] > 60 + WINDOW and s[2] < 0.8 * 9000]
    assert len(rising) >= 10
    for t, kernel, live, f in rising:
        assert f.kind == "levels-off" and f.level == pytest.approx(9000, rel=0.05), (t, kernel, live, f)


def test_a_table_draining_under_the_gc_sawtooth_is_forecast_to_drain() -> None:
    # 90k entries of a storm (3000/s × 30 s) that stopped at t = 0; 50 new flows a second go on: to 1500.
    storm = [30.0 * (i + 1) / 90000 for i in range(90000)]
    seen = watch(Kernel(30.0, 8.0, storm), [50] * frames(40))
    draining = [s for s in seen if s[0] > MIN_SPAN and s[2] > 2 * 1500]
    assert len(draining) >= 10
    for t, kernel, live, f in draining:
        assert f.kind == "draining" and f.level == pytest.approx(1500, rel=0.05), (t, kernel, live, f)


def test_a_storm_table_whose_entries_are_yet_to_end_is_draining_before_they_do() -> None:
    # 18000 entries of a storm, their timeouts running out 5..30 s from now, and 60 new flows a second: nothing
    # has left yet in the first seconds, but the dump's timeouts say they will: draining to 60 × 30.
    ends = [5 + 25 * i / 18000 for i in range(18000)]
    seen = watch(Kernel(30.0, 8.0, ends), [60] * frames(5))
    first = [(t, f) for t, _k, _live, f in seen if t > MIN_SPAN]
    assert first and all(f.text() == "draining to 1.8k" for _t, f in first), first


def test_the_live_count_is_the_dump_plus_new_minus_what_ended_since() -> None:
    lc = LiveCount()
    assert lc.at(5.0, 1234, 0) == 1234  # before a dump: the kernel's count
    # Read at 100.0: 10 entries with 3 s left (they end within [103, 104)), 10 with 50 s left.
    lc.dumped(20, 7, [(100, 3)] * 10 + [(100, 50)] * 10, 100.0, 100.0)
    assert lc.at(102.9, 1000, 7) == 20
    assert lc.at(103.5, 1000, 7) == 15  # half of those ending over that second
    assert lc.at(104.1, 1000, 12) == 15  # the 10 gone, 5 new
    assert lc.at(104.1, 12, 12) == 12  # never more than the kernel's count, which holds every live entry
    assert lc.ending(100.0) == pytest.approx(10 / WINDOW)  # the 10 due within the window after 100.0
    assert lc.ending(104.0) == 0.0


def test_the_live_count_takes_read_times_from_the_dumps_span() -> None:
    # Read at 100.9 (kept as second 100), 2 s left: ends within [102.9, 103.9), not [102, 103).
    lc = LiveCount()
    lc.dumped(10, 0, [(100, 2)] * 10, 100.9, 100.9)
    assert lc.at(102.8, 100, 0) == 10
    assert lc.at(103.4, 100, 0) == 5
    assert lc.at(104.0, 100, 0) == 0


def test_nothing_arriving_and_nothing_leaving_is_unknown() -> None:
    # 1000 injected entries with 300 s left, nothing new: no throughput, so no level to tell (they may wait out
    # their timeout, or traffic may renew them); not "levels off near 0".
    seen = watch(Kernel(300.0, 8.0, [300.0] * 1000), [0] * frames(15))
    assert [f.text() for *_rest, f in seen[frames(MIN_SPAN):]] == ["unknown"] * len(seen[frames(MIN_SPAN):])


def test_entries_ending_with_nothing_arriving_drain_to_0() -> None:
    # 18000 injected entries ending over 5..30 s, nothing new: draining to 0 while they end.
    ends = [5 + 25 * i / 18000 for i in range(18000)]
    seen = watch(Kernel(30.0, 8.0, ends), [0] * frames(25))
    ending = [f for t, _k, live, f in seen if 5 + MIN_SPAN < t and live > 1000]
    assert ending and all(f.text() == "draining to 0" for f in ending), ending


class CyclingFlood:
    """A SYN flood cycling over ``ports`` source ports at ``pps``: each packet renews its port's entry (``life``
    seconds from then), so the table holds one entry a port and the flood makes no NEW event once round. Beside
    it, new flows that each live ``life``, ``others`` of them there already (ending evenly over a lifetime). The
    kernel's count is the live one (no GC lag)."""

    def __init__(self, ports: int, pps: float, life: float, others: int) -> None:
        self.ports, self.pps, self.life = ports, pps, life
        cycle = ports / pps
        # Already going round: port p was last hit (cycle - p / pps) seconds ago.
        self.flood = [life - cycle + p / pps for p in range(ports)]
        self.others = [life * (i + 1) / others for i in range(others)]
        self.t = 0.0
        self.created = 0
        self.hits = 0

    def step(self, rate: float, dt: float) -> None:
        n = round(self.pps * dt)
        for k in range(n):
            self.flood[(self.hits + k) % self.ports] = self.t + (k + 1) / self.pps + self.life
        self.hits += n
        self.t += dt
        new = round(rate * dt)
        self.created += new
        self.others = [e for e in self.others if e > self.t] + [self.t + self.life] * new

    @property
    def live(self) -> int:
        return sum(e > self.t for e in self.flood) + len(self.others)

    count = live

    def dump(self) -> list[tuple[int, int]]:
        return [(int(self.t), int(e - self.t)) for e in self.flood + self.others if e > self.t]


def test_a_flood_renewing_the_same_entries_levels_off_once_a_dump_has_seen_them_stay() -> None:
    # 6000 ports hit 240 times a second: each entry renewed every 25 s, its 30 s timeout never runs out, and 8 new
    # flows a second beside, as many ending. After a dump, the entries read with under 10 s left are due to end by their timeouts,
    # yet each is renewed in time. The next dump still lists them all: from then on the table holds, every frame.
    k = CyclingFlood(6000, 240.0, 30.0, 8 * 30)
    seen = watch(k, [8] * frames(60))
    assert all(6000 <= live <= 6000 + 8 * 30 for _t, _k, live, _f in seen)  # it holds, truly
    learnt = [(t, f) for t, _k, _live, f in seen if t > DUMP_EVERY + WINDOW]
    assert len(learnt) >= 60
    for t, f in learnt:
        assert f.kind == "levels-off" and f.level == pytest.approx(6000 + 8 * 30, rel=0.05), (t, f)


def test_the_live_count_takes_the_share_renewed_between_two_dumps_as_staying() -> None:
    lc = LiveCount()
    # 1000 entries due to end within [103, 104); 1000 more with 50 s left.
    lc.dumped(2000, 0, [(100, 3)] * 1000 + [(100, 50)] * 1000, 100.0, 100.0)
    assert lc.at(105.0, 5000, 0) == 1000
    # The next dump, at 110, still lists 1800: 800 of the 1000 were renewed (20 new flows came meanwhile).
    lc.dumped(1820, 20, [(110, 3)] * 1000 + [(110, 40)] * 820, 110.0, 110.0)
    assert lc.ending(110.0) == pytest.approx(1000 * 0.2 / WINDOW)
    assert lc.at(115.0, 5000, 20) == 1820 - 200
    # A dump at 112, before any of those was due: no measure, the last share stands.
    lc.dumped(1800, 40, [(112, 3)] * 50 + [(112, 40)] * 1750, 112.0, 112.0)
    assert lc.at(117.0, 5000, 40) == 1800 - 10  # 50 due, a fifth of them taken as ending


def test_a_dump_right_after_a_change_from_here_measures_no_renewals() -> None:
    lc = LiveCount()
    # 1000 entries due within [103, 104), renewed by their traffic; 9000 more with 50 s left.
    lc.dumped(10000, 0, [(100, 3)] * 1000 + [(100, 50)] * 9000, 100.0, 100.0)
    lc.dumped(10000, 0, [(110, 3)] * 1000 + [(110, 40)] * 9000, 110.0, 110.0)  # all 1000 still there: renewed
    assert lc.ending(110.0) == 0.0
    # A flush from here took 8000 of the others; the dump read after it lists 2000. The 1000 due were renewed
    # again, yet measured here they would read as none renewed, the flush's 8000 taken for their ending.
    lc.dumped(2000, 0, [(120, 3)] * 1000 + [(120, 30)] * 1000, 120.0, 120.0, renewals=False)
    assert lc.ending(120.0) == 0.0  # the last share stands
    assert lc.at(125.0, 2000, 0) == 2000
    # Measured (a dump not after a change), the same reading gives none renewed: 100 a second "ending".
    measured = LiveCount()
    measured.dumped(10000, 0, [(110, 3)] * 1000 + [(110, 40)] * 9000, 110.0, 110.0)
    measured.dumped(2000, 0, [(120, 3)] * 1000 + [(120, 30)] * 1000, 120.0, 120.0)
    assert measured.ending(120.0) == pytest.approx(1000 / WINDOW)


def test_after_a_flush_from_here_the_forecast_fits_only_what_came_after() -> None:
    """A flush takes the table from 10,500 to 2,500 and it refills at 1,000 new a second: with the drop in its
    window the fit has no direction to give (in a lab: "draining to 3.1k"); from the flush on, it is rising
    towards its level (and says nothing for MIN_SPAN)."""
    def fill(h: FillHistory) -> list[Forecast]:
        out, created = [], 0
        for i in range(20):  # steady at 10,500, 350 new a second, 30 s each
            created += 175
            h.add(i * 0.5, 10_500, created, 30.0)
        if h is told:
            h.changed(10.0)
        for i in range(1, 13):  # flushed at 10 s to 2,500, then 1,000 new a second
            created += 500
            h.add(10.0 + i * 0.5, 2_500 + 500 * i, created, 30.0)
            out.append(h.forecast(MAX))
        return out

    told = FillHistory()
    after = fill(told)
    assert [f.kind for f in after[:5]] == ["unknown"] * 5  # under MIN_SPAN of samples since the flush
    assert all(f.kind == "levels-off" and f.level is not None and f.level > 8_500 for f in after[6:]), after
    untold = fill(FillHistory())
    assert all(f.kind == "unknown" for f in untold[6:]), untold  # the drop in the window: a model and a count
    # that disagree, for as long as the window holds it

"""The forecast's flow model on simulated tables: arrivals, timeouts and departures as the kernel has them.

Each simulation steps a table the way conntrack runs it: flows arrive at a rate, each
entry leaves when its timeout runs out (or sooner, for connections that close), and
the history sees what cttop sees once a second: the kernel's count, the NEW events
so far, and the timeout model's lifetime for the state mix.
"""

from __future__ import annotations

from collections import deque

import pytest

from cttop.table.history import MIN_SPAN, FillHistory, Forecast
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
    # Entries outlive their 15 s timeout by a few seconds (the kernel reaps expired ones in batches): the count
    # holds about 10 % above rate × timeout. Level, near the model's figure; not "draining".
    h = FillHistory()
    for i in range(12):
        h.add(float(i), 8600 + (i % 2) * 20, 500 * i, 15.0)
    f = h.forecast(MAX)
    assert f.kind == "levels-off" and f.level == pytest.approx(7500, rel=0.01)

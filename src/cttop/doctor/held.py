"""What each timeout keeps in the table, and what the table would hold at a shorter value.

Every packet resets an entry's timer to the timeout in force for its state
(:mod:`cttop.table.timeouts`), so the time an entry has been idle is that timeout
minus the time it has left, and no more than its age when the start timestamp
says how old it is (nf_conntrack_timestamp). Two estimates of the entries a
timeout T' would keep:

- **steady** (no ages, or the entries go back a whole timeout): the entries idle
  under T' now. At a steady rate of flows that is exact: the others would already
  have expired;
- **young** (ages known, the oldest under one timeout): the table has not had time
  to fill to its level yet, so the snapshot says little. The rate flows come at is
  the lower of the two halves of that span's starts still here: a one-off burst has
  no recent starts, and entries that only pass through this state (a UDP flow is
  REPLIED for 2 s, then ASSURED) have left the older half. Each stays its active
  span plus the timeout: rate × (span + T) is where the table heads, rate × (span + T')
  where it would stay. That level against the entries held says how they come: past
  them, still filling; about them, a steady flow at its level; short of them, a burst.

An entry with more time left than the timeout in force got its timer under a longer
value: a lowered sysctl reaches an entry only with its next packet, so it keeps the old
timer until it expires or is flushed (``Held.old``). A flowtable renews the timers of
the entries it offloads to a day, so those are counted apart (``Held.offloaded``).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

from cttop.actions.tunables import default_of

# RFC 5382 REQ-5: a NAT's established idle-timeout MUST NOT be under 2 h 4 min (OpenWrt ships exactly this).
IDLE_SECONDS: Final = 7440


class Recommended(NamedTuple):
    seconds: int
    why: str  # why that short is safe, after "N s"


# Shorter values worth suggesting where the kernel's default is long for the job; other timeouts go to the default.
RECOMMENDED: Final[dict[str, Recommended]] = {
    "nf_conntrack_tcp_timeout_established": Recommended(
        IDLE_SECONDS, "(2 h 4 min) is RFC 5382's floor for NATs and outlasts TCP keepalive's 2 h"),
    "nf_conntrack_tcp_timeout_time_wait": Recommended(
        30, "still absorbs late segments (the kernel's 120 s is twice an old MSL)"),
    "nf_conntrack_tcp_timeout_syn_sent": Recommended(30, "lets a live peer answer a SYN retried four times"),
    "nf_conntrack_tcp_timeout_syn_recv": Recommended(20, "is plenty for a handshake's last ACK"),
    "nf_conntrack_udp_timeout": Recommended(
        10, "is plenty for a reply to come back; answered flows move to the stream timeout"),
    "nf_conntrack_icmp_timeout": Recommended(10, "is plenty for an echo reply"),
    "nf_conntrack_icmpv6_timeout": Recommended(10, "is plenty for an echo reply"),
    "nf_conntrack_gre_timeout": Recommended(10, "is plenty for GRE's first answer"),
    "nf_conntrack_generic_timeout": Recommended(60, "is plenty for protocols conntrack knows nothing of"),
}
MIN_AGE: Final = 0.5  # seconds of ages needed before a rate is taken from them (timestamps are in ns)
MIN_ARRIVALS: Final = 20  # entries in each half of a young table's span before its arrivals make a rate
GROWS: Final = 0.10  # a rate's level this far past the entries held is still filling; this far short, a burst


@dataclass
class Held:
    """The entries one timeout sysctl keeps: how many of each state, how long each has been idle, and its age."""

    name: str  # the sysctl, e.g. nf_conntrack_udp_timeout_stream
    timeout: int  # its value in force
    states: dict[str, int] = field(default_factory=dict)
    idle: array[float] = field(default_factory=lambda: array("f"))
    ages: array[float] | None = field(default_factory=lambda: array("f"))  # None: some entry has no start time
    old: int = 0  # entries with more time left than ``timeout``, not offloaded: timers from a longer value
    longest: int = 0  # the most time left among those
    offloaded: int = 0  # offloaded entries with more time left than ``timeout``

    @property
    def entries(self) -> int:
        return len(self.idle)

    @property
    def too_young(self) -> bool:
        """Every entry began under MIN_AGE ago: a burst and the start of a flood look alike, so no rate yet."""
        return self.ages is not None and len(self.ages) > 0 and max(self.ages) < MIN_AGE

    def add(self, key: str, idle: float, age: float | None) -> None:
        self.states[key] = self.states.get(key, 0) + 1
        self.idle.append(idle)
        if age is None:
            self.ages = None
        elif self.ages is not None:
            self.ages.append(age)

    def outlives(self, left: int, offloaded: bool) -> None:
        """One of the entries (already added) has ``left`` seconds to live, more than ``timeout``."""
        if offloaded:
            self.offloaded += 1
        else:
            self.old += 1
            self.longest = max(self.longest, left)


Flow = Literal["idle", "filling", "steady", "burst"]


@dataclass(frozen=True)
class Estimate:
    """Entries kept by the timeout in force and at ``target``; young tables also by the rate they start at."""

    target: int
    entries: int  # held now
    level: float  # where the timeout in force keeps them: the entries held (steady), rate × (span + T) (young)
    at: float
    young: bool
    rate: float | None = None  # flows a second (young tables)
    since: float | None = None  # seconds the oldest entry goes back (young tables)

    @property
    def heading(self) -> float:
        """Entries the timeout in force keeps: now, or where a young table heads (never fewer than now)."""
        return max(float(self.entries), self.level)

    @property
    def explained(self) -> float:
        return max(0.0, self.heading - self.at)

    @property
    def flow(self) -> Flow:
        """How the entries come: judged from idle times (``idle``), or by what their rate keeps against what is
        held: more (``filling``), about as many (``steady``, at its level) or fewer (``burst``, come and gone)."""
        if not self.young:
            return "idle"
        if self.level > self.entries * (1 + GROWS):
            return "filling"
        return "steady" if self.level >= self.entries * (1 - GROWS) else "burst"


def estimate(h: Held, target: int) -> Estimate:
    n = h.entries
    if h.ages is not None and n:
        oldest = max(h.ages)
        if MIN_AGE <= oldest < h.timeout:
            half = oldest / 2
            recent = sum(1 for a in h.ages if a < half)
            # A rate needs arrivals in both halves, enough of them to be a flow: a handful of recent entries (a
            # web server's short connections, ESTABLISHED for a moment before they close) times a 5-day timeout
            # would project a table past any max from nothing. Fewer is a burst: no rate.
            arrivals = min(recent, n - recent)
            rate = arrivals / half if arrivals >= MIN_ARRIVALS else 0.0
            span = sum(a - i for a, i in zip(h.ages, h.idle, strict=True)) / n
            return Estimate(target, n, rate * (span + h.timeout), rate * (span + target), True, rate, oldest)
    return Estimate(target, n, float(n), float(sum(1 for i in h.idle if i < target)), False)


def target_for(name: str, current: int) -> int | None:
    """The value to suggest for timeout ``name`` now at ``current``: recommended or default, if shorter."""
    rec = RECOMMENDED.get(name)
    t = rec.seconds if rec is not None else default_of(name)
    return t if t is not None and current > t else None

"""What each number on the screen means, in one line: shown by the help screen and kept
next to the code that computes them so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Final

from cttop.live.pager import PAGE_MAX

# CT_GET_STATS_CPU counters the Pressure panel shows as rates, in display order.
PRESSURE: Final[dict[str, str]] = {
    "drop": "a new connection could not be tracked, so its packet was dropped (table full, or no memory)",
    "early_drop": "a not-ASSURED entry was evicted to make room for a new one: the table is at its max",
    "invalid": "a packet conntrack could not place in a flow (out of window, bad flags); often dropped by rules",
    "insert_failed": "an entry could not be inserted (it clashed with an existing one); the packet was dropped",
    "clash_resolve": "two packets of one new flow raced and the clash was resolved; harmless",
    "chaintoolong": "a hash chain grew too long: hashsize too small for the load, or hash flooding",
    "search_restart": "a lookup restarted because the table changed under it (resize, heavy churn)",
}

FILL: Final[dict[str, str]] = {
    "count": "entries in this namespace's table now (the kernel's own count)",
    "max": "nf_conntrack_max: past it, new connections are dropped (after early_drop)",
    "fill %": "count / max; yellow from 80 %, red from 95 %",
    "buckets": "hash buckets (nf_conntrack_buckets); max/buckets is the average chain length when full",
    "evictable": "entries not yet ASSURED, which early_drop may reclaim when the table is full",
    "new/s, gone/s": "entries created and destroyed per second, from the kernel's events",
    "history": "the count over the last minutes, one sample per refresh",
    "forecast": "where the table heads: new/s × mean lifetime (the timeouts in force for its states); "
                "levels off near N, full in T, draining to N, or unknown",
    "events lost": "times the kernel dropped events (ENOBUFS) and cttop resynced with a full dump",
    "refreshed": "when flows and their byte counters were last re-read with a full dump",
    "Flows N": "flows in the table at the frame's instant; a table off the kernel's count is resynced with a dump",
    "bounded at N": "over --max-flows N flows, counted without being held: counts, states and groups by entries stay "
                    f"exact; the list is the first flows (at most {PAGE_MAX:,}) read from the kernel, filter pushed down",
    "timeout": "seconds left, counted down from when the kernel last told it (a dump or an event)",
    "?": "not known yet: a rate until its second reading, a new flow's bytes until a dump reads them",
    "-": "none: the flow began while accounting (nf_conntrack_acct) was off",
}

"""The per-CPU conntrack counters from ``/proc/net/stat/nf_conntrack``, readable without privilege.

CT_GET_STATS_CPU needs CAP_NET_ADMIN; this file is world-readable and holds the
same counters, so a user without it still sees drop, early_drop and insert_failed.
One header line names the columns, then one line of hex numbers per CPU. Kernels
differ in the columns (6.x printed clash_resolve and chaintoolong in slots once
called searched and delete_list, with new header words), so columns are found by
the header, never by position. The first column, ``entries``, is the namespace's
count, printed the same on every CPU's line.

``/proc/net`` is the namespace of the thread that opens it through
``/proc/thread-self/net`` (``/proc/net`` follows the process's main thread), so
another namespace is read through :func:`cttop.kernel.netns.run_in`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cttop.errors import CttopError
from cttop.kernel import nlconst as C
from cttop.kernel.netns import NetnsSpec, run_in

SOURCE: Final = "/proc/net/stat/nf_conntrack"  # what messages and outputs call it
PATH: Final = "/proc/thread-self/net/stat/nf_conntrack"  # what is opened: the reading thread's namespace
MAX_BYTES: Final = 1 << 20  # 17 columns of 9 bytes a CPU: room for ~6,000 CPUs
# Header words that differ from the CTA_STATS_* names ctnetlink and `conntrack -S` use.
ALIASES: Final = {"clashres": "clash_resolve", "chainlength": "chaintoolong", "icmp_error": "error"}
NAMES: Final = frozenset(C.STATS_CPU_NAMES.values())


class ProcStatError(CttopError):
    """The counters file is missing or not what this parser knows; the message says which and why."""


@dataclass(frozen=True)
class ProcStat:
    count: int  # the namespace's entries (nf_conntrack_count)
    totals: dict[str, int]  # every CTA_STATS_* name the header has, summed over the CPUs

    def as_cpu_totals(self) -> dict[str, int]:
        """Shaped as ctnetlink's summed per-CPU counters: every name, 0 where this kernel has none
        (as CT_GET_STATS_CPU leaves out what the kernel no longer counts)."""
        return {name: self.totals.get(name, 0) for name in C.STATS_CPU_NAMES.values()}


def parse(text: str, where: str = SOURCE) -> ProcStat:
    """The file's text, summed over CPUs; raises ProcStatError naming ``where`` and the line."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ProcStatError(f"{where}: empty")
    head = [ALIASES.get(w, w) for w in lines[0]]
    if "entries" not in head:
        raise ProcStatError(f"{where}: line 1 is not the header (no 'entries' column)")
    sums = dict.fromkeys(head, 0)
    count: int | None = None
    for n, row in enumerate(lines[1:], start=2):
        if len(row) != len(head):
            raise ProcStatError(f"{where}: line {n} has {len(row)} columns, the header {len(head)}")
        try:
            values = [int(v, 16) for v in row]
        except ValueError:
            raise ProcStatError(f"{where}: line {n} is not hex numbers") from None
        for name, v in zip(head, values):
            sums[name] += v
        count = values[head.index("entries")]
    if count is None:
        raise ProcStatError(f"{where}: no CPU lines")
    return ProcStat(count, {k: v for k, v in sums.items() if k in NAMES})


def _read_local() -> str:
    try:
        with open(PATH, encoding="ascii", errors="replace") as f:
            return f.read(MAX_BYTES)
    except FileNotFoundError:
        raise ProcStatError(f"{SOURCE}: missing (nf_conntrack not loaded?)") from None
    except OSError as e:
        raise ProcStatError(f"{SOURCE}: {e.strerror}") from None


def read(spec: NetnsSpec = NetnsSpec()) -> ProcStat:
    """The counters of ``spec``'s namespace (entering it needs privilege; the caller's own does not)."""
    return parse(run_in(spec, _read_local))

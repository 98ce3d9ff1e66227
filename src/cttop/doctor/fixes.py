"""How a finding's fix is spelt and scoped: shell lines, comments above them, and the plan a button applies.

Scope is the point. A per-namespace setting (timeouts, acct, be_liberal) is set
inside the namespace (``ip netns exec NAME`` or nsenter). A global one
(nf_conntrack_max, hashsize) is one value for the whole host: its command is the
one for the initial namespace, under a comment line saying so, and its plan is
offered only when doctor looks at the initial namespace itself; from any other
namespace it is a command to read, never a one-key fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from cttop.actions import AddNotrack, FlushFlows, SetSysctls
from cttop.actions.sysctl_plan import set_command
from cttop.doctor.collect import Observation
from cttop.doctor.report import Finding, Remedy
from cttop.kernel.netns import NetnsSpec
from cttop.kernel.sysctl import is_global

MATTERS: Final = 0.05  # of nf_conntrack_max: a share of the table smaller than this is no pressure
# The live view's yellow and red: a table this full is nearly full, or full.
FILL_WARN: Final = 0.80
FILL_CRIT: Final = 0.95
GLOBAL_HERE: Final = "# global: the whole host (every namespace shares it)"
GLOBAL_ELSEWHERE: Final = "# global: the whole host (every namespace shares it); run it in the host's initial " \
    "namespace, not in {where}"


def duration(seconds: float) -> str:
    s = int(seconds)
    if s >= 86400:
        d, h = divmod(s // 3600, 24)
        return f"{d} d {h} h" if h else f"{d} d"
    if s >= 3600:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:.0f}/s" if seconds > 0 else "?/s"


def floor(o: Observation) -> float:
    """Entries a share must reach to matter."""
    return MATTERS * o.max


def ok(code: str, title: str, evidence: str, data: dict[str, object]) -> Finding:
    return Finding(code, "ok", title, evidence, data)


def set_commands(o: Observation, name: str, value: int | str) -> list[str]:
    """The shell lines that set one tunable where it lives, as the confirmation shows them; a global one comes
    under its scope comment, and from another namespace is the initial namespace's line."""
    if not is_global(name):
        return [set_command(o.spec, name, value)]
    if o.initial:
        return [GLOBAL_HERE, set_command(o.spec, name, value)]
    return [GLOBAL_ELSEWHERE.format(where=o.spec.label()), set_command(NetnsSpec(), name, value)]


def sysctl_remedy(o: Observation, values: Mapping[str, int]) -> Remedy | None:
    """A SetSysctls plan in the namespace; None for a global value unless this is the initial namespace.

    From another namespace a global change is the host's, not this namespace's: it
    is shown as a command for the host, and offered as no button.
    """
    if any(map(is_global, values)) and not o.initial:
        return None
    frozen, spec = dict(values), o.spec
    return Remedy(SetSysctls.kind, lambda journal: SetSysctls(spec, frozen, journal=journal))


def notrack_remedy(spec: NetnsSpec, expr: str) -> Remedy:
    """An AddNotrack plan; building it counts the NAT'd flows the rules would catch, so the confirmation names them."""
    return Remedy(AddNotrack.kind, lambda journal: AddNotrack(spec, expr, journal=journal))


def flush_remedy(spec: NetnsSpec, expr: str) -> Remedy:
    """A FlushFlows plan; building it lists the flows it would delete, so the confirmation names their count."""
    return Remedy(FlushFlows.kind, lambda journal: FlushFlows(spec, expr, journal=journal))

"""Drift: a value cttop set that is now something else (kube-proxy and friends rewrite these).

What cttop set comes from the journal, replayed oldest first: a set makes cttop
the owner of the value it wrote; an undo hands the value back, so it is no longer
watched. Globals (nf_conntrack_max, hashsize) are watched from every namespace,
since they are one value for the whole host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cttop.actions.journal import COMPLETE, Journal, Record
from cttop.kernel import sysctl
from cttop.kernel.netns import NetnsId, NetnsSpec

# SetSysctls' kind, the records replayed here; defined here as sysctl_plan imports this module, not the other way.
SYSCTL_KIND: Final = "sysctl"


@dataclass(frozen=True)
class Drift:
    name: str
    expected: str  # what cttop set
    current: str | None  # None: the value can no longer be read
    record_id: str

    def message(self) -> str:
        now = "unreadable" if self.current is None else self.current
        return (f"{self.name} is {now}, cttop set {self.expected} "
                f"(change {self.record_id}): changed since by someone else")


def owned_values(journal: Journal, here: NetnsId) -> dict[str, tuple[str, Record]]:
    """The values cttop set and still owns in that namespace: name -> (value, record)."""
    owned: dict[str, tuple[str, Record]] = {}
    for rec in journal.records():
        # An interrupted change may or may not have set its values; a damaged one is not believed.
        if rec.kind != SYSCTL_KIND or rec.state != COMPLETE or rec.damaged is not None:
            continue
        values: dict[str, str] = rec.after.get("values", {})
        for name, value in values.items():
            if not rec.made_in(here) and name not in sysctl.GLOBAL_NAMES:
                continue
            if rec.undoes is None:
                owned[name] = (str(value), rec)
            else:
                owned.pop(name, None)
    return owned


def check(spec: NetnsSpec = NetnsSpec(), journal: Journal | None = None) -> list[Drift]:
    """Every value cttop set in ``spec``'s namespace that now differs; empty when all are as set."""
    journal = journal or Journal()
    owned = owned_values(journal, spec.identity())
    if not owned:
        return []
    now = sysctl.read(spec, sorted(owned))
    out: list[Drift] = []
    for name, (expected, rec) in owned.items():
        current = now.get(name)
        if current is None or not same_value(current, expected):
            out.append(Drift(name, expected, current, rec.id))
    return out


def same_value(a: str | None, b: str | None) -> bool:
    """Whether two sysctl values are one number (the kernel may space or pad them), or both absent."""
    if a is None or b is None:
        return a is b
    na, nb = sysctl.as_int(a), sysctl.as_int(b)
    if na is not None and nb is not None:
        return na == nb
    return a.split() == b.split()

"""Undo: the plan that takes back one journaled change.

An undo acts only on the namespace it is given; a change made elsewhere is
refused with the namespace to pass instead. Without an id it takes the newest
change in that namespace that can still be undone.
"""

from __future__ import annotations

from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal, Record
from cttop.actions.notrack import RemoveNotrack, RestoreNotrack
from cttop.actions.plan import Plan
from cttop.actions.sysctl_plan import SetSysctls
from cttop.kernel.netns import NetnsSpec


def undo_plan(spec: NetnsSpec, ident: str | None = None, journal: Journal | None = None) -> Plan:
    """The plan undoing change ``ident`` (an id or unique prefix), or the last undoable one in ``spec``."""
    journal = journal or Journal()
    inode = spec.inode()
    if ident is None:
        rec = journal.last_undoable(inode)
        if rec is None:
            raise ActionError(f"nothing to undo in namespace {spec.label()} (journal {journal.path})")
    else:
        rec = journal.find(ident)
    _check(rec, inode, spec)
    if rec.kind == SetSysctls.kind:
        return SetSysctls.inverse(rec, spec, journal)
    if rec.kind == "notrack-add":
        return RemoveNotrack.inverse_of_add(rec, spec, journal)
    if rec.kind == "notrack-remove":
        return RestoreNotrack(spec, rec, journal)
    raise ActionError(f"change {rec.id} ({rec.kind}) cannot be undone")


def _check(rec: Record, inode: int, spec: NetnsSpec) -> None:
    if rec.undoes is not None:
        raise ActionError(f"change {rec.id} is itself the undo of {rec.undoes}; it cannot be undone")
    if not rec.undoable:
        raise ActionError(f"change {rec.id} ({rec.kind}) cannot be undone: {rec.summary or rec.description}")
    if rec.undone_by is not None:
        raise ActionError(f"change {rec.id} was already undone by {rec.undone_by}")
    if rec.netns_inode != inode:
        raise ActionError(f"change {rec.id} was made in namespace {rec.netns} (inode {rec.netns_inode}), "
                          f"not {spec.label()}: pass that namespace")

"""Undo: the plan that takes back one journaled change, derived from the record, never replayed from it.

An undo acts only on the namespace it is given; a change made elsewhere is
refused with the namespace to pass instead. Without an id it takes the newest
change in that namespace that can still be undone. A damaged record (one that
fails its kind's schema, see :mod:`cttop.actions.schema`) is refused.

Each kind's undo is built by the function :data:`UNDO` holds for it, from the
record's checked fields, the persist paths in force (never a path read back) and
``force`` (restore values changed since the change).
"""

from __future__ import annotations

from collections.abc import Callable

from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal, Record
from cttop.actions.notrack.plans import AddNotrack, RemoveNotrack, RestoreNotrack
from cttop.actions.persist import PersistPaths
from cttop.actions.plan import Plan
from cttop.actions.sysctl_plan import SetSysctls
from cttop.kernel.netns import NetnsSpec

UndoBuilder = Callable[[Record, NetnsSpec, Journal, PersistPaths, bool], Plan]

UNDO: dict[str, UndoBuilder] = {
    SetSysctls.kind: SetSysctls.inverse,
    AddNotrack.kind: RemoveNotrack.inverse_of_add,
    RemoveNotrack.kind: RestoreNotrack.inverse_of_remove,
}


def undo_plan(spec: NetnsSpec, ident: str | None = None, journal: Journal | None = None, *,
              persist: PersistPaths | None = None, force: bool = False) -> Plan:
    """The plan undoing change ``ident`` (an id or unique prefix), or the last undoable one in ``spec``.

    ``persist``: where cttop's files are (default /etc); a change persisted elsewhere is refused.
    """
    journal = journal or Journal()
    here = spec.identity()
    if ident is None:
        rec = journal.last_undoable(here)
        if rec is None:
            raise ActionError(f"nothing to undo in namespace {spec.label()} (journal {journal.path})")
    else:
        rec = journal.find(ident)
    why = rec.undo_refusal()
    if why is not None:
        raise ActionError(why)
    if not rec.made_in(here):
        if rec.netns_inode == here.inode:
            raise ActionError(f"change {rec.id} was made in namespace {rec.netns}, deleted since: {spec.label()} "
                              f"is another namespace that was given its inode ({here.inode}); nothing to undo here")
        raise ActionError(f"change {rec.id} was made in namespace {rec.netns} (inode {rec.netns_inode}), "
                          f"not {spec.label()}: pass that namespace")
    build = UNDO.get(rec.kind)
    if build is None:
        raise ActionError(f"change {rec.id} ({rec.kind}) cannot be undone")
    return build(rec, spec, journal, persist or PersistPaths(), force)

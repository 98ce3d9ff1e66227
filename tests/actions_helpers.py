"""What tests of the actions share: undoing an applied plan, and journaling a record as cttop would."""

from __future__ import annotations

from cttop.actions.journal import Journal, Record
from cttop.actions.persist import PersistPaths
from cttop.actions.plan import ActionResult, Plan
from cttop.actions.undo import undo_plan


def undo(plan: Plan, persist: PersistPaths | None = None, force: bool = False) -> ActionResult:
    """Take back ``plan``'s applied change, as `cttop undo ID` does (the journal's record, not the plan)."""
    assert plan.result is not None, "the plan was not applied"
    return undo_plan(plan.spec, plan.id, plan.journal, persist=persist, force=force).apply()


def journal(j: Journal, rec: Record, complete: bool = True) -> None:
    """Write ``rec`` as cttop does: its intent, then (unless ``complete`` is False) its completion."""
    with j.locked() as txn:
        txn.intent(rec)
        if complete:
            txn.complete(rec.id, rec.after, rec.summary, rec.count)

"""Confirm a plan, then apply it off the UI thread and say what the kernel reported.

The one path every remediation in the TUI takes, so every change gets the same
confirmation (focus on "No"), the same error handling (the plan changed nothing
and journaled nothing), and the same report with its journal id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.app import App

from cttop.actions import ActionResult, Plan
from cttop.errors import CttopError
from cttop.ui.screens.confirm import ConfirmScreen


@dataclass(frozen=True)
class PersistOffer:
    """The same change, also written to a file read at boot: offered as a checkbox in the confirmation."""

    plan: Plan
    label: str  # the checkbox's text: what goes to which file


def result_text(plan: Plan, result: ActionResult) -> str:
    if plan.undoes is not None:
        return f"{result.summary} (undid {plan.undoes}, journal {result.id})"
    tail = f"undo with u (journal {result.id})" if plan.undoable else f"cannot be undone (journal {result.id})"
    return f"{result.summary}; {tail}"


def confirm_and_apply(app: App[object], plan: Plan, title: str,
                      done: Callable[[ActionResult], None] | None = None, persist: PersistOffer | None = None) -> None:
    """Show ``plan`` for confirmation; on yes apply it in a worker thread, notify, then call ``done``.

    With ``persist``, the confirmation also offers its plan, and applies it instead when ticked.
    """
    screen = ConfirmScreen(plan, title, persist.plan if persist else None, persist.label if persist else "")

    def answered(yes: bool | None) -> None:
        if not yes:
            app.notify("cancelled: nothing was changed", timeout=3)
            return
        chosen = persist.plan if persist is not None and screen.persist else plan
        app.run_worker(lambda: _apply(app, chosen, done), thread=True, exclusive=False, group="apply")

    app.push_screen(screen, answered)


def _apply(app: App[object], plan: Plan, done: Callable[[ActionResult], None] | None) -> None:
    try:
        result = plan.apply()
    except CttopError as e:  # ActionError included: the plan changed nothing
        app.call_from_thread(app.notify, f"failed, nothing changed: {e}", severity="error", timeout=10)
        return
    app.call_from_thread(app.notify, result_text(plan, result), timeout=8)
    if done is not None:
        app.call_from_thread(done, result)

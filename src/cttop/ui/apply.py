"""Confirm a plan, then apply it off the UI thread and say what the kernel reported.

The one path every remediation in the TUI takes, so every change gets the same
confirmation (focus on "No"), the same error handling (the plan changed nothing
and journaled nothing), and the same report with its journal id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from textual.app import App

from cttop.actions import ActionResult, DeleteFlows, FlushFlows, Plan
from cttop.errors import CttopError
from cttop.ui.access import cttop_app
from cttop.ui.screens.confirm import ConfirmScreen


@dataclass(frozen=True)
class PersistOffer:
    """The same change, also written to a file read at boot: offered as a checkbox in the confirmation;
    or, without ``plan``, not offered here (p then says ``label``: why)."""

    plan: Plan | None
    label: str  # under the checkbox: what goes to which file; without a plan, why there is none


def flows_named(plan: Plan) -> int | None:
    """How many flows the confirmation says the plan acts on; None for a plan that acts on no flows."""
    if isinstance(plan, FlushFlows):
        return plan.count  # counted in the kernel when the plan was made
    if isinstance(plan, DeleteFlows):
        return len(plan.rows)
    return None


def headline(plan: Plan) -> str:
    n = flows_named(plan)
    if n is None:
        return ""
    flows = f"{n} flow{'s' if n != 1 else ''}"
    # A flush takes what matches when it runs (more, in a storm); a delete, the flows listed that still exist.
    if isinstance(plan, FlushFlows) and plan.whole:
        return f"This deletes the whole table: {flows} now, counted in the kernel just now."
    if isinstance(plan, FlushFlows) and plan.everything:
        return f"This deletes the whole table: the filter matches every flow, {flows} now, counted in the kernel."
    if isinstance(plan, FlushFlows):
        return f"This deletes every flow the filter matches when you confirm: {flows} now, counted in the kernel."
    return f"This deletes these {flows}, those still in the table."


def result_text(plan: Plan, result: ActionResult) -> str:
    """What the kernel confirmed (the result's own count and summary, read back after the change)."""
    said = f"kernel confirms: {result.summary}"
    named = flows_named(plan)
    if named is not None and named != result.count:
        said += f" (the confirmation named {named}: the table changed in between)"
    if plan.undoes is not None:
        return f"{said} (undid {plan.undoes}, journal {result.id})"
    tail = f"undo with u (journal {result.id})" if plan.undoable else f"cannot be undone (journal {result.id})"
    return f"{said}; {tail}"


def confirm_and_apply(app: App[Any], plan: Plan, title: str,
                      done: Callable[[ActionResult], None] | None = None, persist: PersistOffer | None = None) -> None:
    """Show ``plan`` for confirmation; on yes apply it in a worker thread, notify, then call ``done``.

    With ``persist``, the confirmation also offers its plan, and applies it instead when ticked (or says why
    it offers none).
    """
    screen = ConfirmScreen(plan, title, persist.plan if persist else None, persist.label if persist else "",
                           headline(plan))

    def answered(yes: bool | None) -> None:
        if not yes:
            app.notify("cancelled: nothing was changed", timeout=3)
            return
        chosen = persist.plan if persist is not None and persist.plan is not None and screen.persist else plan
        app.run_worker(lambda: _apply(app, chosen, done), thread=True, exclusive=False, group="apply")

    app.push_screen(screen, answered)


class InFlight:
    """The changes being applied on worker threads. The app's exit waits for them: the signals a plan defers
    are blocked in its own thread only, and a hang-up's hard exit (CttopApp._hangup) would otherwise cut a flush
    off half done, its record left interrupted (a 262k-flow flush: 145,801 flows left, 4 s after the hang-up)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0
        self._closing = False

    @contextmanager
    def applying(self) -> Iterator[bool]:
        """Whether the change may start (not once the app is closing: it would be cut off); counted while it runs."""
        with self._cond:
            go = not self._closing
            self._running += go
        try:
            yield go
        finally:
            with self._cond:
                self._running -= go
                self._cond.notify_all()

    def close(self) -> None:
        """No change starts from now on (the terminal went away before it began: nothing changed, nothing said)."""
        with self._cond:
            self._closing = True

    def wait(self) -> None:
        """Until every change that started has ended, its record completed and its log line sent."""
        with self._cond:
            self._cond.wait_for(lambda: self._running == 0)


CHANGES = InFlight()


def _apply(app: App[Any], plan: Plan, done: Callable[[ActionResult], None] | None) -> None:
    try:
        with CHANGES.applying() as go:
            if not go:
                return
            result = plan.apply()
    except CttopError as e:  # ActionError included: the plan changed nothing
        app.call_from_thread(app.notify, f"failed, nothing changed: {e}", severity="error", timeout=10,
                             markup=False)
        return
    if flows_named(plan) is not None:
        cttop_app(app).collector.reread()  # the list must lose what the toast says is gone
    # Not markup: the summary quotes the filter as typed, brackets and all.
    app.call_from_thread(app.notify, result_text(plan, result), timeout=8, markup=False)
    if done is not None:
        app.call_from_thread(done, result)

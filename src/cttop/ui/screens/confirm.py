"""Confirmation for anything that changes the kernel: shows the plan and its exact command; "No" is the default.

A change that can also be persisted is offered with a checkbox (``p`` or Space on it),
off until ticked: ticking it shows the persisted plan, its file and its commands, in
place of the plain one. It never moves the focus off "No".
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Static

from cttop.termsafe import safe_line, safe_text


class Plan(Protocol):
    """What the confirmation needs of a plan (cttop.actions plans provide it)."""

    def describe(self) -> str: ...

    def commands(self) -> list[str]: ...

    def warnings(self) -> list[str]: ...


def plan_text(plan: Plan) -> Text:
    # Escaped before they become Text (which would drop BEL and CR unseen): an undo's plan is built from a
    # journal, a NOTRACK plan from a filter naming processes and containers.
    t = Text()
    t.append(safe_text(plan.describe()))
    warnings = plan.warnings()
    if warnings:
        t.append("\n\nBefore you confirm:", "bold")
        for w in warnings:
            t.append("\n  ! ", "bold")
            t.append(safe_text(w))
    t.append("\n\nEquivalent command" + ("s" if len(plan.commands()) > 1 else "") + ":", "bold")
    for c in plan.commands():
        t.append("\n  $ ")
        t.append(safe_line(c))  # one line each: the person confirms exactly these
    return t


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True only on an explicit yes: y, or the Yes button.

    With ``persisted`` (the same change, also written to a file), ``persist`` says
    whether the checkbox was ticked, i.e. which of the two plans was shown.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
        Binding("p", "toggle_persist", "Persist", show=False),
        Binding("left,right,tab", "app.focus_next", "Switch", show=False),
    ]

    def __init__(self, plan: Plan, title: str = "Confirm", persisted: Plan | None = None,
                 persist_label: str = "") -> None:
        super().__init__()
        self.plan = plan
        self.title_text = title
        self.persisted = persisted
        self.persist_label = persist_label
        self.persist = False

    @property
    def shown(self) -> Plan:
        return self.persisted if self.persist and self.persisted is not None else self.plan

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            # Plain text, not markup: titles quote filters and journal ids.
            box.border_title = Text(safe_line(self.title_text))
            with VerticalScroll():
                yield Static(plan_text(self.plan), id="confirm-text")
            if self.persisted is not None:
                yield Checkbox(Text(f"{safe_line(self.persist_label)} (p)"), id="confirm-persist")
            with Horizontal(id="confirm-buttons"):
                yield Button("No", id="no", variant="primary")
                yield Button("Yes", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return action != "toggle_persist" or self.persisted is not None

    def action_toggle_persist(self) -> None:
        self.query_one("#confirm-persist", Checkbox).toggle()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.persist = event.value
        self.query_one("#confirm-text", Static).update(plan_text(self.shown))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

"""Confirmation for anything that changes the kernel: the plan, every command it runs, and "No" by default.

Every write key (F, d, n, t edits, T's x and X, u, the doctor's fixes) asks here.
The dialog names how many flows a change acts on when it acts on flows, shows
every command one per line (:class:`cttop.ui.commands.CommandBlock`: a long one
continues with a backslash, so a paste runs exactly it), and scrolls: ↑↓ PgUp
PgDn Home End and the mouse wheel move the text while the focus stays on "No",
so Enter and Esc still mean no. ``c`` copies the commands to the clipboard.

A change that can also be persisted is offered with a checkbox (``p`` or Space on it),
off until ticked: ticking it shows the persisted plan, its file and its commands, in
place of the plain one. It never moves the focus off "No". Where it is not offered,
``p`` says why (``persist_label``), rather than doing nothing.

What the dialog has to tell once open (a key typed before it was drawn was ignored,
why ``p`` persists nothing, what ``c`` copied) goes on a line above the buttons, not in a toast: a toast
sits bottom right, over the buttons and the commands' last line.
"""

from __future__ import annotations

from typing import ClassVar, Final, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Static

from cttop.termsafe import safe_line, safe_text
from cttop.ui.commands import CommandBlock
from cttop.ui.hanging import Hanging, Para, indented
from cttop.ui.keys.base import KeyFooter
from cttop.ui.keys.order import AnsweredOnSight

BOX_HEIGHT: Final = 0.9  # of the screen, as cttop.tcss sizes #confirm-box
PERSIST_BOX: Final = "also persist (p)"
SCROLL_HINT: Final = "↑↓ PgUp PgDn Home End scroll · c copies the commands"
ANSWER_HINT: Final = "y yes · n or Esc no · c copies the commands"  # when everything fits
NOTHING_TO_PERSIST: Final = "p: this change has nothing to persist"
WARNING_MARK: Final = "  ! "  # before each warning; its wrapped lines stand under the text after it


class Plan(Protocol):
    """What the confirmation needs of a plan (cttop.actions plans provide it)."""

    def describe(self) -> str: ...

    def commands(self) -> list[str]: ...

    def warnings(self) -> list[str]: ...


def plan_text(plan: Plan) -> Hanging:
    """What the plan does and what to know first; its commands follow in a :class:`CommandBlock`. A line that wraps
    goes on under its own text (a warning's under the text after its ``!``), so each reads as one item."""
    # Escaped before they are drawn (Text would drop BEL and CR unseen): an undo's plan is built from a journal, a
    # NOTRACK plan from a filter naming processes and containers. A warning is one paragraph: safe_line.
    paras = [indented(line) for line in safe_text(plan.describe()).split("\n")]
    warnings = plan.warnings()
    if warnings:
        paras += [Para("", ""), Para("", "Before you confirm:", style="bold")]
        paras += [Para(WARNING_MARK, safe_line(w), lead_style="bold") for w in warnings]
    n = len(plan.commands())
    paras += [Para("", ""), Para("", f"Equivalent command{'s' if n > 1 else ''}, one per line (a line ending in \\ "
                                     "goes on):", style="bold")]
    return Hanging(paras)


class _Body(VerticalScroll, can_focus=False):
    """The scrolling text; the focus stays on the buttons, so Enter keeps meaning No."""

    def on_resize(self) -> None:
        screen = self.screen
        if isinstance(screen, ConfirmScreen):
            screen.show_position()


class ConfirmScreen(AnsweredOnSight, ModalScreen[bool]):
    """Dismisses with True only on an explicit yes: y, or the Yes button, pressed after it was drawn.

    ``headline`` is shown above the scrolling text, never scrolled away (the flow count).
    With ``persisted`` (the same change, also written to a file), ``persist`` says
    whether the checkbox was ticked, i.e. which of the two plans was shown, and
    ``persist_label`` what persisting writes; without it, why it is not offered here.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
        Binding("p", "persist", "Persist", show=False),
        Binding("left,right,tab", "app.focus_next", "Switch", show=False),
        # The focus stays on the buttons (Enter must mean No): the text scrolls from here.
        Binding("up", "scroll('scroll_up')", "Scroll up", show=False),
        Binding("down", "scroll('scroll_down')", "Scroll down", show=False),
        Binding("pageup", "scroll('scroll_page_up')", "Page up", show=False),
        Binding("pagedown", "scroll('scroll_page_down')", "Page down", show=False),
        Binding("home", "scroll('scroll_home')", "Top", show=False),
        Binding("end", "scroll('scroll_end')", "Bottom", show=False),
        Binding("c", "copy", "Copy the commands", show=False),
    ]

    def __init__(self, plan: Plan, title: str = "Confirm", persisted: Plan | None = None,
                 persist_label: str = "", headline: str = "") -> None:
        super().__init__()
        self.plan = plan
        self.title_text = title
        self.persisted = persisted
        self.persist_label = persist_label
        self.headline = headline
        self.persist = False

    @property
    def shown(self) -> Plan:
        return self.persisted if self.persist and self.persisted is not None else self.plan

    @property
    def body(self) -> _Body:
        return self.query_one(_Body)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box") as box:
            # Plain text, not markup: titles quote filters and journal ids.
            box.border_title = Text(safe_line(self.title_text))
            box.border_subtitle = ANSWER_HINT
            if self.headline:
                yield Static(Text(self.headline), id="confirm-headline")
            with _Body(id="confirm-body"):
                yield Static(plan_text(self.plan), id="confirm-text")
                yield CommandBlock(self.plan.commands(), id="confirm-commands")
            if self.persisted is not None:
                # A checkbox's label is one line: what persisting does (a file path) wraps below it.
                yield Checkbox(Text(PERSIST_BOX), id="confirm-persist")
                yield Static(Text(safe_line(self.persist_label)), id="confirm-persist-what")
            notice = Static(id="confirm-notice")
            notice.display = False
            yield notice
            with Horizontal(id="confirm-buttons"):
                yield Static(id="confirm-position")
                yield Button("No", id="no", variant="primary", compact=True)
                yield Button("Yes", id="yes", variant="error", compact=True)
        yield KeyFooter()  # y and n: the main screen's keys (Filter, Group…) do nothing under the dialog

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()
        # A toast left from before (an undo with nothing to undo) covered the commands and the buttons while Yes
        # worked: what is about to be done comes first.
        self.app.clear_notifications()
        self.watch(self.body, "scroll_y", self.show_position, init=False)
        self.call_after_refresh(self._fit)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        """Cap the text's height so the box fits the screen with its buttons showing: the text scrolls instead.

        CSS cannot say "what is left of 90% once the rest is laid out", so it is set here from the layout.
        """
        box, body = self.query_one("#confirm-box"), self.body
        # Borders, headline, checkbox and buttons (their margins never meet, so they add up).
        around = box.styles.gutter.height + sum(
            w.outer_size.height + w.styles.margin.top + w.styles.margin.bottom for w in box.children if w is not body)
        # The footer docked below takes its line from what the box's 90% is of.
        free = self.size.height - self.query_one(KeyFooter).outer_size.height
        cap = max(3, int(free * BOX_HEIGHT) - around)
        if body.styles.max_height is None or body.styles.max_height.value != cap:
            body.styles.max_height = cap

    def show_position(self, _: float | None = None) -> None:
        """Beside the buttons: which lines are shown, and whether more follow (not only the scrollbar says)."""
        body = self.body
        total, shown = body.virtual_size.height, body.scrollable_content_region.height
        self.query_one("#confirm-box").border_subtitle = ANSWER_HINT if total <= shown else SCROLL_HINT
        if total <= shown:
            where = ""
        else:
            top = round(body.scroll_y)
            where = f"lines {top + 1}-{min(total, top + shown)} of {total}"
            where += " · more below ↓" if top + shown < total else " · end"
        self.query_one("#confirm-position", Static).update(where)

    def text(self) -> str:
        """Everything the dialog says, as plain text: the headline, the plan and every command line."""
        lines = [self.headline] if self.headline else []
        lines.append(plan_text(self.shown).plain)
        lines += [line.text for line in self.query_one(CommandBlock).lines()]
        return "\n".join(lines)

    def action_scroll(self, how: str) -> None:
        getattr(self.body, how)(animate=False)

    def action_copy(self) -> None:
        commands = self.shown.commands()
        self.app.copy_to_clipboard("\n".join(commands) + "\n")
        self.say(f"copied {len(commands)} command line{'s' if len(commands) > 1 else ''} "
                 "(the terminal must allow OSC 52 clipboard writes)")

    def action_persist(self) -> None:
        if self.persisted is None:
            self.say(self.persist_label or NOTHING_TO_PERSIST)
            return
        self.query_one("#confirm-persist", Checkbox).toggle()

    def say(self, text: str) -> None:
        notice = self.query_one("#confirm-notice", Static)
        notice.update(Text(safe_text(text)))
        notice.display = True
        self.call_after_refresh(self._fit)  # one more line: the text gives it up, the buttons stay

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.persist = event.value
        self.query_one("#confirm-text", Static).update(plan_text(self.shown))
        self.query_one(CommandBlock).update(self.shown.commands())
        self.call_after_refresh(self.show_position)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

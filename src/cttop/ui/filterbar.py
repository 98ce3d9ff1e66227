"""The filter line: the engine's grammar, applied as you type; errors point at their column.

The filter in force is always exactly the text typed, or, while that text has an error,
the last one committed (Enter, a heaviest group, Esc's empty filter): never a prefix of the
typed text, which would widen what ``F``, ``d`` and ``n`` act on (``udp dport 53 and ((``
must not flush every ``udp dport 53`` flow). While the text has an error the bar keeps it
in ``error``, the line under it shows the column, and the remediation keys refuse.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Input, Static

from cttop.filter import FilterError, compile_filter
from cttop.ui import fmt
from cttop.ui.access import cttop_app

PROMPT = "filter: "
# The least of the message worth showing beside the caret; with less room there the text goes left of it.
MIN_MESSAGE = 12


def error_line(message: str, column: int, caret: int | None, width: int) -> Text:
    """The line under the filter: a caret at cell ``caret`` (None: scrolled out of sight), then
    "column N: message". Whatever the width, "column N" stays whole; a message too long for the line goes on
    over a second one, under where it began (its end is often its point: "(the network is 10.0.0.0/8)"), and
    only what is too long for both is shortened. When the caret is too far right for the text to follow it,
    the text precedes it."""
    head = f"column {column}: "
    t = Text()
    if caret is None or not 0 <= caret < width:
        first, rest = _split(message, width - len(head))
        t.append(head + first)
        start = len(head)
    elif (after := width - caret - 2) >= len(head) + min(len(message), MIN_MESSAGE) or caret < len(head) + MIN_MESSAGE:
        first, rest = _split(message, after - len(head))
        t.append(" " * caret + "^ ", "bold")
        t.append(head + first)
        start = caret + 2 + len(head)
    else:
        first, rest = _split(message, caret - 1 - len(head))
        pad = caret - 1 - len(head + first)
        t.append(" " * pad + head + first + " ")
        t.append("^", "bold")
        start = pad + len(head)
    if rest:
        indent = start if start + len(rest) <= width else 0
        t.append("\n" + " " * indent + fmt.truncate(rest, width - indent))
    return t


def _split(message: str, room: int) -> tuple[str, str]:
    """``message`` as what fits in ``room`` (broken after a word where one ends in it) and the rest."""
    if len(message) <= room:
        return message, ""
    cut = message.rfind(" ", 0, room + 1) if room > 0 else -1
    if cut <= 0:
        cut = max(room, 0)
    return message[:cut], message[cut:].lstrip()


class ErrorLine(Widget):
    """The error of the filter text, its caret under the offending column of the input above."""

    # Each lays the line out again: a long message takes a second line (error_line).
    value = reactive("", layout=True)
    error: reactive[FilterError | None] = reactive(None, layout=True)

    def show(self, value: str, error: FilterError | None) -> None:
        self.value, self.error = value, error
        self.display = error is not None

    def render(self) -> RenderResult:
        if self.error is None:
            return ""
        return error_line(self.error.message, self.error.column, self._caret(), self.size.width)

    def _caret(self) -> int | None:
        """The cell under the error's column: where the input starts, plus the text before the
        column, less what the input has scrolled out of sight to the left."""
        assert self.error is not None
        bar = self.parent
        if not isinstance(bar, FilterBar) or not bar.is_mounted:
            return None
        field = bar.input
        start = field.content_region.x - self.content_region.x
        return start + cell_len(self.value[: self.error.column - 1]) - round(field.scroll_x)


class FilterBar(Vertical):
    """Hidden until ``/``. Posts Changed with the filter to apply: the typed text when it compiles, else
    the last committed one, so a bad filter shows the committed view, never a prefix of the text."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter", show=False),
    ]

    class Changed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Done(Message):
        """Enter: keep the filter and go back to the list."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.committed = ""  # the filter shown while the typed text has an error
        self.error: FilterError | None = None  # the typed text's, None when it compiles

    def compose(self) -> ComposeResult:
        with Horizontal(id="filter-line"):
            yield Static(PROMPT, id="filter-prompt")
            yield Input(placeholder="e.g.  udp dport 53  ·  src net 10.0.0.0/8 and not assured  (Esc clears)",
                        id="filter-input", compact=True)
        yield ErrorLine(id="filter-error")

    def on_mount(self) -> None:
        # The caret follows the text when the input scrolls sideways (a long filter, Home, End): a repaint,
        # since where the caret goes is read from the input at render time, not held in a field here.
        def repaint() -> None:
            self.query_one(ErrorLine).refresh(layout=True)

        self.watch(self.input, "scroll_x", repaint, init=False)

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    def open(self) -> None:
        self.display = True
        self.input.focus()

    def set_text(self, text: str) -> None:
        """Put ``text`` in the line and commit it (a heaviest group's filter): it is what was chosen."""
        if self._check(text) is None:
            self.committed = text
        self.input.value = text  # Input.Changed applies it

    def _check(self, text: str) -> FilterError | None:
        try:
            compile_filter(text, cttop_app(self).collector.owners)
        except FilterError as e:
            return e
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.error = self._check(event.value)
        self.query_one(ErrorLine).show(event.value, self.error)
        self.post_message(self.Changed(self.committed if self.error else event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.error is None:
            self.committed = event.value
        self.post_message(self.Done())

    def action_clear(self) -> None:
        self.committed = ""
        self.input.value = ""
        self.error = None
        self.query_one(ErrorLine).show("", None)
        self.display = False
        self.post_message(self.Changed(""))
        self.post_message(self.Done())

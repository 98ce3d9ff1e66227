"""The filter line: the engine's grammar, applied as you type; errors point at their column."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Static

from cttop.filter import FilterError, compile_filter
from cttop.ui.keys import app_owners

PROMPT = "filter: "


class FilterBar(Vertical):
    """Hidden until ``/``. Posts Changed only for text that compiles, so a bad filter keeps the old view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter", show=False),
    ]

    class Changed(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Done(Message):
        """Enter: keep the filter and go back to the list."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="filter-line"):
            yield Static(PROMPT, id="filter-prompt")
            yield Input(placeholder="e.g.  udp dport 53  ·  src net 10.0.0.0/8 and not assured  (Esc clears)",
                        id="filter-input", compact=True)
        yield Static(id="filter-error")

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    def open(self) -> None:
        self.display = True
        self.input.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        error = self.query_one("#filter-error", Static)
        try:
            compile_filter(event.value, app_owners(self.app))
        except FilterError as e:
            error.update(self._error_text(event.value, e))
            error.display = True
            return
        error.display = False
        self.post_message(self.Changed(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Done())

    @staticmethod
    def _error_text(value: str, e: FilterError) -> Text:
        # A caret under the offending column, which is 1-based and starts after the prompt.
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" " * (len(PROMPT) + e.column - 1) + "^ ", "bold")
        t.append(str(e))
        return t

    def action_clear(self) -> None:
        self.input.value = ""
        self.query_one("#filter-error", Static).display = False
        self.display = False
        self.post_message(self.Changed(""))
        self.post_message(self.Done())

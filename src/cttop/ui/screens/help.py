"""Help: every key (read from the bindings themselves, so none can be missing), every counter's
one-line meaning, and the filter grammar as the filter module documents it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

import cttop.filter
from cttop.live.counters import FILL, PRESSURE

_KEY_NAMES = {"question_mark": "?", "slash": "/", "plus": "+", "minus": "-", "equals_sign": "=",
              "underscore": "_", "space": "Space", "escape": "Esc", "enter": "Enter", "tab": "Tab",
              "shift+tab": "Shift+Tab", "up": "↑", "down": "↓", "pageup": "PgUp", "pagedown": "PgDn",
              "home": "Home", "end": "End", "left": "←", "right": "→", "ctrl+p": "Ctrl+P", "ctrl+c": "Ctrl+C"}


def key_names(keys: str) -> str:
    """'question_mark,f1' → '? F1'."""
    out = []
    for k in keys.split(","):
        k = k.strip()
        out.append(_KEY_NAMES.get(k, k.upper() if len(k) <= 3 and k.startswith("f") and k[1:].isdigit() else k))
    return " ".join(out)


def bindings_of(*classes: type) -> list[Binding]:
    found: list[Binding] = []
    for cls in classes:
        for b in cls.__dict__.get("BINDINGS", []):
            if isinstance(b, Binding):
                found.append(b)
    return found


def help_text(sections: Iterable[tuple[str, list[Binding]]]) -> Text:
    t = Text()
    for title, bindings in sections:
        if not bindings:
            continue  # a key group this view does not offer
        t.append(f"{title}\n", "bold underline")
        for b in bindings:
            t.append(f"  {key_names(b.key):<16}", "bold")
            t.append(f"{b.description}\n")
        t.append("\n")
    t.append("Command palette\n", "bold underline")
    t.append(f"  {'Ctrl+P':<16}", "bold")
    t.append("every action above, searchable by name\n\n")
    t.append("Fill\n", "bold underline")
    _meanings(t, FILL)
    t.append("\nPressure (per second, from CT_GET_STATS_CPU; highlighted and marked ! when non-zero)\n",
             "bold underline")
    _meanings(t, PRESSURE)
    t.append("\nFilter grammar\n", "bold underline")
    t.append((cttop.filter.__doc__ or "").split("\n", 2)[-1].rstrip() + "\n")
    return t


def _meanings(t: Text, table: dict[str, str]) -> None:
    width = max(len(k) for k in table) + 2
    for name, meaning in table.items():
        t.append(f"  {name:<{width}}", "bold")
        t.append(f"{meaning}\n")


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close help", key_display="Esc"),
    ]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box") as box:
            box.border_title = "cttop help"
            box.border_subtitle = "Esc closes · ↑↓ PgUp PgDn scroll"
            with VerticalScroll(id="help-scroll"):
                yield Static(help_text(self.sections), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)

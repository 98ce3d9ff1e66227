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
from textual.keys import key_to_character
from textual.screen import ModalScreen
from textual.widgets import Static

import cttop.filter
from cttop.live.counters import FILL, PRESSURE
from cttop.ui.keys import KeyFooter

_KEY_NAMES = {"question_mark": "?", "slash": "/", "plus": "+", "minus": "-", "equals_sign": "=",
              "underscore": "_", "space": "Space", "escape": "Esc", "enter": "Enter", "tab": "Tab",
              "up": "↑", "down": "↓", "pageup": "PgUp", "pagedown": "PgDn",
              "home": "Home", "end": "End", "left": "←", "right": "→", "delete": "Del"}


def key_name(key: str) -> str:
    """'question_mark' → '?', 'full_stop' → '.', 'f1' → 'F1', 'ctrl+r' → 'Ctrl+R': the key as its cap reads."""
    *mods, key = key.split("+")
    if mods:
        name = key_name(key)
        return "+".join(m.capitalize() for m in mods) + "+" + (name.upper() if len(name) == 1 else name)
    if key in _KEY_NAMES:
        return _KEY_NAMES[key]
    if len(key) <= 3 and key.startswith("f") and key[1:].isdigit():
        return key.upper()
    return key_to_character(key) or key


def key_names(keys: str) -> str:
    """'question_mark,f1' → '? F1'."""
    return " ".join(key_name(k.strip()) for k in keys.split(","))


def grammar_text() -> str:
    """The filter module's docstring, less the reST markup it is written in."""
    doc = (cttop.filter.__doc__ or "").split("\n", 2)[-1].rstrip()
    return doc.replace("``", "").replace("::\n", ":\n") + "\n"


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
    t.append("\nPressure (per second, from CT_GET_STATS_CPU, or without CAP_NET_ADMIN from "
             "/proc/net/stat/nf_conntrack; highlighted and marked ! when non-zero)\n", "bold underline")
    _meanings(t, PRESSURE)
    t.append("\nFilter grammar\n", "bold underline")
    t.append(grammar_text())
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
        yield KeyFooter()  # this screen's keys: the main screen's do nothing here

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)

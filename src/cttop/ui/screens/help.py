"""Help: every key (read from the bindings themselves, so none can be missing), every counter's
one-line meaning, and the filter grammar as the filter module documents it.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from typing import ClassVar, Final

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.keys import key_to_character
from textual.screen import ModalScreen
from textual.widgets import Static

import cttop.filter
from cttop.live.counters import FILL, PRESSURE
from cttop.ui.keys.base import KeyFooter

_KEY_NAMES = {"question_mark": "?", "slash": "/", "plus": "+", "minus": "-", "equals_sign": "=",
              "underscore": "_", "space": "Space", "escape": "Esc", "enter": "Enter", "tab": "Tab",
              "up": "↑", "down": "↓", "pageup": "PgUp", "pagedown": "PgDn",
              "home": "Home", "end": "End", "left": "←", "right": "→", "delete": "Del"}


# A meaning's column narrower than this: the hang is made shallower (or a long head gets a line of its own).
MIN_COLUMN: Final = 24
NARROW_INDENT: Final = 8
MIN_FIRST: Final = 12  # the least of a meaning worth putting beside its term on the term's line
GRAMMAR_COLUMN: Final = 27  # where the grammar's meanings start (the filter module's docstring lays them out so)


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


def hanging(head: str, text: str, width: int | None, indent: int) -> list[str]:
    """``text`` after ``head``, wrapped within its column: its further lines start at ``indent``, not at the left
    edge (a two-column row that wrapped back under its key no longer read as two columns). ``None``: unwrapped."""
    if width is None:
        return [head + text]
    if width - indent < MIN_COLUMN:
        indent = min(indent, NARROW_INDENT)  # too narrow for the column: a shallower hang still reads as one
    if not head.strip():
        head = " " * indent
    if not text:
        # A term alone, wrapped between its comma-separated parts where it can ("proto N" is not cut in two).
        lead = len(head) - len(head.lstrip())
        kept = ", ".join(part.replace(" ", "\N{NO-BREAK SPACE}") for part in head.strip().split(", "))
        return [line.replace("\N{NO-BREAK SPACE}", " ") for line in
                textwrap.wrap(kept, width, initial_indent=" " * lead, subsequent_indent=" " * (lead + 2),
                              break_on_hyphens=False)] or [""]
    lines: list[str] = []
    if len(head) > width - MIN_FIRST:  # no room beside the term: it has its own line(s), the text under it
        lines = hanging(head, "", width, indent)
        head = " " * indent
    first = textwrap.wrap(text, width - len(head), break_on_hyphens=False)[:1]
    rest = text[len(first[0]):].strip() if first else ""
    lines.append(head + (first[0] if first else ""))
    lines += textwrap.wrap(rest, width, initial_indent=" " * indent, subsequent_indent=" " * indent,
                           break_on_hyphens=False)
    return lines


def _row(t: Text, head: str, text: str, width: int | None, head_style: str = "bold") -> None:
    """A key or a counter and its meaning, the meaning wrapped within its column."""
    indent = len(head)
    for i, line in enumerate(hanging(head, text, width, indent)):
        if i == 0 and line.startswith(head):
            t.append(head, head_style)
            t.append(line[len(head):] + "\n")
        else:
            t.append(line + "\n")


GRAMMAR_INDENT: Final = 4  # the grammar's table rows: a term at 4, its meaning in a column after two spaces
_GAP = re.compile(r"\S( {2,})\S")


def grammar_rows(doc: str) -> list[tuple[str, str] | str]:
    """The grammar's text as prose lines and table rows (head: the term and the spaces to its meaning's column;
    the meaning, its continuation lines joined), so each row can be wrapped within its column."""
    out: list[tuple[str, str] | str] = []
    for line in doc.splitlines():
        lead = len(line) - len(line.lstrip())
        if lead > GRAMMAR_INDENT and out and isinstance(out[-1], tuple):
            head, text = out[-1]
            out[-1] = (head, f"{text} {line.strip()}".strip())  # a continuation of the row above
        elif lead == GRAMMAR_INDENT:
            gap = _GAP.search(line, GRAMMAR_INDENT)
            out.append((line[:gap.end(1)], line[gap.end(1):].strip()) if gap else (line.rstrip(), ""))
        else:
            out.append(line)
    return out


def help_text(sections: Iterable[tuple[str, list[Binding]]], width: int | None = None) -> Text:
    """Every section; with ``width``, each row's meaning wrapped within its column (a hanging indent)."""
    t = Text()
    for title, bindings in sections:
        if not bindings:
            continue  # a key group this view does not offer
        t.append(f"{title}\n", "bold underline")
        for b in bindings:
            _row(t, f"  {key_names(b.key):<16}", b.description, width)
        t.append("\n")
    t.append("Command palette\n", "bold underline")
    _row(t, f"  {'Ctrl+P':<16}", "every action above, searchable by name", width)
    t.append("\n")
    t.append("Fill\n", "bold underline")
    _meanings(t, FILL, width)
    t.append("\nPressure (per second, from CT_GET_STATS_CPU, or without CAP_NET_ADMIN from "
             "/proc/net/stat/nf_conntrack; highlighted and marked ! when non-zero)\n", "bold underline")
    _meanings(t, PRESSURE, width)
    t.append("\nFilter grammar\n", "bold underline")
    if width is None:
        t.append(grammar_text())
        return t
    prose: list[str] = []  # a paragraph's lines, flowed again into the width (they broke at the docstring's)
    for row in [*grammar_rows(grammar_text()), None]:  # (None: the end, after the last paragraph)
        if isinstance(row, str) and row.strip() and not row.startswith(" "):
            prose.append(row.strip())
            continue
        if prose:
            t.append("\n".join(textwrap.wrap(" ".join(prose), width, break_on_hyphens=False)) + "\n")
            prose = []
        if isinstance(row, str):
            t.append(row + "\n")
        elif row is not None:
            head, text = row
            lines = hanging(head, text, width, min(len(head), GRAMMAR_COLUMN))
            if text and not head.endswith("  "):  # a term with its meaning on the lines under it
                lines = hanging(head, "", width, GRAMMAR_COLUMN) + hanging(" " * GRAMMAR_COLUMN, text, width,
                                                                           GRAMMAR_COLUMN)
            for line in lines:
                t.append(line + "\n")
    return t


def _meanings(t: Text, table: dict[str, str], width: int | None = None) -> None:
    column = max(len(k) for k in table) + 2
    for name, meaning in table.items():
        _row(t, f"  {name:<{column}}", meaning, width)


class HelpText(Static):
    """The help, its two-column rows wrapped to the width it is given (again on each resize)."""

    def __init__(self, sections: list[tuple[str, list[Binding]]], *, id: str | None = None) -> None:
        super().__init__(help_text(sections), id=id)
        self.sections = sections
        self._width: int | None = None

    def on_resize(self) -> None:
        width = self.content_size.width
        if width and width != self._width:
            self._width = width
            self.update(help_text(self.sections, width))


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
                yield HelpText(self.sections, id="help-text")
        yield KeyFooter()  # this screen's keys: the main screen's do nothing here

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)

"""The journal: every change cttop made, newest first: when, what, who, where, the commands, and if it was undone.

A damaged record shows only its id and why (its text is what a forger wrote); lines that are not
records are left out, each named in a notification.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from cttop.actions import Journal, Record, undo_plan
from cttop.actions.journal import INTERRUPTED
from cttop.actions.schema import ID
from cttop.kernel.netns import NetnsSpec
from cttop.termsafe import safe_line
from cttop.ui.apply import confirm_and_apply
from cttop.ui.keys import writes
from cttop.ui.screens.remedy_base import RowsScreen, persist_paths


def shown_id(r: Record) -> str:
    return r.id if ID.fullmatch(r.id) else ascii(r.id[:16])


def record_text(r: Record) -> Text:
    # Every field is the file's word: one line each, so none can pass for another line of the record.
    t = Text()
    if r.damaged is not None:
        t.append(f"{shown_id(r)}  damaged: {safe_line(r.damaged)}\n", "bold red")
        t.append("cttop will not undo it or show what it claims", "dim")
        return t
    t.append(f"{safe_line(r.id)}  {r.time_text()}  {safe_line(r.kind)}  [{safe_line(r.status())}]\n", "bold")
    t.append(f"by {safe_line(r.user)} (uid {r.uid}) in namespace {safe_line(r.netns)}\n")
    t.append(f"{safe_line(r.summary or r.description)}\n")
    if r.state == INTERRUPTED:
        t.append(f"interrupted: cut off before it completed; before it: {safe_line(r.before)}\n")
    for c in r.commands:
        t.append(f"  $ {safe_line(c)}\n", "dim")
    return t


class JournalScreen(RowsScreen[Record]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "undo", "Undo selected"),
    ]
    COLUMNS = ("time", "id", "what", "who", "namespace", "status")
    NAME = "journal"
    WRITE_HINT = "u undoes the selected change"

    def __init__(self, spec: NetnsSpec | None, journal: Journal | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.journal = journal or Journal()

    def box_title(self) -> str:
        return f"Journal · {self.journal.path}"

    def action_reload(self) -> None:
        journal = self.journal

        def read() -> tuple[list[Record], list[str]]:
            return list(reversed(journal.records())), journal.skipped

        self.load(read, self._show, "reading the journal")

    def _show(self, read: tuple[list[Record], list[str]]) -> None:
        records, skipped = read
        for message in skipped:
            self.app.notify(message, severity="warning", timeout=10, markup=False)
        self.show_items(records)

    def cells(self, r: Record) -> tuple[Text, ...]:
        if r.damaged is not None:
            return (Text(""), Text(shown_id(r)), Text(""), Text(""), Text(""), Text("damaged", "red"))
        return (Text(r.time_text()), Text(safe_line(r.id)), Text(safe_line(r.kind)),
                Text(f"{safe_line(r.user)} ({r.uid})"), Text(safe_line(r.netns)), Text(safe_line(r.status())))

    def key(self, r: Record) -> str:
        return str(r.line)  # ids repeat in a forged journal; lines do not

    def detail(self, r: Record | None) -> Text:
        return record_text(r) if r is not None else Text(f"no changes journaled in {self.journal.path}", "dim")

    @writes
    def action_undo(self) -> None:
        r = self.selected()
        spec = self.spec
        if r is None or spec is None:
            return
        journal, ident = self.journal, r.id
        # The confirmation shows any value changed since, with both values: saying yes is --force.
        self.load(lambda: undo_plan(spec, ident, journal, persist=persist_paths(), force=True),
                  lambda plan: confirm_and_apply(self.app, plan, f"Undo change {ident}",
                                                 done=lambda _: self.refresh_after()),
                  f"cannot undo {ident}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "undo" and self.spec is None:
            return False  # a replay: no namespace to undo in
        return super().check_action(action, parameters)

"""The journal: every change cttop made, newest first: when, what, who, where, the commands, and if it was undone."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from cttop.actions import Journal, Record, undo_plan
from cttop.kernel.netns import NetnsSpec
from cttop.ui.apply import confirm_and_apply
from cttop.ui.keys import writes
from cttop.ui.screens.remedy_base import RemedyScreen


def status_text(r: Record) -> str:
    if r.undoes is not None:
        return f"undo of {r.undoes}"
    if r.undone_by is not None:
        return f"undone by {r.undone_by}"
    return "undoable" if r.undoable else "cannot be undone"


def record_text(r: Record) -> Text:
    t = Text()
    t.append(f"{r.id}  {r.time_text()}  {r.kind}  [{status_text(r)}]\n", "bold")
    t.append(f"by {r.user} (uid {r.uid}) in namespace {r.netns}\n")
    t.append(f"{r.summary or r.description}\n")
    for c in r.commands:
        t.append(f"  $ {c}\n", "dim")
    return t


class JournalScreen(RemedyScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("u", "undo", "Undo selected"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self, spec: NetnsSpec | None, journal: Journal | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.journal = journal or Journal()
        self.records: list[Record] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="journal-box", classes="remedy-box") as box:
            box.border_title = f"Journal · {self.journal.path}"
            box.border_subtitle = "Esc closes" if self.read_only else "u undoes the selected change · Esc closes"
            yield DataTable(id="journal-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="journal-detail", classes="remedy-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("time", "id", "what", "who", "namespace", "status")
        table.focus()
        self.action_reload()

    def action_reload(self) -> None:
        journal = self.journal
        self.load(lambda: list(reversed(journal.records())), self.show_records, "reading the journal")

    def refresh_after(self) -> None:
        if self.is_attached:
            self.action_reload()

    def show_records(self, records: list[Record]) -> None:
        self.records = records
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for r in records:
            table.add_row(Text(r.time_text()), Text(r.id), Text(r.kind), Text(f"{r.user} ({r.uid})"),
                          Text(r.netns), Text(status_text(r)), key=r.id)
        if records:
            table.move_cursor(row=max(0, min(row, len(records) - 1)))
        self._show_detail()

    def selected(self) -> Record | None:
        row = self.query_one(DataTable).cursor_row
        return self.records[row] if 0 <= row < len(self.records) else None

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        r = self.selected()
        detail = self.query_one("#journal-detail", Static)
        detail.update(record_text(r) if r is not None else Text(f"no changes journaled in {self.journal.path}", "dim"))

    @writes
    def action_undo(self) -> None:
        r = self.selected()
        spec = self.spec
        if r is None or spec is None:
            return
        journal, ident = self.journal, r.id
        self.load(lambda: undo_plan(spec, ident, journal),
                  lambda plan: confirm_and_apply(self.app, plan, f"Undo change {ident}",
                                                 done=lambda _: self.refresh_after()),
                  f"cannot undo {ident}")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "undo" and self.spec is None:
            return False  # a replay: no namespace to undo in
        return super().check_action(action, parameters)

    def action_close(self) -> None:
        self.dismiss(None)

"""The journal: the changes cttop made, newest first: when, what, who, where, the commands, and if it was undone.

It opens on the changes made in the namespace in view (matched as undo matches them,
by the namespace's identity: a name can be reused, and an inode too), since another namespace's
stale changes are not what its keys act on; ``a`` toggles every namespace's, and
the title says which. A damaged record shows only its id and why (its text is
what a forger wrote); lines that are not records are left out, each named in a
notification.
"""

from __future__ import annotations

import time
from typing import ClassVar, Final

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable

from cttop.actions import Journal, Record, undo_plan
from cttop.actions.journal import INTERRUPTED
from cttop.actions.schema import ID
from cttop.kernel.netns import NetnsSpec
from cttop.termsafe import safe_line
from cttop.ui import fmt
from cttop.ui.apply import confirm_and_apply
from cttop.ui.keys.base import writes
from cttop.ui.screens.fit import NETNS_MIN, columns_width, fix_width, table_width
from cttop.ui.screens.remedy_base import RowsScreen, persist_paths

SHORT_TIME: Final = "%m-%d %H:%M"  # where the whole time leaves the namespace no room


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
        # One key, two labels: the footer names what `a` switches to (check_action keeps the one that applies).
        Binding("a", "show_all(True)", "All namespaces"),
        Binding("a", "show_all(False)", "This namespace"),
    ]
    COLUMNS = ("time", "id", "what", "who", "status", "namespace")
    NAME = "journal"
    WRITE_HINT = "u undoes the selected change"
    ITEM_ACTIONS = frozenset({"undo"})

    def __init__(self, spec: NetnsSpec | None, journal: Journal | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.journal = journal or Journal()
        # Every namespace's changes, or only those of the namespace in view (a replay has none in view).
        self.show_all = spec is None
        self.netns_width: int | None = None  # what the namespace column is cut to; None: whole
        self.short_time = False  # the time without its year and seconds, for room

    def on_resize(self) -> None:
        # The columns were fitted to the width the table had: fitted again to the new one (a namespace cut to
        # 'c…' at 80 columns stayed so at 100).
        if self.items:
            self.show_items(self.items)

    def where(self) -> str:
        return "all namespaces" if self.show_all or self.spec is None else f"namespace {self.spec.label()}"

    def box_title(self) -> str:
        return f"Journal · {self.where()} · {self.journal.path}"

    def action_show_all(self, show_all: bool) -> None:
        self.show_all = show_all
        self.query_one(f"#{self.NAME}-box", Vertical).border_title = Text(safe_line(self.box_title()))
        self.refresh_bindings()
        self.action_reload()

    def action_reload(self) -> None:
        journal, spec = self.journal, None if self.show_all else self.spec

        def read() -> list[Record]:
            records = journal.records()
            if spec is not None:
                here = spec.identity()
                records = [r for r in records if r.made_in(here)]
            return list(reversed(records))

        # The lines left out are said by the journal itself, as toasts (see CttopApp._journal_warning).
        self.load(read, self.show_items, "reading the journal")

    def show_items(self, items: list[Record]) -> None:
        # The namespace is last and gets the room the other columns leave, cut in its middle: at 80 columns a
        # lab's cttop-lab-<hex>-router fits no whole, and the status after it was off the screen.
        table = self.query_one(DataTable)
        width = table_width(table, len(items))
        pad = 2 * table.cell_padding
        self.netns_width = None

        def others() -> int:
            return columns_width(table, self.COLUMNS[:-1], [self.cells(r) for r in items])

        # Where the namespace would get less than NETNS_MIN, the time goes without its year and seconds (the
        # detail gives them): at 80 columns, with a NOTRACK change listed, the namespace had no room at all.
        self.short_time = False
        room = width - others() - pad
        if room < NETNS_MIN:
            self.short_time = True
            room = width - others() - pad
        # What is left, even less than NETNS_MIN (a wider column was clipped by the screen's edge with no mark
        # that it was cut: 'names', 'cttop'): cut with an ellipsis, its title too; the detail names it whole.
        self.netns_width = max(NETNS_MIN if room >= NETNS_MIN else 2, room) if width > 0 else None
        column = table.ordered_columns[-1]
        title = self.COLUMNS[-1]
        if self.netns_width is not None and len(title) > self.netns_width:
            title = fmt.truncate(title, self.netns_width)
        column.label = Text(title)
        # Every column sized to these cells now: one the DataTable sized kept the width of a wider terminal's
        # cells (the whole time, after 120 columns, at 80), and pushed the namespace off the edge again.
        rows = [self.cells(r) for r in items]
        for i in range(len(self.COLUMNS)):
            fix_width(table, i, rows)
        super().show_items(items)

    def cells(self, r: Record) -> tuple[Text, ...]:
        if r.damaged is not None:
            return (Text(""), Text(shown_id(r)), Text(""), Text(""), Text("damaged", "red"), Text(""))
        netns = safe_line(r.netns) if self.netns_width is None else fmt.truncate_middle(r.netns, self.netns_width)
        when = time.strftime(SHORT_TIME, time.localtime(r.time)) if self.short_time else r.time_text()
        return (Text(when), Text(safe_line(r.id)), Text(safe_line(r.kind)),
                Text(f"{safe_line(r.user)} ({r.uid})"), Text(safe_line(r.status())), Text(netns))

    def key(self, r: Record) -> str:
        return str(r.line)  # ids repeat in a forged journal; lines do not

    def detail(self, r: Record | None) -> Text:
        if r is not None:
            return record_text(r)
        more = "" if self.show_all else " (a: all namespaces)"
        return Text(f"no changes in {safe_line(self.where())} journaled in {self.journal.path}{more}", "dim")

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
        if action in ("undo", "show_all") and self.spec is None:
            return False  # a replay: no namespace to undo in, none to narrow the list to
        if action == "show_all" and parameters and parameters[0] == self.show_all:
            return False  # the list already shows that
        return super().check_action(action, parameters)

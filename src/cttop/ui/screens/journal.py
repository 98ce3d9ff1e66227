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
from cttop.ui.screens.fit import NETNS_LEAST, NETNS_MIN, columns_width, fix_width, shrink, table_width
from cttop.ui.screens.remedy_base import ItemTable, RowsScreen, persist_paths

SHORT_TIME: Final = "%m-%d %H:%M"  # where the whole time leaves the namespace no room
WHO, NETNS = "who", "namespace"
# What what and status may be cut to, where the namespace would get less than NETNS_MIN even so.
LEAST: Final = {"what": 5, "status": 7}


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
    COLUMNS = ("time", "id", "what", WHO, "status", NETNS)
    NAME = "journal"
    WRITE_HINT = "u undoes the selected change"
    ITEM_ACTIONS = frozenset({"undo"})

    def __init__(self, spec: NetnsSpec | None, journal: Journal | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.journal = journal or Journal()
        # Every namespace's changes, or only those of the namespace in view (a replay has none in view).
        self.show_all = spec is None
        # How the columns are fitted to the width (fit_columns): the time without its year and seconds, the
        # columns shown, what the cut ones are cut to, and each record's namespace as cut (by journal line).
        self.fitted_width = 0  # the table's width, less its scrollbar, the columns were last fitted to
        self.short_time = False
        self.shown: tuple[str, ...] = self.COLUMNS
        self.cut: dict[str, int] = {}
        self.netns_cut: dict[int, str] = {}

    def on_item_table_resized(self, _: ItemTable.Resized) -> None:
        # The columns were fitted to the width the table had, less its scrollbar where the rows overflow it:
        # fitted again to the new one (a namespace cut to 'c…' at 80 columns stayed so at 100; one that a taller
        # detail gave the table a scrollbar was clipped by it).
        if self.items and table_width(self.query_one(DataTable), len(self.items)) != self.fitted_width:
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

    def fit_columns(self, table: DataTable[Text], items: list[Record]) -> None:
        # The namespace is last and gets the room the other columns leave, cut where names differ: at 80 columns
        # a lab's cttop-lab-<hex>-router fits no whole, and the status after it was off the screen. Where it would
        # get less than NETNS_MIN, in turn: the time goes without its year and seconds, the who column goes, and
        # the widest of what and status is cut (the detail gives each whole). At 60 columns the namespace was
        # off the right edge with all of them.
        width = self.fitted_width = table_width(table, len(items))
        self.short_time, self.shown, self.cut, self.netns_cut = False, self.COLUMNS, {}, {}
        netns_width: int | None = None
        if width > 0:
            room = self._room(table, items, width)
            if room < NETNS_MIN:
                self.short_time = True
                room = self._room(table, items, width)
            if room < NETNS_MIN:
                self.shown = tuple(c for c in self.COLUMNS if c != WHO)
                room = self._room(table, items, width)
            if room < NETNS_MIN:
                rows = [self.cells(r) for r in items]
                natural = {c: max([len(c), *(row[self.shown.index(c)].cell_len for row in rows)]) for c in LEAST}
                self.cut = shrink(natural, LEAST, sum(natural.values()) - (NETNS_MIN - room))
                room = self._room(table, items, width)
            # What is left, even less than NETNS_MIN (a wider column was clipped by the screen's edge with no mark
            # that it was cut: 'names', 'cttop'): cut with an ellipsis, its title too; the detail names it whole.
            netns_width = max(NETNS_LEAST, room)
            named = [r for r in items if r.damaged is None]  # a damaged record's namespace is not shown
            self.netns_cut = dict(zip((r.line for r in named), fmt.truncate_apart([r.netns for r in named],
                                                                                 netns_width)))
        if tuple(c.key.value for c in table.ordered_columns) != self.shown:
            table.clear(columns=True)
            for title in self.shown:
                table.add_column(title, key=title)
        most = self.cut | ({NETNS: netns_width} if netns_width is not None else {})
        rows = [self.cells(r) for r in items]
        # Every column sized to these cells now: one the DataTable sized kept the width of a wider terminal's
        # cells (the whole time, after 120 columns, at 80), and pushed the namespace off the edge again.
        for i, title in enumerate(self.shown):
            table.ordered_columns[i].label = Text(fmt.truncate(title, most.get(title, len(title))))
            fix_width(table, i, rows)

    def _room(self, table: DataTable[Text], items: list[Record], width: int) -> int:
        """What the namespace column is left of ``width`` by the columns before it, as they are cut now."""
        return width - columns_width(table, self.shown[:-1], [self.cells(r)[:-1] for r in items]) \
            - 2 * table.cell_padding

    def cells(self, r: Record) -> tuple[Text, ...]:
        if r.damaged is not None:
            values = {"id": Text(shown_id(r)), "status": Text("damaged", "red")}
        else:
            when = time.strftime(SHORT_TIME, time.localtime(r.time)) if self.short_time else r.time_text()
            values = {"time": Text(when), "id": Text(safe_line(r.id)), "what": Text(safe_line(r.kind)),
                      WHO: Text(f"{safe_line(r.user)} ({r.uid})"), "status": Text(safe_line(r.status())),
                      NETNS: Text(self.netns_cut.get(r.line, safe_line(r.netns)))}
        for column, most in self.cut.items():
            if column in values:
                values[column] = Text(fmt.truncate(values[column].plain, most), values[column].style)
        return tuple(values.get(c, Text("")) for c in self.shown)

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

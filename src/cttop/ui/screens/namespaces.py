"""Namespaces (``N``): every network namespace's count, share of the shared max and drops; Enter switches to one.

Listing opens a ctnetlink socket in each namespace, some hundreds of ms on a busy
host, so it runs in a thread worker; so does opening the chosen one.
"""

from __future__ import annotations

from typing import ClassVar, Final

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static
from textual.worker import Worker, WorkerState

from cttop.host.namespaces import Namespace, Totals, list_namespaces, totals
from cttop.sources.live import LiveSource
from cttop.termsafe import safe_line
from cttop.ui import fmt
from cttop.ui.access import cttop_app
from cttop.ui.keys.base import KeyFooter
from cttop.ui.screens.fit import NETNS_LEAST, columns_width, fix_width, table_width

COLUMNS: Final = ("", "NAMESPACE", "ENTRIES", "OF MAX", "DROP", "EARLY_DROP", "PROCS", "PROCESS", "CONTAINER")
RIGHT: Final = frozenset({"ENTRIES", "OF MAX", "DROP", "EARLY_DROP", "PROCS"})
NAME: Final = COLUMNS.index("NAMESPACE")
# The columns kept in sight, up to the last counter: where they would not fit, the name is cut (where names
# differ) rather than the counters go off the right edge, as they did at 60 columns: down to NETNS_MIN, and
# below it where even that leaves no room (a scrolling table's scrollbar hid EARLY_DROP at 60). Those after
# them (who holds the namespace) may still go off it, for the table to scroll to.
IN_SIGHT: Final = COLUMNS.index("EARLY_DROP") + 1
SHOWN_MARK: Final = "▶"


def _cell(text: str, column: str) -> Text:
    # Text, not str: DataTable reads str as markup, and names come from /run/netns, /proc and cgroups.
    return Text(safe_line(text), justify="right" if column in RIGHT else "left")


def row_cells(ns: Namespace, shown: bool, name: str | None = None) -> list[Text]:
    """The row of ``ns``, with its name as ``name`` gives it cut (None: whole)."""
    if ns.count is None:
        numbers = ["?", "-", "?", "?"]
    else:
        numbers = [str(ns.count), f"{ns.share:.1%}" if ns.share is not None else "-", str(ns.drop),
                   str(ns.early_drop)]
    values = [SHOWN_MARK if shown else "", ns.label if name is None else name, *numbers, str(len(ns.pids)),
              ns.process or "-", ns.container or "-"]
    return [_cell(v, c) for v, c in zip(values, COLUMNS)]


def name_width(table: DataTable[Text], rows: list[list[Text]]) -> int | None:
    """What the namespace names are cut to, so the columns IN_SIGHT fit ``table`` with ``rows`` (cut from
    :func:`row_cells` whole); None where they fit whole."""
    if table.size.width <= 0:
        return None  # not laid out yet: its resize fits them
    others = columns_width(table, COLUMNS[:NAME] + COLUMNS[NAME + 1:IN_SIGHT], [r[:NAME] + r[NAME + 1:] for r in rows])
    room = table_width(table, len(rows)) - others - 2 * table.cell_padding
    return None if all(r[NAME].cell_len <= room for r in rows) else max(NETNS_LEAST, room)


def total_text(tot: Totals) -> Text:
    t = Text()
    t.append("TOTAL", "bold")
    share = f" = {tot.share:.1%} of the shared max {tot.max}" if tot.share is not None else ""
    t.append(f" {tot.count} entries in {tot.namespaces} namespaces{share} · drop {tot.drop} · "
             f"early_drop {tot.early_drop}")
    if tot.unreadable:
        t.append(f" (lower bounds: {tot.unreadable} unreadable not counted)", "bold")
    if tot.max:
        t.append("\nthe max is one for the host: each namespace may hold up to it, the node's use is the sum")
    return t


class NamespacesScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", key_display="Esc"),
        Binding("r", "refresh", "Read again"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.namespaces: list[Namespace] = []
        self.shown_inode: int | None = None
        self.placed = False  # the cursor was put on the namespace in view, once

    def compose(self) -> ComposeResult:
        with Vertical(id="ns-box") as box:
            box.border_title = "Network namespaces"
            box.border_subtitle = f"Enter shows one · {SHOWN_MARK} shown now · r reads again · Esc closes"
            yield Static(id="ns-note")
            table: DataTable[Text] = DataTable(id="ns-table", cursor_type="row", zebra_stripes=True)
            yield table
            yield Static(id="ns-total")
        yield KeyFooter()  # this screen's keys: the main screen's do nothing here

    def on_mount(self) -> None:
        table = self.query_one("#ns-table", DataTable)
        for c in COLUMNS:
            table.add_column(_cell(c, c), key=c or "shown")
        table.focus()
        self.action_refresh()

    def action_refresh(self) -> None:
        self.query_one("#ns-note", Static).update("reading every namespace's table…")
        spec = cttop_app(self).spec

        def work() -> tuple[list[Namespace], int | None]:
            return list_namespaces(), spec.inode() if spec is not None else None

        self.run_worker(work, name="list", group="namespaces", thread=True, exclusive=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state == WorkerState.ERROR:
            what = "cannot list the namespaces" if worker.name == "list" else "cannot open it"
            self.notify(f"{what}: {worker.error}", severity="error", timeout=10, markup=False)
            self.query_one("#ns-note", Static).update("")
        elif event.state != WorkerState.SUCCESS:
            return
        elif worker.name == "list" and isinstance(worker.result, tuple):
            self._show(*worker.result)
        elif worker.name == "open" and worker.result is not None:
            cttop_app(self).switch_source(worker.result)
            self.dismiss(None)

    def on_resize(self) -> None:
        # The names were cut to the width the table had: cut again for the new one.
        if self.namespaces:
            self._show(self.namespaces, self.shown_inode)

    def _show(self, namespaces: list[Namespace], shown_inode: int | None) -> None:
        self.namespaces, self.shown_inode = namespaces, shown_inode
        table = self.query_one("#ns-table", DataTable)
        # The first list opens on the namespace in view (Enter there only closes); a re-read keeps the row.
        here = next((i for i, ns in enumerate(namespaces) if ns.inode == shown_inode), 0)
        row = table.cursor_row if self.placed else here
        self.placed = self.placed or bool(namespaces)
        table.clear()
        rows = [row_cells(ns, ns.inode == shown_inode) for ns in namespaces]
        name_w = name_width(table, rows)
        if name_w is not None:  # cut where they differ: two labs' routers read the same cut in the middle
            names = fmt.truncate_apart([ns.label for ns in namespaces], name_w)
            rows = [row_cells(ns, ns.inode == shown_inode, name) for ns, name in zip(namespaces, names)]
        fix_width(table, NAME, rows)
        for i, cells in enumerate(rows):
            table.add_row(*cells, key=str(i))
        if namespaces:
            table.move_cursor(row=min(row, len(namespaces) - 1))
        tot = totals(namespaces)
        note = f"{len(namespaces)} namespaces"
        if tot.unreadable:
            note += f", {tot.unreadable} unreadable (? marks them)"
        if tot.denied:
            note += ": other namespaces need CAP_SYS_ADMIN (run with sudo)"
        self.query_one("#ns-note", Static).update(note)
        self.query_one("#ns-total", Static).update(total_text(tot))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        ns = self.namespaces[int(str(event.row_key.value))]
        if ns.inode == self.shown_inode:
            self.dismiss(None)
            return
        if ns.error is not None:
            self.notify(f"{ns.label}: {ns.error}", severity="error", timeout=10, markup=False)
            return
        self.query_one("#ns-note", Static).update(Text(f"opening {safe_line(ns.label)}…"))
        spec = ns.spec
        self.run_worker(lambda: LiveSource(spec), name="open", group="namespaces-open", thread=True,
                        exclusive=True, exit_on_error=False)

    def action_close(self) -> None:
        self.dismiss(None)

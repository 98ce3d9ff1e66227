"""What the remediation screens (tunables, NOTRACK rules, journal) share: a table of items with the
selected one's detail below, loading off the UI thread, read-only, persist paths.

They open in read-only mode too, to look; their write keys are then hidden from
the footer and help and refused, as on the main screen.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar, Final, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from cttop.actions import PersistPaths
from cttop.errors import CttopError
from cttop.kernel.netns import NetnsSpec
from cttop.termsafe import safe_line, safe_text
from cttop.ui.access import cttop_app
from cttop.ui.hanging import Hanging
from cttop.ui.keys.base import KeyFooter, write_refused

# Where "persist" writes from the TUI: the usual /etc layout below this directory
# (the TUI's counterpart of the CLI's --persist-dir).
PERSIST_DIR_ENV = "CTTOP_PERSIST_DIR"

T = TypeVar("T")
V = TypeVar("V")


def persist_paths() -> PersistPaths:
    d = os.environ.get(PERSIST_DIR_ENV)
    return PersistPaths.under(d) if d else PersistPaths()


def notrack_persist_paths(spec: NetnsSpec) -> PersistPaths | None:
    """Where NOTRACK rules persist from the TUI, or None where they may not: the nft file is the host's
    boot ruleset, so only for the host's own namespace, or when the persist directory was chosen."""
    return persist_paths() if os.environ.get(PERSIST_DIR_ENV) or spec.is_initial() else None


class ItemTable(DataTable[Text]):
    """The items' table. The detail under it grows and shrinks with the highlighted item, and the table gets the
    rest: after each resize the cursor row is brought back into view (a DataTable scrolls to it only when the
    cursor moves, so a taller detail hid it). Its size moves with everything else in the dialog (a notice said,
    an edit line opened, the terminal), so each resize also says so to the screen (:class:`Resized`), which fits
    the detail to what is left."""

    class Resized(Message):
        """The table was resized."""

    def on_resize(self) -> None:
        self.move_cursor(row=self.cursor_row, animate=False)
        self.post_message(self.Resized())


SEVERITY_ORDER: Final = ("information", "warning", "error")  # Textual's notification severities, mildest first


class RemedyScreen(ModalScreen[None]):
    """Notices are said on a line inside the dialog, not as toasts (CttopApp.notify routes them to
    :meth:`say_notice`): a toast sits bottom right, over the commands and the hint that says what u undoes."""

    @property
    def read_only(self) -> bool:
        return cttop_app(self).read_only

    def on_mount(self) -> None:
        # Toasts raised before it opened (a flush's result, within its 8 s) would cover it: said inside instead.
        toasts = cttop_app(self).take_toasts()
        if toasts:
            worst = max((sev for _, sev in toasts), key=SEVERITY_ORDER.index)
            self.say_notice("\n".join(m for m, _ in toasts), worst)

    def say_notice(self, message: str, severity: str = "information") -> bool:
        """Say ``message`` on the dialog's notice line; False when it has none (composing, or closing)."""
        try:
            line = self.query_one(".remedy-notice", Static)
        except NoMatches:
            return False
        line.update(Text(safe_text(message)))
        line.set_classes(f"remedy-notice sev-{severity}")
        line.display = True
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not write_refused(self, action, self.read_only)

    def load(self, read: Callable[[], V], show: Callable[[V], None], what: str) -> None:
        """Run ``read`` (which talks to the kernel or the journal) off the UI thread, then ``show`` its result."""
        app = self.app

        def work() -> None:
            try:
                value = read()
            except (CttopError, OSError) as e:
                app.call_from_thread(app.notify, f"{what}: {e}", severity="error", timeout=10,
                                    markup=False)
                return
            app.call_from_thread(self._deliver, show, value)

        self.run_worker(work, thread=True, group="remedy-load")

    def _deliver(self, show: Callable[[V], None], value: V) -> None:
        if self.is_attached:  # closed while reading: nothing to show it on
            show(value)


# What the table keeps of the dialog's height however little is left: its header and one row.
TABLE_MIN: Final = 2


class RowsScreen(RemedyScreen, Generic[T]):
    """A table of items (one row each) and the highlighted item's detail; subclasses say what and how."""

    # Textual adds each subclass's own BINDINGS (its write keys) to these.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", key_display="Esc"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    COLUMNS: ClassVar[tuple[str, ...]]
    NAME: ClassVar[str]  # the widget ids: NAME-box, NAME-table, NAME-detail
    WRITE_HINT: ClassVar[str]  # the write keys, in the border; left out in read-only mode and with no items
    # The actions on items: like the hint, left out of the footer while there are none (nothing to act on).
    ITEM_ACTIONS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.items: list[T] = []

    @abstractmethod
    def box_title(self) -> str: ...

    @abstractmethod
    def action_reload(self) -> None:
        """Read the items (with :meth:`load`) and hand them to :meth:`show_items`."""

    @abstractmethod
    def cells(self, item: T) -> tuple[Text, ...]:
        """The item's row. Its strings come from the journal, the ruleset and /proc/sys: escape each with
        cttop.termsafe before it becomes Text (Text drops BEL and CR unseen, and lets ESC through)."""

    @abstractmethod
    def key(self, item: T) -> str: ...

    @abstractmethod
    def detail(self, item: T | None) -> Text | Hanging:
        """The highlighted item's detail; ``None`` when there are no items."""

    def below_detail(self) -> ComposeResult:
        """Widgets under the detail; none unless a subclass has more to show."""
        yield from ()

    def compose(self) -> ComposeResult:
        with Vertical(id=f"{self.NAME}-box", classes="remedy-box") as box:
            box.border_title = Text(safe_line(self.box_title()))  # plain text: it names a path or namespace
            box.border_subtitle = self.hint()
            yield ItemTable(id=f"{self.NAME}-table", cursor_type="row", zebra_stripes=True)
            yield Static(id=f"{self.NAME}-detail", classes="remedy-detail")
            yield from self.below_detail()
            notice = Static(id=f"{self.NAME}-notice", classes="remedy-notice")
            notice.display = False
            yield notice
        yield KeyFooter()

    def hint(self) -> str:
        """The border's keys. The write keys only while there is an item for them to act on: "x removes" stayed
        in the NOTRACK rules' border after the last rule was removed."""
        return f"{self.WRITE_HINT} · Esc closes" if self.items and not self.read_only else "Esc closes"

    def on_mount(self) -> None:
        # (Textual runs RemedyScreen.on_mount too, each class's along the MRO.)
        table = self.query_one(DataTable)
        for title in self.COLUMNS:
            table.add_column(title, key=title)
        table.focus()
        self.action_reload()

    def refresh_after(self) -> None:
        if self.is_attached:
            self.action_reload()

    def show_items(self, items: list[T]) -> None:
        self.items = items
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        self.fit_columns(table, items)
        for item in items:
            table.add_row(*self.cells(item), key=self.key(item))
        if items:
            table.move_cursor(row=max(0, min(row, len(items) - 1)))
        self.query_one(f"#{self.NAME}-box", Vertical).border_subtitle = self.hint()
        self.refresh_bindings()  # the footer: the item actions come and go with the items
        self.show_detail()

    def fit_columns(self, table: DataTable[Text], items: list[T]) -> None:
        """Fit the (emptied) table's columns to its width for ``items``, before their rows are added; a subclass
        may show fewer of COLUMNS (each keyed by its title), and :meth:`cells` gives the shown ones'. As they come,
        by default."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.ITEM_ACTIONS and not self.items:
            return False
        return super().check_action(action, parameters)

    def selected(self) -> T | None:
        row = self.query_one(DataTable).cursor_row
        return self.items[row] if 0 <= row < len(self.items) else None

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        self.query_one(".remedy-detail", Static).update(self.detail(self.selected()))

    def on_item_table_resized(self, _: ItemTable.Resized) -> None:
        self.fit_detail()

    def fit_detail(self) -> None:
        """Cap the detail so that the table keeps its header and a row: the detail gives up lines before the table
        does. At 60x20 a notice (after a removal) and an 8-line detail left the table its header alone, every
        row out of sight. Where there is room, the detail's cap is the stylesheet's (.remedy-detail)."""
        box = self.query_one(f"#{self.NAME}-box", Vertical)
        table, detail = self.query_one(ItemTable), self.query_one(".remedy-detail", Static)
        others = sum(w.outer_size.height + w.styles.margin.top + w.styles.margin.bottom
                     for w in box.children if w.display and w is not table and w is not detail)
        room = box.content_region.height - others - detail.styles.margin.top - TABLE_MIN
        most = detail.styles.base.max_height
        lines = max(1, room if most is None else min(int(most.value), room))
        detail.styles.max_height = lines

    def action_close(self) -> None:
        self.dismiss(None)

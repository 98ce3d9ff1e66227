"""X: the expectation table, what FTP, SIP, TFTP… helpers let in next, as `conntrack -L expect`.

The mask is folded into the expected tuple (``*`` for a part any value matches, ``value/mask`` for a
partial one), so a row reads as the connection the helper will let in.

The table is small (nf_conntrack_expect_max, 4096 by default) and read on demand: a dump in a
thread worker each refresh interval while the screen is open, never on the UI thread. A
recording holds no expectations: a replay says so.
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

from cttop.kernel.expect import CtTuple, Expectation, read_expectations
from cttop.model import AF_INET6, addr_text, has_ports, proto_name
from cttop.termsafe import safe_line
from cttop.ui import fmt
from cttop.ui.access import cttop_app
from cttop.ui.keys.base import KeyFooter

COLUMNS: Final = ("TIMEOUT", "PROTO", "EXPECTED", "MASTER", "HELPER", "CLASS", "FLAGS")
RIGHT: Final = frozenset({"TIMEOUT", "CLASS"})


def _masked(value: str, mask: bytes | int, full: bytes | int) -> str:
    """A tuple part under its mask: itself when every bit must match, * when none, else value/mask."""
    if mask == full:
        return value
    if not mask or mask == bytes(len(mask) if isinstance(mask, bytes) else 0):
        return "*"
    shown = addr_text(mask) if isinstance(mask, bytes) else f"{mask:#x}"
    return f"{value}/{shown}"


def expected_text(e: Expectation) -> str:
    """The expected tuple with its mask folded in: ``127.0.0.1:* → 127.0.0.1:41301`` (any source port)."""
    t, m = e.tuple, e.mask
    ones = b"\xff" * len(t.src)
    src = _masked(addr_text(t.src), m.src, ones)
    dst = _masked(addr_text(t.dst), m.dst, ones)
    if t.family == AF_INET6:
        src, dst = f"[{src}]", f"[{dst}]"
    if not has_ports(t.proto):
        return f"{src} → {dst}"
    return f"{src}:{_masked(str(t.sport), m.sport, 0xFFFF)} → {dst}:{_masked(str(t.dport), m.dport, 0xFFFF)}"


def _tuple(t: CtTuple) -> str:
    return f"{fmt.endpoint(t.family, t.proto, t.src, t.sport)} → {fmt.endpoint(t.family, t.proto, t.dst, t.dport)}"


def row_cells(e: Expectation) -> list[Text]:
    values = [fmt.duration(e.timeout), proto_name(e.tuple.proto), expected_text(e), _tuple(e.master),
              e.helper or "-", str(e.klass), ",".join(e.flag_names) or "-"]
    # Text, not str: DataTable reads str as markup, and helper names come from the kernel.
    return [Text(safe_line(v), justify="right" if c in RIGHT else "left") for v, c in zip(values, COLUMNS)]


class ExpectScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,X,q", "close", "Close", key_display="Esc"),
        Binding("r", "refresh", "Read again"),
    ]
    # The column scroll a read of the table puts back once its rows are drawn (None: none pending).
    _scroll_back: float | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="expect-box") as box:
            box.border_title = "Expectations"
            box.border_subtitle = "what helpers let in next · r reads again · Esc closes"
            yield Static(id="expect-note")
            yield DataTable(id="expect-table", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()  # this screen's keys: the main screen's do nothing here

    def on_mount(self) -> None:
        table = self.query_one("#expect-table", DataTable)
        for c in COLUMNS:
            table.add_column(Text(c, justify="right" if c in RIGHT else "left"), key=c)
        table.focus()
        app = cttop_app(self)
        if app.spec is None:
            self.query_one("#expect-note", Static).update("a recording holds no expectations: open a live namespace")
            return
        self.action_refresh()
        self.set_interval(max(app.collector.interval, 1.0), self.action_refresh)

    def action_refresh(self) -> None:
        spec = cttop_app(self).spec
        if spec is not None:
            self.run_worker(lambda: read_expectations(spec), name="expect", group="expect", thread=True,
                            exclusive=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.query_one("#expect-note", Static).update(Text(f"cannot read the expectations: "
                                                               f"{safe_line(event.worker.error)}"))
        elif event.state == WorkerState.SUCCESS and isinstance(event.worker.result, list):
            self._show(event.worker.result)

    def _show(self, exps: list[Expectation]) -> None:
        table = self.query_one("#expect-table", DataTable)
        # A read that lands before the last one's scroll was put back keeps that one, not the 0 clear() left.
        row, x = table.cursor_row, table.scroll_x if self._scroll_back is None else self._scroll_back
        self._scroll_back = x
        table.clear()  # (which scrolls back to the left edge)
        for e in sorted(exps, key=lambda e: (e.helper or "", e.master.src, e.master.sport, e.id)):
            table.add_row(*row_cells(e), key=str(e.id))
        if exps:
            table.move_cursor(row=min(row, len(exps) - 1))
        # Keep the columns scrolled to: at 80 wide, helper, class and flags are right of the screen, and each
        # read would take them away again. After a refresh: the width the rows need is measured then.
        table.call_after_refresh(self._scroll_back_to_column)
        helpers = sorted({e.helper for e in exps if e.helper})
        note = f"{len(exps)} expectations" + (f" from {', '.join(helpers)}" if helpers else "")
        if not exps:
            note += ": no helper is waiting for a related flow (helpers are attached by `ct helper` rules)"
        self.query_one("#expect-note", Static).update(Text(safe_line(note)))

    def _scroll_back_to_column(self) -> None:
        if self._scroll_back is not None:
            self.query_one("#expect-table", DataTable).scroll_to(x=self._scroll_back, animate=False)
            self._scroll_back = None

    def action_close(self) -> None:
        self.dismiss(None)

"""Tunables: every conntrack sysctl with its value, default and meaning; edit one, confirm, apply, maybe persist.

A value is checked when it is entered (integer, range, allowed choices); what
is legal but risky (max below the count, hashsize far below max/4, a timeout far
below its default) is in the confirmation's warnings. Values that cannot be
written here say why (globals outside the initial namespace). A value cttop set
that someone changed since is marked "drift".
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, DataTable, Input, Label, Static

from cttop.actions import SetSysctls, tunables
from cttop.actions.tunables import TunableState
from cttop.errors import CttopError
from cttop.kernel.netns import NetnsSpec
from cttop.termsafe import safe_line, safe_text
from cttop.ui.apply import confirm_and_apply
from cttop.ui.keys.base import writes
from cttop.ui.screens.remedy_base import RowsScreen, persist_paths

DRIFT_MARK = "drift!"


def short_name(name: str) -> str:
    return name.removeprefix("nf_conntrack_")


def detail_text(s: TunableState) -> Text:
    t = s.tunable
    out = Text()
    out.append(f"{t.name}", "bold")
    out.append(f" = {safe_line(s.value) if s.value is not None else '?'}")
    if t.default is not None:
        out.append(f"   default {t.default}", "dim")
    if not t.is_module_param:  # a helper's parameter is shown, never set: no range to offer
        allowed = ", ".join(map(str, t.choices)) if t.choices else f"{t.lo}..{t.hi}"
        out.append(f"   allowed {allowed}", "dim")
    if t.is_global:
        out.append("   global: one value for every namespace", "dim")
    out.append(f"\n{t.meaning}")
    if not s.writable:
        out.append(f"\nread-only here: {safe_text(s.why_not)}", "bold")
    if s.drift is not None:
        out.append(f"\nDRIFT: {safe_text(s.drift.message())}", "bold")  # quotes the journal's values
    return out


class TunablesScreen(RowsScreen[TunableState]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "edit", "Edit value"),
    ]
    COLUMNS = ("tunable", "value", "default", "")
    NAME = "tunables"
    WRITE_HINT = "e or Enter edits"

    def __init__(self, spec: NetnsSpec) -> None:
        super().__init__()
        self.spec = spec
        self.paths = persist_paths()
        self.editing: TunableState | None = None

    def box_title(self) -> str:
        return f"Tunables · namespace {self.spec.label()}"

    def below_detail(self) -> ComposeResult:
        with Vertical(id="tunables-edit"):
            with Horizontal(id="tunables-edit-line"):
                yield Label("", id="tunables-edit-name")
                yield Input(id="tunables-input")
            yield Checkbox(self._persist_label(False), id="tunables-persist")
            yield Static("", id="tunables-error")

    def on_mount(self) -> None:
        self.query_one("#tunables-edit").display = False  # RowsScreen.on_mount fills the table

    # --- the list ------------------------------------------------------------------------

    def action_reload(self) -> None:
        spec = self.spec
        self.load(lambda: tunables.states(spec), self.show_items, "reading the tunables")

    def cells(self, s: TunableState) -> tuple[Text, ...]:
        flag = DRIFT_MARK if s.drift is not None else "" if s.writable else "read-only"
        default = "" if s.tunable.default is None else str(s.tunable.default)
        return (Text(short_name(s.name)), Text(safe_line(s.value or "?"), justify="right"),
                Text(default, justify="right"), Text(flag, "bold" if s.drift else "dim"))

    def key(self, s: TunableState) -> str:
        return s.name

    def detail(self, s: TunableState | None) -> Text:
        return detail_text(s) if s is not None else Text("")

    def on_data_table_row_selected(self, _: DataTable.RowSelected) -> None:
        if not self.read_only:
            self.action_edit()

    # --- editing -------------------------------------------------------------------------

    @writes
    def action_edit(self) -> None:
        s = self.selected()
        if s is None:
            return
        if not s.writable:
            self.notify(f"{s.name}: {s.why_not}", severity="warning", timeout=6, markup=False)
            return
        self.editing = s
        self.query_one("#tunables-edit-name", Label).update(Text(f"{short_name(s.name)} = "))
        field = self.query_one("#tunables-input", Input)
        field.value = s.value or ""
        self.query_one("#tunables-error", Static).update("")
        persist = self.query_one("#tunables-persist", Checkbox)
        persist.label = self._persist_label(persist.value)  # the file is this value's
        self.query_one("#tunables-edit").display = True
        field.focus()

    def _persist_label(self, on: bool) -> str:
        # Said in words: the box's own mark differs only by colour, which a 16-colour or NO_COLOR terminal loses.
        # Only the edited value's file is named (hashsize's is modprobe.d's): both were cut at 80 columns.
        if not on or self.editing is None:  # (the box shows only while a value is edited)
            return "persist: no (Tab, Space to persist across reboots)"
        return f"persist: YES, in {self.paths.file_for(self.editing.tunable.key())}"

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.checkbox.label = self._persist_label(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        s = self.editing
        if s is None or self.read_only:
            return
        persist = self.paths if self.query_one("#tunables-persist", Checkbox).value else None
        try:
            plan = SetSysctls(self.spec, {s.name: event.value}, persist=persist)
        except CttopError as e:  # a bad value: say so where it was typed, change nothing
            self.query_one("#tunables-error", Static).update(Text(str(e)))
            return
        self._close_edit()
        confirm_and_apply(self.app, plan, f"Set {short_name(s.name)}", done=lambda _: self.refresh_after())

    def _close_edit(self) -> None:
        self.editing = None
        self.query_one("#tunables-edit").display = False
        self.query_one(DataTable).focus()

    def action_close(self) -> None:
        if self.editing is not None:
            self._close_edit()
        else:
            super().action_close()

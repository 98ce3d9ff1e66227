"""cttop's NOTRACK rules in the namespace, one line per change that added them; remove one change's or all.

The rules are read from the kernel (nft table ``inet cttop``, iptables raw
table), not from the journal; the journal only supplies the filter expression
each change was made from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from cttop.actions import Journal, NotrackRule, RemoveNotrack, list_rules
from cttop.actions.shell import is_initial
from cttop.kernel.netns import NetnsSpec
from cttop.ui.apply import confirm_and_apply
from cttop.ui.keys import writes
from cttop.ui.screens.remedy_base import PERSIST_DIR_ENV, RemedyScreen, persist_paths


@dataclass(frozen=True)
class RuleGroup:
    """The rules one change added."""

    id: str
    expr: str | None  # None: made by a cttop with another journal
    rules: tuple[NotrackRule, ...]


def rule_groups(spec: NetnsSpec, journal: Journal | None = None) -> list[RuleGroup]:
    rules = list_rules(spec)
    exprs = {r.id: str(r.after.get("expr", "")) for r in (journal or Journal()).records()
             if r.kind == "notrack-add" and r.undoes is None}
    ids = dict.fromkeys(r.id for r in rules)
    return [RuleGroup(i, exprs.get(i), tuple(r for r in rules if r.id == i)) for i in ids]


def group_text(g: RuleGroup) -> Text:
    t = Text()
    t.append(f"change {g.id}", "bold")
    t.append(f"  {g.expr if g.expr is not None else '(not in this journal)'}\n")
    for r in g.rules:
        t.append(f"  [{r.backend} {r.chain}] ", "dim")
        t.append(f"{r.rule}\n")
    return t


class NotrackRulesScreen(RemedyScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close"),
        Binding("x,delete", "remove", "Remove selected"),
        Binding("X", "remove_all", "Remove all"),
        Binding("ctrl+r", "reload", "Reload", show=False),
    ]

    def __init__(self, spec: NetnsSpec) -> None:
        super().__init__()
        self.spec = spec
        self.groups: list[RuleGroup] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="notrack-box", classes="remedy-box") as box:
            box.border_title = f"cttop NOTRACK rules · namespace {self.spec.label()}"
            box.border_subtitle = "Esc closes" if self.read_only else "x removes · X removes all · Esc closes"
            yield DataTable(id="notrack-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="notrack-detail", classes="remedy-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("change", "untracked traffic", "rules", "backend")
        table.focus()
        self.action_reload()

    def action_reload(self) -> None:
        spec = self.spec
        self.load(lambda: rule_groups(spec), self.show_groups, "reading the NOTRACK rules")

    def refresh_after(self) -> None:
        if self.is_attached:
            self.action_reload()

    def show_groups(self, groups: list[RuleGroup]) -> None:
        self.groups = groups
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for g in groups:
            table.add_row(Text(g.id), Text(g.expr if g.expr is not None else "?"), Text(str(len(g.rules))),
                          Text(g.rules[0].backend), key=g.id)
        if groups:
            table.move_cursor(row=max(0, min(row, len(groups) - 1)))
        self._show_detail()

    def selected(self) -> RuleGroup | None:
        row = self.query_one(DataTable).cursor_row
        return self.groups[row] if 0 <= row < len(self.groups) else None

    def on_data_table_row_highlighted(self, _: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        g = self.selected()
        detail = self.query_one("#notrack-detail", Static)
        if g is not None:
            detail.update(group_text(g))
        else:
            detail.update(Text(f"no cttop NOTRACK rules in namespace {self.spec.label()}", "dim"))

    def _remove(self, ids: list[str] | None, title: str) -> None:
        spec = self.spec
        # The nft file is the host's boot ruleset: refreshed only for the host's own namespace, or when
        # the persist directory was chosen.
        paths = persist_paths() if os.environ.get(PERSIST_DIR_ENV) or is_initial(spec) else None
        self.load(lambda: RemoveNotrack(spec, ids, persist=paths),
                  lambda plan: confirm_and_apply(self.app, plan, title, done=lambda _: self.refresh_after()),
                  "cannot remove")

    @writes
    def action_remove(self) -> None:
        g = self.selected()
        if g is None:
            self.notify("no rule selected", severity="warning")
            return
        self._remove([g.id], f"Remove NOTRACK {g.id}")

    @writes
    def action_remove_all(self) -> None:
        if not self.groups:
            self.notify("no cttop NOTRACK rules to remove", severity="warning")
            return
        self._remove(None, "Remove every cttop NOTRACK rule")

    def action_close(self) -> None:
        self.dismiss(None)

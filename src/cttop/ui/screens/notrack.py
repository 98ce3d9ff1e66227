"""cttop's NOTRACK rules in the namespace, one line per change that added them; remove one change's or all.

The rules are read from the kernel (nft table ``inet cttop``, iptables raw
table), not from the journal; the journal only supplies the filter expression
each change was made from.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType

from cttop.actions import RemoveNotrack, RuleGroup, rule_groups
from cttop.kernel.netns import NetnsSpec
from cttop.termsafe import safe_line
from cttop.ui.apply import confirm_and_apply
from cttop.ui.hanging import Hanging, Para
from cttop.ui.keys.base import writes
from cttop.ui.screens.remedy_base import RowsScreen, notrack_persist_paths


def group_text(g: RuleGroup) -> Hanging:
    """The change, then each of its rules as the live ruleset gives it; a long one goes on under its own text."""
    expr = safe_line(g.expr) if g.expr is not None else "(not in this journal)"
    return Hanging([Para(f"change {safe_line(g.id)}  ", expr, lead_style="bold"),
                    *(Para(f"  [{r.backend} {safe_line(r.chain)}] ", safe_line(r.rule), lead_style="dim")
                      for r in g.rules)])


class NotrackRulesScreen(RowsScreen[RuleGroup]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x,delete", "remove", "Remove selected"),
        Binding("X", "remove_all", "Remove all"),
    ]
    COLUMNS = ("change", "untracked traffic", "rules", "backend")
    NAME = "notrack"
    WRITE_HINT = "x removes · X removes all"
    ITEM_ACTIONS = frozenset({"remove", "remove_all"})

    def __init__(self, spec: NetnsSpec) -> None:
        super().__init__()
        self.spec = spec

    def box_title(self) -> str:
        return f"cttop NOTRACK rules · namespace {self.spec.label()}"

    def action_reload(self) -> None:
        spec = self.spec
        self.load(lambda: rule_groups(spec), self.show_items, "reading the NOTRACK rules")

    def cells(self, g: RuleGroup) -> tuple[Text, ...]:
        return (Text(safe_line(g.id)), Text(safe_line(g.expr) if g.expr is not None else "?"), Text(str(len(g.rules))),
                Text(g.rules[0].backend))

    def key(self, g: RuleGroup) -> str:
        return g.id

    def detail(self, g: RuleGroup | None) -> Text | Hanging:
        if g is None:
            return Text(f"no cttop NOTRACK rules in namespace {safe_line(self.spec.label())}", "dim")
        return group_text(g)

    def _remove(self, ids: list[str] | None, title: str) -> None:
        spec = self.spec
        paths = notrack_persist_paths(spec)
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
        if not self.items:
            self.notify("no cttop NOTRACK rules to remove", severity="warning")
            return
        self._remove(None, "Remove every cttop NOTRACK rule")

"""The view's own keys: filter, group, rank, sort, pause, refresh interval, tags; and their palette entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType

from cttop.live.heaviest import RANK_BY
from cttop.live.index import SORTS, ViewSpec
from cttop.owners.groups import OWNER_GROUPS
from cttop.ui.filterbar import FilterBar
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.keys.base import KeyGroup, PaletteEntry
from cttop.ui.keys.replay import ReplayKeys

if TYPE_CHECKING:
    from cttop.ui.app import MainScreen


class ViewKeys(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash,f3,f4", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear the filter", show=False),
        Binding("g,f2", "group", "Group", key_display="g"),
        Binding("b", "top_by", "Rank groups by entries / bytes / packets / new flows a second", show=False),
        Binding("s,f6", "sort", "Sort", key_display="s"),
        Binding("r,f7", "reverse", "Reverse", key_display="r"),
        Binding("p,f5", "pause", "Pause", key_display="p"),
        Binding("plus", "interval(1)", "Longer refresh interval", show=False),
        Binding("minus", "interval(-1)", "Shorter refresh interval", show=False),
        Binding("x", "clear_tags", "Clear all tags", show=False),
        # Not Textual's focus chain: that takes in the filter line whenever a filter is on screen, and landing
        # there selects its text, so the next key (n, d) replaced the filter. / goes there.
        Binding("tab", "next_panel(1)", "Next panel (flows / heaviest)", show=False),
        Binding("shift+tab", "next_panel(-1)", "Previous panel", show=False),
    ]

    screen: MainScreen  # the titles it keeps up to date are the main screen's

    def action_filter(self) -> None:
        self.screen.query_one(FilterBar).open()

    def action_clear_filter(self) -> None:
        bar = self.screen.query_one(FilterBar)
        if bar.input.value or bar.display:
            bar.action_clear()

    def action_group(self) -> None:
        app = self.app
        order = app.collector.group_order  # process and container only where there are processes
        app.set_group(order[(order.index(app.group) + 1) % len(order)], app.top_by)
        self.screen.title_heaviest()

    def action_top_by(self) -> None:
        app = self.app
        frame = app.shown_frame
        order = list(RANK_BY)
        if frame is not None and not frame.counted:
            order = [b for b in order if b not in ("bytes", "packets")]
            why = (f"the view is bounded (over {frame.bounded:,} flows, counted, not held)" if frame.bounded
                   else "accounting is off (nf_conntrack_acct=0)")
            self.screen.notify(f"{why}: groups are ranked by entries or new flows a second only",
                               severity="warning", timeout=3)
        if app.group in OWNER_GROUPS:
            order.remove("new-rate")  # owners are looked up per dump, not per event
        at = order.index(app.top_by) if app.top_by in order else -1
        app.set_group(app.group, order[(at + 1) % len(order)])
        self.screen.title_heaviest()

    def action_sort(self) -> None:
        app = self.app
        names = list(SORTS)
        frame = app.shown_frame
        if frame is not None and frame.bounded:
            # A bounded view compares no two dumps' counters: there are no rates to sort by.
            names = [n for n in names if SORTS[n].rate is None or n == app.view.sort]
        app.set_view(ViewSpec(app.view.filter, names[(names.index(app.view.sort) + 1) % len(names)], False))
        self.screen.title_flows()

    def action_reverse(self) -> None:
        app = self.app
        app.set_view(ViewSpec(app.view.filter, app.view.sort, not app.view.reverse))
        self.screen.title_flows()

    def action_pause(self) -> None:
        if self.screen.group(ReplayKeys).pause_replay():  # a replay pauses its clock instead
            return
        self.app.toggle_pause()
        self.screen.query_one(StatusLine).paused = self.app.paused

    def action_next_panel(self, step: int) -> None:
        """The list and the heaviest panel in turn; from anywhere else (the filter line), back to the list."""
        panels = [self.screen.flow_list, self.screen.query_one(HeaviestPanel)]
        focused = self.screen.focused
        at = panels.index(focused) if focused in panels else -1
        panels[(at + step) % len(panels)].focus()

    def action_interval(self, step: int) -> None:
        self.app.step_interval(step)

    def action_clear_tags(self) -> None:
        self.screen.flow_list.tagged = frozenset()

    def palette(self) -> list[PaletteEntry]:
        fl = self.screen.flow_list
        return [PaletteEntry(*e) for e in (
            ("Help", "Every key and what each counter means", self.app.action_help),
            ("Filter flows", "Open the filter line (engine grammar)", self.action_filter),
            ("Clear filter", "Show every flow again", self.action_clear_filter),
            ("Next group key", "Heaviest: src, dst, dport, src-dport, pair, mark, zone, process, container",
             self.action_group),
            ("Rank groups by", "Heaviest: entries, bytes, packets or new flows a second", self.action_top_by),
            ("Next sort column", "Sort the flows by the next column", self.action_sort),
            ("Reverse sort", "Flip the sort direction", self.action_reverse),
            ("Pause / resume", "Freeze the view; the collector keeps up underneath", self.action_pause),
            ("Longer interval", "Refresh less often", lambda: self.action_interval(1), "interval(1)"),
            ("Shorter interval", "Refresh more often", lambda: self.action_interval(-1), "interval(-1)"),
            ("Tag flow", "Tag or untag the flow under the cursor", fl.action_tag),
            ("Clear tags", "Untag every flow", self.action_clear_tags),
            ("Flow detail", "Every field of the flow under the cursor", fl.action_open),
        )]

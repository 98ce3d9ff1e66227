"""E: the event stream, NEW / UPDATE / DESTROY as they happen, under a rate line.

The collector keeps the log (live.eventlog) only while this screen is open and hands a
copy of its newest entries in every frame; the app gives each frame to this screen while
it is in front. Only the lines that fit are formatted, each frame, so the screen costs the
same at 50 events a second or 50,000 (benchmarks/bench_event_screen.py). The filter is the
flow list's grammar, applied to what the log holds (its last 20,000 events) each frame, so
a filter typed now finds what already happened. ``p`` freezes the stream (the log goes on
underneath); the arrows scroll back through what the log holds and End follows again.
"""

from __future__ import annotations

import dataclasses
import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from cttop.live.eventlog import LOST, Entry, LogView
from cttop.live.frame import Frame
from cttop.model import (
    EV_DESTROY,
    EV_NEW,
    EV_UPDATE,
    IPS_CONFIRMED,
    R_DPORT,
    R_DST,
    R_FAMILY,
    R_PROTO,
    R_PSTATE,
    R_SPORT,
    R_SRC,
    R_STATUS,
    Row,
    proto_name,
    state_name,
    status_names,
)
from cttop.ui import fmt
from cttop.ui.access import cttop_app
from cttop.ui.filterbar import FilterBar
from cttop.ui.keys.base import KeyFooter

KIND_TEXT = {EV_NEW: ("NEW", "events--new"), EV_UPDATE: ("UPDATE", "events--update"),
             EV_DESTROY: ("DESTROY", "events--destroy")}
TITLE_WORD = " Events "
TITLE_HINT = "newest last · ↑↓ PgUp PgDn scroll back · End follows"
TITLE_EXTRAS = ("/ filter", "p pause")  # the footer's keys too: said again where there is room
LABEL_MIN = 12  # cttop-…router: both ends of a lab's namespace name
LOST_TEXT = "── events lost here: the kernel's queue for cttop overflowed (ENOBUFS) ──"


def rate_text(view: LogView | None, paused: bool) -> Text:
    """new/s, update/s, destroy/s of every event; losses; under them, how many of what the log holds the filter
    found."""
    t = Text()
    if paused:
        t.append(" PAUSED ", "bold reverse")
        t.append(" ")
    if view is None:
        t.append("waiting for the first events…", "dim")
        return t
    for kind in (EV_NEW, EV_UPDATE, EV_DESTROY):
        name = KIND_TEXT[kind][0].lower()
        t.append(f"{name} ", "dim")
        t.append(fmt.rate(view.rates.get(kind, 0.0)), "bold")
        t.append("  ")
    t.append("lost ", "dim")
    t.append(fmt.count(view.lost), "bold reverse" if view.lost else "bold")
    if view.filter.strip():
        # A line of its own: after the rates it was cut at 80 columns ("38 matching in the last"). The filter
        # itself is on its line under the stream.
        found = sum(1 for e in view.entries if e[1] != LOST)
        t.append(f"\n{fmt.count(found)} of the last {fmt.count(view.held)} events match", "dim")
    else:
        t.append(f"  · {fmt.count(view.total)} since opened", "dim")
    return t


def _status(status: int) -> str:
    """The status bits worth a column: CONFIRMED is every logged entry's, so it is left out."""
    return ",".join(status_names(status & ~IPS_CONFIRMED)) or "-"


class EventStream(Widget, can_focus=True):
    """The newest entries that fit, newest at the bottom; scrolled back by ``back`` entries."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "events--new", "events--update", "events--destroy", "events--lost", "events--dim",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll(1)", "Older", show=False),
        Binding("down,j", "scroll(-1)", "Newer", show=False),
        Binding("pageup", "page(1)", "Older page", show=False),
        Binding("pagedown", "page(-1)", "Newer page", show=False),
        Binding("home", "oldest", "Oldest", show=False),
        Binding("end", "newest", "Follow", show=False),
    ]

    # The log's newest entries (a new tuple each frame: no deep compare), and how far it is scrolled back.
    entries: reactive[tuple[Entry, ...]] = reactive((), always_update=True)
    back = reactive(0)  # entries scrolled back from the newest; 0 follows the stream

    def show(self, entries: tuple[Entry, ...]) -> None:
        if self.back and entries and self.entries:
            # Keep the same lines in view while scrolled back: move back by what arrived since.
            last = self.entries[-1]
            arrived = next((i for i, e in enumerate(reversed(entries)) if e is last), len(entries))
            self.back = min(self.back + arrived, max(0, len(entries) - 1))
        self.entries = entries

    def render(self) -> RenderResult:
        height, width = self.size.height, self.size.width
        t = Text()
        end = len(self.entries) - self.back
        shown = self.entries[max(0, end - height):end]
        if not shown:
            t.append("no events yet (nothing changed, or nothing matched the filter)",
                     self.get_component_rich_style("events--dim"))
            return t
        for i, entry in enumerate(shown):
            if i:
                t.append("\n")
            t.append_text(self._line(entry, width))
        return t

    def _line(self, entry: Entry, width: int) -> Text:
        stamp, kind, row = entry
        line = Text()
        clock = time.strftime("%H:%M:%S", time.localtime(stamp)) + f".{int(stamp % 1 * 1000):03d} "
        line.append(clock, self.get_component_rich_style("events--dim"))
        if kind == LOST or row is None:
            # cut to the width, as the events are: a wrapped line would push one off the screen
            line.append(fmt.truncate(LOST_TEXT, max(width - len(clock), 10)),
                        self.get_component_rich_style("events--lost"))
            return line
        word, style = KIND_TEXT[kind]
        line.append(f"{word:<8}", self.get_component_rich_style(style))
        line.append(self._flow(row))
        return line

    def _flow(self, row: Row) -> str:
        app = cttop_app(self)
        resolver = app.resolver
        fam, proto = row[R_FAMILY], row[R_PROTO]
        src = fmt.endpoint(fam, proto, row[R_SRC], row[R_SPORT],
                           name=resolver.name(row[R_SRC]) if resolver is not None else None)
        dst = fmt.endpoint(fam, proto, row[R_DST], row[R_DPORT],
                           name=resolver.name(row[R_DST]) if resolver is not None else None)
        state = state_name(proto, row[R_PSTATE], row[R_STATUS])
        text = f"{proto_name(proto):<6} {state:<11} {src} → {dst}  {_status(row[R_STATUS])}"
        owners = app.collector.owners
        if owners is not None:
            o = owners.owner_of(row)
            if o is not None:
                text += f"  {o.text()}" + (f" in {o.container}" if o.container else "")
        return fmt.truncate(text, max(self.size.width - 22, 10))

    def action_scroll(self, n: int) -> None:
        self.back = max(0, min(len(self.entries) - 1, self.back + n))

    def action_page(self, n: int) -> None:
        self.action_scroll(n * max(1, self.size.height - 1))

    def action_oldest(self) -> None:
        self.action_scroll(len(self.entries))

    def action_newest(self) -> None:
        self.back = 0


class RateLine(Static):
    pass


class EventsScreen(Screen[None]):
    """The stream of one namespace's events; frames come from the app while it is in front."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("p", "pause", "Pause"),
        Binding("escape,E", "close", "Back", key_display="Esc"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.frame: Frame | None = None  # the last frame shown (the app hands each one over once)
        self.view: LogView | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="events-title")
        yield RateLine(rate_text(None, False), id="events-rates")
        yield EventStream(id="events-stream")
        bar = FilterBar(id="events-filter")
        bar.display = False
        yield bar
        yield KeyFooter()

    def on_mount(self) -> None:
        cttop_app(self).collector.set_event_log(True)
        self.query_one(EventStream).focus()

    def on_unmount(self) -> None:
        cttop_app(self).collector.set_event_log(False)

    def _title(self, width: int = 80) -> Text:
        """The name, cut in its middle to leave the scroll keys their room (at 80 columns they lost 'End
        follows'); / and p, which the footer names too, only where there is room left for them."""
        room = width - len(TITLE_WORD) - 4
        label = fmt.truncate_middle(cttop_app(self).source.label, max(LABEL_MIN, room - len(TITLE_HINT)))
        hint = TITLE_HINT
        for extra in TITLE_EXTRAS:
            if len(label) + len(hint) + len(extra) + 3 <= room:
                hint += " · " + extra
        t = Text()
        t.append(TITLE_WORD, "bold reverse")
        t.append(f"  {label}  ")
        t.append(hint, "dim")
        return t

    def on_resize(self) -> None:
        self.query_one("#events-title", Static).update(self._title(self.size.width))

    def show_frame(self, frame: Frame | None) -> None:
        """A frame from the collector: its log; paused, only what a filter typed meanwhile finds in what was
        shown (the collector's views then stop where the screen paused)."""
        if frame is None or frame.event_log is None or not self.is_mounted:
            return  # (pushed, not yet composed: the next frame will do)
        view = frame.event_log
        if self.paused:
            shown = self.view
            if shown is None or view.filter == shown.filter or view.appended != shown.appended:
                return  # nothing new to filter, or a view from before the pause
            # The stream as it stood, filtered anew; the rates and counts of that moment stay.
            view = dataclasses.replace(view, rates=shown.rates, total=shown.total, lost=shown.lost)
        self.frame, self.view = frame, view
        try:
            self.query_one(RateLine).update(rate_text(view, self.paused))
            stream = self.query_one(EventStream)
            if self.paused:
                stream.back = 0  # other entries: scrolled back from the last ones is no place to keep
            stream.show(view.entries)
        except NoMatches:
            pass  # closing: the widgets are already gone

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def on_filter_bar_changed(self, event: FilterBar.Changed) -> None:
        event.stop()
        cttop_app(self).collector.set_event_filter(event.text)  # the bar passes only text that compiles

    def on_filter_bar_done(self, event: FilterBar.Done) -> None:
        event.stop()
        bar = self.query_one(FilterBar)
        if not bar.input.value:
            bar.display = False
        self.query_one(EventStream).focus()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.query_one(RateLine).update(rate_text(self.view, self.paused))
        # The log goes on underneath; its views stop where the screen did, for a filter typed while paused.
        until = self.view.appended if self.paused and self.view is not None else None
        cttop_app(self).collector.set_event_until(until)
        if not self.paused:
            cttop_app(self).catch_up()

    def action_close(self) -> None:
        self.dismiss(None)

"""The Textual app: the main screen of panels, the keys, and the hand-over from the collector.

The collector thread never touches a widget. It leaves its newest Frame or
FlowIndex in a slot and posts one small message if none is pending; the app
then applies whatever is newest in one ``batch_update``. So a slow screen skips
stale snapshots instead of queueing them, and nothing is applied while paused
or while a modal screen covers the view (it catches up when the modal closes).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import ClassVar, Final

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen

from cttop import config
from cttop.actions import journal
from cttop.actions.plan import read_only as writes_refused
from cttop.host.datapath import Findings, look
from cttop.kernel.netns import NetnsSpec
from cttop.live.collector import Collector
from cttop.live.frame import LIMITED, LIVE, LOADING, Frame
from cttop.live.heaviest import group_title
from cttop.live.index import SORTS, FlowIndex, ViewSpec
from cttop.live.resolve import Resolver
from cttop.sources.live import Playback, Source
from cttop.table.packing import record_key, record_meta, unpack
from cttop.termsafe import safe_line, safe_text
from cttop.ui import fmt
from cttop.ui.access import cttop_app
from cttop.ui.apply import CHANGES
from cttop.ui.detail import DetailScreen
from cttop.ui.fill import FillPanel
from cttop.ui.filterbar import FilterBar
from cttop.ui.flows import FlowList, FlowsPanel, sort_arrow
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import RATES, TOTAL, HeaviestPanel
from cttop.ui.keys.base import KeyedScreen, KeyFooter
from cttop.ui.keys.host import HostKeys
from cttop.ui.keys.incident import IncidentKeys
from cttop.ui.keys.order import KeysInOrder
from cttop.ui.keys.remedy import RemedyKeys, remedy_help
from cttop.ui.keys.replay import ReplayKeys
from cttop.ui.keys.view import ViewKeys
from cttop.ui.panel import retitle
from cttop.ui.pressure import PressurePanel
from cttop.ui.screens.events import EventsScreen
from cttop.ui.screens.help import HelpScreen, bindings_of, key_names
from cttop.ui.states import StatesPanel

INTERVALS: Final = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
HANGUP_GRACE: Final = 4.0  # seconds to exit cleanly after the terminal went away, then exit hard
SWITCH_STOP_WAIT: Final = 10.0  # seconds a switched-from collector may take to finish a dump
DATAPATH_EVERY: Final = 30.0  # seconds between looks for eBPF conntrack maps and kube-proxy


class FrameReady(Message):
    """The collector left a new Frame in the app's slot."""


class IndexReady(Message):
    """The indexer left a new FlowIndex in the app's slot."""


class MainScreen(KeyedScreen):
    """The panels, and the snapshots applied to them; the keys are the groups'."""

    # In footer order: the replay's keys lead (they exist only in a replay), then the view's.
    GROUPS = (ReplayKeys, ViewKeys, HostKeys, IncidentKeys, RemedyKeys)

    def compose(self) -> ComposeResult:
        app = cttop_app(self)
        status = StatusLine(app.title_text, id="status")
        status.read_only = app.read_only
        status.names = app.resolver is not None  # --resolve: on from the start
        yield status
        with Horizontal(id="top-row"):
            fill = FillPanel(id="fill")
            fill.border_title = "Fill"
            yield fill
            pressure = PressurePanel(id="pressure")
            pressure.border_title = PressurePanel.TITLE
            yield pressure
        with Horizontal(id="mid-row"):
            states = StatesPanel(id="states")
            states.border_title = "States"
            yield states
            yield HeaviestPanel(id="heaviest")
        yield FlowsPanel(id="flows")
        filter_bar = FilterBar(id="filter-bar")
        filter_bar.display = False
        yield filter_bar
        yield KeyFooter()

    def on_mount(self) -> None:
        self.watch(self.flow_list, "tagged", self._count_tags)  # however tags change: keys, a delete, a switch
        self.flow_list.focus()
        self.title_heaviest()
        self.title_flows()
        self.set_interval(0.5, self._tick_loading)
        if cttop_app(self).spec is not None:  # a live host: is nf_conntrack its table?
            self.set_interval(DATAPATH_EVERY, self._look_at_host)
            self._look_at_host()
        cttop_app(self).collector.start()  # only now: frames need the panels to exist (the groups' mount next)

    def _look_at_host(self) -> None:
        def work() -> None:
            found = look()
            self.app.call_from_thread(self._show_host, found)

        self.run_worker(work, thread=True, group="datapath", exclusive=True, exit_on_error=False)

    def _show_host(self, found: Findings) -> None:
        for status in self.query(StatusLine):  # none once the app is closing (see RemedyKeys._show_drift)
            status.datapath = found.headline()

    @property
    def flow_list(self) -> FlowList:
        return self.query_one(FlowList)

    # --- applying snapshots ----------------------------------------------------------------

    def show_frame(self, frame: Frame) -> None:
        self.query_one(StatusLine).show(frame)
        self.query_one(FillPanel).show(frame)
        self.query_one(PressurePanel).show(frame)
        self.query_one(StatesPanel).show(frame)
        self.query_one(HeaviestPanel).show(frame)
        fl = self.flow_list
        fl.rates = frame.flow_rates
        fl.set_clock(frame.time)
        fl.placeholder = "" if frame.phase == LIVE else frame.note
        self.title_heaviest()
        self.title_flows()

    def show_index(self, index: FlowIndex) -> None:
        self.flow_list.set_index(index)
        self.query_one(FlowsPanel).refresh_header()
        self.title_flows()

    def _tick_loading(self) -> None:
        for status in self.query(StatusLine):  # none once the app is closing: a timer can fire after
            frame = status.frame
            if frame is not None and frame.phase == LOADING:
                status.loading_for += 0.5

    def title_heaviest(self) -> None:
        app = cttop_app(self)
        frame = app.shown_frame
        by = app.top_by
        panel = self.query_one(HeaviestPanel)
        title = f"Heaviest {group_title(app.group)} by {'new flows/s' if by == 'new-rate' else by}"
        pending = ""
        if frame is not None and frame.phase == LIVE and (frame.group != app.group or frame.top_by != by):
            pending = " …" if not app.paused else " (resume to update)"
        columns = panel.columns(frame) if frame is not None else None
        unit = {RATES: " · B/s p/s", TOTAL: " · total B p", None: ""}[columns]  # what the right-hand columns hold
        # Where the border has no room, the unit goes rather than being cut to "· tot…" (a rate's packets column
        # says "/s" itself), then the word "Heaviest", rather than what the groups are and what ranks them.
        room = panel.outer_size.width - 2
        if len(title + unit + pending) > room:
            unit = ""
        if len(title + pending) > room:
            title = title.removeprefix("Heaviest ")
        if len(title + pending) > room and app.paused:
            pending = " (paused)"  # what explains rows of the last grouping, kept whole: not "(resume to updat…"
        retitle(panel, title + unit + pending)

    def title_flows(self) -> None:
        app = cttop_app(self)
        fl = self.flow_list
        idx = fl.index
        frame = app.shown_frame
        parts = []
        # How many flows: the table's at the frame's instant, reconciled with the kernel's count. A filter's
        # "M of T" over a held table are both the index's: built up to an interval before or after the frame,
        # its matches against the frame's count once read "68,079 of 66,992". A bounded view's page is read
        # with the filter pushed down to the kernel, which lists only what matches: its T is the frame's.
        table = frame.flows if frame is not None and frame.phase == LIVE else None
        if frame is not None and frame.phase == LIMITED:
            parts.append("Flows ?")  # the count is the Fill panel's; which flows, only CAP_NET_ADMIN may see
        elif idx is not None and idx.spec.filter:
            matched = len(idx.records) if idx.paged is None else idx.paged
            total = table if idx.paged is not None and table is not None else idx.total
            parts.append(f"Flows {fmt.count(matched)} of {fmt.count(total)}")
        elif table is not None:
            parts.append(f"Flows {fmt.count(table)}")
        elif idx is not None:
            parts.append(f"Flows {fmt.count(len(idx.records))}")
        else:
            parts.append("Flows")
        if idx is not None and idx.paged is not None and len(idx.records) < idx.paged:
            parts.append(f"first {fmt.count(len(idx.records))}")  # a bounded view's page (live.pager)
        shown = app.view.filter.strip()
        if self.query_one(FilterBar).error is not None:
            # The list is not what was typed: say what it is instead.
            parts.append(f"showing: {shown or 'no filter'} (the typed filter has an error)")
        elif shown:
            parts.append(f"filter: {shown}")
        parts.append(f"by {SORTS[app.view.sort].title} {sort_arrow(app.view)}")
        if idx is not None and idx.spec != app.view:
            parts.append("sorting…")
        if frame is not None and idx is not None and idx.paged_at is not None:
            parts.append(f"read {fmt.ago(frame.time - idx.paged_at)}")  # a bounded view's page: its own dump
        elif frame is not None and frame.refreshed is not None:
            parts.append(f"dumped {fmt.ago(frame.time - frame.refreshed)}")
        retitle(self.query_one(FlowsPanel), " · ".join(parts))

    # --- reacting to widgets ---------------------------------------------------------------

    def _count_tags(self, tagged: frozenset[int]) -> None:
        self.query_one(StatusLine).tagged = len(tagged)

    def on_flow_list_moved(self, event: FlowList.Moved) -> None:
        cttop_app(self).anchor(event.flow_id)

    def on_flow_list_open(self, event: FlowList.Open) -> None:
        cttop_app(self).open_detail(event.record)

    def on_heaviest_panel_selected(self, event: HeaviestPanel.Selected) -> None:
        if event.group.filter is None:
            self.notify(f"{event.group.text}: no filter selects this group", severity="warning", markup=False)
            return
        bar = self.query_one(FilterBar)
        bar.set_text(event.group.filter)
        bar.display = True
        self.flow_list.focus()

    def on_filter_bar_changed(self, event: FilterBar.Changed) -> None:
        cttop_app(self).set_filter(event.text)
        self.title_flows()

    def on_filter_bar_done(self, event: FilterBar.Done) -> None:
        bar = self.query_one(FilterBar)
        if not bar.input.value:
            bar.display = False
        self.flow_list.focus()

    def on_screen_resume(self) -> None:
        cttop_app(self).catch_up()

    def on_resize(self) -> None:
        self.set_class(self.size.height >= 40, "tall")


class CttopApp(KeysInOrder):
    TITLE = "cttop"
    CSS_PATH = Path(__file__).with_name("cttop.tcss")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q,f10", "quit", "Quit", key_display="q"),
        # As top and iptstate do (Textual's own Ctrl-C only says to press Ctrl-Q): everywhere, a filter being
        # typed and a dialog included; nothing is changed by leaving.
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, source: Source, *, read_only: bool = False, title: str | None = None,
                 interval: float = config.DEFAULT_INTERVAL, resolve: bool = False, notes: Sequence[str] = (),
                 max_flows: int | None = None) -> None:
        super().__init__()
        self.source = source
        self._notes = tuple(notes)  # what the person should know before looking (the lab's), as toasts
        # CTTOP_READ_ONLY=1 hides the write keys too, not just refuses after Yes as the plans would.
        self.read_only = read_only or writes_refused() or not source.live
        self._toasts: list[tuple[str, SeverityLevel, float]] = []  # message, severity, shown until (monotonic)
        self.title_text = title or "cttop"
        self.group = config.DEFAULT_GROUP
        self.top_by = "entries"
        self.view = ViewSpec()
        self.paused = False
        self.shown_frame: Frame | None = None
        self.shown_index: FlowIndex | None = None
        self._paused_generation: int | None = None
        self._frame: Frame | None = None
        self._index: FlowIndex | None = None
        self._frame_posted = threading.Event()
        self._index_posted = threading.Event()
        self.max_flows = max_flows  # over it, the table is counted and not held, and the list paged (None: never)
        self.collector = Collector(source, on_frame=self._collector_frame, on_index=self._collector_index,
                                   interval=interval, group=self.group, view=self.view, max_flows=max_flows)
        self.resolver: Resolver | None = None  # reverse DNS (R, --resolve): off by default
        self.new_resolver: Callable[[], Resolver] = Resolver  # what R starts (tests point it at their own DNS)
        if resolve:
            self.set_resolve(True)
        self.main = MainScreen()

    @property
    def spec(self) -> NetnsSpec | None:
        """The namespace the view shows and actions act on; None for a replay."""
        return self.source.spec

    @property
    def replay(self) -> Playback | None:
        """The recording the view replays (its play clock); None for a live namespace."""
        return self.source.playback

    # --- lifecycle -----------------------------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return self.main

    def on_mount(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._hangup, sig)
            except (ValueError, RuntimeError):
                pass  # not the main thread (tests run the app elsewhere): nothing to hang up
        journal.warning_sink = self._journal_warning
        for note in self._notes:  # printed before the screen took the terminal over: said again on it
            self.notify(note, timeout=15, markup=False)

    def _hangup(self, sig: int) -> None:
        """The terminal went away (SSH dropped) or we were told to stop: exit now, and hard if that stalls; but
        never before a change being applied has ended, its record with it."""
        CHANGES.close()

        def hard_exit() -> None:
            CHANGES.wait()
            os._exit(128 + sig)

        timer = threading.Timer(HANGUP_GRACE, hard_exit)
        timer.daemon = True
        timer.start()
        self.exit()

    async def action_quit(self) -> None:
        self.exit()

    def _journal_warning(self, message: str) -> None:
        """A journal line left out: a toast, since stderr is not on screen (from any thread that read it)."""
        if threading.get_ident() == self._thread_id:
            self.notify(message, severity="warning", timeout=10, markup=False)
            return
        try:
            self.call_from_thread(self.notify, message, severity="warning", timeout=10, markup=False)
        except RuntimeError:
            pass  # the app has stopped meanwhile: nobody to tell

    def on_unmount(self) -> None:
        journal.warning_sink = None
        self.collector.stop()
        self.set_resolve(False)

    # --- the collector's side: runs on its threads, only fills a slot and posts ----------------

    def _collector_frame(self, frame: Frame) -> None:
        self._frame = frame
        if not self._frame_posted.is_set():
            self._frame_posted.set()
            self.post_message(FrameReady())

    def _collector_index(self, index: FlowIndex) -> None:
        self._index = index
        if not self._index_posted.is_set():
            self._index_posted.set()
            self.post_message(IndexReady())

    # --- the UI thread ---------------------------------------------------------------------

    def on_frame_ready(self, _: FrameReady) -> None:
        self._frame_posted.clear()
        self.catch_up()

    def on_index_ready(self, _: IndexReady) -> None:
        self._index_posted.clear()
        self.catch_up()

    def catch_up(self) -> None:
        """Apply the newest snapshots, unless paused or a modal screen is in front (the event screen,
        in front, takes the frames: its stream is in them)."""
        stack = self.screen_stack
        if stack and isinstance(stack[-1], EventsScreen) and self._frame is not stack[-1].frame:
            stack[-1].show_frame(self._frame)
        if not stack or stack[-1] is not self.main:
            return  # a modal is in front, or the app is shutting down and has no screen left
        frame, index = self._frame, self._index
        new_frame = frame is not None and frame is not self.shown_frame and not self.paused
        new_index = index is not None and index is not self.shown_index and (
            not self.paused or index.generation == self._paused_generation)
        if not (new_frame or new_index):
            return
        try:
            with self.batch_update():
                if new_frame:
                    assert frame is not None
                    self.shown_frame = frame
                    self.main.show_frame(frame)
                if new_index:
                    assert index is not None
                    self.shown_index = index
                    self.main.show_index(index)
        except NoMatches:
            pass  # shutting down: the panels are already gone, and so is anyone to show them to

    def anchor(self, flow_id: int | None) -> None:
        self.collector.set_anchor(flow_id)

    def set_filter(self, text: str) -> None:
        self.set_view(ViewSpec(text, self.view.sort, self.view.reverse))

    def set_view(self, spec: ViewSpec) -> None:
        if spec != self.view:
            self.view = spec
            self.collector.set_view(spec)

    def set_group(self, group: str, by: str) -> None:
        self.group, self.top_by = group, by
        self.collector.set_group(group, by)

    def set_resolve(self, on: bool) -> bool:
        """Reverse DNS on or off (its worker threads start and stop with it); returns whether it is on."""
        if on and self.resolver is None:
            self.resolver = self.new_resolver()
        elif not on and self.resolver is not None:
            self.resolver.close()
            self.resolver = None
        self.collector.set_resolver(self.resolver)
        if self.is_running:
            self.main.flow_list.relabel()
            self.main.query_one(StatusLine).names = self.resolver is not None
        return self.resolver is not None

    def toggle_pause(self) -> None:
        self.paused = not self.paused
        self._paused_generation = self.collector.set_paused(self.paused)
        if not self.paused:
            self.catch_up()

    def step_interval(self, step: int) -> None:
        now = self.collector.interval
        pos = min(range(len(INTERVALS)), key=lambda i: abs(INTERVALS[i] - now))
        new = INTERVALS[max(0, min(len(INTERVALS) - 1, pos + step))]
        self.collector.set_interval(new)
        self.notify(f"refresh every {new:g} s", timeout=2)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        # A dialog that says notices inside (the remediation screens) is not covered by a toast.
        say = getattr(self.screen, "say_notice", None) if self.screen_stack else None
        if say is not None and say(message, severity):
            return
        # Every toast, whichever screen raises it: messages quote names from the kernel, /proc and files.
        super().notify(safe_text(message), title=safe_line(title), severity=severity, timeout=timeout,
                       markup=markup)
        shown_for = self.NOTIFICATION_TIMEOUT if timeout is None else timeout
        now = time.monotonic()
        self._toasts = [t for t in self._toasts if t[2] > now] + [(message, severity, now + shown_for)]

    def clear_notifications(self) -> None:
        super().clear_notifications()
        self._toasts = []

    def take_toasts(self) -> list[tuple[str, SeverityLevel]]:
        """The toasts still showing (message, severity), oldest first, taken off the screen: a dialog opening over
        them says them inside, where they cover nothing."""
        now = time.monotonic()
        live = [(m, sev) for m, sev, until in self._toasts if until > now]
        if live:
            self.clear_notifications()
        return live

    def switch_source(self, source: Source, title: str | None = None) -> None:
        """Show ``source`` instead (the namespaces screen's Enter): same settings, fresh table, tags and title.

        Read-only stays as it was. The old collector stops in a worker (it may be
        mid-dump); the new one starts once it has, and only its snapshots reach the slots.
        """
        old = self.collector

        def on_frame(frame: Frame) -> None:
            if self.collector is new:
                self._collector_frame(frame)

        def on_index(index: FlowIndex) -> None:
            if self.collector is new:
                self._collector_index(index)

        new = Collector(source, on_frame=on_frame, on_index=on_index, interval=old.interval, group=self.group,
                        view=self.view, max_flows=self.max_flows)
        new.set_group(self.group, self.top_by)
        new.set_resolver(self.resolver)
        self.source, self.collector = source, new
        self.title_text = title or self.TITLE
        self.paused, self._paused_generation = False, None
        self.main.query_one(StatusLine).paused = False
        self.main.query_one(StatusLine).title = self.title_text

        def clear() -> None:
            # Anything the old collector left in a slot or on screen is of the old source.
            self._frame = self._index = self.shown_frame = self.shown_index = None
            status = self.main.query_one(StatusLine)
            status.frame, status.loading_for = None, 0.0
            fl = self.main.flow_list
            fl.index, fl.cursor, fl.tagged = None, 0, frozenset()  # the status line's count follows the tags

        def start() -> None:
            if self.collector is new:  # not switched again meanwhile
                clear()
                new.start()

        def stop_old() -> None:
            old.stop(timeout=SWITCH_STOP_WAIT)
            self.call_from_thread(start)

        clear()
        self.run_worker(stop_old, thread=True, group="switch", exit_on_error=False)

    def open_detail(self, record: bytes) -> None:
        fid = record_key(record)
        current = self.collector.flow(fid)
        frame = self.shown_frame
        now = frame.time if frame is not None else self.source.now()
        meta = record_meta(self.collector.record(fid) or record)
        self.push_screen(DetailScreen(current or unpack(record), now, gone=current is None, meta=meta))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_sections(self.read_only, self.replay is not None)))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        keys = action_keys()
        for entry in self.main.palette():
            key = keys.get(entry.action_name())
            yield SystemCommand(f"{entry.title} ({key})" if key else entry.title, entry.help, entry.callback)


def action_keys() -> dict[str, str]:
    """Each main-screen action's keys as the help screen names them ('filter' → '/ F3 F4'), for the palette."""
    keys: dict[str, str] = {}
    for b in bindings_of(*MainScreen.__mro__, CttopApp, FlowList, HeaviestPanel):
        keys.setdefault(b.action, key_names(b.key))
    return keys


def help_sections(read_only: bool = False, replay: bool = False) -> list[tuple[str, list[Binding]]]:
    """The keys this view offers: a replay has its timeline keys, and no namespace to doctor or switch."""
    return [
        ("Everywhere", bindings_of(CttopApp, ViewKeys)),
        ("Remediation (changes hidden with --read-only)", [] if replay else remedy_help(read_only)),
        ("Doctor and namespaces", [] if replay else bindings_of(HostKeys)),
        ("Events, expectations, names", bindings_of(IncidentKeys)),
        ("Replay", bindings_of(ReplayKeys) if replay else []),
        ("Flow list", bindings_of(FlowList)),
        ("Heaviest panel (Tab to reach it)", bindings_of(HeaviestPanel)),
        ("Filter line", bindings_of(FilterBar)),
    ]

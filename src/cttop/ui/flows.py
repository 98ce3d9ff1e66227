"""The flow list: a Line-API virtual view over the sorted, filtered index of up to millions of flows.

Only the visible lines are ever drawn. Each line is built from the packed record
and cached as a Strip keyed by that record (records are immutable bytes, so a
changed flow is a new key), the cursor and tag state and the column layout: on
a scroll or a refresh with nothing new, lines come straight from the cache.

On a live namespace wide enough (OWNER_MIN_WIDTH, CONTAINER_MIN_WIDTH), columns
name the process owning each flow and its container, looked up for the drawn
lines only in the collector's owners index (a few dict lookups a line); a new
owners index makes new cache keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from cttop.live.index import SORTS, FlowIndex, ViewSpec
from cttop.live.resolve import Resolver
from cttop.model import (
    R_DPORT,
    R_DST,
    R_FAMILY,
    R_MARK,
    R_PROTO,
    R_PSTATE,
    R_RDPORT,
    R_RDST,
    R_RSPORT,
    R_RSRC,
    R_SPORT,
    R_SRC,
    R_STATUS,
    R_TIMEOUT,
    R_ZONE,
    Row,
    nat_kind,
    proto_name,
    state_name,
    total_bytes,
    total_packets,
)
from cttop.owners.owners import FORWARDED, LOCAL_NO_PROCESS, NO_CONTAINER, NO_PROCESS, Owners
from cttop.table.packing import UNREAD, ran_out, record_key, record_meta, timeout_left, unpack
from cttop.table.rates import FlowRate
from cttop.ui import fmt
from cttop.ui.access import cttop_app

OWNER_MIN_WIDTH: Final = 120  # narrower, the process column would squeeze the tuples below an IPv4 endpoint
OWNER_WIDTH: Final = len(LOCAL_NO_PROCESS)
CONTAINER_MIN_WIDTH: Final = 150
CONTAINER_WIDTH: Final = 16
RATES_MIN_WIDTH: Final = 140  # from here the rate columns stand beside the counters, whatever the sort
OWNERS_POLL: Final = 0.25  # seconds between looks for a newer owners index (one float compared)


@dataclass(frozen=True)
class Column:
    name: str
    title: str
    width: int
    right: bool = False
    sort: str | None = None  # the SORTS entry this column sorts by


def layout(width: int, owners: bool = False, sort: str = "") -> tuple[Column, ...]:
    """Columns for a line ``width`` cells wide; narrower screens drop the container and process (shown
    only with ``owners``), mark/zone and packets first, and show a NAT marker instead of the reply tuple.
    Bytes and packets a second (between the last two dumps) take the counters' places when the list is
    sorted by them, and stand beside them on screens wide enough. The column the list is sorted by is always
    shown: one the width leaves out (mark/zone, packets) takes the place of bytes, the least needed there.
    """
    fixed = [Column("tag", "", 1), Column("proto", "proto", 5, sort="proto"),
             Column("state", "state", 11, sort="state")]
    tail = [Column("owner", "process", OWNER_WIDTH)] if owners and width >= OWNER_MIN_WIDTH else []
    if owners and width >= CONTAINER_MIN_WIDTH:
        tail.append(Column("container", "container", CONTAINER_WIDTH))
    tail.append(Column("timeout", "timeout", 7, True, "timeout"))
    wide = width >= RATES_MIN_WIDTH
    optional = [(Column("mark", "mark/zone", 9, sort="mark"), width >= 100),
                (Column("bytes", "bytes", 6, True, "bytes"), wide or sort != "bytes-rate"),
                (Column("bytes-rate", "B/s", 6, True, "bytes-rate"), wide or sort == "bytes-rate"),
                (Column("packets", "pkts", 6, True, "packets"), width >= 110 and (wide or sort != "packets-rate")),
                (Column("packets-rate", "p/s", 6, True, "packets-rate"), wide or sort == "packets-rate")]
    shown = [c for c, fits in optional if fits]
    # Only mark/zone or packets can be the sorted one left out here, and bytes is then shown (its rate is not).
    left_out = next((c for c, fits in optional if not fits and c.sort == sort), None)
    if left_out is not None:
        shown = [left_out if c.name == "bytes" else c for c in shown]
    tail += shown
    used = sum(c.width for c in fixed + tail) + len(fixed) + len(tail) + 3  # one space after each column
    room = max(width - used, 24)
    if width >= 130:
        reply = room * 3 // 10
        rest = room - reply
    else:
        reply = 4
        rest = room - reply
    src = rest // 2
    flex = [Column("src", "source", src, sort="src"), Column("dst", "destination", rest - src, sort="dst"),
            Column("nat", "reply (NAT)" if reply > 4 else "nat", reply)]
    return tuple(fixed + flex + tail)


_STATE_CLASS = {"ESTABLISHED": "good", "ASSURED": "good", "SYN_SENT": "warn", "SYN_RECV": "warn",
                "UNREPLIED": "warn", "TIME_WAIT": "dim", "CLOSE": "dim", "CLOSE_WAIT": "dim",
                "LAST_ACK": "dim", "FIN_WAIT": "dim"}


def cells(row: Row, columns: tuple[Column, ...], tagged: bool, owners: Owners | None = None,
          meta: tuple[int, int] = (0, 0), now: float | None = None, rate: FlowRate | None = None,
          names: Resolver | None = None) -> list[tuple[str, str]]:
    """(text, style class) for each column of one flow; ``owners`` fills the process and container columns.

    ``meta`` is the record's (:func:`record_meta`): the timeout counts down from when it was read
    to ``now`` (the frame's time), and counters not read yet show ``?``, not ``-`` (accounting off).
    ``rate`` fills the rate columns (None: it moved nothing between the last two dumps), ``names`` the
    addresses' (reverse DNS, when on).
    """
    fam, proto = row[R_FAMILY], row[R_PROTO]
    seen, flags = meta
    out: list[tuple[str, str]] = []
    for c in columns:
        n = c.name
        if n == "tag":
            out.append(("*" if tagged else " ", "tag"))
        elif n == "proto":
            out.append((proto_name(proto), ""))
        elif n == "state":
            s = state_name(proto, row[R_PSTATE], row[R_STATUS])
            out.append((s, _STATE_CLASS.get(s, "")))
        elif n == "src":
            name = names.name(row[R_SRC]) if names is not None else None
            out.append((fmt.endpoint(fam, proto, row[R_SRC], row[R_SPORT], c.width, name), ""))
        elif n == "dst":
            name = names.name(row[R_DST]) if names is not None else None
            out.append((fmt.endpoint(fam, proto, row[R_DST], row[R_DPORT], c.width, name), ""))
        elif n == "nat":
            out.append((_nat_text(row, c.width), "nat"))
        elif n == "timeout":
            if now is not None and ran_out(row, seen, now):
                out.append(("?", ""))  # renewed by traffic, or yet to be reaped: the next dump says
            else:
                out.append((fmt.duration(row[R_TIMEOUT] if now is None else timeout_left(row, seen, now)), ""))
        elif n == "mark":
            mark, zone = row[R_MARK], row[R_ZONE]
            out.append((f"{mark:#x}/{zone}" if mark or zone else "-", ""))
        elif n == "owner":
            label = owners.label(row) if owners is not None else ""
            out.append((label, "dim" if label in (FORWARDED, LOCAL_NO_PROCESS) or label.endswith(NO_PROCESS) else ""))
        elif n == "container":
            container = owners.container_of(row) if owners is not None else None
            # Neither a process nor a namespace: the process column already says why, once is enough.
            if container is None and (owners is None or owners.owner_of(row) is None):
                out.append(("", ""))
            else:
                out.append((container or NO_CONTAINER, "" if container else "dim"))
        elif n == "bytes":
            out.append((fmt.counter(total_bytes(row), bool(flags & UNREAD)), ""))
        elif n == "packets":
            out.append((fmt.counter(total_packets(row), bool(flags & UNREAD)), ""))
        elif n == "bytes-rate":
            out.append((fmt.si(rate.bytes) if rate is not None else "-", "" if rate is not None else "dim"))
        elif n == "packets-rate":
            out.append((fmt.si(rate.packets) if rate is not None else "-", "" if rate is not None else "dim"))
    return out


def _nat_text(row: Row, width: int) -> str:
    kind = nat_kind(row)
    if kind is None:
        return ""
    if width <= 4:
        return kind
    fam, proto = row[R_FAMILY], row[R_PROTO]
    # The reply tuple's rewritten side: where SNAT sent the source, or where DNAT sent the destination.
    if kind == "dnat":
        where = fmt.endpoint(fam, proto, row[R_RSRC], row[R_RSPORT])
    else:
        where = fmt.endpoint(fam, proto, row[R_RDST], row[R_RDPORT])
    return fmt.truncate(f"{kind} {where}", width)


def sort_arrow(spec: ViewSpec) -> str:
    """Which way ``spec`` sorts: the flows panel's title and the sorted column's header both show it."""
    return "▼" if SORTS[spec.sort].descending != spec.reverse else "▲"


def header_text(columns: tuple[Column, ...], spec: ViewSpec) -> Text:
    """Column titles; the sorted one in reverse video with its arrow, in the space after it if it fills its width."""
    t = Text()
    for c in columns:
        title = fmt.truncate(c.title, c.width)
        if c.sort is not None and c.sort == spec.sort:
            arrow = sort_arrow(spec)
            t.append(title.rjust(c.width) + arrow if c.right else (title + arrow).ljust(c.width + 1), "bold reverse")
        else:
            t.append(title.rjust(c.width) if c.right else title.ljust(c.width), "bold")
            t.append(" ")
    return t


class FlowList(ScrollView, can_focus=True):
    """The virtual list. The app hands it indexes; it tells the app where the cursor is."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(0)", "First flow", show=False),
        Binding("end", "edge(1)", "Last flow", show=False),
        Binding("space", "tag", "Tag", key_display="Space"),
        Binding("enter", "open", "Detail", show=False),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {"flows--cursor", "flows--cursor-blur", "flows--tag", "flows--good",
                                             "flows--warn", "flows--dim", "flows--nat", "flows--empty"}

    # On a flow of the list (validate_cursor); a move redraws only the line it leaves and the one it reaches.
    # Set even to where it is, it brings itself back into view (after a scroll by the mouse wheel).
    cursor: reactive[int] = reactive(0, repaint=False, always_update=True)
    # A tag toggled redraws only the lines of the flows whose tag changed (watch_tagged).
    tagged: reactive[frozenset[int]] = reactive(frozenset(), repaint=False)
    # These redraw the visible lines when they change (a new index, even of equal content, is news).
    index: reactive[FlowIndex | None] = reactive(None, always_update=True)
    placeholder = reactive("")  # shown when there is nothing to list, e.g. why flows are missing
    second: reactive[int | None] = reactive(None)  # the shown frame's whole second: a new one redraws the countdown
    # Bytes and packets a second by flow key, from the shown frame (a new mapping at each dump).
    rates: reactive[Mapping[int, FlowRate]] = reactive(dict)

    class Moved(Message):
        """The cursor is on another flow (None when the list is empty)."""

        def __init__(self, flow_id: int | None) -> None:
            super().__init__()
            self.flow_id = flow_id

    class Open(Message):
        def __init__(self, record: bytes) -> None:
            super().__init__()
            self.record = record

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.now: float | None = None  # the shown frame's time: timeouts count down to it
        self.columns = layout(80)
        self._cache: LRUCache[tuple[object, ...], Strip] = LRUCache(2048)
        self._styles_key = 0
        self._owners_drawn = float("-inf")  # the owners index (its refresh time) the lines were drawn with
        self._names_drawn = -1  # the resolver's answer count the lines were drawn with

    @property
    def records(self) -> Sequence[bytes]:
        return self.index.records if self.index is not None else ()

    def cursor_record(self) -> bytes | None:
        recs = self.records
        return recs[self.cursor] if 0 <= self.cursor < len(recs) else None

    def cursor_flow(self) -> int | None:
        rec = self.cursor_record()
        return None if rec is None else record_key(rec)

    def set_index(self, index: FlowIndex) -> None:
        """Show a new index, keeping the cursor on the same flow when the index says where it went."""
        before = self.cursor_flow()
        on_screen = self.cursor - round(self.scroll_y)
        self.index = index
        self.relayout(index.spec.sort)
        n = len(index.records)
        self.virtual_size = Size(self.scrollable_content_region.width, n)
        if before is not None and index.anchor == before and index.anchor_pos is not None:
            target = index.anchor_pos
            self.set_reactive(FlowList.cursor, target)
            self.scroll_to(y=max(0, target - on_screen), animate=False, immediate=True)
        else:
            self.set_reactive(FlowList.cursor, self.validate_cursor(self.cursor))
        self.post_message(self.Moved(self.cursor_flow()))

    class Relaid(Message):
        """The columns changed with the width; the header must follow."""

    @property
    def owners(self) -> Owners | None:
        """The collector's owners (a live namespace), None for a replay."""
        return cttop_app(self).collector.owners

    def _has_owner_column(self) -> bool:
        return any(c.name in ("owner", "container") for c in self.columns)

    def on_mount(self) -> None:
        self.set_interval(OWNERS_POLL, self._check_owners)

    def _check_owners(self) -> None:
        """Redraw when the owners index was refreshed since the lines were drawn (an idle table), or when
        reverse lookups returned names since."""
        owners = self.owners
        if owners is not None and self._has_owner_column() and owners.index.at != self._owners_drawn:
            self.refresh()  # a repaint: what changed is the collector's, not a field of this widget
        names = self.names
        if names is not None and names.answers != self._names_drawn:
            self.refresh()

    @property
    def names(self) -> Resolver | None:
        """The app's reverse DNS, when it is on."""
        return cttop_app(self).resolver

    def relabel(self) -> None:
        """Reverse DNS was turned on or off: every line is drawn again."""
        self._cache.clear()
        self.refresh()

    def relayout(self, sort: str) -> None:
        """The sort changed: a rate sort brings its column in."""
        columns = layout(self.scrollable_content_region.width, self.owners is not None, sort)
        if columns != self.columns:
            self.columns = columns
            self._cache.clear()
            self.post_message(self.Relaid())

    def on_resize(self) -> None:
        sort = self.index.spec.sort if self.index is not None else ""
        self.columns = layout(self.scrollable_content_region.width, self.owners is not None, sort)
        self.virtual_size = Size(self.scrollable_content_region.width, len(self.records))
        self._cache.clear()
        self.post_message(self.Relaid())

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles_key += 1  # theme or focus styles changed: cached lines are stale

    def validate_cursor(self, cursor: int) -> int:
        """Clamped to the index: 0 to the last flow (0 when there is none)."""
        return max(0, min(cursor, len(self.records) - 1))

    def watch_tagged(self, old: frozenset[int], new: frozenset[int]) -> None:
        changed = old ^ new
        top = round(self.scroll_y)
        recs = self.records
        for i in range(top, min(len(recs), top + self.scrollable_content_region.height)):
            if record_key(recs[i]) in changed:
                self.refresh_line(i)

    def watch_cursor(self, old: int, new: int) -> None:
        # Only these two lines change (a scroll below redraws the rest, as Textual does on any scroll).
        self.refresh_line(old)
        self.refresh_line(new)
        height = self.scrollable_content_region.height
        top = round(self.scroll_y)
        if new < top:
            self.scroll_to(y=new, animate=False, immediate=True)
        elif height and new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False, immediate=True)
        if old != new:
            self.post_message(self.Moved(self.cursor_flow()))

    def set_clock(self, now: float) -> None:
        """The shown frame's time; lines are redrawn when it reaches another second (timeouts count down)."""
        self.now = now
        self.second = int(now)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        i = round(self.scroll_y) + y
        recs = self.records
        if i >= len(recs):
            note = (self.placeholder or self._no_match()) if i == 0 else ""
            if note:
                # The padding styled too: a segment without a style crashes Textual's NO_COLOR filter.
                return Strip([Segment(fmt.truncate(note, width), self.get_component_rich_style("flows--empty"))]
                             ).adjust_cell_length(width, self.rich_style)
            return Strip.blank(width, self.rich_style)
        rec = recs[i]
        fid = record_key(rec)
        state = "cursor" if i == self.cursor else ""
        if state and not self.has_focus:  # Textual redraws a widget that gains or loses the focus
            state = "blur"
        owners = self.owners if self._has_owner_column() else None
        at = owners.index.at if owners is not None else None
        if at is not None:
            self._owners_drawn = at
        names = self.names
        answers = names.answers if names is not None else -1
        self._names_drawn = answers
        rate = self.rates.get(fid)
        key = (rec, state, fid in self.tagged, width, self._styles_key, at,
               None if self.now is None else int(self.now), rate, answers)
        strip = self._cache.get(key)
        if strip is None:
            strip = self._cache[key] = self._render_record(rec, state, fid in self.tagged, width, owners, rate,
                                                           names)
        return strip

    def _no_match(self) -> str:
        """Why an empty list is empty when a filter made it so: not "no flows", which it may not be."""
        shown = self.index.spec.filter.strip() if self.index is not None else ""
        return f"No flow matches {shown}" if shown else ""

    def _render_record(self, rec: bytes, state: str, tagged: bool, width: int, owners: Owners | None,
                       rate: FlowRate | None, names: Resolver | None) -> Strip:
        style_of = self.get_component_rich_style
        base = self.rich_style
        if tagged:
            base += style_of("flows--tag", partial=True)
        if state:
            # The cursor line is one style end to end: column colours would fight its background.
            base += style_of("flows--cursor" if state == "cursor" else "flows--cursor-blur", partial=True)
        segs: list[Segment] = []
        row_cells = cells(unpack(rec), self.columns, tagged, owners, record_meta(rec), self.now, rate, names)
        for col, (text, cls) in zip(self.columns, row_cells):
            text = fmt.truncate(text, col.width)
            text = text.rjust(col.width) if col.right else text.ljust(col.width)
            style = base + style_of(f"flows--{cls}", partial=True) if cls and not state else base
            segs.append(Segment(text + " ", style))
        return Strip(segs).adjust_cell_length(width, base)

    # --- keys ----------------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.scrollable_content_region.height - 1))

    def action_edge(self, end: int) -> None:
        self.cursor = len(self.records) - 1 if end else 0

    def action_tag(self) -> None:
        fid = self.cursor_flow()
        if fid is None:
            return
        self.tagged ^= {fid}
        self.action_move(1)

    def action_open(self) -> None:
        rec = self.cursor_record()
        if rec is not None:
            self.post_message(self.Open(rec))

    def on_click(self, event: events.Click) -> None:
        self.cursor = round(self.scroll_y) + event.y


class FlowsPanel(Vertical):
    """The list with its column header; the border title says how many flows match and how they are sorted."""

    def compose(self) -> ComposeResult:
        yield Static(id="flow-header")
        yield FlowList(id="flow-list")

    @property
    def flow_list(self) -> FlowList:
        return self.query_one(FlowList)

    def on_flow_list_relaid(self) -> None:
        self.refresh_header()

    def refresh_header(self) -> None:
        fl = self.flow_list
        spec = fl.index.spec if fl.index is not None else ViewSpec()
        self.query_one("#flow-header", Static).update(header_text(fl.columns, spec))

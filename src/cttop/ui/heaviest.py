"""Heaviest: the groups holding the most entries (or bytes, packets), or creating the most flows a second
(``b`` cycles); Enter filters the flow list to one. Once two dumps with accounting are in, the bytes and
packets columns are each group's a second between them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Final

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive

from cttop.live.frame import LIVE, Frame
from cttop.owners.owners import FORWARDED, LOCAL_NO_PROCESS, NO_CONTAINER, NO_PROCESS
from cttop.table.aggregates import GroupRow
from cttop.table.groups import GROUPS, PAIR_SEP
from cttop.termsafe import safe_line
from cttop.ui import fmt
from cttop.ui.panel import Panel

TOTALS: Final = ("bytes", "packets")  # the ranks by a group's totals (not entries, not new flows)
# The least a key may have beside the bytes and packets ("10.…1.2"), and a pair's for both ends to read
# (10.77.1.2 → 10.77.2.2 is 21); narrower, the bytes and packets give way (the flow list and the detail have them):
# at 60 columns a row with them was wider than the panel.
KEY_MIN: Final = 8
PAIR_KEY_MIN: Final = 23
RATES: Final = "rates"  # what the columns after a row's share hold: its bytes and packets a second...
TOTAL: Final = "totals"  # ...or its totals


def share_text(percent: float) -> str:
    return f" {percent:3.0f}%"


def counters_text(columns: str, nbytes: float | None, packets: float | None) -> str:
    """The bytes and packets columns: ``columns`` says whether they are a second (RATES) or totals."""
    return f" {fmt.si(nbytes, 'B'):>6} {fmt.si(packets, 'p'):>6}" + ("/s" if columns == RATES else "")


SHARE_W: Final = len(share_text(100))
COLUMNS_W: Final = {RATES: len(counters_text(RATES, 0, 0)), TOTAL: len(counters_text(TOTAL, 0, 0)), None: 0}


def is_pair(frame: Frame) -> bool:
    group = GROUPS.get(frame.group)
    return group is not None and group.pair


def numbers(frame: Frame, rows: Sequence[GroupRow]) -> list[str]:
    """Each row's figure: its new flows a second, or its entries."""
    return [fmt.rate(r.new_rate or 0.0) if frame.top_by == "new-rate" else fmt.count(r.entries) for r in rows]


def layout(frame: Frame, width: int, num_w: int) -> tuple[int, str | None]:
    """A row's key width at ``width``, and what its bytes and packets columns hold (RATES, TOTAL or None: no
    counters, or the key needs the room). Ranked by bytes or packets, a row shows the totals it is ranked by:
    rates there read as the ranking."""
    columns = None if not frame.counted else RATES if frame.top_by not in TOTALS and any(
        r.bytes_rate is not None for r in frame.top) else TOTAL
    key_w = width - num_w - SHARE_W - COLUMNS_W[columns] - 1  # (the space after the key)
    if key_w < (PAIR_KEY_MIN if is_pair(frame) else KEY_MIN):
        columns, key_w = None, width - num_w - SHARE_W - 1
    return max(KEY_MIN, key_w), columns


def key_text(text: str, width: int) -> str:
    """A group's key in ``width``: a name cut in its middle (names that share a beginning stay apart by their
    ends), but the owners' words for no owner read from their start ('local, no p…', not 'local,…process'), and
    a namespace's ", no process" is kept whole after its name where there is room."""
    if text in (FORWARDED, LOCAL_NO_PROCESS, NO_CONTAINER):
        return fmt.truncate(text, width)
    if text.endswith(NO_PROCESS) and len(text) > width:
        room = width - len(NO_PROCESS)
        return (fmt.truncate_middle(text[:-len(NO_PROCESS)], room) + NO_PROCESS if room >= 5
                else fmt.truncate(text, width))
    return fmt.truncate_middle(text, width)


def ranked(row: GroupRow, by: str) -> float:
    """The measure a group is ranked by: its entries, bytes, packets or new flows a second (no counters
    count as none)."""
    value = {"entries": row.entries, "bytes": row.bytes, "packets": row.packets, "new-rate": row.new_rate}[by]
    return value or 0


class HeaviestPanel(Panel, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("enter", "select", "Filter to group", show=False),
    ]

    class Selected(Message):
        """A group was chosen: filter the flows to it."""

        def __init__(self, group: GroupRow) -> None:
            super().__init__()
            self.group = group

    cursor = reactive(0)

    @property
    def rows(self) -> tuple[GroupRow, ...]:
        return self.frame.top if self.frame is not None else ()

    def show(self, frame: Frame) -> None:
        super().show(frame)
        self.cursor = max(0, min(self.cursor, len(frame.top) - 1))

    def on_resize(self) -> None:
        # The title is fitted to the width (MainScreen.title_heaviest): again once the width is known, or a title
        # fitted before the layout settled stays cut until the next frame (a minute at --interval 60).
        fit = getattr(self.screen, "title_heaviest", None)
        if fit is not None:
            fit()

    def draw(self, frame: Frame, width: int, height: int) -> Text:
        t = Text()
        rows = frame.top[: max(1, height)]
        new_rate = frame.top_by == "new-rate"
        if not rows:
            if frame.phase != LIVE:
                note = safe_line(frame.note)
            elif new_rate:
                note = ("measuring new flows…" if not frame.new_rate_seconds
                        else f"no new flows in the last {frame.new_rate_seconds:.0f}s (from {frame.new_rate_source})")
            else:
                note = "no flows"
            t.append(note, self.style("dim"))
            return t
        total = frame.ranked_total or 1  # the % is each group's share of what it is ranked by
        nums = numbers(frame, rows)
        num_w = max(len(n) for n in nums)
        key_w, columns = layout(frame, width, num_w)
        pair = is_pair(frame)
        for i, (r, n) in enumerate(zip(rows, nums)):
            if i:
                t.append("\n")
            line = Text()
            key = fmt.truncate_pair(r.text, PAIR_SEP, key_w) if pair else key_text(r.text, key_w)
            line.append(key.ljust(key_w) + " ")
            line.append(n.rjust(num_w))
            line.append(share_text(ranked(r, frame.top_by) / total * 100), self.style("dim"))
            if columns == RATES and r.bytes_rate is not None:
                line.append(counters_text(RATES, r.bytes_rate, r.packets_rate), self.style("label"))
            elif columns is not None:
                line.append(counters_text(TOTAL, r.bytes, r.packets), self.style("label"))
            if i == self.cursor and self.has_focus:
                line.stylize(self.style("cursor"))
            t.append_text(line)
        return t

    def columns(self, frame: Frame) -> str | None:
        """What the rows' bytes and packets columns hold as drawn now (see :func:`layout`)."""
        nums = numbers(frame, frame.top[: max(1, self.content_region.height)])
        return layout(frame, self.content_region.width, max(map(len, nums), default=0))[1]

    # The cursor shows only with the focus: Textual redraws a widget that gains or loses it.

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_select(self) -> None:
        if 0 <= self.cursor < len(self.rows):
            self.post_message(self.Selected(self.rows[self.cursor]))

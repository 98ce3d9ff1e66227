"""The replay's time line: one line with the play state, position / duration, speed, and the
recorded count along the whole recording as a sparkline, the current position marked on it.

The position is the one the panels show (the frame on screen), not the replay's
cursor, which runs ahead of it by up to a refresh: what the line says and what
the numbers say are of the same instant. A seek not yet carried out shows as its
target, marked "seeking".
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from cttop.sources.live import Playback
from cttop.ui import fmt
from cttop.ui.access import cttop_app

POLL: float = 0.25  # seconds between looks at the clock and the frame; redrawn only on a change

TimelineState = tuple[float, bool, float, bool, bool]  # (position shown, paused, speed, seeking, at the end)


def clock(seconds: float) -> str:
    """0:07.5, 12:30.0, 1:02:03: tenths below an hour, where seeks are 10 s apart."""
    s = max(0.0, seconds)
    if s >= 3600:
        whole = int(s)
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{int(s // 60)}:{s % 60:04.1f}"


def speed_text(speed: float) -> str:
    return f"×{speed:g}"


def spark_cells(samples: list[tuple[float, int, int]], duration: float, width: int) -> list[int]:
    """The count in each of ``width`` equal slices of the recording: the last sample at or before
    the slice's end (so a cell says what the table held then), the first sample before any."""
    if width <= 0 or not samples:
        return []
    out: list[int] = []
    i = 0
    value = samples[0][1]
    for cell in range(width):
        end = duration * (cell + 1) / width
        while i < len(samples) and samples[i][0] <= end:
            value = samples[i][1]
            i += 1
        out.append(value)
    return out


def cell_of(position: float, duration: float, width: int) -> int:
    if width <= 0:
        return 0
    if duration <= 0:
        return width - 1
    return max(0, min(width - 1, int(position / duration * width)))


class Timeline(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"timeline--state", "timeline--paused", "timeline--dim",
                                             "timeline--spark", "timeline--here"}

    shown: reactive[TimelineState | None] = reactive(None)  # what the line shows: redrawn when it changes

    def __init__(self, replay: Playback, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.replay = replay
        self.samples = replay.timeline()

    def on_mount(self) -> None:
        self.sync()
        self.set_interval(POLL, self.sync)

    def _s(self, name: str):  # type: ignore[no-untyped-def]
        return self.get_component_rich_style(f"timeline--{name}", partial=True)

    def state(self) -> TimelineState:
        """The replay's and the app's state now, as the line shows it."""
        replay = self.replay
        app = cttop_app(self)
        seeking = app.collector.seeking
        frame = app.shown_frame
        if seeking is not None:
            position = min(max(0.0, seeking), replay.duration)
        elif frame is not None:
            position = frame.time - replay.start
        else:
            position = replay.position
        # The end once the frame on screen is of it, not as soon as the replay's cursor (ahead of it) gets there.
        at_end = seeking is None and replay.at_end and position >= replay.duration - 1e-6
        return position, replay.paused, replay.speed, seeking is not None, at_end

    def sync(self) -> None:
        self.shown = self.state()

    def render(self) -> Text:
        position, paused, speed, seeking, at_end = self.shown if self.shown is not None else self.state()
        t = Text()
        if paused:
            t.append("⏸ PAUSED", self._s("paused"))
            t.append(" p plays", self._s("dim"))
        elif at_end:
            t.append("■ END", self._s("state"))
        else:
            t.append("▶ PLAY", self._s("state"))
            t.append(" p pauses", self._s("dim"))
        t.append(f" {clock(position)} / {clock(self.replay.duration)}")
        t.append(f" {speed_text(speed)}", self._s("dim"))
        if seeking:
            t.append(" seeking…", self._s("dim"))
        t.append(" ")
        width = self.content_region.width - t.cell_len
        cells = spark_cells(self.samples, self.replay.duration, width)
        if cells:
            line = fmt.sparkline(cells, width)
            here = cell_of(position, self.replay.duration, len(line))
            t.append(line[:here], self._s("spark"))
            t.append(line[here], self._s("here"))
            t.append(line[here + 1:], self._s("spark"))
        return t

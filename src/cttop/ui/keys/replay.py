"""Replay keys: the time line of a recording (pause, seek, speed), and the line that shows it.

They exist only when the view is a replay: ``check_action`` hides them (and the
palette leaves them out) on a live namespace, where pressed they say so. In a
replay ``p`` pauses the replay's clock instead of freezing the view, so a seek
while paused still shows the table at its new position.
"""

from __future__ import annotations

from typing import ClassVar, Final

from textual.binding import Binding, BindingType

from cttop.sources.live import Playback
from cttop.ui.header import StatusLine
from cttop.ui.keys.base import KeyGroup, PaletteEntry
from cttop.ui.timeline import Timeline, speed_text

SEEK_SHORT: Final = 10.0
SEEK_LONG: Final = 60.0
SPEEDS: Final = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
_REPLAY_ONLY: Final = frozenset({"seek", "speed"})


class ReplayKeys(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = [
        # Short words: at 80 columns the footer has room for few keys, and these lead it in a replay.
        Binding("comma", f"seek({-SEEK_SHORT:g})", f"-{SEEK_SHORT:g} s", key_display=","),
        Binding("full_stop", f"seek({SEEK_SHORT:g})", f"+{SEEK_SHORT:g} s", key_display="."),
        Binding("less_than_sign", f"seek({-SEEK_LONG:g})", f"-{SEEK_LONG:g} s", key_display="<", show=False),
        Binding("greater_than_sign", f"seek({SEEK_LONG:g})", f"+{SEEK_LONG:g} s", key_display=">", show=False),
        Binding("left_square_bracket", "speed(-1)", "Slower replay", key_display="[", show=False),
        Binding("right_square_bracket", "speed(1)", "Faster replay", key_display="]", show=False),
    ]

    @property
    def replay(self) -> Playback | None:
        return self.app.replay

    def on_mount(self) -> None:
        replay = self.replay
        if replay is not None:
            self.screen.mount(Timeline(replay, id="timeline"), after="#status")
            self._show_paused(replay.paused)  # `cttop replay --paused` starts so

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.unavailable(action) is None

    def unavailable(self, action: str) -> str | None:
        if action in _REPLAY_ONLY and self.replay is None:
            return "only in a replay (cttop replay FILE)"
        return None

    def pause_replay(self) -> bool:
        """Pause or resume the replay's clock; False (nothing done) when this is no replay."""
        replay = self.replay
        if replay is None:
            return False
        if replay.paused:
            replay.resume()
        else:
            replay.pause()
        self._show_paused(replay.paused)
        return True

    def action_seek(self, seconds: float) -> None:
        replay = self.replay
        if replay is None:
            return
        collector = self.app.collector
        pending = collector.seeking
        frame = self.app.shown_frame
        if pending is not None:
            base = pending  # keys pressed in a row add up
        elif frame is not None:
            base = frame.time - replay.start  # from what the screen shows
        else:
            base = replay.position
        collector.seek(min(max(0.0, base + seconds), replay.duration))
        self._sync_timeline()

    def action_speed(self, step: int) -> None:
        replay = self.replay
        if replay is None:
            return
        now = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - replay.speed))
        replay.set_speed(SPEEDS[max(0, min(len(SPEEDS) - 1, now + step))])
        self.screen.notify(f"replay speed {speed_text(replay.speed)}", timeout=2)
        self._sync_timeline()

    def _show_paused(self, paused: bool) -> None:
        self.screen.query_one(StatusLine).paused = paused
        self._sync_timeline()

    def _sync_timeline(self) -> None:
        """Show the change now rather than at the time line's next look."""
        for timeline in self.screen.query(Timeline):
            timeline.sync()

    def palette(self) -> list[PaletteEntry]:
        if self.replay is None:
            return []
        return [
            PaletteEntry("Replay: pause / play", "Stop or restart the replay's clock", self.pause_replay, "pause"),
            PaletteEntry(f"Replay: back {SEEK_SHORT:g} s", "Seek back", lambda: self.action_seek(-SEEK_SHORT),
                         f"seek({-SEEK_SHORT:g})"),
            PaletteEntry(f"Replay: forward {SEEK_SHORT:g} s", "Seek forward",
                         lambda: self.action_seek(SEEK_SHORT), f"seek({SEEK_SHORT:g})"),
            PaletteEntry(f"Replay: back {SEEK_LONG:g} s", "Seek back", lambda: self.action_seek(-SEEK_LONG),
                         f"seek({-SEEK_LONG:g})"),
            PaletteEntry(f"Replay: forward {SEEK_LONG:g} s", "Seek forward", lambda: self.action_seek(SEEK_LONG),
                         f"seek({SEEK_LONG:g})"),
            PaletteEntry("Replay: slower", "Halve the replay speed", lambda: self.action_speed(-1), "speed(-1)"),
            PaletteEntry("Replay: faster", "Double the replay speed", lambda: self.action_speed(1), "speed(1)"),
        ]

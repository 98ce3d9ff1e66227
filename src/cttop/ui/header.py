"""The top line: what is being watched, whether it is live, paused or loading, and anything alarming."""

from __future__ import annotations

from typing import ClassVar, Final

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from cttop.live.frame import FAILED, LIMITED, LOADING, Frame
from cttop.termsafe import safe_line
from cttop.ui import fmt

LABEL_MIN: Final = 16  # cttop-l…0-router: a lab's namespace, both ends


class StatusLine(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {"status--title", "status--live", "status--paused", "status--alert",
                                             "status--dim"}

    # Each redraws the line when it changes.
    title = reactive("")
    frame: reactive[Frame | None] = reactive(None, always_update=True)  # a new Frame is news: no deep compare
    paused = reactive(False)
    read_only = reactive(False)
    tagged = reactive(0)
    drift = reactive(0)  # values cttop set that someone changed since (remediation's drift check)
    datapath: reactive[str | None] = reactive(None)  # an eBPF datapath keeps its own conntrack maps (host.datapath)
    drift_by: reactive[str | None] = reactive(None)  # the kube-proxy that writes a drifted value, as doctor names it
    loading_for = reactive(0.0)  # seconds the first load has taken so far
    names = reactive(False)  # reverse DNS is on (R): a name on screen is a lookup's answer, not the kernel's

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(StatusLine.title, title)

    _drawn: Text | None = None  # the last line rendered

    def show(self, frame: Frame) -> None:
        """As Panel.show: a frame that leaves the line as it is replaces the last without a refresh."""
        if self._drawn is not None and self.frame is not None and self._line(frame) == self._drawn:
            self.set_reactive(StatusLine.frame, frame)
            return
        self.frame = frame

    def _s(self, name: str):  # type: ignore[no-untyped-def]
        return self.get_component_rich_style(f"status--{name}", partial=True)

    def render(self) -> Text:
        self._drawn = self._line(self.frame)
        return self._drawn

    def _line(self, f: Frame | None) -> Text:
        t = Text()
        t.append(safe_line(self.title), self._s("title"))
        if f is None:
            t.append("  starting…", self._s("dim"))
            return t
        state = self._state(f)
        # What is watched gives way (cut in its middle, both ends kept) to the state and the alarms after it:
        # at 80 columns a lab's namespace name pushed the drift count off the line.
        label = safe_line(f.label)  # a namespace's name, or a recording's file name
        room = self.size.width - len(t) - 2 * len(" · ") - len(state)
        if self.size.width and room < len(label):  # (no width yet: not laid out)
            label = fmt.truncate_middle(label, max(LABEL_MIN, room))
        t.append(" · ", self._s("dim"))
        t.append(label)
        t.append(" · ", self._s("dim"))
        t.append_text(state)
        if f.note:
            t.append(" · ", self._s("dim"))
            t.append(safe_line(f.note), self._s("alert") if f.phase in (FAILED, LIMITED) else self._s("dim"))
        return t

    def _state(self, f: Frame) -> Text:
        """Live, paused or loading, how often, and every alarm."""
        t = Text()
        if self.paused:
            t.append("PAUSED", self._s("paused"))
        elif f.phase == LOADING:
            t.append(f"LOADING {fmt.duration(self.loading_for)}", self._s("paused"))
        elif f.phase == FAILED:
            t.append("STOPPED", self._s("alert"))
        elif f.phase == LIMITED:
            t.append("LIMITED", self._s("alert"))
        else:
            t.append("LIVE" if f.live else "REPLAY", self._s("live"))
        t.append(f" every {f.interval:g}s", self._s("dim"))
        if self.names:
            t.append(" · names", self._s("dim"))
        if f.bounded is not None:
            # Over --max-flows: counted, not held (the help screen says what that changes).
            t.append(f" · bounded at {fmt.si(f.bounded)}", self._s("paused"))
        if self.read_only or not f.live:
            t.append(" · read-only", self._s("dim"))
        if self.tagged:
            t.append(f" · {self.tagged} tagged")
        if self.drift:
            cause = f" (by {self.drift_by}?)" if self.drift_by else ""
            t.append(f" · drift: {self.drift} value{'s' if self.drift > 1 else ''} changed since cttop set them"
                     + cause, self._s("alert"))
        if self.datapath:
            t.append(f" · {self.datapath}", self._s("alert"))
        if f.lost:
            t.append(f" · events lost, resynced ×{f.lost}", self._s("alert"))
        if f.bad:
            t.append(f" · {f.bad} undecodable events", self._s("alert"))
        return t

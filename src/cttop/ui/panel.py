"""What the summary panels share: they draw the latest Frame, laid out for their current size."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from cttop.live.frame import Frame


def retitle(widget: Widget, title: str) -> None:
    """Set a border title that changed: Textual renders the widget again on every set, the same title or not,
    and a frame a second would render every panel of a table at rest."""
    if widget.border_title != title:  # the getter gives the title back as markup: a plain title is itself
        widget.border_title = title


class Panel(Widget):
    """A panel redrawn from a Frame. Content is built as rich Text, never parsed as markup."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"panel--dim", "panel--good", "panel--warn", "panel--bad",
                                             "panel--label", "panel--bar", "panel--cursor"}

    frame: reactive[Frame | None] = reactive(None, always_update=True)  # a new Frame is news: no deep compare
    _drawn: tuple[int, int, Text] | None = None  # the last render: its width, height and text

    def show(self, frame: Frame) -> None:
        """Draw ``frame``. One that draws the panel as it stands replaces the last without a refresh: a table
        at rest costs each panel a draw a second, not Textual's whole render of it (the goal is 0.02 cores)."""
        drawn = self._drawn
        if drawn is not None and self.frame is not None:
            width, height = self.content_region.width, self.content_region.height
            if drawn[:2] == (width, height) and self.draw(frame, width, height) == drawn[2]:
                self.set_reactive(Panel.frame, frame)
                return
        self.frame = frame

    def style(self, name: str) -> Style:
        """A component class's own style (colour, weight), so themes, 16 colours and NO_COLOR apply."""
        return self.get_component_rich_style(f"panel--{name}", partial=True)

    def render(self) -> Text:
        if self.frame is None:
            return Text("waiting for the first reading…", style=self.style("dim"))
        width, height = self.content_region.width, self.content_region.height
        text = self.draw(self.frame, width, height)
        self._drawn = (width, height, text)
        return text

    def draw(self, frame: Frame, width: int, height: int) -> Text:
        raise NotImplementedError

"""What the summary panels share: they draw the latest Frame, laid out for their current size."""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from cttop.live.frame import Frame


class Panel(Widget):
    """A panel redrawn from a Frame. Content is built as rich Text, never parsed as markup."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"panel--dim", "panel--good", "panel--warn", "panel--bad",
                                             "panel--label", "panel--bar", "panel--cursor"}

    frame: reactive[Frame | None] = reactive(None, always_update=True)  # a new Frame is news: no deep compare

    def show(self, frame: Frame) -> None:
        self.frame = frame

    def style(self, name: str) -> Style:
        """A component class's own style (colour, weight), so themes, 16 colours and NO_COLOR apply."""
        return self.get_component_rich_style(f"panel--{name}", partial=True)

    def render(self) -> Text:
        if self.frame is None:
            return Text("waiting for the first reading…", style=self.style("dim"))
        return self.draw(self.frame, self.content_region.width, self.content_region.height)

    def draw(self, frame: Frame, width: int, height: int) -> Text:
        raise NotImplementedError

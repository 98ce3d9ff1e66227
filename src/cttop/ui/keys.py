"""What the main screen's key groups share: command-palette entries and hiding writes in read-only mode.

The main screen is assembled from key groups (remediation, fleet, replay), each a
Screen subclass of its own module, so each feature keeps its keys, actions and
palette entries together. Textual merges their BINDINGS along the MRO.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeVar

from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from cttop.ui.access import cttop_app

if TYPE_CHECKING:
    from cttop.ui.app import CttopApp

F = TypeVar("F", bound=Callable[..., Any])

# Footer keys that never drop for lack of width: how to get help, and how to get out.
ESSENTIAL_ACTIONS: Final = frozenset({"help", "quit", "close"})


class PaletteEntry(NamedTuple):
    title: str
    help: str
    callback: Callable[[], Any]
    # The binding action it runs, for the palette to show its keys; an ``action_*`` method says it itself.
    action: str = ""

    def action_name(self) -> str:
        return self.action or getattr(self.callback, "__name__", "").removeprefix("action_")


def writes(action: F) -> F:
    """Mark an ``action_*`` method as one that changes the kernel: hidden and refused when read-only."""
    action.cttop_writes = True  # type: ignore[attr-defined]
    return action


def write_refused(owner: object, action: str, read_only: bool) -> bool:
    """Whether ``owner``'s ``action`` changes the kernel and writes are off: then its key is hidden and refused."""
    return read_only and getattr(getattr(owner, f"action_{action}", None), "cttop_writes", False)


class AppAccess:
    """Mixed into the app's screens: the running CttopApp, typed."""

    @property
    def capp(self) -> CttopApp:
        return cttop_app(getattr(self, "app"))  # the Screen's: a mixin cannot declare it


class KeyGroup(AppAccess, Screen[None]):
    """Base of the main screen's key groups. Each overrides ``palette`` and extends ``super().palette()``."""

    def palette(self) -> list[PaletteEntry]:
        return []

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not write_refused(self, action, self.capp.read_only)


class KeyFooter(Footer):
    """The footer, fitted to its width: keys drop from the right end first, but never ? or q (or Esc).

    Textual's footer only clips, which at 80 columns cut off the very keys that say how
    to get help and out. The order of the keys is their priority (the bindings are
    listed most useful first), so the last ones that do not fit are hidden.
    """

    async def recompose(self) -> None:
        await super().recompose()
        self.fit()

    def on_resize(self) -> None:
        self.fit()

    def fit(self) -> None:
        keys = list(self.children)  # FooterKeys (no binding groups here), and the palette's, docked right
        palette = [k for k in keys if k.has_class("-command-palette")]
        shown = [k for k in keys if k not in palette]
        room = self.size.width - sum(map(_width, palette))
        need = sum(map(_width, shown))
        for key in reversed(shown):
            fits = need <= room
            key.display = fits or getattr(key, "action", "") in ESSENTIAL_ACTIONS
            if not key.display:
                need -= _width(key)


def _width(w: Widget) -> int:
    """Columns ``w`` takes in a row, margins included, whether or not it is laid out yet."""
    content = w.get_content_width(w.size, w.size)
    return content + w.styles.gutter.width + w.styles.margin.left + w.styles.margin.right

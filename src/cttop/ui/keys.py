"""What the main screen's key groups share: command-palette entries and hiding writes in read-only mode.

The main screen is assembled from key groups (remediation, fleet, replay), each a
Screen subclass of its own module, so each feature keeps its keys, actions and
palette entries together. Textual merges their BINDINGS along the MRO.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from textual.screen import Screen

if TYPE_CHECKING:
    from cttop.owners.owners import Owners
    from cttop.ui.app import CttopApp

F = TypeVar("F", bound=Callable[..., Any])


class PaletteEntry(NamedTuple):
    title: str
    help: str
    callback: Callable[[], Any]


def writes(action: F) -> F:
    """Mark an ``action_*`` method as one that changes the kernel: hidden and refused when read-only."""
    action.cttop_writes = True  # type: ignore[attr-defined]
    return action


def write_refused(owner: object, action: str, read_only: bool) -> bool:
    """Whether ``owner``'s ``action`` changes the kernel and writes are off: then its key is hidden and refused."""
    return read_only and getattr(getattr(owner, f"action_{action}", None), "cttop_writes", False)


def app_owners(app: object) -> Owners | None:
    """Who owns the flows, for a live namespace in cttop's app; None for a replay or another app."""
    from cttop.ui.app import CttopApp  # the app module imports the widgets that ask

    return app.collector.owners if isinstance(app, CttopApp) else None


class AppAccess:
    """Mixed into the app's screens: the running CttopApp, typed."""

    @property
    def capp(self) -> CttopApp:
        from cttop.ui.app import CttopApp

        app = getattr(self, "app")  # the Screen's: a mixin cannot declare it
        assert isinstance(app, CttopApp)
        return app


class KeyGroup(AppAccess, Screen[None]):
    """Base of the main screen's key groups. Each overrides ``palette`` and extends ``super().palette()``."""

    def palette(self) -> list[PaletteEntry]:
        return []

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not write_refused(self, action, self.capp.read_only)

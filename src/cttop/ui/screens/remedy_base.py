"""What the remediation screens (tunables, NOTRACK rules, journal) share: the app, read-only, persist paths.

They open in read-only mode too, to look; their write keys are then hidden from
the footer and help and refused, as on the main screen.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from textual.screen import ModalScreen

from cttop.actions import PersistPaths
from cttop.errors import CttopError

if TYPE_CHECKING:
    from cttop.ui.app import CttopApp

# Where "persist" writes from the TUI: the usual /etc layout below this directory
# (the TUI's counterpart of the CLI's --persist-dir).
PERSIST_DIR_ENV = "CTTOP_PERSIST_DIR"

T = TypeVar("T")


def persist_paths() -> PersistPaths:
    d = os.environ.get(PERSIST_DIR_ENV)
    return PersistPaths.under(d) if d else PersistPaths()


class RemedyScreen(ModalScreen[None]):
    @property
    def capp(self) -> CttopApp:
        from cttop.ui.app import CttopApp

        app = self.app
        assert isinstance(app, CttopApp)
        return app

    @property
    def read_only(self) -> bool:
        return self.capp.read_only

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        method = getattr(self, f"action_{action}", None)
        return not (getattr(method, "cttop_writes", False) and self.read_only)

    def load(self, read: Callable[[], T], show: Callable[[T], None], what: str) -> None:
        """Run ``read`` (which talks to the kernel or the journal) off the UI thread, then ``show`` its result."""
        app = self.app

        def work() -> None:
            try:
                value = read()
            except (CttopError, OSError) as e:
                app.call_from_thread(app.notify, f"{what}: {e}", severity="error", timeout=10,
                                    markup=False)
                return
            app.call_from_thread(self._deliver, show, value)

        self.run_worker(work, thread=True, group="remedy-load")

    def _deliver(self, show: Callable[[T], None], value: T) -> None:
        if self.is_attached:  # closed while reading: nothing to show it on
            show(value)

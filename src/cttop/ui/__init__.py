"""The live TUI. ``run_tui`` is the one entry point (the CLI and the lab call it)."""

from __future__ import annotations

import os

from cttop.errors import CttopError
from cttop.kernel.netns import NetnsSpec
from cttop.sources.live import LiveSource, Source

NO_TERMINAL = "the live view needs a terminal; for scripts use cttop snapshot --json"


def need_terminal() -> None:
    """Refuse to start without a terminal on stdin and stdout.

    Textual then runs headless, drawing for nobody and never ending: `cttop > file
    </dev/null` was seen burning 60% of a core until killed.
    """
    if not (os.isatty(0) and os.isatty(1)):
        raise CttopError(NO_TERMINAL)


def run_tui(spec: NetnsSpec, *, read_only: bool = False, title: str | None = None, source: Source | None = None,
            interval: float = 1.0) -> None:
    """Open the TUI on ``spec``'s namespace, or on ``source`` (a replay) when given; returns when it quits."""
    need_terminal()
    from cttop.ui.app import (
        CttopApp,  # textual is imported only when the TUI actually runs
    )

    if read_only:
        from cttop.actions.plan import set_read_only

        set_read_only()  # actions refuse to write, whatever key reaches them
    app = CttopApp(source if source is not None else LiveSource(spec), read_only=read_only, title=title,
                   interval=interval)
    app.run()

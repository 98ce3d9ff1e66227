"""The live TUI. ``run_tui`` is the one entry point (the CLI and the lab call it)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cttop import config
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
            interval: float | None = None, notes: Sequence[str] = ()) -> None:
    """Open the TUI on ``spec``'s namespace, or on ``source`` (a replay) when given; returns when it quits.
    The interval (when not given), mouse, theme, first group key and reverse DNS are the active settings'
    (config.py)."""
    # The namespace is opened before the terminal is looked at: a bad --netns is the error to fix either way.
    shown = source if source is not None else LiveSource(spec)
    try:
        need_terminal()
    except CttopError:
        if shown is not source:
            shown.close()  # ours; a replay is its caller's to close
        raise
    from cttop.ui.app import (
        CttopApp,  # textual is imported only when the TUI actually runs
    )
    from cttop.ui.apply import CHANGES

    settings = config.active()
    if read_only:
        from cttop.actions.plan import set_read_only

        set_read_only()  # actions refuse to write, whatever key reaches them
    app = CttopApp(shown, read_only=read_only, title=title,
                   interval=settings.interval if interval is None else interval, resolve=settings.resolve,
                   notes=notes, max_flows=settings.max_flows or None)
    if settings.theme is not None:
        if settings.theme not in app.available_themes:
            raise settings.fail("theme", f"{settings.theme!r} is not a theme (choose from "
                                         f"{', '.join(sorted(app.available_themes))})")
        app.theme = settings.theme
    # process/container exist only where there are processes (not in a replay): there the default stays.
    if settings.group_by in app.collector.group_order:
        app.set_group(settings.group_by, app.top_by)
    app.run(mouse=settings.mouse)
    # A change confirmed before the view closed (q, or a hang-up) ends here, on its worker thread, before the
    # command returns: not left to the interpreter's exit, which a signal's default action would cut short.
    CHANGES.wait()
    if app.return_code:
        # Textual printed what went wrong; the shell must see it failed too (it exited 0).
        raise SystemExit(app.return_code)

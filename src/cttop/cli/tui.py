"""`cttop` with no command (or with only namespace options) opens the live TUI."""

from __future__ import annotations

from typing import Annotated

import typer

from cttop.cli.app import NetnsOpt, NetnsPathOpt, NetnsPidOpt, app, fail, guarded, netns_spec

IntervalOpt = Annotated[float, typer.Option("--interval", "-i", help="Seconds between refreshes (+/- change it live).")]
ReadOnlyOpt = Annotated[bool, typer.Option("--read-only", help="Never change the kernel: action keys are refused.")]


@app.callback(invoke_without_command=True)
@guarded
def tui(ctx: typer.Context, netns: NetnsOpt = None, netns_pid: NetnsPidOpt = None, netns_path: NetnsPathOpt = None,
        interval: IntervalOpt = 1.0, read_only: ReadOnlyOpt = False) -> None:
    """A top for the Linux conntrack table: see who fills it, and fix it. With no command, opens the live view."""
    if ctx.invoked_subcommand is not None:
        return
    if not interval > 0:
        fail(f"--interval {interval:g}: must be more than 0 seconds")
    spec = netns_spec(netns, netns_pid, netns_path)
    if read_only:
        from cttop.actions.plan import set_read_only

        set_read_only()
    from cttop.ui import run_tui

    run_tui(spec, read_only=read_only, interval=interval)

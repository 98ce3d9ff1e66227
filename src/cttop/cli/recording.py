"""`cttop record` and `cttop replay`: a namespace's table and events to a file, and back on screen."""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from cttop.cli.app import DAY, NETNS, a_path, app, netns_options, not_nan, parse_duration, stopped_by_signals
from cttop.cli.base import fail, guarded
from cttop.errors import CttopError
from cttop.kernel.netns import NetnsSpec
from cttop.sources.record import Recorder
from cttop.sources.replay.playback import ReplaySource


@app.command("record")
@guarded
@netns_options()
def record_cmd(
    output: Annotated[str, typer.Option("--output", "-o", help="File to write the recording to.", callback=a_path)],
    duration: Annotated[str | None, typer.Option("--duration", help="Stop after this long (30, 30s, 5m, 1h); "
                                                                    "default: until Ctrl-C.")] = None,
    dump_interval: Annotated[str, typer.Option("--dump-interval", help="A full dump (a seek point) this often.")]
    = "30s",
    spec: NetnsSpec = NETNS,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Record the table's dumps, events and stats to a compressed file, for `cttop replay`."""
    if output == "-":  # the usual word for stdout, where binary is no use: a file named "-" was made
        fail("record --output -: a recording is written to a file; give its path")
    seconds = parse_duration(duration, "--duration", 0.1, 30 * DAY) if duration is not None else None
    recorder = Recorder(spec, output, dump_interval=parse_duration(dump_interval, "--dump-interval", 1.0, DAY),
                        overwrite=force)

    def started() -> None:
        print(f"cttop record: recording {_namespace_words(spec)} to {output}"
              + (f" for {seconds:g} s" if seconds else "; Ctrl-C stops"), file=sys.stderr, flush=True)

    with stopped_by_signals() as stop:
        summary = recorder.run(seconds, stop, on_start=started)
    print(f"cttop record: {summary.text()}", file=sys.stderr)


def _namespace_words(spec: NetnsSpec) -> str:
    """The namespace as a reader knows it: its ip-netns name, or whose it is and its inode."""
    if spec.name is not None:
        return f"network namespace {spec.name}"
    inode = spec.inode()
    if spec.pid is not None:
        return f"the network namespace of pid {spec.pid} (net:[{inode}])"
    if spec.path is not None:
        return f"the network namespace {spec.path} (net:[{inode}])"
    try:
        host = inode == os.stat("/proc/1/ns/net").st_ino
    except OSError:  # another user's init: nothing to compare with
        host = False
    return f"this process's network namespace ({'the host, ' if host else ''}net:[{inode}])"


@app.command("replay")
@guarded
def replay_cmd(
    file: Annotated[str, typer.Argument(metavar="FILE", help="A file written by `cttop record`.")],
    speed: Annotated[float, typer.Option("--speed", min=0.01, max=10000, callback=not_nan,
                                         help="Play this many times faster than recorded.")] = 1.0,
    at: Annotated[float, typer.Option("--at", help="Start this many seconds into the recording.")] = 0.0,
    paused: Annotated[bool, typer.Option("--paused", help="Start paused.")] = False,
    info: Annotated[bool, typer.Option("--info", help="No TUI: print what the recording holds and the table "
                                                      "at its end, as JSON.")] = False,
) -> None:
    """Open a recording in the TUI, read-only, with a time line (pause, seek, speed)."""
    source = ReplaySource(file, speed=speed, paused=paused)
    try:
        if not 0 <= at <= source.duration:
            fail(f"--at {at:g}: {file} is {source.duration:.1f} s long; give 0 to {source.duration:.1f}")
        if source.recording.cut:
            print(f"cttop: {source.recording.cut}", file=sys.stderr, flush=True)
        if info:
            sys.stdout.write(json.dumps(replay_info(source)) + "\n")
            return
        run_tui = _tui_with_source()
        if at:
            source.seek(at)
        run_tui(NetnsSpec(), read_only=True, source=source)
    finally:
        source.close()


def replay_info(source: ReplaySource) -> dict[str, Any]:
    """The recording's description and the table at its end."""
    rec = source.recording
    source.pause()
    source.seek(source.duration)
    rows = source.dump()
    table = source.table
    stats = source.stats()
    return {
        "file": rec.path, "label": rec.meta.get("label"), "host": rec.meta.get("host"),
        "kernel": rec.meta.get("kernel"), "cttop": rec.meta.get("cttop"), "start": rec.start,
        "duration": rec.duration, "segments": len(rec.segments), "dumps": rec.dumps, "events": rec.events,
        "lost": rec.lost, "bytes": rec.size,
        "end": {"flows": len(rows), "count": stats.count, "max": stats.max, "evictable": table.evictable,
                "by_state": dict(sorted(table.by_state.items()))},
    }


def _tui_with_source() -> Callable[..., None]:
    try:
        from cttop.ui import run_tui
    except ImportError:
        raise CttopError("replay: the TUI (cttop.ui.run_tui) is not available in this build; use --info") from None
    if "source" not in inspect.signature(run_tui).parameters:
        raise CttopError("replay: this build's TUI cannot open recordings yet; use --info")
    return run_tui

"""`cttop namespaces`, `record`, `replay` and `export`: beyond one table on one screen."""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from cttop.cli.app import NETNS, app, fail, guarded, netns_options, not_nan
from cttop.errors import CttopError
from cttop.host import export as fleet_export
from cttop.host.namespaces import Namespace, Totals, list_namespaces, totals
from cttop.sources.record import Recorder
from cttop.sources.replay import ReplaySource
from cttop.kernel.netns import NetnsSpec
from cttop.table.groups import GROUPS
from cttop.termsafe import safe_line

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
DAY = 86400.0


def parse_duration(text: str, option: str, low: float, high: float) -> float:
    """``text`` in seconds, refused outside ``low``..``high`` seconds (too many digits make inf: refused too)."""
    m = _DURATION.match(text)
    seconds = float(m.group(1)) * _UNITS[m.group(2)] if m is not None else math.nan
    if not low <= seconds <= high:
        fail(f"{option} {text!r}: give a duration from {_span(low)} to {_span(high)}, such as 30, 30s, 5m or 1h")
    return seconds


def _span(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds:g}s"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    m = re.match(r"^\[([^\]]+)\]:(\d+)$", text) or re.match(r"^([^:\[\]]*):(\d+)$", text)
    if m is None or not 0 < int(m.group(2)) < 65536:
        fail(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:9469 or [::1]:9469")
    return m.group(1) or "0.0.0.0", int(m.group(2))


@contextmanager
def stopped_by_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM, so long runs end cleanly instead of mid-write."""
    stop = threading.Event()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for s in handlers:
        signal.signal(s, on_signal)
    try:
        yield stop
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)


# --- namespaces ----------------------------------------------------------------------------

@app.command("namespaces")
@guarded
def namespaces_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: namespaces and totals.")] = False,
) -> None:
    """List every network namespace (named, and held only by processes) with its conntrack pressure.

    Exits 1 when counts are missing for lack of privilege (the rest is still printed)."""
    nss = list_namespaces()
    tot = totals(nss)
    if as_json:
        sys.stdout.write(json.dumps({"namespaces": [n.to_json() for n in nss], "total": tot.to_json()}) + "\n")
    else:
        _print_table(nss, tot)
    for n in nss:
        if n.error and not n.denied:
            print(f"cttop: namespace {n.label}: {n.error}", file=sys.stderr)
    if tot.denied:
        print(f"cttop: {tot.denied} of {tot.namespaces} namespaces unread: other namespaces need CAP_SYS_ADMIN "
              f"(run with sudo)", file=sys.stderr)
        raise typer.Exit(1)


def _print_table(nss: list[Namespace], tot: Totals) -> None:
    rows = [_human_row(n) for n in nss]
    share = f"{tot.share:.1%}" if tot.share is not None else "-"
    if tot.unreadable:
        rows.append(("TOTAL", "?", "-", "?", "?", "", "", ""))
    else:
        rows.append(("TOTAL", str(tot.count), share, str(tot.drop), str(tot.early_drop), "", "", ""))
    head = ("NAMESPACE", "ENTRIES", "OF MAX", "DROP", "EARLY_DROP", "PROCS", "PROCESS", "CONTAINER")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.rjust(w) if 0 < i < 6 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
              .rstrip())
    if tot.unreadable:
        print(f"\nthe total is unknown: {tot.unreadable} of {tot.namespaces} namespaces could not be read "
              f"(the others hold {tot.count})")
    elif tot.max:
        print(f"\neach namespace may hold up to the max ({tot.max}); together they hold {tot.count} ({share})")


def _human_row(n: Namespace) -> tuple[str, ...]:
    # Names from /run/netns, /proc and cgroups: one line each, so none can break (or forge) a row.
    label = safe_line(n.label) + (" *" if n.own else "")
    process, container = safe_line(n.process or "-"), safe_line(n.container or "-")
    if n.count is None:
        return (label, "?", "-", "?", "?", str(len(n.pids)), process, container)
    share = f"{n.share:.1%}" if n.share is not None else "-"
    return (label, str(n.count), share, str(n.drop), str(n.early_drop), str(len(n.pids)), process, container)


# --- record / replay -----------------------------------------------------------------------

@app.command("record")
@guarded
@netns_options()
def record_cmd(
    output: Annotated[str, typer.Option("--output", "-o", help="File to write the recording to.")],
    duration: Annotated[str | None, typer.Option("--duration", help="Stop after this long (30, 30s, 5m, 1h); "
                                                                    "default: until Ctrl-C.")] = None,
    dump_interval: Annotated[str, typer.Option("--dump-interval", help="A full dump (a seek point) this often.")]
    = "30s",
    spec: NetnsSpec = NETNS,
    force: Annotated[bool, typer.Option("--force", help="Overwrite FILE if it exists.")] = False,
) -> None:
    """Record the table's dumps, events and stats to a compressed file, for `cttop replay`."""
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
    file: Annotated[str, typer.Argument(help="A file written by `cttop record`.")],
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


# --- export --------------------------------------------------------------------------------

@app.command("export")
@guarded
@netns_options()
def export_cmd(
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve /metrics on.")] = "127.0.0.1:9469",
    spec: NetnsSpec = NETNS,
    top: Annotated[int, typer.Option("--top", min=1, max=100, help="Groups per group key in "
                                                                    "cttop_top_group_entries.")] = 10,
    group: Annotated[list[str] | None, typer.Option("--group", help=f"Group key for the top groups "
                                                                     f"(repeatable): {', '.join(GROUPS)}.")] = None,
    no_table: Annotated[bool, typer.Option("--no-table", help="Kernel counters only: no per-state or top-group "
                                                              "metrics (no flow table kept in memory).")] = False,
    no_namespaces: Annotated[bool, typer.Option("--no-namespaces", help="No per-namespace metrics.")] = False,
    max_namespaces: Annotated[int, typer.Option("--max-namespaces", min=1, help="Namespaces with their own "
                                                "series; the rest are summed into one netns=\"(other)\" entries series "
                                                "(no drop counters).")] = 256,
    resync: Annotated[str, typer.Option("--resync", help="Redump the followed table this often.")] = "60s",
) -> None:
    """Serve conntrack metrics for Prometheus (node_exporter-compatible names, plus cttop's own)."""
    host, port = parse_listen(listen)
    groups = tuple(group) if group else fleet_export.DEFAULT_GROUPS
    for g in groups:
        if g not in GROUPS:
            fail(f"--group {g!r}: not a group key (choose from {', '.join(GROUPS)})")
    exporter = fleet_export.serve(spec, host, port, table=not no_table, groups=groups, top=top,
                                  namespaces=not no_namespaces, max_namespaces=max_namespaces,
                                  resync=parse_duration(resync, "--resync", 1.0, DAY))
    shown = f"[{host}]" if ":" in host else host
    print(f"cttop export: serving {spec.label()} on http://{shown}:{port}/metrics", file=sys.stderr, flush=True)
    try:
        with stopped_by_signals() as stop:
            while not stop.wait(1.0):
                pass
    finally:
        exporter.close()

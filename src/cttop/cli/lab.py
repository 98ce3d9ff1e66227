"""`cttop lab`: throwaway namespaces with real traffic, to watch cttop on a busy or full table."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Annotated

import typer

from cttop.cli.app import app, not_nan
from cttop.cli.base import guarded
from cttop.lab import containers, topology
from cttop.lab.scenarios import FILL_LIMIT, SCENARIOS, check_fill
from cttop.lab.session import LabSession, LabSignalled, exits_on_signals, signals_held
from cttop.lab.topology import LabError

# Scenarios with a topology of their own, and the session that builds it.
SCENARIOS = {**SCENARIOS, containers.SCENARIO.name: containers.SCENARIO}
SESSIONS: dict[str, type[LabSession]] = {containers.SCENARIO.name: containers.ContainersSession}

HEADLESS_SECONDS = 30.0
# With the TUI open, traffic runs this long at most; the lab itself stays until quit.
TUI_SECONDS = 3600.0
WATCH_POLL = 0.5

ScenarioOpt = Annotated[str, typer.Option("--scenario", "-s", help=(
    "What traffic to run: " + "; ".join(f"{s.name}: {s.summary}" for s in SCENARIOS.values()) + "."))]
KeepOpt = Annotated[bool, typer.Option("--keep", help="Leave the namespaces when done, and print how to remove them.")]
NoUiOpt = Annotated[bool, typer.Option("--no-ui", help="No TUI: run the traffic for --duration seconds, "
                                                       "print the namespaces' names, then clean up.")]
DurationOpt = Annotated[float | None, typer.Option("--duration", min=0.1, max=86400, callback=not_nan, help=(
    f"Seconds of traffic (default {HEADLESS_SECONDS:g} with --no-ui, {TUI_SECONDS:g} with the TUI)."))]
CleanupOpt = Annotated[str | None, typer.Option("--cleanup", metavar="TAG|all", help=(
    "Remove the lab tagged TAG (its namespaces and what runs in them), as --keep prints it, then exit; "
    "`all` removes every cttop-lab-* namespace on the host, other users' and parallel runs' labs too."))]
ForceOpt = Annotated[bool, typer.Option("--force", help=(
    f"table-full: fill the table even when nf_conntrack_max is above {FILL_LIMIT}, however much kernel memory "
    "that takes."))]


def _say(message: str) -> None:
    # After an SSH hang-up the terminal is gone; losing a status line must not stop the cleanup.
    try:
        print(f"cttop lab: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass


@app.command("lab")
@guarded
def lab(scenario: ScenarioOpt = "mixed", keep: KeepOpt = False, no_ui: NoUiOpt = False,
        duration: DurationOpt = None, cleanup: CleanupOpt = None, force: ForceOpt = False) -> None:
    """Run cttop on a lab: client, router (SNAT) and server namespaces with real traffic; the host is untouched
    (the containers scenario's cgroups and runtime metadata go with the lab, and none go in a Docker host's state)."""
    if scenario not in SCENARIOS:
        raise LabError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
    if os.geteuid() != 0:
        raise LabError("the lab creates network namespaces, which needs root: run it with sudo")
    if cleanup is not None:
        _cleanup(cleanup)
        return
    run_tui = None if no_ui else _tui_entry()
    seconds = duration if duration is not None else HEADLESS_SECONDS if no_ui else TUI_SECONDS
    session = SESSIONS.get(scenario, LabSession)(SCENARIOS[scenario], seconds)
    if scenario == "table-full":
        check_fill(session.max_entries, force)
    failures: list[str] = []
    try:
        with exits_on_signals():
            try:
                if scenario == "table-full":
                    _say(f"filling the router's table first: ASSURED entries, {session.max_entries} at most")
                session.start()
                for note in session.notes:
                    _say(note)
                if run_tui is None:
                    _print_names(session)
                    _run_headless(session)
                else:
                    run_tui(session.router_spec, read_only=False,
                            title=f"cttop lab: {scenario}", notes=session.notes)  # the namespace follows it
            finally:
                with signals_held():
                    failures = session.failures()
                    session.close(keep)
    except (KeyboardInterrupt, LabSignalled) as e:
        why = e.args[0] if isinstance(e, LabSignalled) else "Ctrl-C"
        _say(f"stopped by {why}" + ("" if keep else "; the lab is removed"))
        if keep:
            _print_keep(session)
        raise typer.Exit(130 if isinstance(e, KeyboardInterrupt) else 128 + e.signum) from None
    if keep:
        _print_keep(session)
    if failures:
        raise LabError("; ".join(failures))


def _tui_entry() -> Callable[..., None]:
    try:
        from cttop.ui import run_tui
    except ImportError:
        raise LabError("the TUI (cttop.ui.run_tui) is not available in this build: use --no-ui") from None
    return run_tui


def _print_names(session: LabSession) -> None:
    for role in session.lab.roles:
        print(f"{role} {session.lab.ns(role)}", flush=True)


def _run_headless(session: LabSession) -> None:
    """Let the traffic run for the session's duration, stopping early if a generator fails."""
    _say(f"{session.scenario.name}: {session.scenario.summary}; running {session.seconds:g} s")
    end = time.monotonic() + session.seconds
    if session.scenario.name == "table-full":
        took = session.wait_full(end)
        if took is None:
            _say(f"the router's table did not fill in {session.seconds:g} s "
                 f"({session.count()}/{session.max_entries})")
        else:
            _say(f"the router's table reached nf_conntrack_max ({session.max_entries}) in {took:.1f} s")
    while (left := end - time.monotonic()) > 0 and not session.failures():
        time.sleep(min(WATCH_POLL, left))
    _say(f"router table: {session.count()} entries (max {session.max_entries})")


def _print_keep(session: LabSession) -> None:
    names = session.lab.namespaces()
    _say("kept " + ", ".join(names) + f"; watch it: cttop --netns {session.lab.router}")
    _say(f"remove it: cttop lab --cleanup {session.lab.tag}   (or: "
         + "; ".join(f"ip netns del {n}" for n in names) + ")")


def _cleanup(target: str) -> None:
    """Remove one lab by its tag, or every lab on the host with ``all``."""
    present = topology.existing()
    if target == "all":
        if not present:
            _say("no lab namespaces to remove")
            return
        tags = sorted({topology.tag_of(n) for n in present})
        _say(f"--cleanup all: removing every lab on this host, whoever started it ({len(tags)}: {', '.join(tags)})")
        names = present
    else:
        tag = topology.tag_of(target)
        tags = [tag]
        names = [n for n in present if topology.tag_of(n) == tag]
        if not names and tag not in containers.leftover_tags():
            others = sorted({topology.tag_of(n) for n in present})
            raise LabError(f"--cleanup {target}: no lab tagged {tag!r} on this host"
                           + (f" (labs here: {', '.join(others)})" if others else " (no lab is)"))
    for name in names:
        topology.remove_namespace(name)
        print(f"removed {name}", flush=True)
    for tag in tags:
        for left in containers.remove_leftovers(containers.ContainerLab(tag)):  # its cgroups and metadata
            print(f"removed {left}", flush=True)


"""The write commands for scripts and runbooks: flush, delete, set, notrack, undo; and journal, tunables.

Each prints the plan (what, the equivalent commands, warnings) and asks y/N on
the terminal; ``--yes`` skips the question, and without a terminal and without
``--yes`` the command refuses rather than guess.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cttop.actions import (
    ActionError,
    AddNotrack,
    DeleteFlows,
    FlushFlows,
    Journal,
    PersistPaths,
    Plan,
    RemoveNotrack,
    SetSysctls,
    read_only,
    rule_groups,
    set_read_only,
    tunables,
    undo_plan,
)
from cttop.actions.flows import matching_rows
from cttop.actions.journal import INTERRUPTED, default_state_dir
from cttop.actions.plan import READ_ONLY_ENV
from cttop.actions.schema import ID
from cttop.actions.shell import cttop_command
from cttop.cli.app import NETNS, a_path, app, netns_options
from cttop.cli.base import command_filter, fail, guarded
from cttop.kernel import sysctl
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.termsafe import safe_line

YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]
StateDirOpt = Annotated[str | None, typer.Option(
    "--state-dir", help="Where the journal lives (default $CTTOP_STATE_DIR or /var/lib/cttop).", callback=a_path)]
ReadOnlyOpt = Annotated[bool, typer.Option(
    "--read-only", help=f"Refuse every change (also {READ_ONLY_ENV}=1).")]
PersistDirOpt = Annotated[str | None, typer.Option(
    "--persist-dir", help="Write persisted files under this directory instead of /etc (sysctl.d/, modprobe.d/, "
                          "nftables.d/).", callback=a_path)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]

notrack_app = typer.Typer(help="Exempt traffic from connection tracking with cttop's own NOTRACK rules.",
                          no_args_is_help=True, rich_markup_mode=None)
app.add_typer(notrack_app, name="notrack")


def _writing(read_only_flag: bool, what: str) -> None:
    """Refuse before anything is read or asked when writes are off."""
    if read_only_flag:
        set_read_only(True)
    if read_only():
        raise ActionError(f"read-only mode (--read-only, {READ_ONLY_ENV}=1 or read_only in the config): "
                          f"refusing to {what}")


def _persist_paths(persist_dir: str | None) -> PersistPaths:
    return PersistPaths.under(persist_dir) if persist_dir else PersistPaths()


def show_plan(plan: Plan) -> None:
    w = sys.stdout.write
    w(plan.describe() + "\n")
    commands = plan.commands()
    w("commands:\n" if commands else "commands: none\n")
    for c in commands:
        w(f"  {c}\n")
    for warning in plan.warnings():
        w(f"warning: {warning}\n")


def confirm_and_apply(plan: Plan, yes: bool) -> None:
    """Refuse what cannot be applied, show the plan, ask unless ``yes``, apply, print what the kernel reported."""
    plan.check()
    show_plan(plan)
    if not yes:
        if not sys.stdin.isatty():
            fail("no terminal to confirm on: pass --yes to apply without asking")
        sys.stdout.write("Apply? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("cancelled: nothing was changed")
            raise typer.Exit(1)
    result = plan.apply()
    print(f"done: {result.summary}")
    if plan.undoes is not None:
        note = f" (the undo of {plan.undoes})"
    else:
        # A plan that cannot be undone said so in its warnings, before the question.
        # The command as it must be typed: the change's namespace, and the journal where it is not the default.
        journal = [] if plan.journal.state_dir == default_state_dir() else ["--state-dir", plan.journal.state_dir]
        note = f"; undo with: {cttop_command(plan.spec, ['undo', result.id], journal)}" if plan.undoable else ""
    print(f"journal id {result.id}{note}")


@app.command()
@guarded
@netns_options()
def flush(
    spec: NetnsSpec = NETNS,
    filter: Annotated[str | None, typer.Option("--filter", "-f", help="Only flows matching this filter expression; "
                                                                       "without it, the whole table.")] = None,
    yes: YesOpt = False,
    state_dir: StateDirOpt = None,
    read_only_flag: ReadOnlyOpt = False,
) -> None:
    """Delete every flow matching the filter (or the whole table). Cannot be undone."""
    if filter is not None and not filter.strip():
        # `--filter "$EXPR"` with the variable unset: a narrow flush meant, not the whole table.
        fail("flush --filter '': an empty filter; leave --filter out to flush the whole table")
    _writing(read_only_flag, "flush")
    confirm_and_apply(FlushFlows(spec, command_filter(filter or "", spec), journal=Journal(state_dir)), yes)


@app.command()
@guarded
@netns_options()
def delete(
    spec: NetnsSpec = NETNS,
    filter: Annotated[str, typer.Option("--filter", "-f", help="The flows to delete (required).")] = "",
    yes: YesOpt = False,
    state_dir: StateDirOpt = None,
    read_only_flag: ReadOnlyOpt = False,
) -> None:
    """Delete the flows matching the filter one by one, as the TUI's `d` does. Cannot be undone."""
    _writing(read_only_flag, "delete")
    flt = command_filter(filter, spec)
    if flt.is_all:
        fail("delete needs --filter EXPR (to empty the whole table use `cttop flush`)")
    with Ctnetlink(spec) as ct:
        rows = matching_rows(ct, flt)
    if not rows:
        fail(f"no flows match '{filter}' in namespace {spec.label()}")
    confirm_and_apply(DeleteFlows(spec, rows, journal=Journal(state_dir)), yes)


@app.command("set")
@guarded
@netns_options()
def set_(
    assignments: Annotated[list[str], typer.Argument(metavar="NAME=VALUE...",
                                                     help="NAME=VALUE, as `cttop tunables` names them.")],
    spec: NetnsSpec = NETNS,
    persist: Annotated[bool, typer.Option("--persist", help="Also write /etc/sysctl.d/90-cttop.conf "
                                                             "(hashsize: /etc/modprobe.d/cttop.conf).")] = False,
    persist_dir: PersistDirOpt = None,
    yes: YesOpt = False,
    state_dir: StateDirOpt = None,
    read_only_flag: ReadOnlyOpt = False,
) -> None:
    """Set conntrack tunables in the namespace, all or none. Undo with `cttop undo`."""
    _writing(read_only_flag, "set tunables")
    pairs: list[tuple[str, str]] = []
    for a in assignments:
        name, eq, value = a.partition("=")
        if not eq or not name.strip():
            fail(f"{a!r}: expected NAME=VALUE")
        pairs.append((name, value))
    paths = _persist_paths(persist_dir) if persist or persist_dir else None
    plan = SetSysctls(spec, tunables.assignments(pairs), persist=paths, journal=Journal(state_dir))
    confirm_and_apply(plan, yes)


@notrack_app.command("add")
@guarded
@netns_options()
def notrack_add(
    expr: Annotated[str, typer.Argument(metavar="EXPR", help="Filter expression, e.g. 'udp dport 53'.")],
    spec: NetnsSpec = NETNS,
    persist: Annotated[bool, typer.Option("--persist", help="Also write /etc/nftables.d/cttop.nft.")] = False,
    persist_dir: PersistDirOpt = None,
    yes: YesOpt = False,
    state_dir: StateDirOpt = None,
    read_only_flag: ReadOnlyOpt = False,
) -> None:
    """Stop tracking the traffic the expression matches, both directions."""
    _writing(read_only_flag, "add NOTRACK rules")
    paths = _persist_paths(persist_dir) if persist or persist_dir else None
    confirm_and_apply(AddNotrack(spec, expr, persist=paths, journal=Journal(state_dir)), yes)


@notrack_app.command("list")
@guarded
@netns_options()
def notrack_list(
    spec: NetnsSpec = NETNS,
    as_json: JsonOpt = False,
    state_dir: StateDirOpt = None,
) -> None:
    """List cttop's NOTRACK rules in the namespace, grouped by the change that added them."""
    groups = rule_groups(spec, Journal(state_dir))
    if as_json:
        out = [{"id": g.id, "expr": g.expr, "rules": [r.to_json() for r in g.rules]} for g in groups]
        print(json.dumps(out, indent=2))
        return
    if not groups:
        print(f"no cttop NOTRACK rules in namespace {spec.label()}")
        return
    for g in groups:
        # The expression comes from the journal, the rules from the live ruleset: one line each.
        expr = safe_line(g.expr) if g.expr is not None else "(not in this journal)"
        print(f"{safe_line(g.id)}  {expr}  [{len(g.rules)} rules, {g.rules[0].backend}]")
        for r in g.rules:
            print(f"    {r.chain:<10} {safe_line(r.rule)}")


@notrack_app.command("remove")
@guarded
@netns_options()
def notrack_remove(
    ids: Annotated[list[str] | None, typer.Argument(metavar="[ID]...", help="Ids (or unique prefixes) from `cttop notrack list`.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every cttop NOTRACK rule.")] = False,
    spec: NetnsSpec = NETNS,
    persist_dir: Annotated[str | None, typer.Option(
        "--persist-dir", help="Refresh the nft file under this directory (default: /etc/nftables.d/cttop.nft, "
                              "for the host's own namespace only).", callback=a_path)] = None,
    yes: YesOpt = False,
    state_dir: StateDirOpt = None,
    read_only_flag: ReadOnlyOpt = False,
) -> None:
    """Remove cttop NOTRACK rules by id, or --all; their traffic is tracked again. Undo adds them back."""
    if bool(ids) == all_:
        fail("give the ids to remove, or --all, not both" if all_ else "give the ids to remove, or --all")
    _writing(read_only_flag, "remove NOTRACK rules")
    # The default nft file is the host's boot ruleset: refresh it only for the host's own namespace.
    paths = _persist_paths(persist_dir) if persist_dir or spec.is_initial() else None
    plan = RemoveNotrack(spec, None if all_ else ids, persist=paths, journal=Journal(state_dir))
    confirm_and_apply(plan, yes)


@app.command()
@guarded
@netns_options()
def undo(
    change_id: Annotated[str | None, typer.Argument(metavar="[ID]", help="Journal id (default: the last "
                                                                         "undoable change here).")] = None,
    spec: NetnsSpec = NETNS,
    force: Annotated[bool, typer.Option("--force", help="Restore values someone changed since the change "
                                                         "(without it, undo refuses them).")] = False,
    persist_dir: Annotated[str | None, typer.Option(
        "--persist-dir", help="Where the change persisted its files, if not /etc (as given to set/notrack).",
        callback=a_path)] = None,
    yes: YesOpt = False,
    state_dir: StateDirOpt = None,
    read_only_flag: ReadOnlyOpt = False,
) -> None:
    """Undo a journaled change made in this namespace: restores sysctls, removes the NOTRACK rules added.

    A value changed since the change is left alone unless --force; a damaged journal record is refused.
    """
    _writing(read_only_flag, "undo")
    plan = undo_plan(spec, change_id, Journal(state_dir), persist=_persist_paths(persist_dir), force=force)
    confirm_and_apply(plan, yes)


@app.command()
@guarded
def journal(
    as_json: JsonOpt = False,
    state_dir: StateDirOpt = None,
) -> None:
    """List every change cttop made: when, what, the commands, who, where, and whether it was undone.

    A change cut short (interrupted) is listed with the values before it; a record that fails its schema is
    listed as damaged, without its text, and nothing acts on it.
    """
    j = Journal(state_dir)
    recs = j.records()
    if as_json:
        print(json.dumps([r.to_json() for r in recs], indent=2))
        return
    if not recs:
        print(f"no changes journaled in {j.path}")
        return
    for r in recs:
        if r.damaged is not None:
            # Its text fields are what a forger wrote: only the id (escaped) and the reason are shown.
            print(f"{r.id if ID.fullmatch(r.id) else ascii(r.id[:16])}  damaged: {safe_line(r.damaged)}")
            continue
        # Every field is the file's word, and anyone who could write the file chose it: one line each.
        print(f"{safe_line(r.id)}  {r.time_text()}  {safe_line(r.user)} (uid {r.uid})  netns {safe_line(r.netns)}  "
              f"{safe_line(r.kind)}  [{safe_line(r.status())}]")
        # The summary whole, escaped onto one line; without one (a change cut short), the description, each of its
        # lines so (cttop's own span lines: "Set in namespace X:" said nothing of what was set).
        for line in [r.summary] if r.summary else r.description.split("\n"):
            print(f"    {safe_line(line)}")
        if r.state == INTERRUPTED and r.before:
            print(f"    before: {safe_line(json.dumps(r.before, separators=(', ', ': ')))}")
        for c in r.commands:
            print(f"    $ {safe_line(c)}")


@app.command("tunables")
@guarded
@netns_options()
def tunables_cmd(
    spec: NetnsSpec = NETNS,
    as_json: JsonOpt = False,
    state_dir: StateDirOpt = None,
) -> None:
    """List conntrack tunables: value, kernel default, meaning, whether writable here, drift from what cttop set."""
    rows = tunables.states(spec, Journal(state_dir))
    if as_json:
        print(json.dumps([s.to_json() for s in rows], indent=2))
        return
    print(f"{'TUNABLE':<44} {'':1} {'VALUE':>10} {'DEFAULT':>10}  MEANING")
    marked = False
    for s in rows:
        default = "" if s.tunable.default is None else str(s.tunable.default)
        flags = "" if s.writable else f"  [read-only: {s.why_not}]"
        mark = TUNABLE_CHANGED if _off_default(s.value, s.tunable.default) else ""
        marked = marked or bool(mark)
        print(f"{s.name:<44} {mark:1} {s.value or '?':>10} {default:>10}  {s.tunable.meaning}{flags}")
        if s.drift is not None:
            print(f"{'':<46} DRIFT: {s.drift.message()}")
    if marked:
        print(f"{TUNABLE_CHANGED} the value differs from the kernel's default")


TUNABLE_CHANGED = "*"  # `cttop tunables`: beside a value that is not the kernel's default


def _off_default(value: str | None, default: int | None) -> bool:
    """Whether a tunable's value is known, has a known default, and is not it."""
    if value is None or default is None:
        return False
    return sysctl.as_int(value) != default  # not even a number: not the default either

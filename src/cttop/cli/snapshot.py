"""`cttop snapshot`: one look at the table, for humans or (with --json) for scripts.

Without typer: its options are data (``OPTS``), and :func:`quick` runs it straight from the command line when
its words need no conversion (cli/base.py says why); cli/snapshot_typer.py gives typer the same command."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from cttop import config
from cttop import model as M
from cttop.cli.base import (
    NETNS_OPTS,
    Opt,
    command_filter,
    fail,
    filter_uses_owners,
    guarded,
    netns_spec,
    quick_values,
    settle,
)
from cttop.kernel.netns import NetnsSpec
from cttop.live.heaviest import RANK_BY, group_title
from cttop.live.snapshot import GROUP_KEYS, NEW_RATE_SECONDS, Snapshot, take
from cttop.model import Row, addr_text, has_ports, nat_kind, proto_name, state_name
from cttop.owners.groups import OWNER_GROUPS
from cttop.table.groups import GROUPS
from cttop.termsafe import safe_line

if TYPE_CHECKING:  # loaded when the flows' owners are asked for (host_owners), not by every snapshot
    from cttop.owners.owners import Owners


# The Pressure panel's counters, in its order (live.counters.PRESSURE, held to this by a test): not imported from
# there, which would bring the flow index into every snapshot's start.
PRESSURE_SHOWN: Final = ("drop", "early_drop", "invalid", "insert_failed", "clash_resolve", "chaintoolong",
                         "search_restart")

OPTS: Final = (
    Opt("filter", ("--filter", "-f"), str, "", "Only flows matching this filter expression."),
    Opt("group_by", ("--group-by", "-g"), str, config.DEFAULT_GROUP, f"Group key: {', '.join(GROUP_KEYS)}."),
    Opt("by", ("--by",), str, "entries", "Rank groups by entries, bytes, packets or new-rate (new flows a second, "
                                         "watched for --seconds)."),
    Opt("top", ("--top", "-n"), int, 10, "How many groups to list.", low=1),
    Opt("flows", ("--flows",), bool, False, "Also list every matching flow."),
    Opt("as_json", ("--json",), bool, False, "One JSON object (schema in the README)."),
    Opt("max_flows", ("--max-flows",), int, None,
        f"Hold at most N flow records (default: the config's max_flows, {config.MAX_FLOWS:,}): --flows lists the "
        "first N, and bytes a second are left out over N counted flows. The counts always cover every flow. "
        "0: no bound.", metavar="N", low=0),
    Opt("seconds", ("--seconds",), float, None,
        f"Watch this long between two dumps, for rates (new-rate: default {NEW_RATE_SECONDS:g}).", low=0.1,
        high=3600),
)


def quick(args: Sequence[str]) -> bool:
    """Run ``cttop snapshot`` from ``args`` (the words after its name) without typer, when
    cli/base.quick_values can read them; False, having done nothing, when typer must."""
    values = quick_values((*NETNS_OPTS, *OPTS), args)
    if values is None:
        return False
    # As the root callback does with no option of its own (cli/app.py, top). Read-only is not set: a snapshot
    # changes nothing.
    settle()
    spec = netns_spec(values.pop("netns"), values.pop("netns_pid"), values.pop("netns_path"))  # type: ignore[arg-type]
    # Each value is of its Opt's kind: quick_values reads only flags and text, as typer would (a test holds it).
    guarded(run)(spec, **values)  # type: ignore[arg-type]
    return True


def run(spec: NetnsSpec, *, filter: str, group_by: str, by: str, top: int, flows: bool, as_json: bool,
        max_flows: int | None, seconds: float | None) -> None:
    """Print the table's fill, states, heaviest groups and pressure counters, once."""
    if group_by not in GROUP_KEYS:
        fail(f"--group-by {group_by!r}: not a group key (choose from {', '.join(GROUP_KEYS)})")
    if by not in RANK_BY:
        fail(f"--by {by!r}: choose {', '.join(RANK_BY[:-1])} or {RANK_BY[-1]}")
    if group_by in OWNER_GROUPS and (by == "new-rate" or seconds is not None):
        fail(f"--group-by {group_by}: rates are measured for the table's keys ({', '.join(GROUPS)}), "
             "not owners")
    owners: Owners | None = None
    if group_by in OWNER_GROUPS or flows or filter_uses_owners(filter):
        # Imported only here: psutil and a socket dump in every namespace, for the commands that ask
        # (each flow listed names its owner).
        from cttop.host.containers import host_owners

        owners = host_owners(spec)
        owners.refresh()
    flt = command_filter(filter, spec, owners) if filter.strip() else None  # None: every flow, no parser loaded
    most = config.active().max_flows if max_flows is None else max_flows
    snap = take(spec, flt, group_by, by, top, keep_flows=flows, owners=owners, seconds=seconds,
                max_flows=most or None)
    if as_json:
        snap.write_json(sys.stdout, flows)
    else:
        _print_human(snap, flows, bool(filter.strip()))
    if snap.flows_left_out:
        print(f"cttop: --flows lists the first {len(snap.flows):,} matching flows, not the {snap.flows_left_out:,} "
              "after them (--max-flows)", file=sys.stderr)
    if snap.byte_rates_left_out:
        print(f"cttop: no bytes or packets a second: more than {snap.max_flows:,} flows carry counters "
              "(--max-flows; the rates compare every flow's)", file=sys.stderr)
    if snap.events_lost:
        print("cttop: the kernel dropped events while measuring (ENOBUFS): new-rate is a lower bound",
              file=sys.stderr)
    if snap.problem is not None:
        print(f"cttop: {snap.problem}", file=sys.stderr)
        if flows:
            raise SystemExit(1)


def _print_human(s: Snapshot, with_flows: bool, filtered: bool) -> None:
    w = sys.stdout.write
    buckets = f", {s.buckets} buckets (max/buckets {s.max / s.buckets:.1f})" if s.buckets else ""
    w(f"namespace {safe_line(s.netns)}: {s.count} of {s.max} entries ({s.fill:.1%} full){buckets}\n")
    if s.datapath is not None and s.datapath.datapaths:
        w(f"note: nf_conntrack is not the table for pod traffic here: {s.datapath.names()}'s eBPF conntrack maps "
          "are; list theirs:\n" + "".join(f"  {safe_line(c)}\n" for c in s.datapath.commands()))
    if s.stats:  # also without CAP_NET_ADMIN: then from /proc/net/stat/nf_conntrack
        w("pressure: " + "  ".join(f"{k}={s.stats[k]}" for k in PRESSURE_SHOWN) + "\n")
    if s.agg is None:
        return  # the reason goes to stderr, once
    agg = s.agg
    # A filter the kernel applies returns only the matches: the table's size is the kernel's count, read with them.
    shown = f"{s.matched} of {s.count} flows match the filter" if filtered else f"{s.listed} flows read"
    w(f"{shown}; {agg.evictable} evictable (not ASSURED)\n")
    w("\nstates:\n")
    for k, n in sorted(agg.by_state.items(), key=lambda kv: -kv[1]):
        w(f"  {k:<24} {n:>9}\n")
    rows = s.rows()
    over = f", over {s.seconds:g} s from {s.rate_source}" if s.seconds is not None else ""
    w(f"\ntop {len(rows)} by {group_title(s.group_by)} ({s.by}{over}):\n")
    for g in rows:
        extra = f"  {g.bytes:>12} B  {g.packets:>9} pkts" if g.bytes is not None else ""
        if g.new_rate is not None:
            extra += f"  {g.new_rate:>9.1f} new/s"
        if g.bytes_rate is not None and g.packets_rate is not None:
            extra += f"  {g.bytes_rate:>11.0f} B/s  {g.packets_rate:>8.1f} pkts/s"
        # A process's or pod's name is anyone's to choose: one line, whatever it holds (SafeStream keeps newlines).
        w(f"  {safe_line(g.text):<40} {g.entries:>9}{extra}\n")
    if with_flows:
        w("\nflows:\n")
        for r in s.flows:
            w(flow_line(r) + (owner_note(s.owners, r) if s.owners is not None else "") + "\n")


def owner_note(owners: Owners, r: Row) -> str:
    """`` owner=… container=… backend=…`` for the human listing, the parts that are known, each name on the
    flow's one line (a newline in a process's name must not forge a flow)."""
    o = owners.flow_json(r)
    parts = [f"owner={o['process']}[{o['pid']}]" if o["pid"] is not None else "",
             f"container={o['container']}" if o["container"] else "",
             f"backend={o['backend']['container']}@{o['backend']['address']}" if o["backend"] else ""]
    return "".join("  " + safe_line(p) for p in parts if p)


def flow_line(r: Row) -> str:
    """One flow as a line close to conntrack -L's, for the human listing."""
    proto = r[M.R_PROTO]
    ports = has_ports(proto)
    src = f"{addr_text(r[M.R_SRC])}:{r[M.R_SPORT]}" if ports else addr_text(r[M.R_SRC])
    dst = f"{addr_text(r[M.R_DST])}:{r[M.R_DPORT]}" if ports else addr_text(r[M.R_DST])
    nat = nat_kind(r)
    reply = f"  [{nat}] {addr_text(r[M.R_RSRC])}→{addr_text(r[M.R_RDST])}" if nat else ""
    acct = f"  {r[M.R_OBYTES] + r[M.R_RBYTES]}B" if r[M.R_OPKTS] is not None else ""
    return (f"  {proto_name(proto):<6} {state_name(proto, r[M.R_PSTATE], r[M.R_STATUS]):<12} {src} → {dst}{reply}"
            f"  timeout={r[M.R_TIMEOUT]} mark={r[M.R_MARK]} zone={r[M.R_ZONE]}{acct}")

"""`cttop namespaces` and `cttop export`: the whole host's conntrack, beyond one table on one screen."""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated

import typer

from cttop import config
from cttop.cli.app import DAY, NETNS, app, netns_options, parse_duration, stopped_by_signals
from cttop.cli.base import fail, guarded
from cttop.host import export as host_export
from cttop.host.namespaces import Namespace, Totals, list_namespaces, totals
from cttop.kernel.netns import NetnsSpec
from cttop.termsafe import safe_line


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


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT``."""
    # [0-9], not \d: a port in other scripts' digits (٩٤٦٩) is no port a user means.
    m = re.match(r"^\[([^\]]+)\]:([0-9]+)$", text) or re.match(r"^([^:\[\]]*):([0-9]+)$", text)
    if m is None or not 0 < int(m.group(2)) < 65536:
        fail(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:9469 or [::1]:9469")
    return m.group(1) or "0.0.0.0", int(m.group(2))


@app.command("export")
@guarded
@netns_options()
def export_cmd(
    listen: Annotated[str, typer.Option("--listen", help="HOST:PORT to serve /metrics on.")] = "127.0.0.1:9469",
    spec: NetnsSpec = NETNS,
    top: Annotated[int, typer.Option("--top", min=1, max=100, help="Groups per group key in "
                                                                    "cttop_top_group_entries.")] = 10,
    group: Annotated[list[str] | None, typer.Option(
        "--group", help=f"Group key for the top groups (repeatable): {', '.join(host_export.EXPORT_GROUP_KEYS)}.")
    ] = None,
    no_table: Annotated[bool, typer.Option("--no-table", help="Kernel counters only: no per-state or top-group "
                                                              "metrics (no flow table kept in memory).")] = False,
    no_namespaces: Annotated[bool, typer.Option("--no-namespaces", help="No per-namespace metrics.")] = False,
    max_namespaces: Annotated[int, typer.Option("--max-namespaces", min=1, help="Namespaces with their own "
                                                "series; the rest are summed into one netns=\"(other)\" entries series "
                                                "(no drop counters).")] = 256,
    resync: Annotated[str, typer.Option("--resync", help="Redump the followed table this often (and no more often "
                                        "than 20 times what a dump takes).")] = "60s",
    max_flows: Annotated[int | None, typer.Option(
        "--max-flows", min=0, metavar="N",
        help=f"Over N flows (default: the config's max_flows, {config.MAX_FLOWS:,}), count the followed table "
             "without holding it: same metrics, no records. 0: always hold it.")] = None,
) -> None:
    """Serve conntrack metrics for Prometheus (node_exporter-compatible names, plus cttop's own)."""
    host, port = parse_listen(listen)
    groups = tuple(group) if group else host_export.DEFAULT_GROUPS
    exporter = host_export.serve(spec, host, port, table=not no_table, groups=groups, top=top,
                                  namespaces=not no_namespaces, max_namespaces=max_namespaces,
                                  resync=parse_duration(resync, "--resync", 1.0, DAY),
                                  max_flows=(config.active().max_flows if max_flows is None else max_flows) or None)
    shown = f"[{host}]" if ":" in host else host
    print(f"cttop export: serving {spec.label()} on http://{shown}:{port}/metrics", file=sys.stderr, flush=True)
    try:
        with stopped_by_signals() as stop:
            while not stop.wait(1.0):
                pass
    finally:
        exporter.close()

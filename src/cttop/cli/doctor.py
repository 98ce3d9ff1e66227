"""`cttop doctor`: a verdict on one namespace's table, the evidence, and the commands that fix it.

Exit status follows the monitoring-plugin convention: 0 OK, 1 warning, 2 critical,
3 unknown. An error that stops the diagnosis (no such namespace...) is unknown too,
not the usual 2, which here would read as "critical".
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from typer.core import TyperCommand

from cttop.actions.journal import Journal
from cttop.cli.app import NETNS, a_path, app, netns_options, not_nan
from cttop.cli.base import fail
from cttop.doctor import DEFAULT_SECONDS, EXIT, diagnose, render
from cttop.errors import CttopError
from cttop.kernel.netns import NetnsSpec


class _UsageIsUnknown(TyperCommand):
    """Bad options are no verdict: exit 3 (unknown), not the usual 2, which reads as critical."""

    usage_exit = EXIT["unknown"]


@app.command(cls=_UsageIsUnknown)
@netns_options(usage_exit=EXIT["unknown"])
def doctor(
    spec: NetnsSpec = NETNS,
    seconds: Annotated[float, typer.Option("--seconds", min=0.1, max=3600, callback=not_nan,
                                           help="How long to watch the counters.")] = DEFAULT_SECONDS,
    as_json: Annotated[bool, typer.Option("--json", help='{"status", "exit", "netns", "findings": [...]}.')] = False,
    want_bytes: Annotated[bool, typer.Option("--bytes", help="Byte counters are needed: check accounting.")]
    = False,
    state_dir: Annotated[str | None, typer.Option(
        "--state-dir", help="Where the journal lives, for drift (default $CTTOP_STATE_DIR or /var/lib/cttop).",
        callback=a_path)]
    = None,
) -> None:
    """Watch the table for a few seconds; print findings worst first, with the commands that fix them."""
    try:
        report = diagnose(spec, seconds, want_bytes=want_bytes, journal=Journal(state_dir))
    except CttopError as e:
        if as_json:
            sys.stdout.write(json.dumps({"status": "unknown", "exit": EXIT["unknown"], "netns": None,
                                         "error": str(e), "findings": []}) + "\n")
        fail(str(e), EXIT["unknown"])
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(render(report))
    raise typer.Exit(report.exit)

"""`cttop expect`: the expectation table (what FTP, SIP, TFTP... helpers are waiting for), as `conntrack -L expect`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cttop.cli.app import NetnsOpt, NetnsPathOpt, NetnsPidOpt, app, guarded, netns_spec
from cttop.kernel.expect import read_expectations


@app.command()
@guarded
def expect(
    netns: NetnsOpt = None,
    netns_pid: NetnsPidOpt = None,
    netns_path: NetnsPathOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of expectations (schema in the README).")]
    = False,
) -> None:
    """List the expectations conntrack helpers made, one a line in `conntrack -L expect`'s layout."""
    exps = read_expectations(netns_spec(netns, netns_pid, netns_path))
    if as_json:
        sys.stdout.write(json.dumps([e.to_json() for e in exps], separators=(",", ":")) + "\n")
        return
    for e in exps:
        sys.stdout.write(e.text() + "\n")
    print(f"cttop: {len(exps)} expectations have been shown.", file=sys.stderr)

"""`cttop expect`: the expectation table (what FTP, SIP, TFTP... helpers are waiting for), as `conntrack -L expect`."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cttop.cli.app import NETNS, app, netns_options
from cttop.cli.base import guarded
from cttop.kernel.expect import read_expectations
from cttop.kernel.netns import NetnsSpec


@app.command()
@guarded
@netns_options()
def expect(
    spec: NetnsSpec = NETNS,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of expectations (schema in the README).")]
    = False,
) -> None:
    """List the expectations conntrack helpers made, one a line in `conntrack -L expect`'s layout."""
    exps = read_expectations(spec)
    if as_json:
        sys.stdout.write(json.dumps([e.to_json() for e in exps], separators=(",", ":")) + "\n")
        return
    for e in exps:
        sys.stdout.write(e.text() + "\n")
    print(f"cttop: {len(exps)} expectations have been shown.", file=sys.stderr)

"""`cttop snapshot` given to typer: the command is cli/snapshot.py's, its options declared there as data."""

from __future__ import annotations

from cttop.cli.app import NETNS, app, netns_options, with_options
from cttop.cli.base import guarded
from cttop.cli.snapshot import OPTS, run
from cttop.kernel.netns import NetnsSpec


@app.command()
@guarded
@netns_options()
@with_options(OPTS)
def snapshot(spec: NetnsSpec = NETNS, **values: object) -> None:
    """Print the table's fill, states, heaviest groups and pressure counters, once."""
    run(spec, **values)  # type: ignore[arg-type]

"""`cttop events`: the NEW / UPDATE / DESTROY stream, as `conntrack -E`, in text or one JSON object a line.

Only the multicast groups asked for (``--event``) are joined, as ``conntrack -E -e`` does, so the kernel
does not even queue the rest. The stream ends cleanly on Ctrl-C (or SIGTERM) and when whoever reads it
goes away (``| head``): a signal only sets a flag looked at between events (see :class:`_Stop`), and a
closed pipe is noticed on the next write or, while the table is quiet, by polling stdout for the error a
pipe with no reader reports, so ``head`` does not wait for the next event.
Lost events (ENOBUFS: the kernel's queue for this socket overflowed) are said on stderr at the place in
the stream where they happened; stdout stays one event a line. Each event names the flow's owner where known,
as `snapshot --flows` does, from the namespaces' sockets as last read (again every few seconds).
"""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import sys
import time
from collections.abc import Iterator
from typing import Annotated, Final

import typer

from cttop.cli.app import NETNS, app, netns_options
from cttop.cli.base import command_filter, fail, guarded
from cttop.cli.snapshot import flow_line, owner_note
from cttop.filter import Filter
from cttop.kernel import nlconst as C
from cttop.kernel import sysctl
from cttop.kernel.events import EventBatch, EventSocket
from cttop.kernel.netns import NetnsSpec
from cttop.model import EVENT_NAMES, R_ID, Row, event_dict
from cttop.owners.owners import Owners

# --event's words and the groups they join (conntrack -E -e takes the same, in capitals).
EVENT_GROUPS: Final = {"new": C.NFNLGRP_CONNTRACK_NEW, "update": C.NFNLGRP_CONNTRACK_UPDATE,
                       "destroy": C.NFNLGRP_CONNTRACK_DESTROY}
POLL_MS: Final = 500  # how often a quiet stream looks whether its reader went away


def event_groups(text: str) -> tuple[int, ...]:
    """The groups a comma-separated ``--event`` list names ("all" for every one); fails on anything else."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return tuple(EVENT_GROUPS.values())
    bad = [w for w in words if w not in EVENT_GROUPS]
    if bad or not words:
        fail(f"--event {text!r}: choose from new, update, destroy (comma-separated) or all")
    return tuple(sorted({EVENT_GROUPS[w] for w in words}))


def event_line(kind: int, t: float, row: Row) -> str:
    """One event for people: local time to the microsecond, the kind as conntrack -E tags it, the flow."""
    stamp = time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 1_000_000):06d}"
    return f"{stamp} {'[' + EVENT_NAMES[kind].upper() + ']':>9}{flow_line(row)} id={row[R_ID]}"


@app.command()
@guarded
@netns_options()
def events(
    spec: NetnsSpec = NETNS,
    filter: Annotated[str, typer.Option("--filter", "-f", help="Only events whose flow matches this filter.")] = "",
    event: Annotated[str, typer.Option("--event", "-e", help="Which events: new, update, destroy (comma-separated), "
                                                             "or all.")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line (schema in the README).")] = False,
) -> None:
    """Print conntrack events as they happen, until Ctrl-C or until the reader of the output goes away."""
    groups = event_groups(event)
    # Imported only here (psutil): who owns each flow, as snapshot --flows names it, and the owner words of
    # --filter; the sockets are read now, and again every few seconds on a thread of their own.
    from cttop.host.containers import host_owners

    owners = host_owners(spec)
    owners.refresh()
    flt = command_filter(filter, spec, owners)
    if sysctl.read(spec, ["nf_conntrack_events"]).get("nf_conntrack_events") == "0":
        print("cttop: nf_conntrack_events is 0 in this namespace: the kernel sends no events", file=sys.stderr)
    sock = EventSocket(spec, groups)
    out = _Printer(flt, owners, as_json)
    try:
        with _Stop() as stop:
            for batch in _batches(sock, stop):
                out.batch(batch, time.time(), sock.rcvbuf, stop)
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
        return
    finally:
        sock.close()
    losses = f", with {out.losses} losses" if out.losses else ""
    print(f"cttop: {out.shown} events have been shown{losses}.", file=sys.stderr)


class _Stop:
    """Ctrl-C and SIGTERM, taken as a request to stop between two events rather than as an exception in the
    middle of one (which could land between writing an event and counting it). The handler only sets a flag;
    the signal's wakeup fd, polled beside the socket, ends the wait for events at once."""

    def __init__(self) -> None:
        self.asked = False
        self.fd, self._wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def __enter__(self) -> _Stop:
        self._old = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
                     if signal.getsignal(sig) is not signal.SIG_IGN}  # `cttop events &` in a script ignores ^C
        self._old_wakeup = signal.set_wakeup_fd(self._wfd)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        self.asked = True

    def __exit__(self, *exc: object) -> None:
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, old in self._old.items():
            signal.signal(sig, old)
        os.close(self.fd)
        os.close(self._wfd)


def _batches(sock: EventSocket, stop: _Stop) -> Iterator[EventBatch]:
    """Event batches as they come, until a stop is asked; BrokenPipeError when stdout is a pipe whose
    reader has gone."""
    poll = select.poll()
    poll.register(sock.fileno(), select.POLLIN)
    poll.register(stop.fd, select.POLLIN)
    out = sys.stdout.fileno()
    if stat.S_ISFIFO(os.fstat(out).st_mode):
        poll.register(out, 0)  # no events asked: only the POLLERR a pipe without a reader reports
    while not stop.asked:
        ready = dict(poll.poll(POLL_MS))
        if ready.get(out, 0) & (select.POLLERR | select.POLLHUP):
            raise BrokenPipeError
        if sock.fileno() in ready and not stop.asked:
            yield sock.read(0.0)


class _Printer:
    """Writes batches of events, counting what it showed and the losses."""

    def __init__(self, flt: Filter, owners: Owners, as_json: bool) -> None:
        self.flt, self.owners, self.as_json = flt, owners, as_json
        self.shown = self.losses = 0

    def batch(self, batch: EventBatch, now: float, rcvbuf: int, stop: _Stop) -> None:
        """One batch, with a loss notice on stderr at each place one happened; stops early if asked."""
        w, match, as_json, owners = sys.stdout.write, self.flt.match, self.as_json, self.owners
        owners.refresh_if_due()
        every = self.flt.is_all
        start = 0
        for cut in [*(batch.lost_at or ([0] if batch.lost else [])), None]:
            for kind, row in batch.events[start:cut]:
                if stop.asked:
                    return
                if every or match(row):
                    w((json.dumps(event_dict(kind, now, row) | {"owner": owners.flow_json(row)},
                                  separators=(",", ":")) if as_json
                       else event_line(kind, now, row) + owner_note(owners, row)) + "\n")
                    self.shown += 1
            if cut is None:
                break
            sys.stdout.flush()  # what came before the loss is out before the loss is said
            self.losses += 1
            print(f"cttop: events lost here: the kernel's queue for cttop overflowed (ENOBUFS); "
                  f"receive buffer now {rcvbuf >> 20} MiB", file=sys.stderr)
            start = cut
        sys.stdout.flush()


def _drop_stdout() -> None:
    """The reader went away: point stdout at /dev/null so the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

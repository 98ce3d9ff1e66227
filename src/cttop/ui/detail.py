"""The detail of one flow: every field the kernel gave, both tuples, counters, status bits and age.

The helper attached to the flow (ftp, sip…) is no field of the flow table's rows (decoding it on
every event would cost the hot path for a field few flows have): the screen asks the kernel for
this one entry when it opens, in a thread, and fills the line in when the answer comes.
"""

from __future__ import annotations

import datetime
import errno
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from cttop.kernel.ctnetlink import Ctnetlink, KernelError
from cttop.kernel.netns import NetnsSpec
from cttop.model import (
    ICMP_PROTOS,
    R_DPORT,
    R_DST,
    R_FAMILY,
    R_PROTO,
    R_RDPORT,
    R_RDST,
    R_RSPORT,
    R_RSRC,
    R_SPORT,
    R_SRC,
    Row,
    flow_dict,
)
from cttop.owners.owners import NO_PROCESS, Owners
from cttop.table.packing import UNREAD, ran_out, timeout_left
from cttop.termsafe import safe_line
from cttop.ui import fmt
from cttop.ui.access import cttop_app
from cttop.ui.keys.base import KeyFooter


def owner_text(owners: Owners, row: Row) -> str:
    """The owning process and its container or unit, or why there is none (as of the last owners refresh)."""
    o = owners.owner_of(row)
    n = owners.neighbour(row)
    via = f" (namespace {n.netns})" if n is not None else ""
    if o is None:
        return (n.label + NO_PROCESS + via) if n is not None else owners.where(row)
    return o.text() + (f" in {o.container}" if o.container else "") + via


def service_text(owners: Owners, row: Row) -> str | None:
    """A DNAT'd flow's service address and the namespace of the backend behind it, if on this host."""
    b = owners.backend(row)
    if b is None:
        return None
    j = owners.flow_json(row)["backend"]
    return f"{j['service']} → {b.label} at {j['address']} (namespace {b.netns})"


HELPER_ASKING = "… (asking the kernel)"


def detail_text(row: Row, now: float, gone: bool, owner: str | None = None,
                meta: tuple[int, int] | None = None, service: str | None = None, helper: str | None = None,
                names: tuple[str | None, str | None] | None = None) -> Text:
    """Two columns, name and value; values come from the kernel (and /proc) and are appended as plain text.

    With the record's ``meta`` (:func:`record_meta`), the timeout is counted down from when it was
    read to ``now``, and counters no dump has shown yet read ``?``, not "accounting was off".
    ``helper`` is the helper line's text, ``names`` the reverse DNS names of source and destination.
    """
    d = flow_dict(row)
    unread = meta is not None and bool(meta[1] & UNREAD)
    fam, proto = row[R_FAMILY], row[R_PROTO]
    lines: list[tuple[str, str]] = [
        ("original", (f"{fmt.endpoint(fam, proto, row[R_SRC], row[R_SPORT])} → "
                      f"{fmt.endpoint(fam, proto, row[R_DST], row[R_DPORT])}")),
        ("reply", (f"{fmt.endpoint(fam, proto, row[R_RSRC], row[R_RSPORT])} → "
                   f"{fmt.endpoint(fam, proto, row[R_RDST], row[R_RDPORT])}")),
    ]
    if names is not None:
        lines.append(("names", f"{names[0] or '-'} → {names[1] or '-'}"))
    if owner is not None:
        lines.append(("process", owner))
    if service is not None:
        lines.append(("service", service))
    if helper is not None:
        lines.append(("helper", helper))
    if proto in ICMP_PROTOS:
        lines.append(("icmp", fmt.icmp_text(proto, row[R_DPORT], row[R_SPORT])))
    for key in ("id", "family", "proto", "state", "status", "nat", "timeout", "mark", "zone", "use",
                "bytes", "packets", "orig_bytes", "orig_packets", "reply_bytes", "reply_packets", "labels", "start"):
        v = d[key]
        if key == "status":
            text = " ".join(v) or "-"
        elif key == "timeout":
            left = v if meta is None else timeout_left(row, meta[0], now)
            text = f"{left} s ({fmt.duration(left)})"
            if meta is not None and ran_out(row, meta[0], now):
                text = (f"? ({v} s read {fmt.ago(now - meta[0])} ran out, yet the flow is still held: traffic "
                        "renewed it, or the kernel has yet to reap it; the next dump says)")
            elif meta is not None and left != v:
                text += f", counted down from {v} s read {fmt.ago(now - meta[0])}"
        elif key == "mark":
            text = f"{v} ({v:#x})"
        elif key == "labels":
            text = "-" if v is None else f"{v:#x}"
        elif key == "start":
            if v is None:
                text = "- (nf_conntrack_timestamp is off)"
            else:
                started = v / 1e9
                when = datetime.datetime.fromtimestamp(started, datetime.UTC)
                text = f"{when:%Y-%m-%d %H:%M:%S} UTC, {fmt.duration(now - started)} ago"
        elif v is None and unread and key.endswith(("bytes", "packets")):
            text = "? (not read yet: events carry none, the next dump brings it)"
        elif v is None:
            text = "- (accounting was off)" if key.endswith(("bytes", "packets")) else "-"
        else:
            text = str(v)
        lines.append((key.replace("_", " "), text))
    t = Text()
    if gone:
        t.append("this flow has left the table; showing its last known state\n\n", "bold")
    width = max(len(k) for k, _ in lines) + 2
    for i, (k, v) in enumerate(lines):
        if i:
            t.append("\n")
        t.append(k.ljust(width), "bold")
        t.append(safe_line(v))
    return t


def _ask_helper(spec: NetnsSpec, row: Row) -> str:
    """The helper line: the kernel's answer for this one entry (a thread's work: it is a netlink request)."""
    try:
        with Ctnetlink(spec) as ct:
            name = ct.helper_of(row)
    except KernelError as e:
        if e.code == errno.ENOENT:
            return "- (the flow has left the table)"
        raise
    return name if name is not None else "- (none)"


class DetailScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,enter", "dismiss", "Close", key_display="Esc"),
    ]

    def __init__(self, row: Row, now: float, gone: bool = False, meta: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.row = row
        self.now = now
        self.gone = gone
        self.meta = meta  # the record's read time and flags (record_meta), when it came from the table
        self.helper = HELPER_ASKING

    def compose(self) -> ComposeResult:
        with Vertical(id="detail-box") as box:
            box.border_title = "Flow detail"
            box.border_subtitle = "Esc closes"
            with VerticalScroll():
                yield Static(self._text(), id="detail-text")
        yield KeyFooter()  # this screen's keys: the main screen's do nothing here

    def _text(self) -> Text:
        app = cttop_app(self)
        owners = app.collector.owners
        owner = owner_text(owners, self.row) if owners is not None else None
        service = service_text(owners, self.row) if owners is not None else None
        resolver = app.resolver
        names = (resolver.name(self.row[R_SRC]), resolver.name(self.row[R_DST])) if resolver is not None else None
        return detail_text(self.row, self.now, self.gone, owner, self.meta, service, self.helper, names)

    def on_mount(self) -> None:
        spec = cttop_app(self).spec
        if spec is None:
            self.helper = "- (a recording does not keep it)"
        elif self.gone:
            self.helper = "- (the flow is gone)"
        else:
            row = self.row
            self.run_worker(lambda: _ask_helper(spec, row), name="helper", thread=True, exit_on_error=False)
            return
        self.query_one("#detail-text", Static).update(self._text())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name != "helper" or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        if event.state == WorkerState.ERROR:
            self.helper = f"- (cannot ask: {event.worker.error})"
        else:
            self.helper = str(event.worker.result)
        self.query_one("#detail-text", Static).update(self._text())

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)

"""Delete conntrack entries: selected flows, or every flow a filter matches (flush).

Neither can be undone: a deleted entry's state (NAT mapping, TCP window, age) is
gone, and the journal says so. How many went is what the kernel reports: the
ACKs of the deletes, the matching entries missing from a dump with the same
filter after a kernel-side filtered flush, or the table count before and after
a whole-table flush.

A filtered flush is done by the kernel (one request) when the whole filter can be
pushed down (``Filter.kernel.exact``) and the kernel applies CTA_FILTER to
flushes; otherwise the matching entries are dumped, matched in Python and
deleted in pipelined batches.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence

from cttop.actions import shell
from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal
from cttop.actions.plan import Change, Plan
from cttop.errors import CttopError
from cttop.filter import Filter, KernelFilter, compile_filter
from cttop.filter.ast import (
    Addr,
    All,
    And,
    Family,
    Flag,
    Mark,
    Node,
    Port,
    Proto,
    State,
    Zone,
)
from cttop.kernel.ctnetlink import Ctnetlink, delete_request
from cttop.kernel.netns import NetnsError, NetnsSpec
from cttop.model import (
    AF_INET,
    AF_INET6,
    ICMP_PROTOS,
    R_DPORT,
    R_DST,
    R_PROTO,
    R_SPORT,
    R_SRC,
    R_ZONE,
    Row,
    addr_text,
    has_ports,
    nat_kind,
    proto_name,
)
from cttop.table.packing import flow_keys

# CTA_FILTER on flush arrived in 2024 (v6.12 by our reading); an older kernel ignores
# the filter fields it does not know and flushes more than asked, so below this
# release filtered flushes are done by dump-and-delete. Erring late costs speed only.
KERNEL_FILTERED_FLUSH_SINCE = (6, 12)
# Per-flow commands shown before the rest is summarised.
SHOWN_COMMANDS = 20
# The one place a delete or filtered flush says it is final (the UI and the CLI show the warnings).
IRREVERSIBLE = "this cannot be undone: deleted entries (NAT mappings, TCP state) cannot be restored"


def kernel_flushes_with_filter(release: str | None = None) -> bool:
    release = release or os.uname().release
    try:
        major, minor = (int(x) for x in release.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= KERNEL_FILTERED_FLUSH_SINCE


def _families(kf: KernelFilter | None) -> list[int]:
    """The nfgen families to send: tuple filters are refused with AF_UNSPEC, so those go once per family."""
    if kf is None:
        return [socket.AF_UNSPEC]
    if kf.family is not None:
        return [kf.family]
    if any(v is not None for v in (kf.proto, kf.src, kf.dst, kf.sport, kf.dport)):
        return [AF_INET, AF_INET6]
    return [socket.AF_UNSPEC]


def matching_chunks(ct: Ctnetlink, flt: Filter) -> Iterator[list[Row]]:
    """The entries ``flt`` matches, a dump chunk at a time, narrowed by the kernel where it can and checked in
    Python: what the kernel cannot narrow (a state, a port range) would otherwise be the whole table held as
    rows before any is picked, ~600 bytes a row (156 MB at 262k: README), on a box whose memory is short."""
    for family in _families(flt.kernel):
        for chunk in ct.dump_chunks(family, flt.kernel):
            yield flt.select(chunk)


def matching_rows(ct: Ctnetlink, flt: Filter) -> list[Row]:
    """Every entry ``flt`` matches (:func:`matching_chunks`), as one list."""
    return [r for rows in matching_chunks(ct, flt) for r in rows]


def matching_keys(ct: Ctnetlink, flt: Filter) -> set[int]:
    """The flow keys of the entries ``flt`` matches (:func:`matching_chunks`): for counting them, not the rows."""
    return {k for rows in matching_chunks(ct, flt) for k in flow_keys(rows)}


def row_command(spec: NetnsSpec, row: Row) -> str:
    """``conntrack -D`` for exactly this entry's original tuple (and zone)."""
    proto = row[R_PROTO]
    args = ["conntrack", "-D", "-p", proto_name(proto), "-s", addr_text(row[R_SRC]), "-d", addr_text(row[R_DST])]
    if has_ports(proto):
        args += ["--sport", str(row[R_SPORT]), "--dport", str(row[R_DPORT])]
    elif proto in ICMP_PROTOS:
        args += ["--icmp-type", str(row[R_DPORT] >> 8), "--icmp-code", str(row[R_DPORT] & 0xFF),
                 "--icmp-id", str(row[R_SPORT])]
    if row[R_ZONE]:
        args += ["-w", str(row[R_ZONE])]
    return shell.shown(spec, args)


def _rows_commands(spec: NetnsSpec, rows: Sequence[Row], count: int | None = None) -> list[str]:
    """The delete of each of the first rows, and how many more there are of ``count`` (default: the rows)."""
    count = len(rows) if count is None else count
    out = [row_command(spec, r) for r in rows[:SHOWN_COMMANDS]]
    if count > SHOWN_COMMANDS:
        out.append(f"# ... and {count - SHOWN_COMMANDS} more like these, one per flow")
    return out


def conntrack_args(node: Node) -> list[list[str]] | None:
    """The options of the ``conntrack -D`` commands that together delete exactly what ``node`` selects,
    or None if they cannot.

    conntrack-tools works on IPv4 only unless ``-f ipv6`` or an IPv6 address says otherwise, while
    cttop deletes both families: a filter that does not pin the family needs one command per family.
    """
    items = list(node.items) if isinstance(node, And) else [] if isinstance(node, All) else [node]
    args: list[str] = []
    protos = {i.num for i in items if isinstance(i, Proto)}
    proto = protos.pop() if len(protos) == 1 else None
    families: set[int] = set()
    for item in items:
        match item:
            case Family(af):
                families.add(af)
                args += ["-f", "ipv6" if af == AF_INET6 else "ipv4"]
            case Proto(num):
                families |= {AF_INET} if num == 1 else {AF_INET6} if num == 58 else set()
                args += ["-p", proto_name(num)]
            case Addr(field, network, prefixlen, family) if field in ("src", "dst"):
                families.add(family)
                full = prefixlen == (128 if family == AF_INET6 else 32)
                text = addr_text(network) + ("" if full else f"/{prefixlen}")
                args += ["-s" if field == "src" else "-d", text]
            case Port(field, lo, hi) if field != "port" and lo == hi and proto is not None and has_ports(proto):
                args += [f"--{field}", str(lo)]
            case Mark(value, mask):
                args += ["-m", f"{value}/{mask:#x}"]
            case Zone(n):
                args += ["-w", str(n)]
            case State(name) if proto == 6:
                args += ["--state", name]
            case Flag("assured"):
                args += ["-u", "ASSURED"]
            case _:
                return None
    if len(families) > 1:
        return None  # self-contradictory (ipv4 and an IPv6 address): no command says it
    if any(isinstance(i, (Family, Addr)) for i in items):
        return [args]  # the -f option or the address tells conntrack the family
    # icmp/icmpv6 imply one family; otherwise cttop deletes both. Last, so each line reads as the filter does.
    return [[*args, "-f", "ipv6" if af == AF_INET6 else "ipv4"] for af in sorted(families or {AF_INET, AF_INET6})]


def _delete_warnings(nat: int) -> list[str]:
    """What deleting flows, ``nat`` of them NAT'd, risks."""
    out = [IRREVERSIBLE]
    if nat:
        out.append(f"{nat} of these flows are NAT'd: those sessions break (their mapping is lost)")
    return out


class DeleteFlows(Plan):
    """Delete the given entries (the selected or tagged rows), matched by id and original tuple."""

    kind = "delete"
    undoable = False

    def __init__(self, spec: NetnsSpec, rows: Sequence[Row], *, journal: Journal | None = None) -> None:
        super().__init__(spec, journal)
        self.rows = list(rows)
        if not self.rows:
            raise ActionError("no flows selected to delete")
        self.nat = sum(1 for r in self.rows if nat_kind(r) is not None)

    def describe(self) -> str:
        return f"Delete {len(self.rows)} selected flows in namespace {self.spec.label()}"

    def commands(self) -> list[str]:
        return _rows_commands(self.spec, self.rows)

    def warnings(self) -> list[str]:
        return _delete_warnings(self.nat)

    def _validate(self) -> None:
        pass

    def _intent(self) -> tuple[dict[str, object], dict[str, object]]:
        return {"selected": len(self.rows)}, {}

    def _change(self) -> Change:
        try:
            with Ctnetlink(self.spec) as ct:
                before = ct.stats().count
                removed = ct.delete_rows(self.rows)
                after = ct.stats().count
        except CttopError as e:
            raise ActionError(f"delete in namespace {self.spec.label()}: {e} "
                              "(entries deleted before the error cannot be restored)") from None
        return Change(after={"count_before": before, "count": after, "removed": removed},
                      summary=f"deleted {removed} of {len(self.rows)} selected flows in {self.spec.label()} "
                              f"(table count {before} -> {after})",
                      count=removed)


class FlushFlows(Plan):
    """Delete every entry the filter matches; no filter (or an empty one) flushes the whole table.

    ``flt`` is filter text or a compiled Filter. The matching entries are counted
    when the plan is made, so the confirmation can name the count; a filter that
    matches nothing is refused then, as there is nothing to confirm.
    """

    kind = "flush"
    undoable = False

    def __init__(self, spec: NetnsSpec, flt: Filter | str | None = None, *, journal: Journal | None = None) -> None:
        super().__init__(spec, journal)
        self.filter = compile_filter(flt) if isinstance(flt, str) else flt
        self.whole = self.filter is None or self.filter.is_all
        self.everything = self.whole  # it deletes every flow there is now
        # The flows shown as commands, the first few: the rest are counted, not held (a 262k-flow match held
        # as rows was 157 MB, and again when matched anew to apply it: 350 MB on a box short of memory).
        self.shown: list[Row] = []
        self.nat = 0
        try:
            with Ctnetlink(spec) as ct:
                if self.whole:
                    self.count = ct.stats().count
                else:
                    assert self.filter is not None
                    self.count = 0
                    for rows in matching_chunks(ct, self.filter):
                        self.count += len(rows)
                        self.nat += sum(1 for r in rows if nat_kind(r) is not None)
                        self.shown += rows[:SHOWN_COMMANDS - len(self.shown)]
                    # A filter that matches every flow (mark 0/0, 'ip or ip6', timeout >= 0) flushes the table as
                    # surely as none: said as loudly. Seen in the table, not the filter's text, which has too many
                    # ways to say "all".
                    self.everything = self.count >= ct.stats().count
        except NetnsError:
            raise  # it names the namespace option already
        except CttopError as e:
            raise ActionError(f"flush in namespace {spec.label()}: {e}") from None
        if not self.whole and not self.count:
            raise ActionError(f"no flows match '{self._text()}' in namespace {spec.label()}")

    @property
    def method(self) -> str:
        """How it will be done: ``flush`` (whole table), ``kernel-filter`` or ``delete`` (dump and delete)."""
        if self.whole:
            return "flush"
        assert self.filter is not None
        kf = self.filter.kernel
        if kf is not None and kf.exact and kernel_flushes_with_filter():
            return "kernel-filter"
        return "delete"

    def _text(self) -> str:
        return self.filter.text if self.filter is not None else ""

    def describe(self) -> str:
        if self.whole:
            return (f"Flush the WHOLE conntrack table of namespace {self.spec.label()}: "
                    f"{self.count} flows")
        how = {"kernel-filter": "one kernel-side filtered flush",
               "delete": "dump, match, batched deletes"}[self.method]
        # What matches when it runs, not a list: a storm's flows that begin meanwhile go too.
        return (f"Flush the flows matching '{self._text()}' in namespace {self.spec.label()}, {self.count} now "
                f"({how})")

    def commands(self) -> list[str]:
        if self.whole:
            return [shell.shown(self.spec, ["conntrack", "-F"])]
        assert self.filter is not None
        per_family = conntrack_args(self.filter.ast)
        if per_family is not None:
            return [shell.shown(self.spec, ["conntrack", "-D", *args]) for args in per_family]
        return _rows_commands(self.spec, self.shown, self.count)

    def warnings(self) -> list[str]:
        if self.everything:
            every = "" if self.whole else f"'{self._text()}' matches every flow there is now, so "
            return [(f"{every}this deletes ALL {self.count} flows in namespace {self.spec.label()}: established "
                     "NAT'd sessions will break (their mapping is lost) and stateful firewalls may drop "
                     "their next packets; this cannot be undone")]
        return _delete_warnings(self.nat)

    def _validate(self) -> None:
        pass

    def _intent(self) -> tuple[dict[str, object], dict[str, object]]:
        return {"matched": self.count, "filter": self._text(), "method": self.method}, {}

    def _change(self) -> Change:
        method = self.method
        try:
            with Ctnetlink(self.spec) as ct:
                before = ct.stats().count
                if method == "flush":
                    ct.flush()
                elif method == "kernel-filter":
                    assert self.filter is not None
                    # The kernel does not say how many a flush removed, and on a busy table the
                    # count moves with unrelated flows: count the matching entries that went.
                    # By flow key, not id: conntrack ids are 32-bit hashes and collide in big tables.
                    # Keys only, a chunk at a time: the matches as rows were ~600 bytes each.
                    matched = matching_keys(ct, self.filter)
                    for family in _families(self.filter.kernel):
                        ct.flush(family, self.filter.kernel)
                    gone = len(matched - matching_keys(ct, self.filter))
                else:
                    assert self.filter is not None
                    # Matched again now: the plan's rows may have expired or been joined by new ones. Kept as their
                    # delete requests until the dump ends (a socket deletes nothing mid-dump), not as rows.
                    requests = [delete_request(r) for rows in matching_chunks(ct, self.filter) for r in rows]
                    gone = ct.delete(requests)
                after = ct.stats().count
        except CttopError as e:
            raise ActionError(f"flush in namespace {self.spec.label()}: {e} "
                              "(entries deleted before the error cannot be restored)") from None
        removed = max(before - after, 0) if method == "flush" else gone
        what = "flows (whole table)" if self.whole else f"flows matching '{self._text()}'"
        return Change(after={"count_before": before, "count": after, "removed": removed},
                      summary=f"flushed {removed} {what} in {self.spec.label()} (table count {before} -> {after})",
                      count=removed)

"""Remediation keys: delete, flush, tunables, NOTRACK, undo, journal; and the drift check for the status line.

Every change goes through :func:`cttop.ui.apply.confirm_and_apply`: the plan and
its command are shown with the focus on "No", and it is applied off the UI
thread. Plans that read the kernel to describe themselves (a flush counts its
flows, NOTRACK looks for NAT'd flows among those it would catch, an undo reads
the journal and the rules) are also built off the UI thread, so a big table
never freezes the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Final

from textual.binding import Binding, BindingType

from cttop.actions import ActionResult, AddNotrack, DeleteFlows, FlushFlows, Plan, drift, undo_plan
from cttop.errors import CttopError
from cttop.filter import compile_filter
from cttop.host.datapath import kube_proxy_name, kube_proxy_pids, kube_proxy_rewrites
from cttop.kernel.netns import NetnsSpec
from cttop.model import ICMP_PROTOS, R_DPORT, R_DST, R_PROTO, Row, addr_text, proto_name
from cttop.ui.apply import PersistOffer, confirm_and_apply
from cttop.ui.filterbar import FilterBar
from cttop.ui.flows import FlowList
from cttop.ui.header import StatusLine
from cttop.ui.heaviest import HeaviestPanel
from cttop.ui.keys.base import KeyGroup, PaletteEntry, write_refused, writes
from cttop.ui.screens.help import bindings_of
from cttop.ui.screens.journal import JournalScreen
from cttop.ui.screens.notrack import NotrackRulesScreen
from cttop.ui.screens.remedy_base import PERSIST_DIR_ENV, notrack_persist_paths, persist_paths
from cttop.ui.screens.tunables import TunablesScreen

DRIFT_EVERY: Final = 5.0  # seconds between drift checks
# Protocols NOTRACK rules can match by port (nft and iptables both).
_NOTRACK_PORT_PROTOS: Final = frozenset({6, 17, 132})
# Actions that need a namespace to act on or show: off for a replay or a recorded source.
_NEEDS_NETNS: Final = frozenset({"delete_flows", "flush_flows", "notrack", "undo", "tunables", "notrack_rules"})


def notrack_expr(row: Row) -> str:
    """The traffic to exempt for one flow: its service, i.e. protocol, destination and destination port.

    Exempting the service rather than the one 5-tuple is what stops a flood (every
    client of a DNS server, say); NOTRACK mirrors it, so replies go untracked too.
    """
    proto = row[R_PROTO]
    name = proto_name(proto)
    head = name if not name.isdigit() else f"proto {proto}"
    dst = addr_text(row[R_DST])
    if proto in _NOTRACK_PORT_PROTOS:
        return f"{head} dst {dst} dport {row[R_DPORT]}"
    if proto in ICMP_PROTOS:
        return f"{name} dst {dst}"
    return f"{head} dst {dst}"


def notrack_plan(spec: NetnsSpec, expr: str) -> tuple[AddNotrack, PersistOffer]:
    """The rules for ``expr`` (counting the NAT'd flows they would catch now, for the warning),
    and the same rules also persisted in the nft file, or why that is not offered.
    """
    plan = AddNotrack(spec, expr)
    paths = notrack_persist_paths(spec)
    if plan.backend != "nft":  # only nft reads the file
        return plan, PersistOffer(None, "p: persisting writes an nft file, and nft is missing here: "
                                        "save the raw table with iptables-save instead")
    if paths is None:
        return plan, PersistOffer(None, f"p: not offered in namespace {spec.label()}: the nft file is the host's "
                                        f"boot ruleset (set {PERSIST_DIR_ENV} to write one elsewhere)")
    # The same rules: counted once, the table is not read again.
    persisted = AddNotrack(spec, plan.filter, nat_rows=plan.nat_rows, persist=paths)
    return plan, PersistOffer(persisted, f"write cttop's nft table to {paths.nft_file}, read at boot")


class RemedyKeys(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "delete_flows", "Delete"),
        Binding("F", "flush_flows", "Flush"),
        Binding("t", "tunables", "Tunables", show=False),
        Binding("n", "notrack", "NOTRACK", show=False),
        Binding("T", "notrack_rules", "NOTRACK rules: list, remove", show=False),
        Binding("u", "undo", "Undo"),
        Binding("J", "journal", "Journal of changes", show=False),
    ]

    _preparing: bool = False  # a plan is being built: one at a time

    def on_mount(self) -> None:
        if self.app.spec is not None:
            self.screen.set_interval(DRIFT_EVERY, self.check_drift)
            self.check_drift()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.unavailable(action) is None

    def unavailable(self, action: str) -> str | None:
        if action in _NEEDS_NETNS and self.app.spec is None:
            return "only on a live namespace (a replay has none to change)"
        return None

    # --- helpers --------------------------------------------------------------------------

    def _write_spec(self) -> NetnsSpec | None:
        """The namespace to change, or None (and say why) when changes are off."""
        app = self.app
        if app.read_only or app.spec is None:
            self.screen.notify("read-only: changes are off", severity="warning")
            return None
        return app.spec

    def _prepare(self, build: Callable[[], Plan | tuple[Plan, PersistOffer | None]], title: str, what: str,
                 done: Callable[[ActionResult], None] | None = None) -> None:
        """Build a plan on a worker thread (it may dump the table), then confirm it and apply it.

        ``build`` may also return the plan with its persisted variant, for the confirmation to offer.
        """
        if self._preparing:
            self.screen.notify("still preparing the previous change", severity="warning")
            return
        self._preparing = True
        app = self.app

        def after(result: ActionResult) -> None:
            self.check_drift()
            if done is not None:
                done(result)

        def ready(built: Plan | tuple[Plan, PersistOffer | None] | None, error: str) -> None:
            self._preparing = False
            if built is None:
                app.notify(f"{what}: {error}; nothing was changed", severity="error", timeout=10, markup=False)
                return
            plan, offer = built if isinstance(built, tuple) else (built, None)
            confirm_and_apply(app, plan, title, after, offer)

        def work() -> None:
            built: Plan | tuple[Plan, PersistOffer | None] | None = None
            error = "unexpected error"
            try:
                built = build()
            except (CttopError, OSError) as e:
                error = str(e)
            finally:  # whatever happened, the next change may be prepared
                app.call_from_thread(ready, built, error)

        self.screen.run_worker(work, thread=True, group="remedy-plan")

    def _filter_refused(self) -> bool:
        """True, and why said, while the filter line's text has an error: the list then shows the last
        committed filter, not what was typed, so acting on it would act on something else."""
        error = self.screen.query_one(FilterBar).error
        if error is None:
            return False
        self.screen.notify(f"the filter has an error at column {error.column}: fix it (/) or clear it (Esc); "
                    "nothing was changed", severity="error", timeout=6, markup=False)
        return True

    def _selected(self) -> tuple[list[int], list[Row]] | None:
        """The tagged flows or, with none tagged, the flow under the cursor: their ids and the rows the
        collector holds for them now; None, and why said, when there is none left."""
        fl = self.screen.query_one(FlowList)
        fid = fl.cursor_flow()
        ids = sorted(fl.tagged) if fl.tagged else [] if fid is None else [fid]
        if not ids:
            self.screen.notify("no flow selected: move to a flow, or tag flows with Space", severity="warning")
            return None
        rows = [r for r in map(self.app.collector.flow, ids) if r is not None]
        if not rows:
            self.screen.notify("the selected flows are gone already (expired or deleted)", severity="warning")
            return None
        if len(rows) < len(ids):
            self.screen.notify(f"{len(ids) - len(rows)} of the selected flows are gone already", timeout=4)
        return ids, rows

    def _untag(self, ids: list[int]) -> None:
        fl = self.screen.query_one(FlowList)
        fl.tagged = fl.tagged.difference(ids)

    # --- drift ----------------------------------------------------------------------------

    def check_drift(self) -> None:
        spec = self.app.spec
        if spec is None:
            return
        app = self.app

        def work() -> None:
            try:
                drifts = drift.check(spec)
                # Only when something drifted: the cause is looked for, by doctor's rule.
                pid, _names = kube_proxy_rewrites(kube_proxy_pids(), (d.name for d in drifts), spec.inode()) \
                    if drifts else (None, [])
            except (CttopError, OSError):
                return  # journal or namespace unreadable right now: keep what the line says
            app.call_from_thread(self._show_drift, len(drifts), None if pid is None else kube_proxy_name(pid))

        self.screen.run_worker(work, thread=True, group="drift", exclusive=True)

    def _show_drift(self, n: int, by: str | None) -> None:
        # From a worker that may end as the app closes, the screen's widgets gone: then there is nothing to show
        # it on (query_one raised there, and the worker's failure ended the app with a traceback).
        for status in self.screen.query(StatusLine):
            status.drift, status.drift_by = n, by

    # --- actions --------------------------------------------------------------------------

    @writes
    def action_delete_flows(self) -> None:
        spec = self._write_spec()
        if spec is None or self._filter_refused():
            return
        selected = self._selected()
        if selected is None:
            return
        ids, rows = selected
        plan = DeleteFlows(spec, rows)
        title = "Delete the selected flow" if len(rows) == 1 else f"Delete {len(rows)} tagged flows"
        # Tags outlive a filter typed since: say which flows the list behind the dialog does not show.
        text = self.app.view.filter.strip()
        hidden = sum(not m for m in map(compile_filter(text, self.app.collector.owners).match, rows)) if text else 0
        if hidden:
            title += f" ({hidden} not in the filtered list)"
        confirm_and_apply(self.app, plan, title, done=lambda _: self._untag(ids))

    @writes
    def action_flush_flows(self) -> None:
        spec = self._write_spec()
        if spec is None or self._filter_refused():
            return
        text = self.app.view.filter.strip()
        title = f"Flush flows matching '{text}'" if text else "Flush the WHOLE table"
        self.screen.notify("counting the flows to flush…", timeout=2)
        owners = self.app.collector.owners  # the list's filter may name owners (Enter on a process group)
        self._prepare(lambda: FlushFlows(spec, compile_filter(text, owners) if text else None), title, "cannot flush")

    @writes
    def action_notrack(self) -> None:
        spec = self._write_spec()
        if spec is None or self._filter_refused():
            return
        focused = self.screen.focused
        if isinstance(focused, HeaviestPanel):
            groups = focused.rows
            if not 0 <= focused.cursor < len(groups):
                self.screen.notify("no group selected", severity="warning")
                return
            group = groups[focused.cursor]
            if group.filter is None:
                self.screen.notify(f"{group.text}: no filter selects this group", severity="warning", markup=False)
                return
            expr, title = group.filter, f"NOTRACK '{group.filter}'"
        else:
            picked = self._notrack_flows()
            if picked is None:
                return
            expr, title = picked
        self._prepare(lambda: notrack_plan(spec, expr), title, "cannot add NOTRACK")

    def _notrack_flows(self) -> tuple[str, str] | None:
        """The expression and title for the tagged flows or, with none tagged, the flow under the cursor."""
        selected = self._selected()
        if selected is None:
            return None
        rows = selected[1]
        # One alternative per service (flows of one service need the same rules), in a stable order.
        exprs = sorted(set(map(notrack_expr, rows)))
        expr = " or ".join(exprs)
        if not self.screen.query_one(FlowList).tagged:
            return expr, f"NOTRACK '{expr}'"
        flows = "the tagged flow" if len(rows) == 1 else f"{len(rows)} tagged flows"
        services = "" if len(exprs) == 1 else f" ({len(exprs)} services)"
        return expr, f"NOTRACK {flows}{services}"

    def action_notrack_rules(self) -> None:
        spec = self.app.spec
        if spec is not None:
            self.app.push_screen(NotrackRulesScreen(spec))

    def action_tunables(self) -> None:
        spec = self.app.spec
        if spec is not None:
            self.app.push_screen(TunablesScreen(spec))

    @writes
    def action_undo(self) -> None:
        spec = self._write_spec()
        if spec is None:
            return
        # The confirmation names any value changed since, with both values: saying yes is the CLI's --force.
        self._prepare(lambda: undo_plan(spec, None, persist=persist_paths(), force=True), "Undo the last change",
                      "cannot undo")

    def action_journal(self) -> None:
        self.app.push_screen(JournalScreen(self.app.spec))

    def palette(self) -> list[PaletteEntry]:
        entries = [
            (self.action_delete_flows, "Delete flows", "Delete the flow under the cursor, or every tagged flow"),
            (self.action_flush_flows, "Flush flows", "Delete every flow the filter matches (no filter: all)"),
            (self.action_tunables, "Tunables", "conntrack sysctls: value, default, meaning; edit and persist"),
            (self.action_notrack, "NOTRACK", "Stop tracking the traffic of the selected group, the tagged flows or the flow"),
            (self.action_notrack_rules, "NOTRACK rules", "List and remove cttop's NOTRACK rules"),
            (self.action_undo, "Undo last change", "Take back the last change made in this namespace"),
            (self.action_journal, "Journal", "Every change cttop made: when, what, who, where"),
        ]
        return [PaletteEntry(title, help, fn) for fn, title, help in entries
                if self.screen.check_action(fn.__name__.removeprefix("action_"), ())]


def remedy_help(read_only: bool) -> list[Binding]:
    """The help screen's remediation keys; with --read-only the write keys are left out (they are refused)."""
    return [b for b in bindings_of(RemedyKeys)
            if not write_refused(RemedyKeys, b.action, read_only)]

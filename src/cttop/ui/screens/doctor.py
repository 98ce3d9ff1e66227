"""Doctor (``D``): watch the namespace's table for a few seconds, then list the verdict and each finding.

The watching (and building a fix's plan, which may read the whole table) runs in
thread workers, so the screen counts down and stays responsive meanwhile. Each
finding with a remedy gets a button that opens that remedy's confirmation; with
``--read-only`` the fixes are shown only as commands. A global setting's fix has
a button only when the namespace is the host's initial one (doctor offers no
remedy otherwise): from anywhere else it is a command for the host, never a key.

Fix lines are laid out as every confirmation lays out commands (cttop.ui.commands):
a comment on its own line above its command, one command per line, a long one
wrapped with a visible continuation, so a pasted block runs exactly those commands.
"""

from __future__ import annotations

from typing import ClassVar, Final

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static
from textual.worker import Worker, WorkerState

from cttop.actions import ActionResult, AddNotrack, FlushFlows, SetSysctls
from cttop.doctor import DEFAULT_SECONDS, Finding, Report, diagnose
from cttop.doctor.report import Remedy
from cttop.kernel.netns import NetnsSpec
from cttop.termsafe import safe_line, safe_text
from cttop.ui.access import cttop_app
from cttop.ui.apply import confirm_and_apply
from cttop.ui.commands import CommandBlock
from cttop.ui.keys.base import KeyFooter

# What a fix button says, by the plan's kind.
FIX_LABELS: Final = {SetSysctls.kind: "Set the tunables…", AddNotrack.kind: "Add the NOTRACK rule…",
              FlushFlows.kind: "Flush…"}
TICK: Final = 0.5
SUBTITLE: Final = "Esc closes · r watches again"
TAB_HINT: Final = " · Tab reaches the fix buttons"


def verdict_text(report: Report, read_only: bool) -> Text:
    t = Text()
    t.append(report.status.upper(), "bold")
    counts = [f"{sum(f.severity == s for f in report.findings)} {s}" for s in ("critical", "warning", "unknown", "ok")]
    t.append(f" · {safe_line(report.netns)} · watched {report.seconds:.1f} s · "
             + ", ".join(c for c in counts if not c.startswith("0 ")))
    if read_only:
        t.append(" · read-only: fixes shown as commands only")
    return t


def finding_text(f: Finding) -> Text:
    """The evidence (it quotes what the kernel, sysctl.d files and the journal hold: escaped)."""
    if f.severity == "ok":
        return Text(f"{safe_line(f.title)}: " + "; ".join(safe_text(f.evidence).splitlines()))
    return Text(safe_text(f.evidence))


def fix_label(f: Finding) -> str:
    """A fix button's text: what its plan does, and that it reaches every namespace when it does."""
    assert f.action is not None
    if any(c.startswith("# global") for c in f.commands):
        return "Set for the whole host…"
    return kind_label(f.action.kind)


def kind_label(kind: str) -> str:
    """A fix button's text for a plan of ``kind``."""
    return FIX_LABELS.get(kind, f"{kind}…")


class FindingView(Vertical):
    """One finding: its severity in words, its title, evidence and commands, and a fix button if it has one."""

    def __init__(self, finding: Finding, number: int, offer_fix: bool) -> None:
        super().__init__(classes=f"finding sev-{finding.severity}")
        self.finding = finding
        self.number = number
        self.offer_fix = offer_fix

    def compose(self) -> ComposeResult:
        f = self.finding
        # A grid, so a long title wraps under itself, not back under the severity.
        head = Table.grid()
        head.add_column(width=9, no_wrap=True)
        head.add_column()
        head.add_row(Text(f.severity.upper(), "bold"), Text(safe_line(f.title) if f.severity != "ok" else "", "bold"))
        yield Static(head, classes="finding-severity" if f.severity == "ok" else "finding-title")
        yield Static(finding_text(f), classes="finding-body")
        if f.commands:
            # The confirmations' layout: a comment on its own line, one command per line, a long one wrapped with
            # a trailing backslash, so a pasted block runs exactly these commands.
            yield Static(Text("fix:", "bold"), classes="finding-body")
            yield CommandBlock(f.commands, classes="finding-body")
        if self.offer_fix and f.action is not None:
            yield Button(fix_label(f), id=f"fix-{self.number}", classes="finding-fix", variant="warning")
            for i, r in enumerate(f.also):  # every fix the commands list has a button, not only the first
                yield Button(kind_label(r.kind), id=f"fix-{self.number}-{i}", classes="finding-fix", variant="warning")

    def remedy(self, button: Button) -> Remedy | None:
        """The fix ``button`` of this finding applies."""
        f = self.finding
        if button.id == f"fix-{self.number}":
            return f.action
        return next((r for i, r in enumerate(f.also) if button.id == f"fix-{self.number}-{i}"), None)


class DoctorScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Close", key_display="Esc"),
        Binding("r", "watch", "Watch again"),
    ]

    def __init__(self, spec: NetnsSpec, seconds: float = DEFAULT_SECONDS) -> None:
        super().__init__()
        self.spec = spec
        self.seconds = seconds
        self.report: Report | None = None
        self.error: str | None = None
        self.fixing: Finding | None = None  # the finding whose fix is being prepared
        self._left = 0.0

    def compose(self) -> ComposeResult:
        with Vertical(id="doctor-box") as box:
            box.border_title = Text(f"Doctor · {safe_line(self.spec.label())}")
            box.border_subtitle = SUBTITLE
            yield Static(id="doctor-verdict")
            yield VerticalScroll(id="doctor-findings")
        yield KeyFooter()  # this screen's keys: the main screen's do nothing here

    def on_mount(self) -> None:
        self.set_interval(TICK, self._tick)
        self.query_one("#doctor-findings").focus()
        self.action_watch()

    # --- watching ------------------------------------------------------------------------

    def action_watch(self) -> None:
        self.report, self.error = None, None
        self._left = self.seconds
        self._show_watching()
        self.query_one("#doctor-box").border_subtitle = SUBTITLE
        self.query_one("#doctor-findings", VerticalScroll).remove_children()
        want_bytes = cttop_app(self).top_by != "entries"  # the user ranks by bytes: say if accounting is off
        spec, seconds = self.spec, self.seconds
        self.run_worker(lambda: diagnose(spec, seconds, want_bytes=want_bytes), name="diagnose", group="doctor",
                        thread=True, exclusive=True, exit_on_error=False)

    def _tick(self) -> None:
        if self.report is None and self.error is None:
            self._left = max(0.0, self._left - TICK)
            self._show_watching()

    def _show_watching(self) -> None:
        t = Text()
        t.append("WATCHING", "bold")
        left = f"{self._left:.0f} s left" if self._left > 0 else "judging…"
        t.append(f" · {safe_line(self.spec.label())} · watching the table for {self.seconds:g} s… ({left})")
        self.query_one("#doctor-verdict", Static).update(t)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.name == "diagnose":
            if event.state == WorkerState.SUCCESS and isinstance(worker.result, Report):
                self._show_report(worker.result)
            elif event.state == WorkerState.ERROR:
                self.error = str(worker.error)
                self.query_one("#doctor-verdict", Static).update(Text.assemble(("UNKNOWN", "bold"),
                                                                               f" · {safe_line(self.error)}"))
        elif worker.name == "plan" and self.fixing is not None:
            if event.state == WorkerState.SUCCESS and worker.result is not None:
                confirm_and_apply(self.app, worker.result, f"Doctor: {self.fixing.title}", done=self._applied)
            elif event.state == WorkerState.ERROR:
                self.notify(f"cannot prepare the fix: {worker.error}", severity="error", timeout=10, markup=False)

    def _show_report(self, report: Report) -> None:
        self.report = report
        offer = not cttop_app(self).read_only
        verdict = self.query_one("#doctor-verdict", Static)
        verdict.set_classes(f"sev-{report.status}")
        verdict.update(verdict_text(report, not offer))
        box = self.query_one("#doctor-findings", VerticalScroll)
        box.remove_children()
        box.mount_all(FindingView(f, i, offer) for i, f in enumerate(report.findings))
        # Tab is named only where it reaches something: read-only, or with no remedy, there is no fix button.
        fixes = offer and any(f.action is not None for f in report.findings)
        self.query_one("#doctor-box").border_subtitle = SUBTITLE + (TAB_HINT if fixes else "")

    # --- fixing --------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        view = next((a for a in event.button.ancestors if isinstance(a, FindingView)), None)
        remedy = view.remedy(event.button) if view is not None else None
        if view is None or remedy is None or cttop_app(self).read_only:
            return
        event.stop()
        self.fixing = view.finding
        # Building a plan reads the kernel (NOTRACK lists the flows it would catch): not on the UI thread.
        self.run_worker(lambda: remedy(), name="plan", group="doctor-fix", thread=True, exclusive=True,
                        exit_on_error=False)

    def _applied(self, result: ActionResult) -> None:
        if self.is_attached:
            self.action_watch()  # watch again, so the verdict shows what the fix changed

    def action_close(self) -> None:
        self.dismiss(None)

"""What `cttop doctor` found: findings with their evidence and fix, the verdict, and how both print.

The verdict follows the monitoring-plugin convention (exit 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN). When findings disagree the worst wins, ranked
critical > unknown > warning > ok: a critical that was seen must not hide behind a
check that could not run, and a check that could not run may hide a critical, so
it outranks a warning.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from cttop.actions.journal import Journal
from cttop.actions.plan import Plan
from cttop.termsafe import safe_line

Severity = Literal["ok", "warning", "critical", "unknown"]
SEVERITIES: Final = ("ok", "warning", "critical", "unknown")
EXIT: Final[dict[str, int]] = {"ok": 0, "warning": 1, "critical": 2, "unknown": 3}
RANK: Final[dict[str, int]] = {"ok": 0, "warning": 1, "unknown": 2, "critical": 3}
TAGS: Final[dict[str, str]] = {"ok": "OK", "warning": "WARN", "critical": "CRIT", "unknown": "UNKN"}
INDENT: Final = "       "
FIX_INDENT: Final = INDENT + "  "
CONTINUED: Final = "    "  # a wrapped command's further lines, under its first


@dataclass(frozen=True)
class Remedy:
    """Builds the cttop.actions plan that applies a finding's fix; building reads the kernel, never writes.

    ``kind`` is the plan class's ``kind`` (SetSysctls.kind, AddNotrack.kind…), known without
    building it, so a UI can label its button and JSON can name it. The plan is
    journaled in ``journal`` (default: the default journal) once applied.
    """

    kind: str
    build: Callable[[Journal | None], Plan]

    def __call__(self, journal: Journal | None = None) -> Plan:
        return self.build(journal)


@dataclass(frozen=True)
class Finding:
    """One finding. ``commands`` are shell lines in order; a line starting with ``#`` is a comment on the
    command(s) under it (a global's scope, a fix's cost), so a runbook can paste them all as they are.
    ``weight`` ranks findings of one severity: the entries a cause explains."""

    code: str
    severity: Severity
    title: str
    evidence: str
    data: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    action: Remedy | None = None
    weight: float = 0.0
    # The other fixes its commands list, each applied on its own (a timeout's finding: the sysctl is the
    # action, the flush of the entries already idle past the new timeout is one of these).
    also: tuple[Remedy, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "title": self.title, "evidence": self.evidence,
                "data": self.data, "commands": self.commands,
                "action": self.action.kind if self.action is not None else None,
                "also": [r.kind for r in self.also]}


def worst(findings: list[Finding]) -> Severity:
    sev: Severity = "ok"
    for f in findings:
        if RANK[f.severity] > RANK[sev]:
            sev = f.severity
    return sev


@dataclass
class Report:
    netns: str
    seconds: float  # how long the counters were watched
    findings: list[Finding]

    def __post_init__(self) -> None:
        # Worst first, and within a severity what explains most entries (a cause before the fill it makes);
        # sorted() is stable, so the rest keep the checks' order.
        self.findings = sorted(self.findings, key=lambda f: (-RANK[f.severity], -f.weight))

    @property
    def status(self) -> Severity:
        return worst(self.findings)

    @property
    def exit(self) -> int:
        return EXIT[self.status]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit": self.exit, "netns": self.netns, "seconds": round(self.seconds, 3),
                "findings": [f.to_json() for f in self.findings]}


def _shell_words(cmd: str) -> list[str]:
    """``cmd`` cut at the spaces a shell splits on: a quoted filter stays one word."""
    words, cur, quote = [], "", ""
    for ch in cmd:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == " ":
            if cur:
                words.append(cur)
            cur = ""
            continue
        cur += ch
    return words + [cur] if cur else words


def shell_lines(command: str, width: int) -> list[str]:
    """One fix line laid out in ``width`` columns: a command wraps between words with `` \\`` continuations
    (still one command when pasted), a comment wraps into more comment lines; never a bare column-0 tail."""
    if command.startswith("#"):
        return textwrap.wrap(command, max(width, 20), subsequent_indent="# ", break_on_hyphens=False) or [command]
    lines: list[str] = []
    cur = ""
    for word in _shell_words(command):
        room = width - 2 - (len(CONTINUED) if lines else 0)
        if cur and len(cur) + 1 + len(word) > room:
            lines.append(cur + " \\")
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    lines.append(cur)
    return [lines[0]] + [CONTINUED + line for line in lines[1:]]


def render(report: Report, width: int | None = None) -> str:
    """Compact text: a verdict line, then each finding worst first; OK ones take one line each.

    Fix commands are laid out for ``width`` columns (default: the terminal's, else 100).
    """
    width = width or shutil.get_terminal_size((100, 24)).columns
    counts = {s: sum(f.severity == s for f in report.findings) for s in SEVERITIES}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    watched = f"watched {report.seconds:.1f} s" if report.seconds else "counters not read"
    lines = [(f"cttop doctor: namespace {safe_line(report.netns)}, {watched}: {report.status.upper()} "
              f"({tally or 'nothing to check'})")]
    for f in report.findings:
        tag = f"[{TAGS[f.severity]}]"
        if f.severity == "ok":
            lines.append(f"{tag} {f.title}: {'; '.join(f.evidence.splitlines())}")
            continue
        lines.append("")
        lines.append(f"{tag} {f.title}")
        lines += [f"{INDENT}{line}" for line in f.evidence.splitlines()]
        if f.commands:
            lines.append(f"{INDENT}fix:")
            lines += [FIX_INDENT + line for c in f.commands for line in shell_lines(c, width - len(FIX_INDENT))]
    return "\n".join(lines) + "\n"

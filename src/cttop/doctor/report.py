"""What `cttop doctor` found: findings with their evidence and fix, the verdict, and how both print.

The verdict follows the monitoring-plugin convention (exit 0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN). When findings disagree the worst wins, ranked
critical > unknown > warning > ok: a critical that was seen must not hide behind a
check that could not run, and a check that could not run may hide a critical, so
it outranks a warning.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Remedy:
    """Builds the cttop.actions plan that applies a finding's fix; building reads the kernel, never writes.

    ``kind`` is the plan's kind ("sysctl", "notrack-add", "flush"), known without
    building it, so a UI can label its button and JSON can name it. The plan is
    journaled in ``journal`` (default: the default journal) once applied.
    """

    kind: str
    build: Callable[[Journal | None], Plan]

    def __call__(self, journal: Journal | None = None) -> Plan:
        return self.build(journal)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    title: str
    evidence: str
    data: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    action: Remedy | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "title": self.title, "evidence": self.evidence,
                "data": self.data, "commands": self.commands,
                "action": self.action.kind if self.action is not None else None}


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
        # Worst first; sorted() is stable, so equal severities keep the checks' order.
        self.findings = sorted(self.findings, key=lambda f: -RANK[f.severity])

    @property
    def status(self) -> Severity:
        return worst(self.findings)

    @property
    def exit(self) -> int:
        return EXIT[self.status]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "exit": self.exit, "netns": self.netns, "seconds": round(self.seconds, 3),
                "findings": [f.to_json() for f in self.findings]}


def render(report: Report) -> str:
    """Compact text: a verdict line, then each finding worst first; OK ones take one line each."""
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
        lines += [f"       {line}" for line in f.evidence.splitlines()]
        if f.commands:
            lines.append("       fix:")
            lines += [f"         {c}" for c in f.commands]
    return "\n".join(lines) + "\n"

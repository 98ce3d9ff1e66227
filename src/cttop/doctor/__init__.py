"""`cttop doctor`: watch a namespace's table for a few seconds and say what is wrong and how to fix it.

The whole API, for the CLI and the TUI alike::

    report = diagnose(NetnsSpec(name="web1"), seconds=3)
    report.status, report.exit            # "critical", 2 (monitoring-plugin convention)
    for f in report.findings:             # worst first; causes before the fill they explain
        f.code, f.severity, f.title, f.evidence, f.data, f.commands
        plan = f.action() if f.action else None   # a cttop.actions plan to confirm and apply()

:func:`diagnose` only reads. ``Finding.action`` builds the plan (SetSysctls,
AddNotrack or FlushFlows) when called; ``action.kind`` names it without building it.
A global setting's plan is offered only for the initial namespace (see
:mod:`cttop.doctor.fixes`); ``commands`` lines starting with ``#`` are comments.
"""

from __future__ import annotations

from cttop.actions.journal import Journal
from cttop.doctor.checks import CHECKS, run
from cttop.doctor.collect import Observation, observe
from cttop.doctor.report import EXIT, Finding, Remedy, Report, render
from cttop.kernel.netns import NetnsSpec

DEFAULT_SECONDS = 3.0


def diagnose(spec: NetnsSpec | None = None, seconds: float = DEFAULT_SECONDS, *, want_bytes: bool = False,
             journal: Journal | None = None) -> Report:
    """Watch ``spec``'s table (default: this process's namespace) for ``seconds`` and judge it.

    ``want_bytes`` adds the accounting check; ``journal`` is where drift looks for what cttop set.
    """
    return judge(observe(spec or NetnsSpec(), seconds, want_bytes=want_bytes, journal=journal))


def judge(o: Observation) -> Report:
    return Report(o.spec.label(), o.seconds, run(o))


__all__ = ["CHECKS", "DEFAULT_SECONDS", "EXIT", "Finding", "Observation", "Remedy", "Report", "diagnose", "judge",
           "observe", "render"]

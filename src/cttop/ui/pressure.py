"""Pressure: the kernel's per-CPU trouble counters as rates per second.

From CT_GET_STATS_CPU, or without CAP_NET_ADMIN from world-readable
/proc/net/stat/nf_conntrack (the title says so). A rate needs two readings:
until then it reads ``?``, never a made-up 0.
"""

from __future__ import annotations

from rich.text import Text

from cttop.kernel import procstat
from cttop.live.counters import PRESSURE
from cttop.live.frame import Frame
from cttop.termsafe import safe_line
from cttop.ui import fmt
from cttop.ui.panel import Panel, retitle

HARMLESS = frozenset({"clash_resolve"})


class PressurePanel(Panel):
    TITLE = "Pressure /s"

    def show(self, frame: Frame) -> None:
        retitle(self, self.TITLE + (" · from /proc" if frame.pressure_from == procstat.SOURCE else ""))
        super().show(frame)

    def draw(self, frame: Frame, width: int, height: int) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        if not frame.pressure:
            t.append("unknown: " + (safe_line(frame.note) or "no reading yet"), self.style("dim"))
            return t
        name_w = max(len(n) for n in PRESSURE) + 1
        for i, p in enumerate(frame.pressure):
            if i:
                t.append("\n")
            # Non-zero now is highlighted (and marked "!" for monochrome terminals).
            hot = p.rate is not None and p.rate > 0
            level = ("warn" if p.name in HARMLESS else "bad") if hot else ""
            t.append(("!" if hot else " ") + p.name.ljust(name_w), self.style(level) if level else self.style("label"))
            t.append(fmt.rate(p.rate).rjust(8), self.style(level) if level else "")
            t.append(f"  total {fmt.si(p.total)}", self.style("dim"))
        return t

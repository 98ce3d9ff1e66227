"""Pressure: the kernel's per-CPU trouble counters as rates per second.

From CT_GET_STATS_CPU, or without CAP_NET_ADMIN from world-readable
/proc/net/stat/nf_conntrack (the title says so). A rate needs two readings:
until then it reads ``?``, never a made-up 0.
"""

from __future__ import annotations

from typing import Final

from rich.text import Text

from cttop.kernel import procstat
from cttop.live.counters import PRESSURE
from cttop.live.frame import Frame
from cttop.termsafe import safe_line
from cttop.ui import fmt
from cttop.ui.panel import Panel, retitle

HARMLESS = frozenset({"clash_resolve"})
NAME_W: Final = max(len(n) for n in PRESSURE) + 1  # every counter's name and a space: the rates line up
RATE_W: Final = 8  # a rate's column, right-aligned: "12.3k/s" and a space
TOTAL_LABEL: Final = "  total "


class PressurePanel(Panel):
    TITLE = "Pressure /s"

    def show(self, frame: Frame) -> None:
        retitle(self, self.TITLE + (" · from /proc" if frame.pressure_from == procstat.SOURCE else ""))
        super().show(frame)

    def draw(self, frame: Frame, width: int, height: int) -> Text:
        t = Text()
        if not frame.pressure:
            t.append("unknown: " + (safe_line(frame.note) or "no reading yet"), self.style("dim"))
            return t
        shown = frame.pressure[: max(1, height)]
        rates, totals = [fmt.rate(p.rate) for p in shown], [fmt.si(p.total) for p in shown]
        name_w, rate_w, label = NAME_W, RATE_W, TOTAL_LABEL
        if 1 + name_w + rate_w + len(label) + max(map(len, totals)) > width:
            # Narrower than a row (60 columns): the padding goes rather than a total, which wrapped onto the next
            # counter's line, and half the counters were off the panel.
            name_w = max(len(p.name) for p in shown) + 1
            rate_w = max(map(len, rates))
            label = " " + label.lstrip()
        for i, (p, rate, total) in enumerate(zip(shown, rates, totals)):
            if i:
                t.append("\n")
            # Non-zero now is highlighted (and marked "!" for monochrome terminals).
            hot = p.rate is not None and p.rate > 0
            level = ("warn" if p.name in HARMLESS else "bad") if hot else ""
            t.append(("!" if hot else " ") + p.name.ljust(name_w), self.style(level) if level else self.style("label"))
            t.append(rate.rjust(rate_w), self.style(level) if level else "")
            t.append(label + total, self.style("dim"))
        return t

"""Fill: how full the table is, how fast it moves, and when it will be full."""

from __future__ import annotations

from typing import Final

from rich.text import Text

from cttop.live.frame import LIMITED, Frame
from cttop.ui import fmt
from cttop.ui.panel import Panel

WARN_AT = 0.80
BAD_AT = 0.95
# The max/buckets ratio's label, the whole one where the line has room, else the short one: at 60 columns the whole
# one cut the ratio off.
RATIO_LABELS: Final = ("  max/buckets ", " max/bkt ")


def fill_level(fill: float | None) -> str:
    if fill is None:
        return "dim"
    return "bad" if fill >= BAD_AT else "warn" if fill >= WARN_AT else "good"


class FillPanel(Panel):
    def draw(self, frame: Frame, width: int, height: int) -> Text:
        t = Text()
        fill = frame.fill
        level = fill_level(fill)
        head = f"{fmt.count(frame.count)} / {fmt.count(frame.maximum)}"
        pct = f" {fill * 100:.1f}%" if fill is not None else ""
        # Words as well as colour, so the alarm survives NO_COLOR and 16-colour consoles.
        alarm = {"bad": " FULL!" if fill is not None and fill >= 1 else " CRITICAL", "warn": " HIGH"}.get(level, "")
        t.append(head, "bold")
        t.append(pct + alarm, self.style(level))
        room = width - len(head) - len(pct) - len(alarm) - 1
        if room >= 5:
            t.append(" ")
            t.append(fmt.bar(fill or 0.0, room), self.style(level))
        t.append("\n")
        buckets = fmt.count(frame.buckets)
        t.append("buckets ", self.style("label"))
        t.append(buckets)
        if frame.buckets and frame.maximum:
            ratio = frame.maximum / frame.buckets
            said = f"{ratio:.1f}"
            room = width - len("buckets " + buckets) - len(said)
            t.append(next((a for a in RATIO_LABELS if len(a) <= room), RATIO_LABELS[-1]), self.style("label"))
            t.append(said, self.style("warn") if ratio > 8 else "")
        t.append("\n")
        t.append("evictable ", self.style("label"))
        if frame.flows:
            t.append(f"{fmt.count(frame.evictable)} ({frame.evictable / frame.flows * 100:.0f}%)")
        else:
            t.append("-")
        t.append("\n")
        if frame.phase == LIMITED:
            # The rates come from events, which need CAP_NET_ADMIN: a 0/s here would be a guess.
            t.append("new/gone unknown (no events)", self.style("dim"))
        else:
            t.append("new ", self.style("label"))
            t.append(fmt.rate(frame.new_rate))
            t.append("  gone ", self.style("label"))
            t.append(fmt.rate(frame.gone_rate))
        t.append("\n")
        t.append(fmt.sparkline(frame.history, width, (frame.maximum or 0) / 100), self.style("bar"))
        t.append("\n")
        # The flow model's verdict (cttop.table.history): "levels off near N (X% of max)", "full in T",
        # "draining to N" or "unknown"; the word leads, so a narrow panel cuts the number, not the direction.
        t.append("→ ", self.style("label"))
        said = frame.forecast
        tone = "bad" if said.startswith("full") else "good" if said.startswith("draining") else \
            "dim" if said == "unknown" else None
        t.append(said, self.style(tone) if tone else "")
        return t

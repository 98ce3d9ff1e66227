"""States: how the table splits by TCP state, then UDP/ICMP/other by how far each exchange got."""

from __future__ import annotations

from rich.text import Text

from cttop.live.frame import LIVE, Frame, StateRow
from cttop.termsafe import safe_line
from cttop.ui import fmt
from cttop.ui.panel import Panel

_LEVEL = {"ESTABLISHED": "good", "ASSURED": "good", "SYN_SENT": "warn", "SYN_RECV": "warn", "UNREPLIED": "warn"}
CELL = 18  # width of one cell when the states do not fit one per line


def label(r: StateRow, short: bool = False) -> str:
    """'tcp ESTABLISHED'; just 'ESTABLISHED' when short, since TCP's state names are its own."""
    return r.state if short and r.section == "tcp" else f"{r.section} {r.state}"


class StatesPanel(Panel):
    def draw(self, frame: Frame, width: int, height: int) -> Text:
        rows = frame.states
        if not rows:
            return Text("no flows" if frame.phase == LIVE else safe_line(frame.note), style=self.style("dim"))
        total = sum(r.count for r in rows) or 1
        if len(rows) <= height:
            return self._bars(rows, total, width)
        return self._grid(rows, total, width, height)

    def _bars(self, rows: tuple[StateRow, ...], total: int, width: int) -> Text:
        t = Text()
        label_w = min(max(len(label(r)) for r in rows), 18)
        num_w = max(len(fmt.count(r.count)) for r in rows)
        bar_w = max(0, width - label_w - num_w - 7)
        for i, r in enumerate(rows):
            if i:
                t.append("\n")
            t.append(fmt.truncate(label(r), label_w).ljust(label_w), self.style(_LEVEL.get(r.state, "label")))
            t.append(" " + fmt.count(r.count).rjust(num_w))
            t.append(f" {r.count / total * 100:3.0f}% ", self.style("dim"))
            t.append(fmt.bar(r.count / total, bar_w), self.style("bar"))
        return t

    def _grid(self, rows: tuple[StateRow, ...], total: int, width: int, height: int) -> Text:
        """Too many states for one per line: columns of 'name count', filled top to bottom."""
        ncols = max(1, width // CELL)
        cell_w = width // ncols
        room = ncols * height
        shown = list(rows) if len(rows) <= room else list(rows[: room - 1])
        more = rows[len(shown):]
        lines = [Text() for _ in range(height)]
        for i, r in enumerate(shown):
            line = lines[i % height]
            num = fmt.count(r.count)
            name = fmt.truncate(label(r, short=True), cell_w - len(num) - 2)
            line.append(name, self.style(_LEVEL.get(r.state, "label")))
            line.append(" " + num.rjust(cell_w - len(name) - 2) + " ")
        if more:
            lines[len(shown) % height].append(f"+{len(more)} more ({fmt.count(sum(r.count for r in more))})",
                                              self.style("dim"))
        return Text("\n").join(line for line in lines if line.plain)

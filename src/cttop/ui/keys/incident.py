"""Incident keys: the event stream (``E``), the expectation table (``X``) and reverse DNS (``R``).

``R`` is off by default (``--resolve`` starts with it on): while on, addresses on screen are shown
by name where a reverse lookup found one, looked up in the background (live.resolve), and the
resolver's own lookups are hidden from the flow list and the event stream.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from cttop.ui.keys.base import KeyGroup, PaletteEntry
from cttop.ui.screens.events import EventsScreen
from cttop.ui.screens.expect import ExpectScreen


class IncidentKeys(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("E", "events", "Events", show=False, key_display="E"),
        Binding("X", "expectations", "Expectations", show=False, key_display="X"),
        Binding("R", "resolve", "Reverse DNS on / off", show=False, key_display="R"),
    ]

    def action_events(self) -> None:
        self.app.push_screen(EventsScreen())

    def action_expectations(self) -> None:
        self.app.push_screen(ExpectScreen())

    def action_resolve(self) -> None:
        on = self.app.set_resolve(self.app.resolver is None)
        self.screen.notify("reverse DNS on: names appear as lookups return; cttop's own lookups are hidden" if on
                    else "reverse DNS off", timeout=3)

    def palette(self) -> list[PaletteEntry]:
        return [
            PaletteEntry("Events", "NEW / UPDATE / DESTROY as they happen, with rates and losses",
                         self.action_events),
            PaletteEntry("Expectations", "What FTP, SIP… helpers let in next (conntrack -L expect)",
                         self.action_expectations),
            PaletteEntry("Reverse DNS", "Show addresses by name (looked up in the background)",
                         self.action_resolve),
        ]

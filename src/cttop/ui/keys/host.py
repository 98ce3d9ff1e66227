"""Keys for what lies beyond this table: doctor findings (``D``) and every namespace (``N``).

Both need the kernel: a replay has no namespace to watch or to switch to, so
there the keys say so instead of opening an empty screen.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from cttop.ui.keys.base import KeyGroup, PaletteEntry
from cttop.ui.screens.doctor import DoctorScreen
from cttop.ui.screens.namespaces import NamespacesScreen


class HostKeys(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("D", "doctor", "Doctor", key_display="D"),
        Binding("N", "namespaces", "Namespaces", key_display="N"),
    ]

    def action_doctor(self) -> None:
        spec = self.app.spec
        if spec is None:
            self.screen.notify("doctor needs a live namespace: this is a replay", severity="warning")
            return
        self.app.push_screen(DoctorScreen(spec))

    def action_namespaces(self) -> None:
        if self.app.spec is None:
            self.screen.notify("namespaces need a live view: this is a replay", severity="warning")
            return
        self.app.push_screen(NamespacesScreen())

    def palette(self) -> list[PaletteEntry]:
        return [
            PaletteEntry("Doctor", "Watch the table a few seconds: verdict, findings, fixes", self.action_doctor),
            PaletteEntry("Namespaces", "Every network namespace's count and drops; switch the view",
                         self.action_namespaces),
        ]

"""Fleet keys: doctor findings and every namespace."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import BindingType

from cttop.ui.keys import KeyGroup


class FleetKeys(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = []

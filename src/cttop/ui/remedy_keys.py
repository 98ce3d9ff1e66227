"""Remediation keys: delete, flush, tunables, NOTRACK, undo, journal."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import BindingType

from cttop.ui.keys import KeyGroup


class RemedyKeys(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = []

"""Replay keys: the timeline of a recording (pause, seek)."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import BindingType

from cttop.ui.keys import KeyGroup


class ReplayKeys(KeyGroup):
    BINDINGS: ClassVar[list[BindingType]] = []

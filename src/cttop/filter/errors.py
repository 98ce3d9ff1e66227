"""The one error the filter raises: a one-line message that points at a column."""

from __future__ import annotations

from cttop.errors import CttopError


class FilterError(CttopError):
    """Bad filter text; ``column`` is 1-based, as an editor shows it."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"filter: {message} at column {column}")
        self.message = message
        self.column = column

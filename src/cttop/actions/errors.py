"""The error every refused or failed action raises."""

from cttop.errors import CttopError


class ActionError(CttopError):
    """A plan that cannot be applied or undone: the one-line reason; nothing was changed or journaled."""

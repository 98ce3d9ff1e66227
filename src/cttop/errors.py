"""The one base class for errors that reach the user as a one-line message."""


class CttopError(Exception):
    """Bad input or a refused operation; ``str(e)`` is the whole message, naming what and where."""

"""Command-line entry point; importing each command module registers its commands on ``app``."""

from __future__ import annotations

from cttop.cli import snapshot  # noqa: F401  (registers commands)
from cttop.cli import lab  # noqa: F401
from cttop.cli import actions  # noqa: F401
from cttop.cli import fleet  # noqa: F401
from cttop.cli.app import app


def main() -> None:
    app()

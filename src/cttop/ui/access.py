"""The running CttopApp, typed, for the screens and widgets that read it (its collector, source, settings).

They cannot import cttop.ui.app to name it: that module imports them all to build the
main screen, so even a function-level import would close an import cycle. The class
is imported for the type checker only; at run time every screen and widget of cttop
runs inside a CttopApp, which is all the cast assumes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

if TYPE_CHECKING:
    from cttop.ui.app import CttopApp


def cttop_app(node: DOMNode) -> CttopApp:
    """The app ``node`` runs in."""
    return cast("CttopApp", node.app)

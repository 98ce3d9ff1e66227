"""The group keys that rank flows by who owns them: a module of its own, so that naming them (`snapshot`'s
options, the config's group_by) does not load the owners' machinery (psutil, sock_diag)."""

from __future__ import annotations

from typing import Final

OWNER_GROUPS: Final = ("process", "container")

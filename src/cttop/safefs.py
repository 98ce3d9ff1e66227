"""The one rule for a file or directory cttop may believe: one it could have made itself.

Owned by root or by the user running cttop, and not writable by group or others: anyone else could have
put there what cttop, as root, would then act on. The state files, the config file and the lab's record
are all judged by :func:`untrusted`; opening is with :data:`OPEN_FLAGS`, so a link is never followed to
the file checked. The directory walk and refusals of the files cttop writes are
:mod:`cttop.actions.safeopen`'s.
"""

from __future__ import annotations

import os
import pwd
import stat

# Never block on a FIFO put where a file should be; follow no link in the last component.
OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def owner(uid: int) -> str:
    """How a message names a file's owner: ``uid 65534 (nobody)``, or the number alone without a user."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def untrusted(st: os.stat_result) -> str | None:
    """Why a file or directory with this stat is not cttop's to use, or None when it is."""
    if st.st_uid not in (0, os.geteuid()):
        return f"owned by {owner(st.st_uid)}, not root or you"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group and others" if st.st_mode & stat.S_IWGRP and st.st_mode & stat.S_IWOTH \
            else "group" if st.st_mode & stat.S_IWGRP else "others"
        return f"writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None

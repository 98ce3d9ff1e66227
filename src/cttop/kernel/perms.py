"""Which capabilities this thread holds: what the kernel checks when it is asked for conntrack or a setns.

Capabilities are per thread and the kernel checks the calling one's, so this reads
``/proc/thread-self``, not ``/proc/self`` (the main thread's, which a worker that dropped or never had a
capability does not share).
"""

from __future__ import annotations

CAP_NET_ADMIN = 12  # nfnetlink refuses every conntrack request without it
CAP_SYS_ADMIN = 21  # setns(2) into a namespace other than one's own
STATUS = "/proc/thread-self/status"


def has_caps(*caps: int) -> bool:
    """Every one of ``caps`` in this thread's effective set; False when the set cannot be read."""
    try:
        with open(STATUS) as f:
            eff = next((int(line.split()[1], 16) for line in f if line.startswith("CapEff:")), 0)
    except (OSError, ValueError, IndexError):
        return False
    return all(eff >> cap & 1 for cap in caps)

"""Whether this process may talk to ctnetlink at all."""

from __future__ import annotations

CAP_NET_ADMIN = 12


def has_net_admin() -> bool:
    """CAP_NET_ADMIN in the effective set: nfnetlink refuses every conntrack request without it."""
    try:
        with open("/proc/thread-self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except OSError:
        pass
    return False

"""Whether this machine can run the kernel tests, and if not, why (printed in the pytest header)."""

from __future__ import annotations

import os
import shutil


def kernel_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("ip", "nft", "conntrack"):
        if shutil.which(tool) is None:
            return f"the `{tool}` command is not installed"
    if not os.path.exists("/proc/sys/net/netfilter/nf_conntrack_max"):
        return "this kernel has no nf_conntrack"
    return None

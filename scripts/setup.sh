#!/usr/bin/env bash
# Install what cttop needs on Debian 12 (run as root): the kernel tools, then cttop
# and its test dependencies into ./.venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
    need=()
    # gcc and libc6-dev build the compiled decoder (hatch_build.py).
    for pkg in nftables conntrack iptables iproute2 hping3 tmux python3-venv util-linux netbase bpftool gcc libc6-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    # And Python's headers, which Debian's python3 keeps in python3-dev (a python3 built from source has them).
    python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
        || need+=(python3-dev)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
# The install goes on without a compiler (the pure-Python decoder is the fallback), but this setup must not.
if ! .venv/bin/python -c 'import cttop.kernel._ctdecode' 2>/dev/null; then
    echo "setup: the compiled decoder (src/cttop/kernel/_ctdecode.c) was not built; .venv/bin/python -m pip install -v -e . says why" >&2
    exit 1
fi
# An editable install compiles nothing, and where PYTHONDONTWRITEBYTECODE is set nothing is ever cached: every
# start would compile cttop's modules again (~30 ms of a snapshot's CPU). pip compiled the dependencies already.
.venv/bin/python -m compileall -q src/cttop >/dev/null
echo "cttop installed: .venv/bin/cttop"

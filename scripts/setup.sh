#!/usr/bin/env bash
# Install what cttop needs on Debian 12 (run as root): the kernel tools, then cttop
# and its test dependencies into ./.venv. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
    need=()
    for pkg in nftables conntrack iptables iproute2 hping3 tmux python3-venv util-linux netbase bpftool; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
    done
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
# An editable install compiles nothing, and where PYTHONDONTWRITEBYTECODE is set nothing is ever cached: every
# start would compile cttop's modules again (~30 ms of a snapshot's CPU). pip compiled the dependencies already.
.venv/bin/python -m compileall -q src/cttop >/dev/null
echo "cttop installed: .venv/bin/cttop"

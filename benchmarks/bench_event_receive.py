"""Reading real events off the kernel's queue: CPU an event for cttop's event socket, each receive path, against
`conntrack -E` reading the same kind of queue, alternated in one run.

Usage: python benchmarks/bench_event_receive.py [--entries 50000] [--rounds 5]

Needs root. In a throwaway namespace, each round queues 2 × --entries real events for each reader in turn (the
entries are `common.realistic_rows`, made with ctnetlink: NEW; then flushed: DESTROY) while the reader is
subscribed but not reading, then lets it read the whole queue:

- compiled: EventSocket.read as the live view runs it: every queued datagram received in one call without
  the GIL (native recv_queued), decoded in one walk (native events);
- python-receive: the same with one `recv_into` a datagram (the fallback's receive), the compiled decoder;
- pure: the whole pure-Python fallback (CTTOP_PURE_PYTHON's paths: Python receive, Python decoder);
- conntrack -E: `conntrack -E -o id > /dev/null`, reading the events as they are made (it cannot be left to
  queue them: 1.4.7's `-b` sizes another of its sockets, and the subscribed one drops what is over ~208 kB),
  ended once the events are made and its queue is empty (/proc/net/netlink); its user+sys from rusage,
  start-up and text output included, over the events it says it showed: it cannot keep up with ctnetlink
  making entries, and what the kernel drops for it costs it nothing, so it is measured an event read.

cttop's figures are the reading thread's CPU (time.process_time around the reads), no interpreter start-up.
The kernel's drop counter for the reader's socket must stay at nought, or the round says so and stops.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import realistic_rows
from cttop.kernel import native
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.decode import Decoder
from cttop.kernel.events import EventSocket
from cttop.kernel.netns import NetnsSpec

WAYS = ("compiled", "python-receive", "pure", "conntrack -E")
NETLINK_NETFILTER = "12"
QUEUE = 256 << 20


def subscribed(ns: str) -> list[tuple[int, int]]:
    """(rmem, drops) of each netfilter netlink socket in ``ns`` that joined a group."""
    out = []
    text = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/netlink"], check=True,
                          capture_output=True, text=True).stdout
    for line in text.splitlines()[1:]:
        f = line.split()
        if f[1] == NETLINK_NETFILTER and int(f[3], 16):
            out.append((int(f[4]), int(f[8])))
    return out


def make_events(spec: NetnsSpec, n: int) -> None:
    with Ctnetlink(spec) as ct:
        if ct.create(realistic_rows(n)) != n:
            raise SystemExit("the entries could not all be made")
        ct.flush()


def wait_for(what: str, ok: object, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not ok():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.02)


def cttop_round(ns: str, n: int, way: str) -> tuple[float, int]:
    """CPU seconds for cttop's event socket to read 2n queued events, received and decoded ``way``."""
    spec = NetnsSpec(name=ns)
    sock = EventSocket(spec, rcvbuf=QUEUE)
    try:
        sock.native = native.BUILT if way == "compiled" else None
        if way == "pure":
            sock.decoder = Decoder(compiled=False)
        make_events(spec, n)
        got = 0
        cpu = time.process_time()
        while got < 2 * n:
            batch = sock.read(5.0)
            if batch.lost or batch.bad or not batch.events:
                raise SystemExit(f"{way}: lost={batch.lost} bad={batch.bad} after {got} of {2 * n} events")
            got += len(batch.events)
        return time.process_time() - cpu, got
    finally:
        sock.close()


def conntrack_round(ns: str, n: int) -> tuple[float, int]:
    """CPU seconds of `conntrack -E` reading the events of n entries as they are made, and how many it read."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(["ip", "netns", "exec", ns, "conntrack", "-E", "-o", "id"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for("conntrack -E to subscribe", lambda: len(subscribed(ns)) == 1)
        make_events(NetnsSpec(name=ns), n)
        wait_for("conntrack -E to empty its queue", lambda: subscribed(ns)[0][0] == 0)
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shown = re.search(r"(\d+) flow events have been shown", err)
    if shown is None:
        raise SystemExit(f"conntrack -E did not say how many events it showed: {err.strip()!r}")
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), int(shown.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--entries", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    if native.BUILT is None:
        raise SystemExit("the compiled accelerator is not built (scripts/setup.sh builds it)")
    ns = f"cttop-bench-evr-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        per: dict[str, list[float]] = {w: [] for w in WAYS}  # CPU seconds an event read
        for r in range(a.rounds):
            order = list(WAYS[r % len(WAYS):] + WAYS[:r % len(WAYS)])
            line = []
            for way in order:
                cpu, read = (conntrack_round(ns, a.entries) if way == "conntrack -E"
                             else cttop_round(ns, a.entries, way))
                per[way].append(cpu / read)
                line.append(f"{way} {cpu:.3f} s/{read:,}")
            print(f"round {r + 1}/{a.rounds}: " + "  ".join(line) + f"; load {os.getloadavg()[0]:.2f}", flush=True)
        ref = statistics.median(per["conntrack -E"])
        print(f"\nthe events of {a.entries:,} entries a reader a round (NEW then DESTROY), medians of {a.rounds} "
              "rounds (ratio = this / conntrack -E, an event read):")
        print(f"{'reader':<16} {'CPU µs/event':>13} {'events/CPU s':>13} {'ratio':>6}")
        for w in WAYS:
            m = statistics.median(per[w])
            print(f"{w:<16} {m * 1e6:>13.2f} {1 / m:>13,.0f} {m / ref:>6.2f}")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


if __name__ == "__main__":
    main()

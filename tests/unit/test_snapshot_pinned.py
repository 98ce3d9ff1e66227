"""`cttop snapshot --json` is pinned byte for byte on a recorded realistic dump.

tests/fixtures/dump_realistic.bin.gz holds a real dump's raw chunks (record_realistic.py);
dump_realistic.snapshot.json.gz holds, one line per case below, the JSON that the code before the
decode and aggregation speed-ups printed for it. :func:`snapshot_json` runs the real
``take`` and ``to_json`` with only the kernel replaced: its dump replays the recorded chunks
through the real Decoder, chunk by chunk, as Ctnetlink.dump_chunks does (or counts them, as
Ctnetlink.dump_counts does: each case runs with the compiled accelerator and without).

Regenerate the pins only from a tree known to be right:
``PYTHONPATH=OLD_TREE/src:. python -m tests.unit.test_snapshot_pinned | gzip -9n > tests/fixtures/dump_realistic.snapshot.json.gz``
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar, Self
from unittest import mock

import pytest

from cttop.filter.compile import compile_filter
from cttop.kernel.ctnetlink import Stats
from cttop.kernel.decode import Decoder
from cttop.kernel.netns import NetnsSpec
from cttop.live import snapshot as live_snapshot
from tests.accelerated import accelerator  # noqa: F401 (autouse: each pin counted in C and made of rows)
from tests.unit.test_decode import FIX, messages

if TYPE_CHECKING:
    from cttop.kernel._ctdecode import Counts

PINS = os.path.join(FIX, "dump_realistic.snapshot.json.gz")
# (group by, rank by, filter, list flows): each group key's shape, the counter ranks, a filter, the flow list.
CASES = [("src", "entries", "", False), ("dst", "entries", "", False), ("dport", "entries", "", False),
         ("sport", "packets", "", False), ("proto", "entries", "", False), ("state", "entries", "", False),
         ("src-dport", "bytes", "", False), ("pair", "entries", "", False), ("mark", "entries", "", False),
         ("zone", "entries", "", False), ("src", "entries", "tcp", False), ("src", "bytes", "", True)]


def chunks() -> list[bytes]:
    return messages("dump_realistic.bin.gz")


class ReplayCt:
    """The kernel side of ``take``: the recorded dump, decoded by a real Decoder chunk by chunk."""

    ways: ClassVar[list[str]] = []  # how each dump was read: "rows" or "counts"

    def __init__(self, _spec: NetnsSpec) -> None:
        self.decoder = Decoder()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def dump_chunks(self, _family: int = 0, _kfilter: object = None) -> Iterator[list[tuple]]:
        self.ways.append("rows")
        for c in chunks():
            rows: list[tuple] = []
            done = self.decoder.decode_chunk(c, rows)
            yield rows
            if done:
                return

    def dump_counts(self, counts: Counts, _family: int = 0, _kfilter: object = None) -> None:
        self.ways.append("counts")
        for c in chunks():
            if self.decoder.count_chunk(c, counts):
                return

    def stats(self) -> Stats:
        return Stats(1200, 262144)

    def stats_cpu(self) -> list[dict[str, int]]:
        return [{"cpu": 0, "found": 1, "drop": 2}]


@contextmanager
def replayed() -> Iterator[None]:
    sysctls = {"nf_conntrack_count": "1200", "nf_conntrack_max": "262144", "nf_conntrack_buckets": "65536",
               "nf_conntrack_events": "1"}
    with mock.patch.object(live_snapshot, "Ctnetlink", ReplayCt), \
            mock.patch.object(live_snapshot.sysctl, "read", lambda _spec, _names: sysctls), \
            mock.patch.object(live_snapshot, "look", lambda: None):
        yield


def snapshot_json(group_by: str, by: str, flt: str, flows: bool) -> str:
    """What `cttop snapshot --json` prints for the recorded dump (Snapshot.write_json, as cli/snapshot.py
    calls it): 1,200 flows, so the flows written cross a part's end."""
    spec = NetnsSpec(name="fixture")
    with replayed():
        snap = live_snapshot.take(spec, compile_filter(flt), group_by, by, 10, keep_flows=flows)
    out = io.StringIO()
    snap.write_json(out, flows)
    return out.getvalue().removesuffix("\n")


def pins() -> list[str]:
    with gzip.open(PINS, "rt") as f:
        return f.read().splitlines()


@pytest.mark.parametrize("case", range(len(CASES)), ids=["-".join(map(str, c)) for c in CASES])
def test_snapshot_json_is_unchanged(case: int) -> None:
    got, want = snapshot_json(*CASES[case]), pins()[case]
    if got != want:  # a short message: pytest's own diff of 500 kB strings takes minutes
        at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        pytest.fail(f"differs at char {at}: got ...{got[at - 80:at + 80]}... want ...{want[at - 80:at + 80]}...")


@pytest.mark.parametrize("case", range(len(CASES)), ids=["-".join(map(str, c)) for c in CASES])
def test_a_dump_is_counted_in_c_where_nothing_needs_its_rows(case: int, accelerator: str) -> None:  # noqa: F811
    """With the accelerator, a snapshot that lists no flow and filters only in the kernel counts the dump without
    rows; the rest (and everything without it) makes rows."""
    ReplayCt.ways.clear()
    _group_by, _by, flt, flows = CASES[case]
    snapshot_json(*CASES[case])
    kernel_does_it_all = flt in ("", "tcp")  # "tcp": the kernel's tuple filter selects exactly those
    countable = accelerator == "compiled" and not flows and kernel_does_it_all
    assert ReplayCt.ways == ["counts" if countable else "rows"]


def test_pins_cover_the_shapes() -> None:
    """The recording holds both families, counted and uncounted flows, and groups of many flows."""
    src = json.loads(pins()[0])
    assert src["listed"] == 1200 and src["by_proto"].keys() >= {"tcp", "udp", "icmp", "icmpv6"}
    assert all(g["entries"] > 1 for g in src["top"]["rows"])
    flows = json.loads(pins()[-1])["flows"]
    assert {f["family"] for f in flows} == {"ipv4", "ipv6"}
    assert any(f["packets"] is None for f in flows) and any(f["packets"] is not None for f in flows)


if __name__ == "__main__":
    for c in CASES:
        print(snapshot_json(*c))


def test_the_human_line_names_each_field() -> None:
    """snapshot's listing (and the events CLI's) reads each field from its place in the row."""
    from cttop.cli.snapshot import flow_line
    from cttop.model import IPS_ASSURED, IPS_DST_NAT, IPS_SEEN_REPLY, ROW_LEN
    a, b, c = bytes([10, 0, 0, 1]), bytes([192, 0, 2, 80]), bytes([10, 9, 9, 9])
    status = IPS_SEEN_REPLY | IPS_ASSURED | IPS_DST_NAT
    row = (7, 2, 6, 3, status, a, b, 40001, 443, c, a, 8443, 40001, 431, 5, 2, 1, 10, 1000, 20, 2000, 0, 0)
    assert len(row) == ROW_LEN
    assert flow_line(row) == ("  tcp    ESTABLISHED  10.0.0.1:40001 → 192.0.2.80:443  [dnat] 10.9.9.9→10.0.0.1"
                              "  timeout=431 mark=5 zone=2  3000B")


def test_the_snapshot_command_loads_no_more_than_it_uses() -> None:
    """`cttop snapshot` races `conntrack -L`: every module it imports is start-up time on a busy box. The
    host-wide owner map (every namespace's addresses), the owners' machinery until a group, filter or --flows
    asks who owns flows, the TUI, the exporter and the lab are not its."""
    code = ("import sys, cttop.cli.snapshot; print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('cttop', 'textual', 'prometheus_client', 'pyroute2', 'typer'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                 .stdout.split())
    assert "cttop.live.snapshot" in loaded
    unwanted = {"textual", "prometheus_client", "pyroute2", "cttop.ui", "cttop.host.export", "cttop.lab",
                "cttop.host.containers", "cttop.owners.netmap", "cttop.live.owner_rank", "cttop.live.collector",
                "cttop.owners.owners", "cttop.live.owner_top",  # loaded only when owners are asked for
                "cttop.filter", "typer"}  # loaded only for a filter given; read by typer only for words that need it
    assert loaded & unwanted == set()


def test_flows_are_written_a_part_at_a_time() -> None:
    """--flows never holds the whole list as text: each write carries at most JSON_FLOWS_AT_ONCE flows."""
    class Writes(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.flows_per_write: list[int] = []

        def write(self, s: str) -> int:
            self.flows_per_write.append(s.count('"family":'))
            return super().write(s)

    with replayed():
        snap = live_snapshot.take(NetnsSpec(name="fixture"), compile_filter(""), keep_flows=True)
    out = Writes()
    snap.write_json(out, True)
    parts = [n for n in out.flows_per_write if n]
    assert sum(parts) == len(snap.flows) == 1200
    assert parts == [live_snapshot.JSON_FLOWS_AT_ONCE, 1200 - live_snapshot.JSON_FLOWS_AT_ONCE]
    assert len(json.loads(out.getvalue())["flows"]) == 1200


def test_the_human_pressure_line_shows_the_pressure_panels_counters() -> None:
    """The same counters as the TUI's Pressure panel, in its order (`invalid` was left out)."""
    from cttop.cli.snapshot import PRESSURE_SHOWN
    from cttop.live.counters import PRESSURE
    assert PRESSURE_SHOWN == tuple(PRESSURE)

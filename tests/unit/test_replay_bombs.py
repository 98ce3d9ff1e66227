"""Crafted recordings (they come attached to bug reports): each opens in bounded memory, as a one-line error or
a replay of what is sane, never a traceback. Measured on real child processes: `cttop replay FILE --info`, and
the live view (the TUI, headless) playing the file to its end."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cttop.sources import record as R
from cttop.sources.replay import index
from cttop.sources.replay.index import MAX_CPUS, MAX_NAMES, MAX_SPAN, Recording, Samples
from cttop.sources.replay.playback import ReplaySource
from cttop.sources.replay.reader import MAX_RATIO, RATIO_SLACK, ReplayError
from tests.conftest import CLI
from tests.unit.test_replay import DONE, DUMP, EVENTS, START, STATS_NAMES, Builder, pad

RSS_LIMIT_MB = 100
# A child past this is killed by the kernel rather than take the machine with it: a regression fails, not swaps.
AS_LIMIT = 2 << 30


def rec(kind: int, t: float, payload: bytes = b"") -> bytes:
    return R.REC.pack(kind, START + t, len(payload)) + payload


def keyframe(t: float, dump: list[bytes], with_meta: bool = False) -> bytes:
    meta = R._json({"format": R.VERSION, "label": "crafted", "start": START, "stats_names": STATS_NAMES})
    return ((rec(R.K_META, t, meta) if with_meta else b"") + rec(R.K_SYSCTLS, t, R._json({"nf_conntrack_max": "9"}))
            + rec(R.K_STATS, t, R._json({"count": len(dump), "max": 9, "cpus": [[0, *([1] * len(STATS_NAMES))]]}))
            + rec(R.K_DUMP_BEGIN, t) + rec(R.K_DUMP_DATA, t, b"".join(map(pad, dump)) + DONE)
            + rec(R.K_DUMP_END, t, R.DUMP_END.pack(len(dump))))


def write_member(path: Path, chunks: Iterable[bytes], target: int | None = None, finish: bool = True,
                 zeros: int = 0) -> None:
    """The header, then one gzip member of ``chunks`` (until the file is ``target`` bytes) and ``zeros`` MiB of
    zeros; level 9, as an attacker would. Unfinished, the member ends on a sync flush: readable, but with no end
    (a cut file). Zeros leave it unfinished: they are not all compressed (see compressed_zeros)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as f:
        f.write(R.HEADER.pack(R.MAGIC, R.VERSION, 0))
        for data in chunks:
            f.write(z.compress(data))
            if target is not None and f.tell() >= target:
                break
        f.write(z.flush(zlib.Z_FINISH if finish and not zeros else zlib.Z_SYNC_FLUSH))
        for block in compressed_zeros(z, zeros):
            f.write(block)


def compressed_zeros(z: Any, megabytes: int) -> Iterator[bytes]:
    """``megabytes`` MiB of zeros through ``z``, sync-flushed a MiB at a time. Once the window is all zeros every
    MiB compresses to the same bytes: those are repeated, not recomputed (compressing 3 GB takes ~20 s)."""
    zero = bytes(1 << 20)
    last: list[bytes] = []
    for _ in range(megabytes):
        if len(last) == 2 and last[0] == last[1]:
            yield last[1]
            continue
        out = z.compress(zero) + z.flush(zlib.Z_SYNC_FLUSH)
        last = [*last[-1:], out]
        yield out


def stats_bomb(path: Path, target: int = 655_000) -> None:
    """Valid stats records of 8192 CPUs each (the most a kernel has), every one ~300 KB of JSON that compresses
    to ~300 bytes: the old reader kept each as Python lists, 3 GB for 655 KB."""
    cpus = R._json({"count": 1, "max": 9, "cpus": [[0] * (1 + len(STATS_NAMES))] * MAX_CPUS})

    def chunks() -> Iterator[bytes]:
        yield keyframe(0, DUMP[:4], with_meta=True)
        for t in itertools.count(1):
            yield rec(R.K_STATS, t, cpus)

    write_member(path, chunks(), target)


def zeros_bomb(path: Path, megabytes: int = 3000) -> None:
    """~3 MB of compressed zeros (3 GB inflated) where the records should be."""
    write_member(path, [], zeros=megabytes)


def huge_length(path: Path, length: int, zeros: int, finish: bool = True) -> None:
    """A whole first keyframe, then an events record whose header claims ``length`` bytes, then ``zeros`` MiB."""
    head = keyframe(0, DUMP[:4], with_meta=True) + R.REC.pack(R.K_EVENTS, START + 1, length)
    write_member(path, [head], finish=finish, zeros=zeros)


def dump_bomb(path: Path, target: int = 655_000) -> None:
    """One dump of the same message repeated millions of times: one flow, not millions of rows."""
    chunk = pad(DUMP[0]) * 4000

    def chunks() -> Iterator[bytes]:
        yield keyframe(0, DUMP[:2], with_meta=True) + rec(R.K_DUMP_BEGIN, 1)
        while True:
            yield rec(R.K_DUMP_DATA, 1, chunk)

    write_member(path, chunks(), target)


def events_bomb(path: Path, target: int = 100_000) -> None:
    """Event records of the same NEW event over and over, each as big as a record may be."""
    one = pad(EVENTS[0])
    payload = one * ((R.MAX_RECORD - 64) // len(one))

    def chunks() -> Iterator[bytes]:
        yield keyframe(0, DUMP[:2], with_meta=True)
        for i in itertools.count(1):
            yield rec(R.K_EVENTS, i / 1000, payload)

    write_member(path, chunks(), target)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    peak_mb: float


# Runs the command as its own child and reports that child's peak RSS. Not measured from pytest's side: Linux
# carries a process's peak RSS across exec, so a child forked from pytest would start at pytest's own ~50 MB.
# From this small interpreter (-S: no site) the child starts at ~10 MB: the figure is an upper bound.
MEASURE = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[2]), int(sys.argv[2])))
pid = os.posix_spawn(sys.argv[3], sys.argv[3:], dict(os.environ))
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measured(args: list[str], tmp: Path) -> Run:
    """``args`` run with its peak RSS measured, and its address space capped at AS_LIMIT: a regression fails
    with MemoryError rather than take the shared machine with it."""
    rss = tmp / "rss"
    r = subprocess.run([sys.executable, "-S", "-c", MEASURE, str(rss), str(AS_LIMIT), *args], capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=600, check=False)
    return Run(r.returncode, r.stdout, r.stderr, int(rss.read_text()) / 1024)


# The live view on the recording, as `cttop replay FILE` opens it, but headless: played at full speed to its end,
# then it prints the time line's length and the flows on screen.
LIVE_VIEW = """
import sys
from cttop.errors import CttopError
from cttop.sources.replay.playback import ReplaySource
try:
    src = ReplaySource(sys.argv[1], speed=10000)
except CttopError as e:
    print(f"cttop: {e}", file=sys.stderr)
    sys.exit(2)
if src.recording.cut:
    print(f"cttop: {src.recording.cut}", file=sys.stderr)
from cttop.ui.app import CttopApp
app = CttopApp(src, read_only=True, interval=0.1)
async def to_the_end(pilot):
    while not src.at_end:
        await pilot.pause(0.1)
    await pilot.pause(0.5)  # a frame of the end
    print(len(src.timeline()), app.shown_frame.flows)
    app.exit()
app.run(headless=True, auto_pilot=to_the_end)
"""


def both_paths(path: Path) -> tuple[Run, Run]:
    info = measured([*CLI, "replay", str(path), "--info"], path.parent)
    live = measured([sys.executable, "-c", LIVE_VIEW, str(path)], path.parent)
    for r in (info, live):
        assert "Traceback" not in r.stderr, r.stderr
        assert r.peak_mb < RSS_LIMIT_MB, (path.name, r.peak_mb, r.stderr)
        print(f"{path.name}: peak RSS {r.peak_mb:.1f} MB, exit {r.returncode}: {r.stderr.strip()[:200]}")
    return info, live


def test_valid_stats_records_of_8192_cpus(tmp_path: Path) -> None:
    path = tmp_path / "stats.cttop"
    stats_bomb(path)
    assert 600_000 < path.stat().st_size < 700_000
    info, live = both_paths(path)
    # Valid records, but far more than a recorder writes per byte: read up to MAX_RATIO, and that much replays.
    assert info.returncode == 0 and live.returncode == 0, (info.stderr, live.stderr)
    doc = json.loads(info.stdout)
    m = re.fullmatch(rf"cttop: replay: {re.escape(str(path))} inflates more than {MAX_RATIO}:1 by byte (\d+), "
                     r"far more than any recording cttop writes \(a decompression bomb\?\); replaying its first "
                     r"([\d.]+) s, the rest is left out\n", info.stderr)
    assert m is not None, info.stderr
    assert live.stderr == info.stderr
    # What was read inflated to about MAX_RATIO times the bytes it came from, plus the slack.
    read = int(m.group(1))
    assert doc["duration"] == float(m.group(2)) and 100 < doc["duration"] < RATIO_SLACK + MAX_RATIO * read
    assert doc["end"]["count"] == 1 and doc["end"]["flows"] == 4
    samples, flows = live.stdout.split()
    assert int(samples) == doc["duration"] + 1 and int(flows) == 4  # every sample up to there, and the table


def test_three_megabytes_of_compressed_zeros(tmp_path: Path) -> None:
    path = tmp_path / "zeros.cttop"
    zeros_bomb(path)
    assert 3_000_000 < path.stat().st_size < 3_300_000
    for r in both_paths(path):
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith(f"cttop: replay: {path} is corrupt in bytes {R.HEADER.size}-")
        assert r.stderr.endswith(": bad record header (kind 0, 0 bytes)\n") and r.stderr.count("\n") == 1


def test_a_record_header_claiming_a_huge_length(tmp_path: Path) -> None:
    # Damage in the first segment, whose CRC is not reached: nothing in it is vouched for, the file is refused.
    for length in (0xFFFFFFFF, R.MAX_RECORD + 1):
        path = tmp_path / f"huge-{length}.cttop"
        huge_length(path, length, zeros=64)
        for r in both_paths(path):
            assert r.returncode == 2 and r.stdout == "", r.stderr
            assert r.stderr.startswith(f"cttop: replay: {path} is corrupt in bytes {R.HEADER.size}-")
            assert r.stderr.endswith(f": bad record header (kind {R.K_EVENTS}, {length} bytes)\n")
            assert r.stderr.count("\n") == 1


def test_a_record_of_the_largest_length_is_read_and_found_bad(tmp_path: Path) -> None:
    path = tmp_path / "max.cttop"
    huge_length(path, R.MAX_RECORD, zeros=64)
    for r in both_paths(path):
        assert r.returncode == 2 and "bad record at 1.000 s: netlink: message at byte 0 claims 0 bytes" in r.stderr


def test_a_record_of_the_largest_length_cut_short(tmp_path: Path) -> None:
    """The file ends inside the record: the reader held at most that record, and replays the keyframe before."""
    path = tmp_path / "cut.cttop"
    huge_length(path, R.MAX_RECORD, zeros=1, finish=False)
    for r in both_paths(path):
        assert r.returncode == 0 and f"was cut off at byte {path.stat().st_size} " in r.stderr, r.stderr


def test_one_message_repeated_as_a_dump(tmp_path: Path) -> None:
    path = tmp_path / "dump.cttop"
    dump_bomb(path)
    info, live = both_paths(path)
    # The dump never ends (no DUMP_END): only the keyframe before it replays.
    assert info.returncode == 0 and json.loads(info.stdout)["end"]["flows"] == 2
    assert live.returncode == 0 and live.stdout.split()[1] == "2"


def test_one_event_repeated_as_large_as_records_go(tmp_path: Path) -> None:
    path = tmp_path / "events.cttop"
    events_bomb(path)
    info, live = both_paths(path)
    assert info.returncode == 0 and live.returncode == 0
    doc = json.loads(info.stdout)
    assert doc["events"] > 100_000 and doc["end"]["flows"] == 3  # the keyframe's two, and the event's one


def test_json_that_would_swell_in_memory(tmp_path: Path) -> None:
    """2 MB of "[]," are 45 MB of lists once parsed, 2 MB of "1.5," 18 MB of floats: neither gets that far."""
    n = R.MAX_RECORD - 64
    cases = {"lists": b'{"count":1,"max":9,"cpus":[' + b"[]," * (n // 3 - 20) + b"[]]}",
             "floats": b'{"count":1,"max":9,"cpus":[' + b"1.5," * (n // 4 - 20) + b"1.5]}"}
    for name, payload in cases.items():
        path = tmp_path / f"{name}.cttop"
        damaged_second_segment(path, R.K_STATS, payload)
        for r in both_paths(path):
            assert r.returncode == 0 and "bad record at 1.000 s" in r.stderr, r.stderr


# --- the limits, one by one, without the bulk --------------------------------------------------------

def test_fifos_devices_directories_and_links_are_refused_without_opening_them(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a plain open would hang for good
    link = tmp_path / "link.cttop"
    link.symlink_to(tmp_path / "whatever")
    cases = {str(fifo): "is a FIFO, not a recording", "/dev/zero": "is a character device, not a recording",
             str(tmp_path): "is a directory, not a recording",
             str(link): "is a symbolic link; give the recording itself"}
    for path, why in cases.items():
        with pytest.raises(ReplayError) as e:
            Recording.open(path)
        assert str(e.value) in (f"replay: {path}: {why}", f"replay: {path} {why}")
        r = subprocess.run([*CLI, "replay", path, "--info"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and r.stderr == f"cttop: {e.value}\n"


def test_a_file_replaced_after_opening_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "r.cttop"
    stats_bomb(path, target=20_000)
    src = ReplaySource(str(path), paused=True)
    os.rename(path, tmp_path / "moved")
    stats_bomb(path, target=20_000)
    with pytest.raises(ReplayError, match="was replaced since it was opened"):
        src.seek(src.duration / 2)
        src.dump()


def damaged_second_segment(path: Path, kind: int, payload: bytes, t: float = 1) -> Recording:
    """A first segment as the recorder writes it, then a second whose keyframe is followed by ``payload``."""
    b = Builder(path)
    b.at(0).keyframe(DUMP[:2]).at(t).keyframe(DUMP[:2]).write(kind, payload).close()
    return Recording.open(str(path))


def test_stats_past_the_limits_are_damage(tmp_path: Path) -> None:
    names = len(STATS_NAMES)
    bad = {
        "too many cpus": {"count": 1, "max": 9, "cpus": [[0]] * (MAX_CPUS + 1)},
        "a cpu row too long": {"count": 1, "max": 9, "cpus": [[0] * (names + 2)]},
        "not integers": {"count": 1, "max": 9, "cpus": [[0, 1.5]]},
        "infinite count": {"count": 1e400, "max": 9, "cpus": []},
        "a count past 64 bits": {"count": 1 << 64, "max": 9, "cpus": []},
        "a value past 64 bits": {"count": 1, "max": 9, "cpus": [[0, 1 << 64]]},
        "not a mapping": [1, 2, 3],
        "a huge float among the values": {"count": 1, "max": 9, "cpus": [[0, 1e308, "x", None]]},
        "no cpus": {"count": 1, "max": 9},
    }
    for name, doc in bad.items():
        r = damaged_second_segment(tmp_path / f"{name}.cttop", R.K_STATS, json.dumps(doc).encode())
        # Whatever is wrong, the segment before it replays, and the damage is named in one line, in the file's
        # terms (not Python's: "'float' object cannot be interpreted as an integer").
        assert r.cut is not None and "bad record at 1.000 s" in r.cut and "\n" not in r.cut, (name, r.cut)
        assert "' object" not in r.cut and "interpreted" not in r.cut, (name, r.cut)
        assert r.duration == 0 and len(r.segments) == 1, name
    r = damaged_second_segment(tmp_path / "deep.cttop", R.K_SYSCTLS, b"[" * 100_000 + b"]" * 100_000)
    assert r.cut is not None and "bad record at 1.000 s" in r.cut
    r = damaged_second_segment(tmp_path / "many.cttop", R.K_SYSCTLS,
                               R._json({f"n{i}": "1" for i in range(MAX_NAMES + 1)}))
    assert r.cut is not None and "bad record at 1.000 s" in r.cut


def test_the_time_line_is_decimated_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "MAX_SAMPLES", 64)
    s = Samples()
    for i in range(1000):
        s.add(float(i), i, 5)
    assert 32 <= len(s) <= 64 and s.stride == 16
    ts = [x.t for x in s]
    assert ts == sorted(ts) and ts[0] == 0 and 1000 - 16 <= ts[-1] < 1000
    assert {b - a for a, b in zip(ts, ts[1:])} == {16.0}  # evenly spread over the whole recording


def test_a_recording_spanning_more_than_ten_years_is_damage(tmp_path: Path) -> None:
    r = damaged_second_segment(tmp_path / "far.cttop", R.K_LOST, b"", t=MAX_SPAN + 1)
    assert r.cut is not None and "from the start" in r.cut and r.duration == 0

"""`cttop record` on a namespace with real flows, replayed: the same table as the kernel's at record time."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cttop.kernel.decode import Decoder
from cttop.model import PROTO_NAMES, R_ID, R_SRC, Row, addr_text, state_name
from cttop.sources import record as R
from cttop.sources.record import K_DUMP_BEGIN, K_DUMP_DATA, K_DUMP_END, K_EVENTS
from cttop.sources.replay.index import Recording
from cttop.sources.replay.playback import ReplaySource, decode_events
from cttop.sources.replay.reader import Truncated, stream
from cttop.table.store import FlowTable
from tests.conftest import delete_netns, make_netns, sh
from tests.kernel.test_snapshot import INJECT, RULES
from tests.oracle import conntrack_count, conntrack_list, oracle_state

pytestmark = pytest.mark.kernel

MARKER = "10.66.66.66"


@dataclass
class Recorded:
    ns: str
    path: Path
    oracle: dict[int, dict[str, Any]]  # conntrack -L -o extended,id once the flows were made
    count: int  # conntrack -C at the end
    stderr: str


def wait_for_file(path: Path, proc: subprocess.Popen[str]) -> None:
    # The recorder creates the file only once its event socket is subscribed.
    for _ in range(1000):
        if path.exists():
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.01)
    raise AssertionError("the recorder never created its file")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Flows made before (no events: a dump sees them) and during the recording (events)."""
    ns = make_netns()
    path = tmp_path_factory.mktemp("rec") / "ns.cttop"
    traffic = rec = None
    try:
        sh("nft", RULES, netns=ns)
        for args in INJECT:
            sh("conntrack", "-I", *args, netns=ns)
        rec = subprocess.Popen(["cttop", "record", "--netns", ns, "-o", str(path), "--dump-interval", "10m"],
                               stderr=subprocess.PIPE, text=True)
        wait_for_file(path, rec)
        traffic = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "tests.traffic_mix", "120"],
                                   stdout=subprocess.PIPE, text=True)
        assert traffic.stdout is not None and traffic.stdout.readline().strip() == "READY"
        for i in range(5):
            sh("conntrack", "-I", "-p", "tcp", "-s", f"10.6.0.{i + 1}", "-d", "10.6.1.1", "--sport", "4000",
               "--dport", "443", "--state", "ESTABLISHED", "-u", "SEEN_REPLY,ASSURED", "-t", "300", netns=ns)
        sh("conntrack", "-D", "-s", "10.6.0.5", netns=ns)
        sh("conntrack", "-U", "-s", "10.6.0.4", "-m", "7", netns=ns)
        oracle = {f["id"]: f for f in conntrack_list(ns)}
        # The marker's NEW event is recorded after every change above.
        sh("conntrack", "-I", "-p", "udp", "-s", MARKER, "-d", "10.66.66.67", "--sport", "1", "--dport", "2",
           "-t", "300", netns=ns)
        count = conntrack_count(ns)
        rec.send_signal(signal.SIGINT)
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == 0, err
        yield Recorded(ns, path, oracle, count, err)
    finally:
        for p in (traffic, rec):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        delete_netns(ns)


def marker_of(rows: Iterator[Row] | list[Row]) -> list[Row]:
    return [r for r in rows if addr_text(r[R_SRC]) == MARKER]


def states(rows: Iterator[Row] | list[Row]) -> dict[int, str]:
    """id -> proto:STATE as conntrack(8) names them (it calls protocols it has no name for "unknown")."""
    return {r[R_ID]: f"{PROTO_NAMES.get(r[2], 'unknown')}:{state_name(r[2], r[3], r[4])}" for r in rows
            if addr_text(r[R_SRC]) != MARKER}


def oracle_states(oracle: dict[int, dict[str, Any]]) -> dict[int, str]:
    names = {"ipv6-icmp": "icmpv6"}
    return {i: f"{names.get(f['proto'], f['proto'])}:{oracle_state(f)}" for i, f in oracle.items()}


def test_the_recording_holds_dumps_events_and_stats(recorded: Recorded) -> None:
    rec = Recording.open(str(recorded.path))
    assert rec.meta["label"] == recorded.ns
    assert rec.dumps == 2  # the first keyframe and the closing dump
    assert rec.events > 10 and rec.lost == 0
    assert rec.stats[-1].count == recorded.count
    assert "recorded" in recorded.stderr


def test_events_alone_carry_every_change_made_while_recording(recorded: Recorded) -> None:
    """First dump + recorded events, up to the marker, equals the kernel's table then."""
    rec = Recording.open(str(recorded.path))
    dec = Decoder()
    table = FlowTable()
    dumps = 0
    rows: list[Row] = []
    for _seg, kind, _t, payload in stream(rec.path, rec.segments[0][0], rec.size):
        if kind == K_DUMP_BEGIN:
            dumps += 1
            assert dumps == 1, "reached the closing dump before the marker"
        elif kind == K_DUMP_DATA:
            dec.decode_chunk(payload, rows)
        elif kind == K_DUMP_END:
            table.extend(rows)
        elif kind == K_EVENTS:
            table.apply_events(decode_events(dec, payload))
            if marker_of(table.rows()):
                break
    assert states(table.rows()) == oracle_states(recorded.oracle)


def test_replay_seek_to_the_marker_shows_the_kernel_table(recorded: Recorded) -> None:
    rec = Recording.open(str(recorded.path))
    dec = Decoder()
    at = next(t for _s, kind, t, payload in stream(rec.path, rec.segments[0][0], rec.size)
              if kind == K_EVENTS and marker_of(r for _k, r in decode_events(dec, payload)))
    src = ReplaySource(str(recorded.path), paused=True)
    src.seek(at - rec.start)
    rows = src.dump()
    assert len(marker_of(rows)) == 1
    assert states(rows) == oracle_states(recorded.oracle)


def test_replay_played_through_ends_on_the_kernel_table(recorded: Recorded) -> None:
    """As the TUI's collector consumes it: one dump, then events (redumping if told to)."""
    src = ReplaySource(str(recorded.path), speed=1e6)
    table = FlowTable()
    src.subscribe()
    table.extend(src.dump())
    while not src.at_end:
        batch = src.events(0.05)
        if batch.lost:  # a fresh table for the dump, as the collector resyncs
            table = FlowTable()
            table.extend(src.dump())
        else:
            table.apply_events(batch.events)
    assert states(table.rows()) == oracle_states(recorded.oracle)
    assert len(marker_of(table.rows())) == 1
    assert src.stats().count == len(table) == recorded.count
    want = Counter(oracle_states(recorded.oracle).values())
    got = Counter(states(table.rows()).values())
    assert got == want


def test_replay_info_cli(recorded: Recorded) -> None:
    r = subprocess.run(["cttop", "replay", str(recorded.path), "--info"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["label"] == recorded.ns
    assert info["end"]["flows"] == info["end"]["count"] == recorded.count
    want = Counter(oracle_states(recorded.oracle).values())
    want["udp:UNREPLIED"] += 1  # the marker
    got: Counter[str] = Counter()
    for key, n in info["end"]["by_state"].items():
        proto, state = key.split(":")
        got["unknown:" + state if proto.isdigit() else key] += n
    assert got == want


def by_state_until(path: Path, end: float) -> dict[str, int]:
    """The table after every dump and event recorded up to ``end``, applied by hand; the cut is not read."""
    dec = Decoder()
    table = FlowTable()
    rows: list[Row] = []
    records = stream(str(path), R.HEADER.size, path.stat().st_size)
    try:
        for _seg, kind, t, payload in records:
            if t > end:
                break
            if kind == K_DUMP_BEGIN:
                rows = []
            elif kind == K_DUMP_DATA:
                dec.decode_chunk(payload, rows)
            elif kind == K_DUMP_END:
                table = FlowTable()  # each dump a table of its own, as the collector loads it
                table.extend(rows)
            elif kind == K_EVENTS:
                table.apply_events(decode_events(dec, payload))
    except Truncated:
        pass
    return dict(sorted(table.by_state.items()))


def test_a_cut_recording_replays_up_to_its_last_whole_record(recorded: Recorded, tmp_path: Path) -> None:
    data = recorded.path.read_bytes()
    cut = tmp_path / "cut.cttop"
    ends = set()
    for n in range(len(data) // 10, len(data), len(data) // 10):
        cut.write_bytes(data[:n])
        r = subprocess.run(["cttop", "replay", str(cut), "--info"], capture_output=True, text=True)
        if r.returncode == 2:  # cut inside the first keyframe: nothing whole to show
            assert not ends and r.stderr == f"cttop: replay: {cut} is truncated at byte {n}\n"
            continue
        assert r.returncode == 0, r.stderr
        assert r.stderr.startswith(f"cttop: replay: {cut} was cut off at byte {n} (the recorder did not finish): "
                                   "replaying its first ") and r.stderr.count("\n") == 1
        info = json.loads(r.stdout)
        assert info["bytes"] == n and info["dumps"] >= 1
        assert info["end"]["by_state"] == by_state_until(recorded.path, info["start"] + info["duration"])
        assert info["end"]["flows"] == sum(info["end"]["by_state"].values())
        ends.add(info["duration"])
    assert len(ends) > 1  # the cuts ended at different records


def test_a_flipped_byte_names_the_damaged_range(recorded: Recorded, tmp_path: Path) -> None:
    data = recorded.path.read_bytes()
    bad = tmp_path / "bad.cttop"
    pos = len(data) // 3
    flipped = bytearray(data)
    flipped[pos] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    r = subprocess.run(["cttop", "replay", str(bad), "--info"], capture_output=True, text=True)
    # One segment only (--dump-interval 10m): nothing before the damage is vouched for.
    assert r.returncode == 2 and r.stdout == ""
    m = re.fullmatch(rf"cttop: replay: {re.escape(str(bad))} is corrupt in bytes (\d+)-(\d+): .*\n", r.stderr)
    assert m is not None, r.stderr
    assert int(m.group(1)) == R.HEADER.size and pos < int(m.group(2)) <= len(data)


def test_a_recorder_killed_with_sigkill_leaves_a_replayable_file(netns: str, tmp_path: Path) -> None:
    path = tmp_path / "k9.cttop"
    for i in range(3):
        sh("conntrack", "-I", "-p", "udp", "-s", f"10.9.0.{i + 1}", "-d", "10.9.1.1", "--sport", "1", "--dport", "2",
           "-t", "300", netns=netns)
    rec = subprocess.Popen(["cttop", "record", "--netns", netns, "-o", str(path), "--dump-interval", "1s"],
                           stderr=subprocess.PIPE, text=True)
    try:
        assert rec.stderr is not None
        assert rec.stderr.readline().startswith(f"cttop record: recording network namespace {netns} to {path}")
        for i in range(3, 30):
            sh("conntrack", "-I", "-p", "udp", "-s", f"10.9.0.{i + 1}", "-d", "10.9.1.1", "--sport", "1",
               "--dport", "2", "-t", "300", netns=netns)
        # Wait for a keyframe or sync flush past the first keyframe to reach the file, then crash the recorder.
        size = path.stat().st_size
        while path.stat().st_size == size:
            assert rec.poll() is None
            time.sleep(0.05)
        rec.kill()
        rec.wait()
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    r = subprocess.run(["cttop", "replay", str(path), "--info"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    size = path.stat().st_size
    assert r.stderr.startswith(f"cttop: replay: {path} was cut off at byte {size} ") and r.stderr.count("\n") == 1
    info = json.loads(r.stdout)
    assert info["dumps"] >= 1
    assert info["end"]["by_state"] == by_state_until(path, info["start"] + info["duration"])
    assert 3 <= info["end"]["flows"] <= 30


def test_record_refuses_to_overwrite_without_force(netns: str, tmp_path: Path) -> None:
    path = tmp_path / "incident.cttop"
    path.write_bytes(b"the only copy")
    r = subprocess.run(["cttop", "record", "--netns", netns, "-o", str(path), "--duration", "0.2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr == f"cttop: record: {path} exists; give --force to overwrite it\n"
    assert path.read_bytes() == b"the only copy"
    r = subprocess.run(["cttop", "record", "--netns", netns, "-o", str(path), "--duration", "0.2", "--force"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert Recording.open(str(path)).cut is None


def test_record_names_its_own_namespace_in_words(tmp_path: Path) -> None:
    path = tmp_path / "own.cttop"
    r = subprocess.run(["cttop", "record", "-o", str(path), "--duration", "0.2"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    inode = os.stat("/proc/thread-self/ns/net").st_ino
    first = r.stderr.splitlines()[0]
    assert first.startswith("cttop record: recording this process's network namespace (")
    assert first.endswith(f"net:[{inode}]) to {path} for 0.2 s")
    path.unlink()  # the recording is of the host's table: keep nothing of it


def test_record_with_a_duration_stops_by_itself(netns: str, tmp_path: Path) -> None:
    path = tmp_path / "d.cttop"
    sh("conntrack", "-I", "-p", "udp", "-s", "10.4.0.1", "-d", "10.4.0.2", "--sport", "1", "--dport", "2",
       "-t", "300", netns=netns)
    r = subprocess.run(["cttop", "record", "--netns", netns, "-o", str(path), "--duration", "0.5s"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == f"cttop record: recording network namespace {netns} to {path} for 0.5 s"
    rec = Recording.open(str(path))
    assert 0.5 <= rec.duration < 30
    src = ReplaySource(str(path), paused=True)
    assert [addr_text(r[R_SRC]) for r in src.dump()] == ["10.4.0.1"]
    assert os.path.getsize(path) == rec.size


def test_record_errors_are_one_line(tmp_path: Path) -> None:
    r = subprocess.run(["cttop", "record", "--netns", "no-such-ns-cttop", "-o", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    # Nothing said of recording: it never began.
    assert r.stderr == "cttop: --netns no-such-ns-cttop: no such network namespace\n"
    r = subprocess.run(["cttop", "record", "-o", str(tmp_path / "nodir" / "x"), "--duration", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith(f"cttop: record: cannot write {tmp_path / 'nodir' / 'x'}")
    assert r.stderr.count("\n") == 1


# --- the file itself: full disks, links, modes ----------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a dump of a few thousand flows does not fit. Unmounted even on failure."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def udp_flows(ns: str, n: int) -> None:
    """``n`` real UDP flows (the namespace's output hook tracks them), far faster than n conntrack -I."""
    sh(sys.executable, "-c", "import socket\nu = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
       f"for p in range(1, {n + 1}): u.sendto(b'x', ('127.0.0.1', p))", netns=ns)


def test_a_full_disk_before_the_first_keyframe_removes_the_file(netns: str, tiny_disk: Path) -> None:
    udp_flows(netns, 6000)
    assert conntrack_count(netns) >= 6000
    path = tiny_disk / "full.cttop"
    r = subprocess.run(["cttop", "record", "--netns", netns, "-o", str(path), "--duration", "5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr == f"cttop: record: writing {path}: No space left on device; removed the partial file\n"
    assert os.listdir(tiny_disk) == []


def test_a_disk_filling_up_while_recording_keeps_the_replayable_part(netns: str, tiny_disk: Path) -> None:
    path = tiny_disk / "filling.cttop"
    rec = subprocess.Popen(["cttop", "record", "--netns", netns, "-o", str(path), "--duration", "120"],
                           stderr=subprocess.PIPE, text=True)
    try:
        assert rec.stderr is not None
        assert rec.stderr.readline().startswith(f"cttop record: recording network namespace {netns} to {path}")
        udp_flows(netns, 6000)  # their events do not fit
        err = rec.stderr.read()
        rec.wait(timeout=60)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    assert rec.returncode == 2 and "Traceback" not in err, err
    m = re.fullmatch(rf"cttop: record: writing {re.escape(str(path))}: No space left on device; kept its first "
                     r"([\d.]+) s, which `cttop replay` opens as a recording cut short\n", err)
    assert m is not None, err
    assert os.stat(path).st_mode & 0o777 == 0o600
    r = subprocess.run(["cttop", "replay", str(path), "--info"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    size = os.path.getsize(path)
    # Cut back to the last sync: nothing torn after it, so the reader loses nothing of what was kept.
    assert r.stderr.startswith(f"cttop: replay: {path} was cut off at byte {size} ")
    assert "the last 0.0 s before the cut are incomplete" in r.stderr
    assert json.loads(r.stdout)["duration"] == pytest.approx(float(m.group(1)), abs=0.06)


def test_force_never_writes_through_a_symbolic_link(netns: str, tmp_path: Path) -> None:
    target = tmp_path / "shadow"
    target.write_text("root:secret\n")
    target.chmod(0o600)
    link, dangling = tmp_path / "link.cttop", tmp_path / "dangling.cttop"
    link.symlink_to(target)
    dangling.symlink_to(tmp_path / "created-through-the-link")
    for path in (link, dangling):
        for force in ([], ["--force"]):
            r = subprocess.run(["cttop", "record", "--netns", netns, "-o", str(path), "--duration", "0.2", *force],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 2, r.stderr
            assert r.stderr == (f"cttop: record: {path} is a symbolic link; refusing to write through it (give the "
                                "file it points to, or remove the link)\n")
            assert path.is_symlink()
    assert target.read_text() == "root:secret\n" and target.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "created-through-the-link").exists()


def test_force_replaces_a_file_not_what_else_links_to_it(netns: str, tmp_path: Path) -> None:
    old, other = tmp_path / "old.cttop", tmp_path / "other-name"
    old.write_bytes(b"kept under its other name")
    os.link(old, other)
    r = subprocess.run(["cttop", "record", "--netns", netns, "-o", str(old), "--duration", "0.2", "--force"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert other.read_bytes() == b"kept under its other name"
    assert Recording.open(str(old)).cut is None and old.stat().st_nlink == 1
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    r = subprocess.run(["cttop", "record", "--netns", netns, "-o", str(fifo), "--duration", "0.2", "--force"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr == f"cttop: record: {fifo} exists and is not a regular file; refusing to replace it\n"


def test_recordings_are_created_0600_whatever_the_umask(netns: str, tmp_path: Path) -> None:
    path = tmp_path / "private.cttop"
    r = subprocess.run(["cttop", "record", "--netns", netns, "-o", str(path), "--duration", "0.2"],
                       capture_output=True, text=True, timeout=60, preexec_fn=lambda: os.umask(0))
    assert r.returncode == 0, r.stderr
    assert path.stat().st_mode & 0o777 == 0o600 and path.stat().st_uid == os.geteuid()

"""Recordings built from real kernel bytes (tests/fixtures), replayed: table, clock, seek, and damaged files."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cttop.kernel.decode import Decoder
from cttop.kernel.events import EventBatch
from cttop.kernel.framing import DecodeError, count_messages
from cttop.model import EV_DESTROY, EV_NEW, R_ID, Row
from cttop.sources import record as R
from cttop.sources.replay import playback as P
from cttop.sources.replay.index import Recording
from cttop.sources.replay.playback import ReplaySource, decode_events
from cttop.sources.replay.reader import ReplayError
from cttop.table.store import FlowTable
from tests.unit.test_decode import messages

DONE = struct.pack("<IHHIIi", 20, 3, 2, 0, 0, 0)
START = 1_700_000_000.0
STATS_NAMES = list(R.STATS_NAMES)


class FakeClock:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


def pad(m: bytes) -> bytes:
    return m + b"\0" * (-len(m) % 4)


def dump_rows(msgs: list[bytes]) -> list[Row]:
    d = Decoder()
    return [d.decode_one(m, 0, len(m)) for m in msgs]


DUMP = messages("dump_mix.bin")
EVENTS = messages("events_mix.bin")


def stats_payload(count: int) -> bytes:
    return R._json({"count": count, "max": 1000, "cpus": [[0, *range(len(STATS_NAMES))],
                                                          [1, *([2] * len(STATS_NAMES))]]})


class Builder:
    """A recording written with the real writer, on a clock the test moves."""

    def __init__(self, path: Path) -> None:
        self.clock = FakeClock()
        meta = {"format": R.VERSION, "label": "test", "start": START, "stats_names": STATS_NAMES}
        self.w = R.RecordingWriter(str(path), meta, self.clock)

    def at(self, t: float) -> Builder:
        self.clock.t = START + t
        return self

    def keyframe(self, dump: list[bytes], count: int | None = None, sysctls: dict[str, str] | None = None) -> Builder:
        self.w.keyframe()
        self.w.write(R.K_SYSCTLS, R._json(sysctls or {"nf_conntrack_max": "1000"}))
        self.w.write(R.K_STATS, stats_payload(len(dump) if count is None else count))
        return self.dump(dump)

    def dump(self, dump: list[bytes]) -> Builder:
        self.w.write(R.K_DUMP_BEGIN)
        self.w.write(R.K_DUMP_DATA, b"".join(map(pad, dump)) + DONE)
        self.w.write(R.K_DUMP_END, R.DUMP_END.pack(len(dump)))
        return self

    def events(self, evs: list[bytes]) -> Builder:
        self.w.write(R.K_EVENTS, b"".join(map(pad, evs)))
        return self

    def write(self, kind: int, payload: bytes = b"") -> Builder:
        self.w.write(kind, payload)
        return self

    def close(self) -> None:
        self.w.close()


@pytest.fixture
def rec(tmp_path: Path) -> str:
    """Segment 1 at 0 s: dump A (first half) + events; segment 2 at 10 s: dump B (second half) + events."""
    path = tmp_path / "r.cttop"
    b = Builder(path)
    b.at(0).keyframe(DUMP[:8]).at(1).events(EVENTS[:10]).at(2).write(R.K_STATS, stats_payload(20))
    b.at(3).events(EVENTS[10:20])
    b.at(10).keyframe(DUMP[8:], sysctls={"nf_conntrack_max": "2000"}).at(11).events(EVENTS[20:])
    b.at(12).close()
    return str(path)


def table_after(rows: list[Row], events: list[tuple[int, Row]]) -> FlowTable:
    t = FlowTable()
    t.extend(rows)
    t.apply_events(events)
    return t


def decoded(evs: list[bytes]) -> list[tuple[int, Row]]:
    return decode_events(Decoder(), b"".join(map(pad, evs)))


def ids(rows: Iterator[Row] | list[Row]) -> set[int]:
    return {r[R_ID] for r in rows}


def play_all(src: ReplaySource) -> Iterator[tuple[int, Row]]:
    while not src.at_end:
        b = src.events(0.01)
        assert not b.lost
        yield from b.events


def test_index_and_description(rec: str) -> None:
    r = Recording.open(rec)
    assert r.meta["label"] == "test"
    assert r.duration == 12
    assert [t - START for _, t in r.segments] == [0, 10]
    assert r.dumps == 2 and r.events == len(EVENTS) and r.lost == 0
    assert [s.count for s in r.stats] == [8, 20, len(DUMP) - 8]


def test_opens_on_the_first_keyframe(rec: str) -> None:
    src = ReplaySource(rec, paused=True)
    assert src.live is False and src.label == "r.cttop"
    assert ids(src.dump()) == ids(dump_rows(DUMP[:8]))
    assert src.now() == START
    assert src.sysctls() == {"nf_conntrack_max": "1000"}


def test_playing_through_equals_dump_plus_events(rec: str) -> None:
    src = ReplaySource(rec, speed=1e6)
    table = FlowTable()
    table.extend(src.dump())
    got = list(play_all(src))
    table.apply_events(got)
    # The second keyframe's dump arrives as the changes it makes: the consumer ends where the replay does.
    assert ids(table.rows()) == ids(src.table.rows())
    want = table_after(dump_rows(DUMP[8:]), decoded(EVENTS[20:]))
    assert ids(src.table.rows()) == ids(want.rows())
    assert table.by_state == want.by_state
    # Every recorded event was handed out, in order, before the keyframe's changes.
    evs = decoded(EVENTS)
    assert got[:20] == evs[:20]
    assert got[-len(evs[20:]):] == evs[20:]


def test_keyframe_changes_include_flows_that_vanished_without_an_event(rec: str) -> None:
    """No event is sent for a flow made before anyone listened; the next keyframe's dump tells."""
    src = ReplaySource(rec, speed=1e6)
    before = ids(table_after(dump_rows(DUMP[:8]), decoded(EVENTS[:20])).rows())
    silent = before - ids(dump_rows(DUMP[8:])) - {r[R_ID] for k, r in decoded(EVENTS) if k == EV_DESTROY}
    assert silent
    handed_out = list(play_all(src))
    assert silent <= {r[R_ID] for k, r in handed_out if k == EV_DESTROY}


def test_seek_rebuilds_from_the_keyframe_and_asks_for_a_redump(rec: str) -> None:
    src = ReplaySource(rec, paused=True)
    src.seek(2.5)
    assert src.position == 2.5
    want = table_after(dump_rows(DUMP[:8]), decoded(EVENTS[:10]))
    assert ids(src.dump()) == ids(want.rows())
    assert src.stats().count == 20  # the stats sample at 2 s
    assert src.events(0.0).lost  # a consumer's table is stale after a seek: redump
    assert not src.events(0.0).lost
    src.seek(10.5)
    assert ids(src.dump()) == ids(dump_rows(DUMP[8:]))
    assert src.sysctls() == {"nf_conntrack_max": "2000"}
    src.seek(-5)
    assert src.position == 0.0 and ids(src.dump()) == ids(dump_rows(DUMP[:8]))
    src.seek(1e9)
    assert src.position == 12 and src.at_end


def test_paused_hands_out_nothing_and_resume_continues(rec: str) -> None:
    src = ReplaySource(rec, paused=True, speed=1e6)
    assert src.events(0.0).events == []
    assert src.position == 0.0
    src.resume()
    assert list(play_all(src))
    assert src.at_end and src.position == 12


def test_stats_cpu_carries_every_name(rec: str) -> None:
    src = ReplaySource(rec, paused=True)
    cpus = src.stats_cpu()
    assert [c["cpu"] for c in cpus] == [0, 1]
    assert cpus[0] == {"cpu": 0, **{n: i for i, n in enumerate(STATS_NAMES)}}
    assert src.timeline() == [(0.0, 8, 1000), (2.0, 20, 1000), (10.0, len(DUMP) - 8, 1000)]


def test_events_in_small_slices_and_batches_play_the_same(rec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big events record is decoded a slice at a time and handed out in bounded batches: nothing lost, in order."""
    plain = ReplaySource(rec, speed=1e6)
    whole: list[tuple[int, Row]] = []
    batches = 0
    while not plain.at_end:
        b = plain.events(0.01)
        whole += b.events
        batches += bool(b.events)
    monkeypatch.setattr(P, "EVENT_SLICE", 3)
    monkeypatch.setattr(P, "MAX_BATCH", 4)
    src = ReplaySource(rec, speed=1e6)
    sizes = []
    got: list[tuple[int, Row]] = []
    while not src.at_end:
        b = src.events(0.01)
        sizes += [len(b.events)] if b.events else []
        got += b.events
    assert got == whole and ids(src.table.rows()) == ids(plain.table.rows())
    # Batches stop at MAX_BATCH plus what is left of a slice; the second keyframe's changes come as one.
    assert len([n for n in sizes if n > 4 + 3 - 1]) == 1 and len(sizes) > batches


def test_recorded_loss_reports_lost_with_the_resync_dump_applied(tmp_path: Path) -> None:
    path = tmp_path / "lost.cttop"
    b = Builder(path)
    b.at(0).keyframe(DUMP[:4]).at(1).events(EVENTS[:3]).at(2).write(R.K_LOST)
    b.at(2.1).keyframe(DUMP[4:9]).at(3).close()
    src = ReplaySource(str(path), speed=1e6)
    batches = []
    while not src.at_end:
        batches.append(src.events(0.01))
    assert any(x.lost for x in batches)
    assert ids(src.dump()) == ids(dump_rows(DUMP[4:9]))


def test_an_interrupted_dump_is_replaced_by_its_retry(tmp_path: Path) -> None:
    path = tmp_path / "intr.cttop"
    b = Builder(path)
    b.at(0).w.keyframe()
    b.write(R.K_STATS, stats_payload(3)).write(R.K_DUMP_BEGIN).write(R.K_DUMP_DATA, b"".join(map(pad, DUMP[:3])))
    b.dump(DUMP[3:6]).at(1).close()
    assert ids(ReplaySource(str(path)).dump()) == ids(dump_rows(DUMP[3:6]))


def test_speed_must_be_positive(rec: str) -> None:
    with pytest.raises(ReplayError, match="must be more than 0"):
        ReplaySource(rec, speed=0)


# --- damaged files --------------------------------------------------------------------------

def error_of(path: str) -> str:
    with pytest.raises(ReplayError) as e:
        Recording.open(path)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_not_a_recording(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"hello, this is not it")
    assert error_of(str(p)) == f"replay: {p} is not a cttop recording (no CTTOPREC header)"
    p.write_bytes(b"")
    assert "not a cttop recording" in error_of(str(p))
    assert error_of(str(tmp_path / "missing")) == f"replay: {tmp_path / 'missing'}: no such file"


def test_other_format_version(rec: str, tmp_path: Path) -> None:
    data = bytearray(Path(rec).read_bytes())
    struct.pack_into("<H", data, 8, 9)
    p = tmp_path / "v9"
    p.write_bytes(bytes(data))
    assert error_of(str(p)) == f"replay: {p} is format version 9; this cttop reads version 1"


def ids_at_end(path: str) -> set[int]:
    src = ReplaySource(path, paused=True)
    src.seek(src.duration)
    return ids(src.dump())


def ids_of_full_at(rec: str, t: float) -> set[int]:
    src = ReplaySource(rec, paused=True)
    src.seek(t)
    return ids(src.dump())


def test_cut_anywhere_opens_up_to_the_last_whole_record_or_says_truncated(rec: str, tmp_path: Path) -> None:
    """A cut inside the first keyframe leaves nothing to show; anywhere later, the part before it plays."""
    data = Path(rec).read_bytes()
    p = tmp_path / "t"
    opened = set()
    for n in list(range(1, len(data), max(1, len(data) // 150))) + [len(data) - 1]:
        p.write_bytes(data[:n])
        try:
            r = Recording.open(str(p))
        except ReplayError as e:
            assert not opened, (n, "a longer cut opened")
            assert str(e) == f"replay: {p} is truncated at byte {n}", (n, str(e))
            continue
        assert r.cut is not None and r.cut.startswith(f"replay: {p} was cut off at byte {n} "), (n, r.cut)
        assert "\n" not in r.cut and f"replaying its first {r.duration:.1f} s" in r.cut
        assert r.duration in (0, 1, 2, 3, 10, 11, 12), n  # only ever the time of a whole record
        # Playing to the end reads no further than the scan accepted: no error, and the table of that moment.
        assert ids_at_end(str(p)) == ids_of_full_at(rec, r.duration), n
        src = ReplaySource(str(p), speed=1e6)
        assert src.label == "t (cut short)"
        list(play_all(src))
        assert src.at_end and src.position == r.duration
        opened.add(r.duration)
    assert opened >= {0, 3, 11}


def test_a_recorder_killed_between_segments_opens_up_to_there(tmp_path: Path) -> None:
    path = tmp_path / "k.cttop"
    b = Builder(path)
    b.at(0).keyframe(DUMP[:4]).at(1).events(EVENTS[:3])
    b.w._out(b.w._z.flush(zlib.Z_FINISH))
    b.w.f.close()
    r = Recording.open(str(path))
    assert r.cut is not None and f"cut off at byte {os.path.getsize(path)} " in r.cut
    assert r.duration == 1 and r.events == 3 and r.dumps == 1
    assert ids_at_end(str(path)) == ids(table_after(dump_rows(DUMP[:4]), decoded(EVENTS[:3])).rows())


def test_a_cut_inside_a_keyframe_ends_before_it(rec: str, tmp_path: Path) -> None:
    """Killed while the second keyframe's dump was being written: its segment is not offered, nor its stats."""
    data = Path(rec).read_bytes()
    second = Recording.open(rec).segments[1][0]
    p = tmp_path / "mid"
    for n in range(second + 1, len(data)):
        p.write_bytes(data[:n])
        r = Recording.open(str(p))
        if r.duration == 10:
            break
        assert r.duration == 3 and len(r.segments) == 1 and r.dumps == 1
        assert [s.count for s in r.stats] == [8, 20]
        assert ids_at_end(str(p)) == ids_of_full_at(rec, 3)
        longest = data[:n]
    else:
        raise AssertionError("no cut ended after the second keyframe")
    # Cut just short of its end, the second keyframe's sysctls record is whole in the file, and still not played.
    p.write_bytes(longest)
    src = ReplaySource(str(p), paused=True)
    src.seek(src.duration)
    assert src.sysctls() == {"nf_conntrack_max": "1000"}


def range_of(msg: str) -> tuple[int, int]:
    m = re.search(r"is corrupt in bytes (\d+)-(\d+): ", msg)
    assert m is not None, msg
    return int(m.group(1)), int(m.group(2))


def test_flipped_bytes_name_the_damaged_range_and_the_whole_segments_before_play(rec: str, tmp_path: Path) -> None:
    data = Path(rec).read_bytes()
    second = Recording.open(rec).segments[1][0]
    p = tmp_path / "c"
    for pos in (30, second // 2, second + (len(data) - second) // 2, len(data) - 6):
        bad = bytearray(data)
        bad[pos] ^= 0x55
        p.write_bytes(bytes(bad))
        assert "corrupt at byte" not in (error_of(str(p)) if pos < second else Recording.open(str(p)).cut or "")
        if pos < second:
            msg = error_of(str(p))
            assert msg.startswith(f"replay: {p} is corrupt in bytes "), msg
            start, end = range_of(msg)
            # The range runs to where zlib noticed: a flip can make it read on past the segment's end.
            assert start == R.HEADER.size and pos < end, (pos, msg)
            continue
        r = Recording.open(str(p))
        assert r.cut is not None and "\n" not in r.cut
        start, end = range_of(r.cut)
        assert start == second and pos < end <= len(data), (pos, r.cut)
        assert r.cut.endswith(f"; replaying the 3.0 s before byte {second}, the rest is left out")
        assert r.duration == 3 and len(r.segments) == 1
        assert ids_at_end(str(p)) == ids_of_full_at(rec, 3)


def test_structural_damage_inside_valid_compression(tmp_path: Path) -> None:
    cases = {
        "backwards": lambda b: b.at(0).keyframe(DUMP[:2]).at(-1).events(EVENTS[:1]),
        "bad stats": lambda b: b.at(0).keyframe(DUMP[:2]).write(R.K_STATS, b"{not json"),
        "broken netlink": lambda b: b.at(0).keyframe(DUMP[:2]).write(R.K_EVENTS, EVENTS[0][:30]),
        "bad dump end": lambda b: b.at(0).keyframe(DUMP[:2]).write(R.K_DUMP_END, b"\1"),
    }
    for name, build in cases.items():
        path = tmp_path / name.replace(" ", "_")
        b = Builder(path)
        build(b)
        b.close()
        assert f"is corrupt in bytes {R.HEADER.size}-" in error_of(str(path)), name


def test_a_flow_that_does_not_decode_is_named_with_where_it_is_in_the_recording(tmp_path: Path) -> None:
    """The scan frames every record but decodes no flow (it would decode every dump of the recording to open
    it): an attribute's bad length inside well-framed netlink shows while playing, said with its time."""
    bad = bytearray(DUMP[8])
    struct.pack_into("<H", bad, 20, 0xFFF0)  # the first attribute's length, past the message's end
    path = tmp_path / "bad_attr.cttop"
    b = Builder(path)
    b.at(0).keyframe(DUMP[:8]).at(1).events(EVENTS[:10])
    b.at(10).keyframe([bytes(bad), *DUMP[9:]]).at(12).close()
    src = ReplaySource(str(path), speed=1e6)
    assert src.recording.cut is None and src.duration == 12  # the scan took it
    with pytest.raises(ReplayError) as e:
        while not src.at_end:
            src.events(0.01)
    assert str(e.value) == (f"replay: {path} is corrupt at 10.000 s of 12.000: ctnetlink: attribute at byte 20 "
                            "has bad length 65520")


def test_records_after_the_end_are_corrupt(rec: str, tmp_path: Path) -> None:
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    extra = z.compress(R.REC.pack(R.K_EVENTS, START + 20, 0)) + z.flush()
    p = tmp_path / "after"
    size = len(Path(rec).read_bytes())
    p.write_bytes(Path(rec).read_bytes() + extra)
    r = Recording.open(str(p))
    assert r.cut == (f"replay: {p} is corrupt in bytes {size}-{size + len(extra)}: records after the end marker; "
                     f"replaying the 12.0 s before byte {size}, the rest is left out")
    assert r.duration == 12 and r.dumps == 2


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_damage_is_a_replay_error(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    base = tmp_path_factory.getbasetemp() / "fuzz.cttop"
    if not base.exists():
        b = Builder(base)
        b.at(0).keyframe(DUMP[:8]).at(1).events(EVENTS[:10]).at(5).keyframe(DUMP[8:]).at(6).close()
    raw = bytearray(base.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    p = tmp_path_factory.getbasetemp() / "fuzzed.cttop"
    p.write_bytes(bytes(raw[:cut]))
    try:
        src = ReplaySource(str(p), speed=1e6)
    except ReplayError as e:
        assert "\n" not in str(e)
        return
    # Damage that survived the scan (CRC-valid) can only show up as a ReplayError while playing;
    # a file that was only cut plays to its end.
    try:
        src.seek(src.duration / 2)
        src.dump()
        while not src.at_end:
            src.events(0.01)
    except ReplayError:
        assert raw[:cut] != base.read_bytes()[:cut]


def test_cli_error_is_one_line_and_exit_2(rec: str, tmp_path: Path) -> None:
    p = tmp_path / "cut.cttop"
    p.write_bytes(Path(rec).read_bytes()[:100])
    r = subprocess.run(["cttop", "replay", str(p), "--info"], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == f"cttop: replay: {p} is truncated at byte 100\n"


def test_cli_opens_a_cut_recording_and_says_so_once(rec: str, tmp_path: Path) -> None:
    import json
    data = Path(rec).read_bytes()
    p = tmp_path / "cut.cttop"
    n = len(data) - 20
    p.write_bytes(data[:n])
    r = subprocess.run(["cttop", "replay", str(p), "--info"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr == f"cttop: {Recording.open(str(p)).cut}\n"
    assert r.stderr.startswith(f"cttop: replay: {p} was cut off at byte {n} ")
    info = json.loads(r.stdout)
    assert info["duration"] == Recording.open(str(p)).duration >= 10
    assert info["end"]["flows"] == len(ids_of_full_at(rec, info["duration"]))


def test_cli_at_outside_the_recording_is_refused(rec: str) -> None:
    for at in ("-5", "999", "12.5", "inf", "-inf", "nan"):  # inf and nan: its own check, as the range's for others
        r = subprocess.run(["cttop", "replay", rec, "--info", "--at", at], capture_output=True, text=True)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr == f"cttop: --at {float(at):g}: {rec} is 12.0 s long; give 0 to 12.0\n"
    r = subprocess.run(["cttop", "replay", rec, "--info", "--at", "12"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_cli_info_reports_the_end_state(rec: str) -> None:
    import json
    r = subprocess.run(["cttop", "replay", rec, "--info"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    want = table_after(dump_rows(DUMP[8:]), decoded(EVENTS[20:]))
    assert info["end"]["flows"] == len(want)
    assert info["end"]["by_state"] == dict(sorted(want.by_state.items()))
    assert info["events"] == len(EVENTS) and info["segments"] == 2 and info["duration"] == 12


def test_decode_events_classifies_like_the_live_socket() -> None:
    evs = decoded(EVENTS)
    kinds = {k for k, _ in evs}
    assert EV_NEW in kinds and EV_DESTROY in kinds and len(evs) == len(EVENTS)


def test_control_calls_never_wait_for_the_worker(rec: str) -> None:
    """The UI thread's calls must not block while the worker decodes or rebuilds (holding the data lock)."""
    src = ReplaySource(rec, paused=True)
    done: list[object] = []

    def ui() -> None:
        src.seek(3.0)
        done.append(src.position)
        src.resume()
        src.set_speed(4.0)
        src.pause()
        done.append(src.at_end)

    with src._lock:  # what a worker in the middle of a big dump holds
        t = threading.Thread(target=ui)
        t.start()
        t.join(timeout=10)
        assert not t.is_alive()
    assert done == [3.0, False]
    assert src.speed == 4.0 and src.paused


def test_a_seek_wakes_a_waiting_worker(rec: str) -> None:
    src = ReplaySource(rec, paused=True)
    got: list[EventBatch] = []
    t = threading.Thread(target=lambda: got.append(src.events(600.0)))
    t.start()
    src.seek(10.5)
    t.join(timeout=30)
    assert not t.is_alive() and got[0].lost
    assert ids(src.dump()) == ids(dump_rows(DUMP[8:]))


def test_message_count_strict_for_a_recording_lenient_for_a_chunk() -> None:
    """One counter: a received chunk is counted up to broken framing, a recording's payload refused at it."""
    two = struct.pack("=IHHII", 16, 0, 0, 0, 0) * 2
    broken = two + struct.pack("=IHHII", 4, 0, 0, 0, 0)  # claims less than its own header
    assert count_messages(two) == count_messages(two, strict=True) == 2
    assert count_messages(broken) == 2
    with pytest.raises(DecodeError):
        count_messages(broken, strict=True)

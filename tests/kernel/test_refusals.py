"""Clean refusals: bad numbers and unusable namespace paths get one line naming the option, never a traceback,
and nothing is started, written or changed (checked on the files and /proc/sys, not in cttop's words)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main

from cttop.cli import load_commands
from cttop.cli.app import app
from tests.conftest import run_cttop
from tests.unit.test_replay import DUMP, EVENTS, Builder

pytestmark = pytest.mark.kernel

LONG = "a" * 256  # one more than NAME_MAX: open(2) says ENAMETOOLONG
SYSCTL = "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close"  # namespaced, so `set` could reach it


def netns_commands() -> Iterator[tuple[str, ...]]:
    """Every command (and subcommand) that takes --netns, found in the app: a new one is checked too."""
    load_commands([])

    def walk(cmd: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if any(p.name == "netns" for p in getattr(cmd, "params", [])):
            yield path
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    return walk(typer.main.get_command(app), ())


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cttop: "), r.stderr
    return lines[0]


def test_an_over_long_netns_is_one_line_in_every_command(tmp_path: Path) -> None:
    close = Path(SYSCTL).read_text().strip()
    out = tmp_path / "rec.cttop"
    state = ["--state-dir", str(tmp_path / "state")]  # a journal of its own, should a change get through
    # What each command needs besides the namespace to get as far as opening it; the rest takes nothing.
    extra = {
        ("delete",): ["--filter", "udp", "--yes", *state], ("flush",): ["--yes", *state],
        ("undo",): ["--yes", *state], ("set",): [f"nf_conntrack_tcp_timeout_close={close}", "--yes", *state],
        ("notrack", "add"): ["udp dport 53", "--yes", *state], ("notrack", "remove"): ["--all", "--yes", *state],
        ("record",): ["-o", str(out), "--duration", "1"], ("export",): ["--listen", "127.0.0.1:1"],
        ("doctor",): ["--seconds", "0.1"],
    }
    commands = list(netns_commands())
    assert {(), ("snapshot",), ("record",), ("export",), ("notrack", "list")} <= set(commands)
    for cmd in commands:
        r = run_cttop(*cmd, *extra.get(cmd, []), "--netns", LONG)
        line = one_line(r)
        assert r.returncode == (3 if cmd == ("doctor",) else 2), (cmd, r.stderr)
        assert line == f"cttop: --netns {LONG}: File name too long", (cmd, line)
    assert not out.exists()
    assert Path(SYSCTL).read_text().strip() == close


@pytest.fixture
def odd_paths(tmp_path: Path) -> Iterator[dict[str, str]]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    plain = tmp_path / "plain"
    plain.write_text("x")
    yield {str(fifo): "not a network namespace", str(loop): "Too many levels of symbolic links",
           f"{plain}/x": "Not a directory", str(tmp_path / ("b" * 300)): "File name too long",
           str(plain): "not a network namespace"}


def test_any_error_opening_a_netns_path_is_one_line(odd_paths: dict[str, str]) -> None:
    # The FIFO has no writer: an open without O_NONBLOCK would hang here for good.
    for path, why in odd_paths.items():
        for cmd in (("snapshot",), ("record", "-o", f"{path}.rec", "--duration", "1")):
            r = run_cttop(*cmd, "--netns-path", path)
            assert r.returncode == 2 and one_line(r) == f"cttop: --netns-path {path}: {why}", (cmd, r.stderr)
            assert not os.path.exists(f"{path}.rec")


BAD_NUMBERS = ("nan", "inf", "-inf", "0", "-1", "1e308")


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("rec") / "r.cttop"
    b = Builder(path)
    b.at(0).keyframe(DUMP[:4]).at(1).events(EVENTS[:3]).at(2).close()
    return str(path)


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_seconds_and_intervals_out_of_range_are_refused(value: str, recording: str, tmp_path: Path) -> None:
    out = tmp_path / "rec.cttop"
    cases = [
        ((f"--interval={value}",), "'--interval' / '-i'", "0.1<=x<=3600", 2),
        (("doctor", f"--seconds={value}"), "'--seconds'", "0.1<=x<=3600", 3),  # doctor's usage status: unknown
        (("snapshot", f"--seconds={value}"), "'--seconds'", "0.1<=x<=3600", 2),
        (("replay", recording, "--info", f"--speed={value}"), "'--speed'", "0.01<=x<=10000", 2),
        (("lab", "--no-ui", f"--duration={value}"), "'--duration'", "0.1<=x<=86400", 2),
    ]
    for args, option, span, code in cases:
        r = run_cttop(*args)
        line = one_line(r)
        assert r.returncode == code and r.stdout == "", (args, r.stderr)
        assert f"Invalid value for {option}: " in line and f"is not in the range {span}" in line, line
    durations = [
        (("record", "-o", str(out), f"--duration={value}"), "--duration", "0.1s to 720h"),
        (("record", "-o", str(out), f"--dump-interval={value}"), "--dump-interval", "1s to 24h"),
        (("export", "--listen", "127.0.0.1:1", f"--resync={value}"), "--resync", "1s to 24h"),
    ]
    for args, option, span in durations:
        r = run_cttop(*args)
        assert r.returncode == 2 and one_line(r) == \
            f"cttop: {option} {value!r}: give a duration from {span}, such as 30, 30s, 5m or 1h", r.stderr
        assert not out.exists()
    r = run_cttop("replay", recording, "--info", f"--at={value}")
    if value != "0":
        assert r.returncode == 2 and one_line(r) == \
            f"cttop: --at {float(value):g}: {recording} is 2.0 s long; give 0 to 2.0", r.stderr
        assert r.stdout == ""
    else:
        assert r.returncode == 0, r.stderr


def test_too_many_digits_are_refused_not_read_as_infinity(tmp_path: Path) -> None:
    out = tmp_path / "rec.cttop"
    huge = "9" * 400  # float() of it is inf
    r = run_cttop("record", "-o", str(out), "--duration", huge)
    assert r.returncode == 2 and "give a duration from 0.1s to 720h" in one_line(r)
    assert not out.exists()

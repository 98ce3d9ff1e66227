"""The action commands as a script or a person runs them: a real process, a real namespace, a real terminal."""

from __future__ import annotations

import json
import os
import pty
import shlex
import subprocess
import termios
from pathlib import Path

import pytest

from cttop.actions.notrack.rules import NFT_TABLE
from tests.conftest import CLI, sh
from tests.conftest import run_cttop as cttop

pytestmark = pytest.mark.kernel
UDP = "net.netfilter.nf_conntrack_udp_timeout"


def udp_timeout(netns: str) -> str:
    return sh("sysctl", "-n", UDP, netns=netns).strip()


def test_no_terminal_and_no_yes_refuses(netns: str, tmp_path: Path) -> None:
    r = cttop("set", "udp_timeout=10", "--netns", netns, "--state-dir", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr == "cttop: no terminal to confirm on: pass --yes to apply without asking\n"
    assert udp_timeout(netns) == "30"
    assert not (tmp_path / "journal.jsonl").exists()


@pytest.mark.parametrize("assignment, message", [
    ("nf_conntrack_udp_timeout=abc", "cttop: nf_conntrack_udp_timeout=abc: not an integer\n"),
    ("udp_timeout=-3", "cttop: nf_conntrack_udp_timeout=-3: out of range 0..2147483\n"),
    ("bogus=1", "cttop: bogus: not a conntrack tunable cttop knows (see `cttop tunables`)\n"),
    ("udp_timeout", "cttop: 'udp_timeout': expected NAME=VALUE\n"),
])
def test_bad_values_one_line_exit_2(netns: str, tmp_path: Path, assignment: str, message: str) -> None:
    r = cttop("set", assignment, "--yes", "--netns", netns, "--state-dir", str(tmp_path))
    assert (r.returncode, r.stderr) == (2, message)
    assert udp_timeout(netns) == "30"


@pytest.mark.parametrize("where", ["after", "before", "env"])
def test_read_only_refuses_every_write(netns: str, tmp_path: Path, where: str) -> None:
    sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "53",
       "-t", "300", netns=netns)
    env = {"CTTOP_READ_ONLY": "1"} if where == "env" else {}
    before = ["--read-only"] if where == "before" else []  # cttop --read-only flush ...: the top-level option
    after = ["--read-only"] if where == "after" else []
    for args in (["set", "udp_timeout=10"], ["flush"], ["notrack", "add", "udp dport 53"], ["undo"],
                 ["delete", "--filter", "udp"], ["notrack", "remove", "--all"]):
        r = cttop(*before, *args, "--yes", "--netns", netns, "--state-dir", str(tmp_path), *after, env=env)
        assert r.returncode == 2 and r.stderr.startswith("cttop: read-only mode"), (args, r.stderr)
    assert udp_timeout(netns) == "30"
    assert "dport=53" in sh("conntrack", "-L", netns=netns)
    assert sh("nft", "list", "table", "inet", "cttop", netns=netns, check=False) == ""


def test_set_persist_journal_undo(netns: str, tmp_path: Path) -> None:
    state, etc = str(tmp_path / "state"), tmp_path / "etc"
    r = cttop("set", "udp_timeout=10", "--persist-dir", str(etc), "--yes", "--netns", netns, "--state-dir", state)
    assert r.returncode == 0, r.stderr
    assert f"ip netns exec {netns} sysctl -w {UDP}=10" in r.stdout and "done: set" in r.stdout
    assert udp_timeout(netns) == "10"
    assert f"{UDP} = 10" in (etc / "sysctl.d" / "90-cttop.conf").read_text()

    sh("sysctl", "-w", f"{UDP}=44", netns=netns)
    tun = json.loads(cttop("tunables", "--json", "--netns", netns, "--state-dir", state).stdout)
    entry = next(t for t in tun if t["name"] == "nf_conntrack_udp_timeout")
    assert entry["value"] == 44 and entry["default"] == 30 and entry["writable"]
    assert entry["drift"]["set"] == 10
    assert next(t for t in tun if t["name"] == "nf_conntrack_max")["why_not"].startswith("global")

    recs = json.loads(cttop("journal", "--json", "--state-dir", state).stdout)
    assert [r["kind"] for r in recs] == ["sysctl"] and recs[0]["netns"] == netns

    r = cttop("undo", "--yes", "--force", "--netns", netns, "--state-dir", state)
    refused = (f"cttop: change {recs[0]['id']} persisted to {etc}/sysctl.d/90-cttop.conf, but cttop writes "
               f"/etc/sysctl.d/90-cttop.conf here: pass --persist-dir {etc}")
    assert (r.returncode, r.stderr.strip()) == (2, refused)
    undo = ["undo", "--yes", "--persist-dir", str(etc), "--netns", netns, "--state-dir", state]
    r = cttop(*undo)
    assert r.returncode == 2 and "changed since" in r.stderr  # someone set 44 over cttop's 10
    assert udp_timeout(netns) == "44"
    r = cttop(*undo, "--force")
    assert r.returncode == 0, r.stderr
    assert udp_timeout(netns) == "30"
    assert not (etc / "sysctl.d" / "90-cttop.conf").exists()
    human = cttop("journal", "--state-dir", state).stdout
    assert "undone by" in human and "undo of" in human


def test_notrack_add_list_remove(netns: str, tmp_path: Path) -> None:
    state = str(tmp_path)
    r = cttop("notrack", "add", "udp dport 5353", "--yes", "--netns", netns, "--state-dir", state)
    assert r.returncode == 0, r.stderr
    assert "ct state untracked" in r.stdout
    [group] = json.loads(cttop("notrack", "list", "--json", "--netns", netns, "--state-dir", state).stdout)
    assert group["expr"] == "udp dport 5353" and len(group["rules"]) == 4
    assert sh("nft", "list", "table", "inet", "cttop", netns=netns).count(f"cttop:{group['id']}") == 4
    r = cttop("notrack", "remove", "--all", "--yes", "--netns", netns, "--state-dir", state)
    assert r.returncode == 0, r.stderr
    assert sh("nft", "list", "table", "inet", "cttop", netns=netns, check=False) == ""


def test_flush_with_filter(netns: str, tmp_path: Path) -> None:
    for port in (53, 53, 80):
        sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", str(1000 + port),
           "--dport", str(port), "-t", "300", netns=netns, check=False)
    r = cttop("flush", "--filter", "udp dport 53", "--yes", "--netns", netns, "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "done: flushed 1 flows" in r.stdout  # the same tuple twice is one entry
    assert r.stdout.count("cannot be undone") == 1, r.stdout
    left = sh("conntrack", "-L", netns=netns)
    assert "dport=53" not in left and "dport=80" in left
    r = cttop("delete", "--filter", "udp", "--yes", "--netns", netns, "--state-dir", str(tmp_path))
    assert r.returncode == 0 and "done: deleted 1 of 1" in r.stdout, r.stderr
    assert r.stdout.count("cannot be undone") == 1, r.stdout


def test_set_refuses_one_sysctl_twice_and_names_its_arguments(netns: str, tmp_path: Path) -> None:
    r = cttop("set", "udp_timeout=40", "nf_conntrack_udp_timeout=50", "--yes", "--netns", netns,
              "--state-dir", str(tmp_path))
    message = "nf_conntrack_udp_timeout given twice (udp_timeout=40, nf_conntrack_udp_timeout=50): give it once"
    assert (r.returncode, r.stderr) == (2, f"cttop: {message}\n")
    assert udp_timeout(netns) == "30"
    r = cttop("set")
    assert r.returncode == 2 and "Missing argument 'NAME=VALUE...'" in r.stderr and "{assignments}" not in r.stderr


def on_terminal(*args: str) -> tuple[int, str]:
    """Run cttop on a terminal where Enter (\"No\") is typed ahead; its exit code and everything it wrote."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO  # what was typed ahead is not part of what cttop wrote
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    try:
        p = subprocess.Popen([*CLI, *args], stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        os.write(master, b"\n")  # Enter alone is "No"
        seen = b""
        try:
            while chunk := os.read(master, 4096):
                seen += chunk
        except OSError:  # the terminal closes with the process
            pass
        code = p.wait(timeout=60)
    finally:
        os.close(master)
    return code, seen.decode().replace("\r\n", "\n")


def test_answering_no_on_a_terminal_changes_nothing(netns: str, tmp_path: Path) -> None:
    code, seen = on_terminal("set", "udp_timeout=10", "--netns", netns, "--state-dir", str(tmp_path))
    assert code == 1
    assert "sysctl -w" in seen and "[y/N]" in seen and "cancelled: nothing was changed" in seen
    assert udp_timeout(netns) == "30"
    assert not (tmp_path / "journal.jsonl").exists()


GLOBAL = "global setting: writable only from the initial namespace"


@pytest.mark.parametrize("args, message", [
    (["set", "nf_conntrack_max=1000"], f"nf_conntrack_max in namespace {{ns}}: {GLOBAL}"),
    (["set", "udp_timeout=10", "hashsize=1000000"], f"hashsize in namespace {{ns}}: {GLOBAL}"),
    (["flush", "-f", "udp dport 9"], "no flows match 'udp dport 9' in namespace {ns}"),
])
def test_refused_before_asking_in_one_line(netns: str, tmp_path: Path, args: list[str], message: str) -> None:
    sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "53",
       "-t", "300", netns=netns)
    code, seen = on_terminal(*args, "--netns", netns, "--state-dir", str(tmp_path))
    assert (code, seen) == (2, f"cttop: {message.format(ns=netns)}\n")  # no plan, no question
    r = cttop(*args, "--yes", "--netns", netns, "--state-dir", str(tmp_path))
    assert (r.returncode, r.stdout, r.stderr) == (2, "", seen)
    assert not (tmp_path / "journal.jsonl").exists()
    assert "dport=53" in sh("conntrack", "-L", netns=netns) and udp_timeout(netns) == "30"


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_flush_filter_is_refused_not_the_whole_table(netns: str, tmp_path: Path, blank: str) -> None:
    """`cttop flush --filter "$EXPR"` with the variable unset once flushed the whole table: a filter given is a
    narrowing asked for; only leaving it out means all."""
    sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", "1000", "--dport", "53",
       "-t", "300", netns=netns)
    for args in (["--filter", blank], [f"--filter={blank}"], ["-f", blank]):
        r = cttop("flush", *args, "--yes", "--netns", netns, "--state-dir", str(tmp_path))
        assert (r.returncode, r.stdout, r.stderr) == (
            2, "", "cttop: flush --filter '': an empty filter; leave --filter out to flush the whole table\n"), args
    assert "dport=53" in sh("conntrack", "-L", netns=netns)
    assert not (tmp_path / "journal.jsonl").exists()


@pytest.mark.parametrize(("args", "option"), [
    (["tunables", "--state-dir", ""], "'--state-dir'"),
    (["set", "udp_timeout=41", "--yes", "--state-dir", " "], "'--state-dir'"),
    (["set", "udp_timeout=41", "--yes", "--persist", "--persist-dir", ""], "'--persist-dir'"),
    (["notrack", "add", "udp dport 9", "--yes", "--persist", "--persist-dir", ""], "'--persist-dir'"),
    (["undo", "--yes", "--persist-dir", ""], "'--persist-dir'"),
    (["doctor", "--state-dir", ""], "'--state-dir'"),
])
def test_a_blank_path_option_is_refused_not_taken_for_its_default(netns: str, tmp_path: Path, args: list[str],
                                                                  option: str) -> None:
    """A blank --persist-dir meant /etc, and a blank --state-dir the default journal: refused in one line."""
    etc = {p: os.path.exists(p) for p in ("/etc/sysctl.d/90-cttop.conf", "/etc/nftables.d/cttop.nft")}
    env = {"CTTOP_STATE_DIR": str(tmp_path)}
    r = cttop(*args, "--netns", netns, env=env)
    assert r.returncode in (2, 3) and r.stdout == "", r  # doctor's usage errors exit 3 ("unknown")
    [line] = r.stderr.splitlines()
    assert f"Invalid value for {option}: an empty path; leave the option out for its default" in line, line
    assert udp_timeout(netns) == "30" and list(tmp_path.iterdir()) == []
    assert {p: os.path.exists(p) for p in etc} == etc
    assert f"table {NFT_TABLE} " not in sh("nft", "list", "ruleset", netns=netns)


def test_the_undo_command_printed_after_a_change_is_the_one_that_undoes_it(netns: str, tmp_path: Path) -> None:
    """It named the id alone: typed as printed, undo looked in the default journal and this namespace's
    own, and refused."""
    r = cttop("set", "udp_timeout=44", "--yes", "--netns", netns, "--state-dir", str(tmp_path))
    assert r.returncode == 0 and udp_timeout(netns) == "44", r.stderr
    line = r.stdout.splitlines()[-1]
    printed = line.split("undo with: ", 1)[1]
    assert printed.endswith(f"--netns {netns} --state-dir {tmp_path}"), line
    argv = shlex.split(printed)
    assert argv[:2] == ["cttop", "undo"]
    u = cttop(*argv[1:], "--yes")
    assert u.returncode == 0 and udp_timeout(netns) == "30", u.stderr


def test_missing_namespace_is_one_clean_line(tmp_path: Path) -> None:
    pid = next(p for p in range(999999, 2**22) if not os.path.exists(f"/proc/{p}"))
    for args in (["flush"], ["flush", "-f", "udp"], ["delete", "-f", "udp"], ["set", "udp_timeout=10"], ["undo"]):
        r = cttop(*args, "--netns-pid", str(pid), "--yes", "--state-dir", str(tmp_path))
        assert (r.returncode, r.stderr) == (2, f"cttop: --netns-pid {pid}: no such process\n"), args


@pytest.mark.parametrize(("args", "says"), [
    (["--netns", ""], "cttop: --netns '': give a name, as `ip netns list` shows it"),
    (["--netns", "cttop-no-such-ns-4e1"], "cttop: --netns cttop-no-such-ns-4e1: no such network namespace"),
    (["--netns-path", "/etc/hostname"], "cttop: --netns-path /etc/hostname: not a network namespace"),
    (["--netns-pid", "999999999"], "cttop: --netns-pid 999999999: no such process"),
])
def test_a_bad_namespace_option_is_named_in_one_line(args: list[str], says: str) -> None:
    r = cttop("snapshot", *args)
    assert (r.returncode, r.stderr.strip(), r.stdout) == (2, says, "")

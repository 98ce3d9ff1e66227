"""The write path tried as an attacker would, as root, with private state dirs and throwaway namespaces.

The oracle is the kernel (/proc/sys and `nft list ruleset` in the namespace) and
the files on disk, never cttop's own word: forged journal records are refused and
change nothing; a journal or persist file that is a symlink, or a state dir
someone else could write, is refused; hang-ups at random moments never leave a
change without its record; a full disk rolls the change back; two undos at once
undo once; a value changed since is left alone unless --force.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.actions.notrack import plans as notrack_plans
from cttop.actions.journal import MAX_JOURNAL_BYTES, Journal, Transaction
from cttop.actions.notrack.plans import AddNotrack, RemoveNotrack
from cttop.actions.sysctl_plan import SetSysctls
from cttop.kernel.netns import NetnsSpec
from tests.conftest import CLI, delete_netns, make_netns, sh
from tests.conftest import run_cttop as cttop

pytestmark = pytest.mark.kernel

UDP = "nf_conntrack_udp_timeout"
EST = "nf_conntrack_tcp_timeout_established"
UDP_KEY = f"net.netfilter.{UDP}"
NOBODY = 65534


@pytest.fixture
def ns() -> Iterator[str]:
    name = make_netns("hj-hard")
    try:
        yield name
    finally:
        delete_netns(name)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    d = tmp_path / "state"
    d.mkdir(mode=0o700)
    return d


def proc(ns: str, name: str) -> str:
    return sh("cat", f"/proc/sys/net/netfilter/{name}", netns=ns).strip()


def ruleset(ns: str) -> str:
    return sh("nft", "list", "ruleset", netns=ns)


def inode(ns: str) -> int:
    return os.stat(f"/run/netns/{ns}").st_ino


def tree(root: Path, skip: Path | None = None) -> dict[str, tuple[int, str]]:
    """Every path below ``root`` (not following links) with its mode and content: what a test compares."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None and Path(dirpath).is_relative_to(skip):
            continue
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            body = os.readlink(p) if p.is_symlink() else p.read_text(errors="replace") if p.is_file() else ""
            out[str(p)] = (st.st_mode, body)
    return out


def r_path(state: Path) -> str:
    return f"{state}/journal.jsonl"


def forge(state: Path, rec: dict[str, object], complete: bool = True) -> None:
    """Append a record to the journal as cttop's own lines would carry it: intent, then completion."""
    base: dict[str, object] = {"description": "d", "commands": [], "netns": "x", "undoable": True,
                               "before": {}, "after": {}, "time": time.time(), "uid": 0, "user": "root",
                               "state": "intent"}
    line = base | rec
    with open(state / "journal.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")
        if complete:
            f.write(json.dumps({"completes": line["id"], "after": line["after"], "summary": "s", "count": 1}) + "\n")


# --- forged records --------------------------------------------------------------------------------

def forged(case: str, ns_inode: int, victim: Path) -> dict[str, object]:
    sysctl = {"id": "aaaa0001", "kind": "sysctl", "netns_inode": ns_inode}
    if case == "append-to-a-file":  # a cron line as the key of a "persisted" setting
        return sysctl | {"before": {"values": {UDP: "30"}, "persist": {str(victim / "crontab"): {
            "* * * * * root touch /tmp/hj-pwned #": "1"}}},
            "after": {"values": {UDP: "10"}, "persist": {str(victim / "crontab"): {
                "* * * * * root touch /tmp/hj-pwned #": "2"}}}}
    if case == "delete-a-file":  # removing the only key would remove "cttop's" file
        return sysctl | {"before": {"values": {UDP: "30"}, "persist": {str(victim / "doomed"): {UDP_KEY: None}}},
                         "after": {"values": {UDP: "10"}, "persist": {str(victim / "doomed"): {UDP_KEY: "10"}}}}
    if case == "chmod-a-file":  # replacing a 0600 file with a 0644 one
        return sysctl | {"before": {"values": {UDP: "30"}, "persist": {str(victim / "secret"): {UDP_KEY: "30"}}},
                         "after": {"values": {UDP: "10"}, "persist": {str(victim / "secret"): {UDP_KEY: "10"}}}}
    if case == "a-line-injected-in-the-value":
        return sysctl | {"before": {"values": {UDP: "30"}, "persist": {str(victim / "sysctl.d/90-cttop.conf"): {
            UDP_KEY: "30\nkernel.core_pattern = |/tmp/hj-pwned"}}},
            "after": {"values": {UDP: "10"}, "persist": {str(victim / "sysctl.d/90-cttop.conf"): {UDP_KEY: "10"}}}}
    if case == "a-sysctl-outside-the-list":
        return sysctl | {"before": {"values": {"../../kernel/core_pattern": "|/tmp/hj-pwned"}},
                         "after": {"values": {"../../kernel/core_pattern": "core"}}}
    if case == "a-value-out-of-range":
        return sysctl | {"before": {"values": {UDP: "99999999999"}}, "after": {"values": {UDP: "10"}}}
    removal = {"id": "aaaa0001", "kind": "notrack-remove", "netns_inode": ns_inode}
    if case == "nft-add-table":
        text = "udp dport 53 notrack\nadd table inet hjevil"
        return removal | {"before": {
            "groups": [{"id": "bbbb0001", "expr": text, "backend": "nft"}],
            "rules": [{"id": "bbbb0001", "backend": "nft", "chain": "pre", "rule": text, "handle": None}]}}
    if case == "nft-policy-drop":
        chain = "pre { type filter hook input priority 0; policy drop; }"
        return removal | {"before": {
            "groups": [{"id": "bbbb0001", "expr": "udp dport 53 ; add chain inet cttop x { policy drop ; }",
                        "backend": "nft"}],
            "rules": [{"id": "bbbb0001", "backend": "nft", "chain": chain, "rule": "accept", "handle": None}]}}
    if case == "nft-backend-injected":
        return removal | {"before": {"groups": [{"id": "bbbb0001", "expr": "udp dport 53",
                                                 "backend": "nft -f /tmp/hj-evil.nft"}]}}
    raise AssertionError(case)


FORGED = ["append-to-a-file", "delete-a-file", "chmod-a-file", "a-line-injected-in-the-value",
          "a-sysctl-outside-the-list", "a-value-out-of-range", "nft-add-table", "nft-policy-drop",
          "nft-backend-injected"]


@pytest.mark.parametrize("case", FORGED)
def test_a_forged_record_is_damaged_refused_and_changes_nothing(ns: str, state: Path, tmp_path: Path,
                                                                  case: str) -> None:
    victim = tmp_path / "victim"
    (victim / "sysctl.d").mkdir(parents=True)
    (victim / "crontab").write_text("# m h dom mon dow user command\n")
    (victim / "doomed").write_text("# not cttop's\n")
    (victim / "secret").write_text("root:secret\n")
    (victim / "secret").chmod(0o600)
    (victim / "sysctl.d" / "90-cttop.conf").write_text("net.core.somaxconn = 1024\n")
    forge(state, forged(case, inode(ns), victim))
    files, rules, values = tree(tmp_path, skip=state), ruleset(ns), (proc(ns, UDP), proc(ns, EST))

    r = cttop("undo", "aaaa0001", "--yes", "--netns", ns, "--state-dir", str(state),
              "--persist-dir", str(tmp_path / "etc"))
    assert r.returncode == 2 and r.stdout == "", r
    assert r.stderr.startswith("cttop: change aaaa0001 is damaged in the journal (") and r.stderr.count("\n") == 1
    r = cttop("undo", "--yes", "--netns", ns, "--state-dir", str(state))  # the last undoable: not a damaged one
    assert (r.returncode, r.stderr) == (2, f"cttop: nothing to undo in namespace {ns} (journal {r_path(state)})\n")
    [listed] = json.loads(cttop("journal", "--json", "--state-dir", str(state)).stdout)
    assert listed["id"] == "aaaa0001" and listed["damaged"]
    assert "aaaa0001  damaged: " in cttop("journal", "--state-dir", str(state)).stdout

    assert tree(tmp_path, skip=state) == files and not (tmp_path / "etc").exists()
    assert ruleset(ns) == rules and "hjevil" not in rules
    assert (proc(ns, UDP), proc(ns, EST)) == values
    assert not os.path.exists("/tmp/hj-pwned")


def test_a_record_persisted_elsewhere_is_refused_without_writing_there(ns: str, state: Path,
                                                                         tmp_path: Path) -> None:
    """A path shaped like cttop's file, in another directory: undo writes only the files in force."""
    elsewhere = tmp_path / "elsewhere" / "sysctl.d" / "90-cttop.conf"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.write_text("# someone's file that happens to have cttop's name\n")
    elsewhere.chmod(0o600)
    forge(state, {"id": "aaaa0001", "kind": "sysctl", "netns_inode": inode(ns),
                  "before": {"values": {UDP: "30"}, "persist": {str(elsewhere): {UDP_KEY: None}}},
                  "after": {"values": {UDP: "10"}, "persist": {str(elsewhere): {UDP_KEY: "10"}}}})
    sh("sysctl", "-qw", f"{UDP_KEY}=10", netns=ns)
    files = tree(tmp_path, skip=state)
    r = cttop("undo", "aaaa0001", "--yes", "--netns", ns, "--state-dir", str(state),
              "--persist-dir", str(tmp_path / "etc"))
    refused = (f"cttop: change aaaa0001 persisted to {elsewhere}, but cttop writes "
               f"{tmp_path}/etc/sysctl.d/90-cttop.conf here: pass --persist-dir {tmp_path}/elsewhere\n")
    assert (r.returncode, r.stderr) == (2, refused)
    assert tree(tmp_path, skip=state) == files and proc(ns, UDP) == "10"


# --- state cttop did not make --------------------------------------------------------------------

@pytest.mark.parametrize("dangling", [False, True])
def test_a_journal_symlink_is_refused_and_its_target_untouched(ns: str, state: Path, tmp_path: Path,
                                                                 dangling: bool) -> None:
    target = tmp_path / "root-only"
    if not dangling:
        target.write_text("root's own\n")
        target.chmod(0o600)
    (state / "journal.jsonl").symlink_to(target)
    line = f"cttop: journal {state}/journal.jsonl: a symbolic link: refusing to follow it\n"
    for args in (["set", "udp_timeout=12", "--yes", "--netns", ns], ["undo", "--yes", "--netns", ns], ["journal"]):
        r = cttop(*args, "--state-dir", str(state))
        assert (r.returncode, r.stderr) == (2, line), args
    assert proc(ns, UDP) == "30"
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "root's own\n" and target.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("how, reason", [
    ("nobody", f"owned by uid {NOBODY} (nobody), not root or you"),
    ("0777", "writable by group and others (mode 0777)"),
    ("1777", "writable by group and others (mode 1777)"),
    ("0757", "writable by others (mode 0757)"),
])
def test_a_state_dir_others_could_write_is_refused_in_one_line(ns: str, state: Path, how: str,
                                                                 reason: str) -> None:
    forge(state, {"id": "aaaa0001", "kind": "sysctl", "netns_inode": inode(ns),
                  "before": {"values": {UDP: "7"}}, "after": {"values": {UDP: "30"}}})
    if how == "nobody":
        os.chown(state, NOBODY, NOBODY)
        state.chmod(0o755)
    else:
        state.chmod(int(how, 8))
    journal = (state / "journal.jsonl").read_bytes()
    line = f"cttop: journal directory {state}: {reason}: refusing to use it\n"
    for args in (["undo", "aaaa0001", "--yes", "--netns", ns], ["set", "udp_timeout=12", "--yes", "--netns", ns],
                 ["journal"], ["tunables", "--netns", ns], ["notrack", "list", "--netns", ns]):
        r = cttop(*args, "--state-dir", str(state))
        assert (r.returncode, r.stderr) == (2, line), args
    assert proc(ns, UDP) == "30"
    assert sorted(p.name for p in state.iterdir()) == ["journal.jsonl"]
    assert (state / "journal.jsonl").read_bytes() == journal


@pytest.mark.parametrize(("how", "reason"), [
    ("nobody", "owned by uid 65534 (nobody), not root or you"),
    ("0777", "writable by group and others (mode 0777)"),
])
def test_a_state_dir_under_a_parent_others_could_write_is_refused(ns: str, tmp_path: Path, how: str,
                                                                   reason: str) -> None:
    """The state dir itself is root's and 0700, but whoever owns (or may write) the directory above it can
    rename it away and put a link to a directory of root's in its place: refused, as sshd's StrictModes does."""
    parent = tmp_path / "shared"
    state = parent / "state"
    state.mkdir(parents=True, mode=0o700)
    forge(state, {"id": "aaaa0001", "kind": "sysctl", "netns_inode": inode(ns),
                  "before": {"values": {UDP: "7"}}, "after": {"values": {UDP: "30"}}})
    if how == "nobody":
        os.chown(parent, NOBODY, NOBODY)
    else:
        parent.chmod(int(how, 8))
    journal = (state / "journal.jsonl").read_bytes()
    line = f"cttop: journal directory {state}: the directory above it, {parent}, is {reason}: refusing to use it\n"
    for args in (["undo", "aaaa0001", "--yes", "--netns", ns], ["set", "udp_timeout=12", "--yes", "--netns", ns],
                 ["journal"]):
        r = cttop(*args, "--state-dir", str(state))
        assert (r.returncode, r.stderr) == (2, line), args
    assert proc(ns, UDP) == "30"
    assert (state / "journal.jsonl").read_bytes() == journal
    parent.chmod(0o1777)  # sticky and root's, as /tmp is: nobody can rename what is not theirs
    os.chown(parent, 0, 0)
    assert cttop("journal", "--state-dir", str(state)).returncode == 0


def test_a_state_dir_named_through_a_link_in_someone_elses_directory_is_refused(ns: str, tmp_path: Path) -> None:
    """Whoever owns a directory on the path as named can point a link there anywhere: the directories are
    checked as the path names them (the link's own directory too), not only where the link led."""
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    theirs.mkdir()
    ours.mkdir(mode=0o700)
    (theirs / "link").symlink_to(ours)
    os.chown(theirs, NOBODY, NOBODY)
    for state in (theirs / "link" / "state", theirs / "a" / "b"):
        r = cttop("set", "udp_timeout=47", "--yes", "--netns", ns, "--state-dir", str(state))
        assert r.returncode == 2 and r.stderr == (
            f"cttop: journal directory {state}: the directory above it, {theirs}, is owned by uid 65534 "
            "(nobody), not root or you: refusing to use it\n"), r.stderr
    assert proc(ns, UDP) != "47"
    # Nothing was made on the way: not in the link's target, not in their directory.
    assert list(ours.iterdir()) == [] and sorted(p.name for p in theirs.iterdir()) == ["link"]


def test_a_link_of_someone_elses_in_a_sticky_directory_is_not_followed(ns: str, tmp_path: Path) -> None:
    sticky, ours = tmp_path / "sticky", tmp_path / "ours"
    sticky.mkdir()
    sticky.chmod(0o1777)  # root's and sticky, as /tmp is
    ours.mkdir(mode=0o700)
    (sticky / "link").symlink_to(ours)
    os.lchown(sticky / "link", NOBODY, NOBODY)
    state = sticky / "link" / "state"
    r = cttop("set", "udp_timeout=47", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 2 and r.stderr == (
        f"cttop: journal directory {state}: the link {sticky / 'link'} is owned by uid 65534 (nobody), "
        "not root or you: refusing to follow it\n"), r.stderr
    assert list(ours.iterdir()) == [] and proc(ns, UDP) != "47"
    os.lchown(sticky / "link", 0, 0)  # root's own link there is followed, and the state dir made where it points
    r = cttop("set", "udp_timeout=47", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    assert proc(ns, UDP) == "47" and (ours / "state" / "journal.jsonl").is_file()


def test_a_persist_dir_under_a_directory_others_could_write_is_refused_and_nothing_made_in_it(
        ns: str, state: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    r = cttop("set", "udp_timeout=45", "--yes", "--persist", "--persist-dir", str(shared), "--netns", ns,
              "--state-dir", str(state))
    assert r.returncode == 2, r
    [line] = r.stderr.splitlines()
    assert line.startswith(f"cttop: directory {shared}/sysctl.d: the directory above it, {shared}, is writable by "
                           "group and others (mode 0777): refusing to use it"), line
    assert list(shared.iterdir()) == [] and proc(ns, UDP) != "45"


@pytest.mark.parametrize("dangling", [False, True])
def test_persist_through_a_symlinked_file_is_refused(ns: str, state: Path, tmp_path: Path, dangling: bool) -> None:
    etc = tmp_path / "etc"
    (etc / "sysctl.d").mkdir(parents=True)
    target = tmp_path / "shadow"
    if not dangling:
        target.write_text("root:secret:1:0\n")
        target.chmod(0o600)
    (etc / "sysctl.d" / "90-cttop.conf").symlink_to(target)
    files = tree(tmp_path, skip=state)
    r = cttop("set", "udp_timeout=12", "--persist-dir", str(etc), "--yes", "--netns", ns, "--state-dir", str(state))
    assert (r.returncode, r.stderr) == (2, f"cttop: {etc}/sysctl.d/90-cttop.conf: a symbolic link: refusing to follow it\n")
    assert tree(tmp_path, skip=state) == files and proc(ns, UDP) == "30"
    assert Journal(str(state)).records() == []


def test_the_nft_file_holds_only_rules_derived_from_the_journal_never_the_table_as_listed(
        ns: str, state: Path, tmp_path: Path) -> None:
    """Root in a container's namespace can add anything to its `inet cttop` table; persisting from there writes
    a file the host loads at boot. Only cttop's rules, derived again from their journaled filters, reach it."""
    r = cttop("notrack", "add", "udp dport 5300", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    [first] = json.loads(cttop("journal", "--json", "--state-dir", str(state)).stdout)
    sh("nft", "add chain inet cttop evil { type filter hook input priority 0; policy drop; }", netns=ns)
    sh("nft", "add rule inet cttop evil tcp dport 22 accept", netns=ns)
    sh("nft", f'add rule inet cttop pre tcp dport 22 drop comment "cttop:{first["id"]}"', netns=ns)
    sh("nft", 'add rule inet cttop out tcp dport 22 drop comment "cttop:deadbeef"', netns=ns)
    etc = tmp_path / "etc"
    r = cttop("notrack", "add", "udp dport 5301", "--persist", "--persist-dir", str(etc), "--yes", "--netns", ns,
              "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    text = (etc / "nftables.d" / "cttop.nft").read_text()
    assert "evil" not in text and "drop" not in text and "deadbeef" not in text, text
    # Loaded as the host would at boot, into a namespace of its own: cttop's two changes, 4 rules each.
    fresh = make_netns("hj-boot")
    try:
        sh("nft", "-f", str(etc / "nftables.d" / "cttop.nft"), netns=fresh)
        loaded = sh("nft", "list", "table", "inet", "cttop", netns=fresh)
    finally:
        delete_netns(fresh)
    assert "evil" not in loaded and "drop" not in loaded and "hook input" not in loaded
    rules = [line.strip() for line in loaded.splitlines() if "notrack" in line]
    second = re.search(r"^journal id (\w+)", r.stdout, re.MULTILINE)
    assert second is not None, r.stdout
    assert len(rules) == 8 and {line.split('"')[1] for line in rules} == {f"cttop:{first['id']}",
                                                                          f"cttop:{second[1]}"}, loaded


# --- no change without its record --------------------------------------------------------------------

HANGUPS = 40


@pytest.fixture
def hangups_kill() -> Iterator[None]:
    """A hang-up ends cttop as it ends a shell's child, even if this test run was started ignoring SIGHUP
    (children inherit that)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.usefixtures("hangups_kill")
def test_hangups_at_random_moments_never_leave_a_change_unrecorded(ns: str, state: Path) -> None:
    """40 SIGHUPs at random moments of `cttop set --yes` (half via --netns, half via ip netns exec)."""
    base = proc(ns, EST)

    def start(i: int) -> subprocess.Popen[bytes]:
        args = ["set", f"{EST}={1000 + i}", "--yes", "--state-dir", str(state)]
        cmd = [*CLI, *args, "--netns", ns] if i % 2 else ["ip", "netns", "exec", ns, *CLI, *args]
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    # How long a whole run takes here, and when its record starts, so the hang-ups land anywhere in it,
    # half of them around the change itself.
    spans, changes = [], []
    journal = state / "journal.jsonl"
    for i in range(3):
        size = journal.stat().st_size if journal.exists() else 0
        t0 = time.monotonic()
        p = start(-1 - i)
        while p.poll() is None:
            if not changes[i:] and journal.exists() and journal.stat().st_size > size:
                changes.append(time.monotonic() - t0)
            time.sleep(0.001)
        assert p.returncode == 0
        spans.append(time.monotonic() - t0)
        if not changes[i:]:  # written and done between two looks
            changes.append(spans[-1])
        sh("sysctl", "-qw", f"net.netfilter.{EST}={base}", netns=ns)
    span, change = max(spans), min(changes)
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    seen = {"killed before the change": 0, "completed": 0, "interrupted, recorded": 0, "changed, unrecorded": 0}
    for i in range(HANGUPS):
        p = start(i)
        time.sleep(rng.uniform(0, span * 1.1) if i % 4 < 2 else max(0.0, change + rng.uniform(-0.1, 0.1) * span))
        p.send_signal(signal.SIGHUP)
        _, err = p.communicate()
        assert b"Traceback" not in err, err
        now = proc(ns, EST)
        recs = {r.id: r for r in Journal(str(state)).records() if r.after.get("values", {}).get(EST) == str(1000 + i)}
        if now == base:
            seen["killed before the change" if not recs else "interrupted, recorded"] += 1
        elif now == str(1000 + i) and any(r.state == "complete" for r in recs.values()):
            seen["completed"] += 1
        elif now == str(1000 + i) and recs:
            seen["interrupted, recorded"] += 1
        else:
            seen["changed, unrecorded"] += 1
        sh("sysctl", "-qw", f"net.netfilter.{EST}={base}", netns=ns)
    print(f"\n{HANGUPS} hang-ups: {seen}")
    j = Journal(str(state))
    j.records()
    assert j.skipped == []  # no torn or half-written line either
    assert seen["changed, unrecorded"] == 0, seen
    assert seen["completed"] + seen["interrupted, recorded"] > 0 and seen["killed before the change"] > 0, seen


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 KiB tmpfs (4 pages), made root's and private like a state dir; unmounted even on failure."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "hj-tiny", str(mnt)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the file system is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass


def full_but(state: Path, ns: str) -> Iterator[int]:
    """Each room from 150 to 1650 bytes: the state dir emptied, a journal whose last 4 KiB page has that many
    bytes left (a record of filler text), and the rest of the file system filled."""
    for room in range(150, 1700, 50):
        for p in state.iterdir():
            p.unlink()
        pad = {"id": "ffff0000", "kind": "flush", "undoable": False, "netns_inode": inode(ns), "description": "",
               "time": 1.7e9}
        forge(state, pad)
        size = (state / "journal.jsonl").stat().st_size
        (state / "journal.jsonl").unlink()
        forge(state, pad | {"description": "x" * (4096 - room - size)})
        assert 4096 - (state / "journal.jsonl").stat().st_size == room
        fill(state / "filler")
        yield room


def test_a_full_disk_rolls_the_change_back_and_prints_no_undo_id(ns: str, tiny_fs: Path) -> None:
    """The journal's last page is left with more or less room: every outcome is all or nothing, and one
    of them is the change made, its record refused by the disk, and the change rolled back."""
    state = tiny_fs
    outcomes: dict[str, int] = {"refused before the change": 0, "rolled back": 0, "applied": 0}
    for room in full_but(state, ns):
        value = str(2000 + room)
        r = cttop("set", f"{EST}={value}", "--yes", "--netns", ns, "--state-dir", str(state))
        now = proc(ns, EST)
        data = (state / "journal.jsonl").read_bytes()
        assert data.endswith(b"\n"), room  # never a torn line left behind
        recs = Journal(str(state)).records()
        ours = [x for x in recs if x.kind == "sysctl"]
        if r.returncode == 0:
            outcomes["applied"] += 1
            [rec] = ours
            assert now == value and rec.state == "complete" and f"journal id {rec.id}" in r.stdout
        else:
            assert r.returncode == 2 and now == "432000", (room, r)
            assert "journal id" not in r.stdout and "undo with" not in r.stdout
            [line] = r.stderr.splitlines()
            assert f"journal {state}/journal.jsonl: No space left on device" in line, line
            if "rolled back" in line:
                outcomes["rolled back"] += 1
                assert line.endswith(": the change could not be recorded, so it was rolled back; nothing was "
                                     "changed"), line
                # The intent reached the disk: with no room for its abort either, it is listed as interrupted.
                assert all(x.state == "interrupted" and x.before["values"] == {EST: "432000"} for x in ours)
            else:
                outcomes["refused before the change"] += 1
                assert line.endswith("No space left on device; nothing was changed") and ours == []
        sh("sysctl", "-qw", f"net.netfilter.{EST}=432000", netns=ns)
    print(f"\nfull disk, by room left in the journal's page: {outcomes}")
    assert all(outcomes.values()), outcomes


def test_a_full_disk_after_a_flush_says_the_flows_were_deleted_and_keeps_its_intent(ns: str, tiny_fs: Path) -> None:
    """Deleted flows cannot be put back: where the disk takes the intent but not the completion, the flush
    stands and the message says so (it once said "rolled back; nothing was changed"), and the journal lists
    it as interrupted. Every room left in the last page gives one of the three outcomes, each all or nothing."""
    state = tiny_fs
    outcomes: dict[str, int] = {"refused before the change": 0, "made, unrecorded": 0, "applied": 0}
    for room in full_but(state, ns):
        for i in range(3):
            sh("conntrack", "-I", "-p", "udp", "-s", f"10.8.0.{i + 1}", "-d", "10.0.1.1", "--sport", "1",
               "--dport", "53", "-t", "100", netns=ns)
        r = cttop("flush", "--filter", "src 10.8.0.0/24", "--yes", "--netns", ns, "--state-dir", str(state))
        left = len(sh("conntrack", "-L", "-s", "10.8.0.0/24", netns=ns).splitlines())
        assert (state / "journal.jsonl").read_bytes().endswith(b"\n"), room
        ours = [x for x in Journal(str(state)).records() if x.id != "ffff0000"]
        if r.returncode == 0:
            outcomes["applied"] += 1
            [rec] = ours
            assert left == 0 and rec.state == "complete" and rec.count == 3, (room, r)
            continue
        assert r.returncode == 2, (room, r)
        [line] = r.stderr.splitlines()
        assert f"journal {state}/journal.jsonl: No space left on device" in line, line
        if left == 0:
            outcomes["made, unrecorded"] += 1
            assert "nothing was changed" not in line and "flushed 3 " in line, line
            assert line.endswith("(`cttop journal` lists it as interrupted); it cannot be taken back"), line
            [rec] = ours
            assert rec.state == "interrupted" and rec.kind == "flush", rec
        else:
            outcomes["refused before the change"] += 1
            assert left == 3 and line.endswith("nothing was changed") and ours == [], (room, line)
            sh("conntrack", "-D", "-s", "10.8.0.0/24", netns=ns)
    print(f"\nfull disk around a flush, by room left in the journal's page: {outcomes}")
    assert all(outcomes.values()), outcomes


@pytest.mark.parametrize("there", ["", "etc", "etc/sysctl.d"])
def test_a_persist_refused_by_a_full_disk_leaves_the_tree_as_it_was(ns: str, state: Path, tiny_fs: Path,
                                                                    there: str) -> None:
    """The persist directory on a full disk, the journal not: the value is rolled back, and the directories the
    write made for its file go with it (an empty sysctl.d/ was left behind). One that was there stays."""
    if there:
        (tiny_fs / there).mkdir(parents=True)
    fill(tiny_fs / "filler")
    before = tree(tiny_fs)
    etc = tiny_fs / "etc"
    r = cttop("set", f"{EST}=2000", "--persist", "--persist-dir", str(etc), "--yes", "--netns", ns,
              "--state-dir", str(state))
    assert r.returncode == 2 and r.stderr == (f"cttop: {etc}/sysctl.d/90-cttop.conf: No space left on device; "
                                              "nothing was changed\n"), r.stderr
    assert proc(ns, EST) == "432000"
    assert tree(tiny_fs) == before


@pytest.mark.parametrize("there", ["", "state"])
def test_a_first_record_refused_by_a_full_disk_leaves_no_state_dir_behind(ns: str, tiny_fs: Path,
                                                                          there: str) -> None:
    """The state dir on a full disk, not there yet: the change is refused before it is made, and the journal, its
    lock file and the directories made for them go (an empty state dir was left). One that was there stays."""
    if there:
        (tiny_fs / there).mkdir(mode=0o700)
    fill(tiny_fs / "filler")
    before = tree(tiny_fs)
    state = tiny_fs / "state" / "sub"
    r = cttop("set", f"{EST}=2000", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 2 and r.stderr == (f"cttop: journal {state}/journal.jsonl: No space left on device; "
                                              "nothing was changed\n"), r.stderr
    assert proc(ns, EST) == "432000"
    assert tree(tiny_fs) == before


@pytest.mark.parametrize("torn", [False, True])
def test_a_journal_too_large_to_read_back_is_refused_before_the_change(ns: str, state: Path, torn: bool) -> None:
    """A change recorded in a journal that undo then refuses to read would have no usable record: the size
    is checked when the journal is opened to record, before anything changes, and nothing is cut from it."""
    journal = state / "journal.jsonl"
    with open(journal, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.seek(MAX_JOURNAL_BYTES)  # sparse: zeros, no newline, then one byte more
        f.write(b"\n" if not torn else b"x")
    size = journal.stat().st_size
    assert size == MAX_JOURNAL_BYTES + 1
    before = proc(ns, UDP)
    r = cttop("set", "udp_timeout=58", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 2 and r.stdout == "", r
    assert r.stderr == f"cttop: journal {journal}: larger than 64 MiB: not a file cttop wrote\n", r.stderr
    assert proc(ns, UDP) == before and journal.stat().st_size == size


def test_a_torn_last_line_is_cut_with_one_warning_and_the_next_record_is_whole(ns: str, state: Path) -> None:
    r = cttop("set", "udp_timeout=11", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    journal = state / "journal.jsonl"
    whole = journal.read_bytes()
    with open(journal, "ab") as f:
        f.write(b'{"id":"cccc0003","kind":"sysctl","descr')  # a crash mid-write
    r = cttop("journal", "--state-dir", str(state))
    assert r.stderr == (f"cttop: warning: journal {journal}: line 3 is cut short (a crash or a full disk "
                        "mid-write); left out\n")
    r = cttop("set", "udp_timeout=12", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0 and r.stderr.count("warning:") == 1 and "line 3 is cut short" in r.stderr, r
    data = journal.read_bytes()
    assert data.startswith(whole) and b"cccc0003" not in data
    lines = data.splitlines()
    assert len(lines) == 4 and all(isinstance(json.loads(x), dict) for x in lines)
    r = cttop("journal", "--json", "--state-dir", str(state))
    assert r.stderr == "" and [x["state"] for x in json.loads(r.stdout)] == ["complete", "complete"]
    assert proc(ns, UDP) == "12"


# --- one change at a time, checked -------------------------------------------------------------------

ROUNDS = 15


def test_two_undos_at_once_undo_the_change_exactly_once(ns: str, state: Path) -> None:
    for i in range(ROUNDS):
        r = cttop("set", f"udp_timeout={40 + i}", "--yes", "--netns", ns, "--state-dir", str(state))
        assert r.returncode == 0, r.stderr
        change = json.loads(cttop("journal", "--json", "--state-dir", str(state)).stdout)[-1]["id"]
        # Half the rounds name the change, half take "the last undoable" one.
        args = [*CLI, "undo", *([change] if i % 2 else []), "--yes", "--netns", ns, "--state-dir", str(state)]
        procs = [subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        results = [(p.wait(), p.communicate()) for p in procs]
        assert sorted(code for code, _ in results) == [0, 2], results
        [(_, (_, err))] = [x for x in results if x[0] == 2]
        assert (err.startswith(f"cttop: change {change} was already undone by ")
                or err == f"cttop: nothing to undo in namespace {ns} (journal {r_path(state)})\n"), err
        undos = [x for x in Journal(str(state)).records() if x.undoes == change]
        assert len(undos) == 1 and undos[0].state == "complete"
        assert proc(ns, UDP) == "30"


def test_the_record_describes_the_values_read_under_the_lock_not_when_the_plan_was_made(ns: str, state: Path) -> None:
    """Another change lands between showing a plan and applying it: the record's before values and its
    description both say what the kernel held when the lock was taken."""
    plan = SetSysctls(NetnsSpec(name=ns), {UDP: "12"}, journal=Journal(str(state)))
    assert f"{UDP}: 30 -> 12" in plan.describe()
    sh("sysctl", "-qw", f"{UDP_KEY}=55", netns=ns)  # e.g. a cttop beside this one, done first
    plan.apply()
    [rec] = Journal(str(state)).records()
    assert rec.before["values"] == {UDP: "55"} and proc(ns, UDP) == "12"
    assert f"{UDP}: 55 -> 12" in rec.description, rec.description


def test_a_value_changed_since_is_left_alone_unless_forced(ns: str, state: Path) -> None:
    r = cttop("set", "udp_timeout=17", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    [rec] = json.loads(cttop("journal", "--json", "--state-dir", str(state)).stdout)
    sh("sysctl", "-qw", f"{UDP_KEY}=55", netns=ns)  # behind cttop's back
    r = cttop("undo", rec["id"], "--yes", "--netns", ns, "--state-dir", str(state))
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (f"cttop: {UDP} changed since change {rec['id']}: it is 55 now, not the 17 that change set; "
                        "--force restores 30 anyway\n")
    assert proc(ns, UDP) == "55"
    r = cttop("undo", rec["id"], "--yes", "--force", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    assert "changed since; undo writes 30 over it" in r.stdout
    assert proc(ns, UDP) == "30"


def test_a_change_cut_off_after_the_kernel_write_is_listed_as_interrupted_and_can_be_undone(
        ns: str, state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies (here: an exception no handler takes) between the kernel write and the completion."""
    def die(self: Transaction, *args: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(Transaction, "complete", die)
    with pytest.raises(SystemExit):
        SetSysctls(NetnsSpec(name=ns), {EST: "7200"}, journal=Journal(str(state))).apply()
    monkeypatch.undo()
    assert proc(ns, EST) == "7200"  # changed, and then nothing more happened
    r = cttop("journal", "--state-dir", str(state))
    assert "[interrupted, undoable]" in r.stdout and f'before: {{"values": {{"{EST}": "432000"}}' in r.stdout, r
    # What it was setting, from its description's every line (only "Set in namespace X:" showed).
    assert f"\n    Set in namespace {ns}:\n    " in r.stdout and f"{EST}: 432000 -> 7200" in r.stdout, r.stdout
    [rec] = json.loads(cttop("journal", "--json", "--state-dir", str(state)).stdout)
    assert rec["state"] == "interrupted" and rec["after"]["values"] == {EST: "7200"}
    r = cttop("undo", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0 and f"Undo change {rec['id']}" in r.stdout, r
    assert proc(ns, EST) == "432000"
    assert "undone by" in cttop("journal", "--state-dir", str(state)).stdout


@pytest.mark.parametrize("kind", ["notrack-add", "notrack-remove"])
def test_an_interrupted_notrack_change_that_never_reached_the_kernel_is_undone_as_nothing_to_do(
        ns: str, state: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut off after its intent and before nft ran: the ruleset is as before, so its undo has nothing to do.
    It is recorded as undone, not refused, or a plain `undo` would stop on it and never reach older changes."""
    r = cttop("set", "udp_timeout=24", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    if kind == "notrack-remove":
        r = cttop("notrack", "add", "udp dport 53", "--yes", "--netns", ns, "--state-dir", str(state))
        assert r.returncode == 0, r.stderr

    def die(*args: object) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(notrack_plans, "transact", die)
    spec, journal = NetnsSpec(name=ns), Journal(str(state))
    plan = AddNotrack(spec, "tcp dport 22", journal=journal) if kind == "notrack-add" \
        else RemoveNotrack(spec, None, journal=journal)
    with pytest.raises(SystemExit):
        plan.apply()
    monkeypatch.undo()
    rules = ruleset(ns)
    [cut] = [x for x in json.loads(cttop("journal", "--json", "--state-dir", str(state)).stdout)
             if x["id"] == plan.id]
    assert cut["state"] == "interrupted" and cut["kind"] == kind
    r = cttop("undo", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0 and f"Undo change {plan.id}" in r.stdout and "commands: none\n" in r.stdout, r
    assert ruleset(ns) == rules  # nothing added or removed
    [undo] = [x for x in Journal(str(state)).records() if x.undoes == plan.id]
    assert undo.state == "complete" and undo.count == 0
    # The next plain undo reaches the change before it.
    r = cttop("undo", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0 and f"Undo change {plan.id}" not in r.stdout, r
    if kind == "notrack-add":
        assert proc(ns, UDP) == "30"
    else:
        assert "table inet cttop {" not in ruleset(ns)  # the add undone too: its rules and table gone


@pytest.mark.parametrize("args", [["journal"], ["journal", "--json"], ["undo", "--yes", "--netns", "@"],
                                  ["tunables", "--netns", "@"], ["tunables", "--json", "--netns", "@"],
                                  ["doctor", "--seconds", "0.1", "--netns", "@"], ["notrack", "list", "--netns", "@"]])
def test_bad_journal_lines_are_left_out_with_one_warning_each_in_every_command(ns: str, state: Path,
                                                                                 args: list[str]) -> None:
    r = cttop("set", "udp_timeout=11", "--yes", "--netns", ns, "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    with open(state / "journal.jsonl", "ab") as f:
        f.write(b'[1,2,3]\n\xff\xfe{"id": 1}\n{"id": "aaaa0002", "kind": "sysctl", "description": 5}\n')
    r = cttop(*[ns if a == "@" else a for a in args], "--state-dir", str(state))
    assert "Traceback" not in r.stderr and r.returncode in (0, 1), r
    warnings = [line for line in r.stderr.splitlines() if line.startswith("cttop: warning:")]
    j = f"{state}/journal.jsonl"
    assert warnings == [f"cttop: warning: journal {j}: line 3 is not a JSON object; left out",
                        f"cttop: warning: journal {j}: line 4 is not UTF-8 text; left out",
                        f"cttop: warning: journal {j}: line 5 has no 'commands'; left out"], r
    if args[0] == "undo":
        assert proc(ns, UDP) == "30"  # the sound change before the bad lines was found and undone

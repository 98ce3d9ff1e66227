"""Persisted files: only cttop's keys change, others' lines stay, the shown command writes the same file,
and nothing is written through a link or into someone else's file."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cttop.actions import persist as P
from cttop.actions import safeopen
from cttop.actions.errors import ActionError

OTHERS = "# local tuning\nnet.core.somaxconn = 4096\n-net.netfilter.nf_conntrack_max=1\nvm.swappiness=10\n"


def test_sysctl_set_replaces_only_its_key_and_keeps_others() -> None:
    text = P.sysctl_set(OTHERS, "net.netfilter.nf_conntrack_max", "524288")
    assert text.splitlines() == ["# local tuning", "net.core.somaxconn = 4096",
                                 "net.netfilter.nf_conntrack_max = 524288", "vm.swappiness=10"]
    assert P.sysctl_get(text, "net.netfilter.nf_conntrack_max") == "524288"
    assert P.sysctl_get(OTHERS, "net.netfilter.nf_conntrack_max") == "1"


def test_sysctl_set_appends_and_none_removes() -> None:
    text = P.sysctl_set(OTHERS, "net.netfilter.nf_conntrack_udp_timeout", "10")
    assert text.endswith("net.netfilter.nf_conntrack_udp_timeout = 10\n")
    back = P.sysctl_set(text, "net.netfilter.nf_conntrack_udp_timeout", None)
    assert back == OTHERS


def test_sysctl_duplicates_collapse_to_one_line() -> None:
    text = "a.b = 1\nnet/netfilter/x = 2\nnet.netfilter.x=3\n"
    assert P.sysctl_set(text, "net.netfilter.x", "4") == "a.b = 1\nnet.netfilter.x = 4\n"


def test_new_file_gets_a_header() -> None:
    text = P.sysctl_set(None, "net.netfilter.x", "4")
    assert text.startswith("# Written by cttop")
    assert P.only_comments(P.sysctl_set(text, "net.netfilter.x", None))


def test_modprobe_merges_into_the_options_line() -> None:
    text = "blacklist foo\noptions nf_conntrack expect_hashsize=1024\n"
    merged = P.modprobe_set(text, "65536")
    assert merged == "blacklist foo\noptions nf_conntrack expect_hashsize=1024 hashsize=65536\n"
    assert P.modprobe_get(merged) == "65536"
    replaced = P.modprobe_set(merged, "131072")
    assert replaced == "blacklist foo\noptions nf_conntrack expect_hashsize=1024 hashsize=131072\n"
    assert P.modprobe_set(replaced, None) == text


def test_modprobe_new_line_and_removal_drops_empty_options() -> None:
    text = P.modprobe_set("blacklist foo\n", "65536")
    assert text == "blacklist foo\noptions nf_conntrack hashsize=65536\n"
    assert P.modprobe_set(text, None) == "blacklist foo\n"


def test_paths_under_a_directory() -> None:
    p = P.PersistPaths.under("/tmp/x")
    assert p.sysctl_file == "/tmp/x/sysctl.d/90-cttop.conf"
    assert p.file_for("hashsize") == "/tmp/x/modprobe.d/cttop.conf"
    assert p.file_for("net.netfilter.nf_conntrack_max") == p.sysctl_file
    assert p.nft_file == "/tmp/x/nftables.d/cttop.nft"


def test_write_command_writes_exactly_the_text(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.conf"
    text = "# it's cttop's\nnet.netfilter.x = 1\nodd $HOME `x` \\n %s\n"
    subprocess.run(["sh", "-c", P.write_command(str(target), text)], check=True)
    assert target.read_text() == text
    subprocess.run(["sh", "-c", P.write_command(str(target), None)], check=True)
    assert not target.exists()


def test_write_text_is_atomic_and_removal_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "d" / "f"
    P.write_text(str(target), "one\n")
    assert target.read_text() == "one\n"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    P.write_text(str(target), None)
    P.write_text(str(target), None)
    assert not target.exists()
    assert [p.name for p in (tmp_path / "d").iterdir()] == []


def test_removing_a_file_makes_no_directory(tmp_path: Path) -> None:
    """`notrack remove --all` removes the nft file: where it never was, it made an empty nftables.d/ (and the
    persist directory) to remove nothing from."""
    P.write_text(str(tmp_path / "etc" / "nftables.d" / "cttop.nft"), None)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writes_temporary_file_goes_with_the_next_write(tmp_path: Path) -> None:
    """SIGKILL between the temporary file and its rename leaves `.f.cttop-XXXXXXXX`: the next write of f removes
    it, and nothing else: not another file's, not one of another user's, not a link, not a look-alike."""
    d = tmp_path / "d"
    d.mkdir()
    stale = d / ".f.cttop-a7e9f36f"
    stale.write_text("half a file")
    kept = {".g.cttop-a7e9f36f": "other file's", ".f.cttop-a7e9f36": "short", ".f.cttop-a7e9f36fx": "long",
            ".f.cttop-A7E9F36F": "not ours", ".f.cttop-00000000": "someone else's"}
    for name, text in kept.items():
        (d / name).write_text(text)
    os.chown(d / ".f.cttop-00000000", 65534, 65534)
    (d / ".f.cttop-11111111").symlink_to(d / ".g.cttop-a7e9f36f")
    P.write_text(str(d / "f"), "whole\n")
    assert (d / "f").read_text() == "whole\n" and not stale.exists()
    assert {p.name: p.read_text() for p in d.iterdir() if not p.is_symlink() and p.name != "f"} == kept
    assert (d / ".f.cttop-11111111").is_symlink()


# --- never through a link, never someone else's file, the mode kept -----------------------------------

def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "f.conf"
    target.write_text("a = 1\n")
    target.chmod(0o600)
    P.write_text(str(target), "a = 2\n")
    assert target.read_text() == "a = 2\n" and stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlinked_file_is_refused_and_its_target_not_copied(tmp_path: Path, dangling: bool) -> None:
    d = tmp_path / "sysctl.d"
    d.mkdir()
    target = tmp_path / "shadow"
    if not dangling:
        target.write_text("root:secret\n")
        target.chmod(0o600)
    link = d / "90-cttop.conf"
    link.symlink_to(target)
    message = f"{link}: a symbolic link: refusing to follow it"
    for act in (lambda: P.read_text(str(link)), lambda: P.check_writable(str(link)),
                lambda: P.write_text(str(link), "x = 1\n"), lambda: P.write_text(str(link), None)):
        with pytest.raises(ActionError, match=message):
            act()
    assert link.is_symlink() and sorted(p.name for p in d.iterdir()) == ["90-cttop.conf"]
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "root:secret\n" and stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files owned by someone else")
def test_someone_elses_file_or_directory_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "sysctl.d"
    d.mkdir()
    conf = d / "90-cttop.conf"
    conf.write_text("a = 1\n")
    os.chown(conf, 65534, 65534)
    with pytest.raises(ActionError, match=f"{conf}: owned by uid 65534.*refusing to use it"):
        P.write_text(str(conf), "a = 2\n")
    os.chown(conf, 0, 0)
    d.chmod(0o777)
    with pytest.raises(ActionError, match=f"directory {d}: writable by group and others"):
        P.write_text(str(conf), "a = 2\n")
    assert conf.read_text() == "a = 1\n"


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "f.conf")
    with pytest.raises(ActionError, match="not a regular file"):
        P.read_text(str(tmp_path / "f.conf"))


def disk_full(monkeypatch: pytest.MonkeyPatch, first: Callable[[], None] = lambda: None) -> None:
    """Every write of a file's text fails as on a full disk, after ``first``."""
    def write_all(fd: int, data: bytes) -> None:
        first()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(safeopen, "write_all", write_all)


@pytest.mark.parametrize("there", ["", "etc", "etc/sysctl.d"])
def test_a_failed_write_takes_back_the_directories_it_made(tmp_path: Path, there: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A write the disk refuses leaves the tree as it was: the directories it made go (it left an empty sysctl.d/
    behind), one that was there stays. tests/kernel/test_hardening_journal.py fills a real file system."""
    if there:
        (tmp_path / there).mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    disk_full(monkeypatch)
    conf = tmp_path / "etc" / "sysctl.d" / "90-cttop.conf"
    with pytest.raises(ActionError, match=f"^{conf}: No space left on device$"):
        P.write_text(str(conf), "a = 1\n")
    assert sorted(tmp_path.rglob("*")) == before


def test_a_directory_it_made_that_is_no_longer_empty_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an empty directory is taken back: a file someone put in one the write made keeps it and those above
    it; the empty one below it goes."""
    etc = tmp_path / "new" / "etc"
    disk_full(monkeypatch, lambda: (etc / "someone's").write_text("x"))
    with pytest.raises(ActionError, match="No space left on device"):
        P.write_text(str(etc / "sysctl.d" / "90-cttop.conf"), "a = 1\n")
    assert sorted(tmp_path.rglob("*")) == [tmp_path / "new", etc, etc / "someone's"]


def test_a_directory_made_again_is_listed_once_and_taken_back_with_those_above(tmp_path: Path) -> None:
    """The journal's lock retry walks the same path again after another cttop took the state dir back: listed
    twice, remove_made stopped at the second listing (already gone) and left the directory above it."""
    state = tmp_path / "var" / "lib" / "cttop"
    made: list[str] = []
    for walk in range(2):
        fd = safeopen.open_dir(str(state), "directory", 0o700, made)
        assert fd is not None
        os.close(fd)
        if walk == 0:
            os.rmdir(state)  # taken back by another cttop between the two walks: the second makes it again
    assert made == [str(tmp_path / "var"), str(tmp_path / "var" / "lib"), str(state)]
    safeopen.remove_made(made, "directory")
    assert list(tmp_path.iterdir()) == []


def test_persist_dir_of_knows_only_cttops_files() -> None:
    assert P.persist_dir_of("/etc/sysctl.d/90-cttop.conf") == "/etc"
    assert P.persist_dir_of("/tmp/x/modprobe.d/cttop.conf", P.MODPROBE_LAYOUT) == "/tmp/x"
    assert P.persist_dir_of("/tmp/x/modprobe.d/cttop.conf", P.SYSCTL_LAYOUT) is None
    for bad in ("/etc/passwd", "sysctl.d/90-cttop.conf", "/etc/../root/sysctl.d/90-cttop.conf",
                "/etc/sysctl.d/90-cttop.conf/", "/etc//sysctl.d/90-cttop.conf"):
        assert P.persist_dir_of(bad) is None, bad

"""The audit trail: each change that ends (completed, rolled back, cut off) is one authpriv line on the
syslog socket, naming who, where, which change and its commands, escaped and bounded; no syslog is no error."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cttop.actions import audit
from cttop.actions.errors import ActionError
from cttop.actions.journal import COMPLETE, INTERRUPTED, Journal, Record, Transaction
from cttop.actions.plan import set_read_only
from tests.audit_helpers import Syslog, syslog  # noqa: F401  (the fixture)
from tests.unit.test_actions_plan import Recorder

AUTHPRIV_NOTICE, AUTHPRIV_WARNING = 10 * 8 + 5, 10 * 8 + 4


@pytest.fixture(autouse=True)
def writable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    monkeypatch.delenv("SUDO_USER", raising=False)
    set_read_only(False)
    yield


def proc_loginuid() -> str:
    with open("/proc/self/loginuid") as f:
        value = f.read().strip()
    return "unset" if value == "4294967295" else value


def test_a_completed_change_is_one_authpriv_notice_line(syslog: Syslog, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    p = Recorder(Journal(str(tmp_path)), {"x": 1})
    p.apply()
    line = syslog.next()
    assert (line.pri, line.pid) == (AUTHPRIV_NOTICE, os.getpid())
    assert line.text == (f'change {p.id} applied: uid={os.getuid()} loginuid={proc_loginuid()} '
                         f'sudo_user="alice" netns="{p.spec.label()}" netns_inode={p.spec.inode()} kind="test" '
                         f'summary="x=2" command="echo 2 > x"')
    assert syslog.pending() == []


def test_without_sudo_there_is_no_sudo_user(syslog: Syslog, tmp_path: Path) -> None:
    Recorder(Journal(str(tmp_path)), {"x": 1}).apply()
    assert "sudo_user=" not in syslog.next().text


def test_an_undo_says_which_change_it_undid(syslog: Syslog) -> None:
    undo = Record(id="bbbb0002", kind="sysctl", description="d", commands=["sysctl -w a=1"], netns="ns",
                  netns_inode=7, undoable=False, undoes="aaaa0001")
    audit.send([audit.Ending(undo, audit.COMPLETED, "restored")])
    text = syslog.next().text
    assert text.startswith("change bbbb0002 undid change aaaa0001: ") and ' undoes="aaaa0001" ' in text


def test_a_failed_change_is_a_warning_saying_it_was_rolled_back(syslog: Syslog, tmp_path: Path) -> None:
    p = Recorder(Journal(str(tmp_path)), {"x": 1}, fail_change=True)
    with pytest.raises(ActionError):
        p.apply()
    line = syslog.next()
    assert line.pri == AUTHPRIV_WARNING
    assert line.text.startswith(f"change {p.id} failed and was rolled back: ")
    assert 'reason="x: kernel refused; nothing was changed"' in line.text


def test_a_change_left_interrupted_says_so(syslog: Syslog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(str(tmp_path))

    def broken(self: Transaction, *args: object) -> None:
        raise ActionError(f"journal {j.path}: No space left on device")

    # Neither the completion nor the abort can be written: the journal keeps the intent, as interrupted.
    monkeypatch.setattr(Transaction, "complete", broken)
    monkeypatch.setattr(Transaction, "abort", broken)
    p = Recorder(j, {"x": 1})
    with pytest.raises(ActionError):
        p.apply()
    [r] = j.records()
    assert r.state == INTERRUPTED
    line = syslog.next()
    assert line.pri == AUTHPRIV_WARNING
    assert line.text.startswith(f"change {p.id} was interrupted; ")
    assert "No space left on device: the change could not be recorded, so it was rolled back" in line.text


def test_a_validation_refusal_changes_nothing_and_logs_nothing(syslog: Syslog, tmp_path: Path) -> None:
    with pytest.raises(ActionError):
        Recorder(Journal(str(tmp_path)), {"x": 1}, fail_validate=True).apply()
    assert syslog.pending() == []


def hostile_record(commands: list[str]) -> Record:
    return Record(id="abcd1234", kind="test", description="d", commands=commands,
                  netns='evil\n<13>cttop[1]: forged\x1b[2J "q"', netns_inode=7, undoable=True)


def test_control_characters_are_escaped_and_the_line_stays_one(syslog: Syslog) -> None:
    audit.send([audit.Ending(hostile_record(["nft add rule x\r\nrm -rf /"]), audit.COMPLETED, "ok\x07")])
    line = syslog.next()
    assert not any(b < 0x20 or b == 0x7F for b in line.raw)
    assert 'netns="evil\\x0a<13>cttop[1]: forged\\x1b[2J \\"q\\""' in line.text
    assert 'command="nft add rule x\\x0d\\x0arm -rf /"' in line.text and 'summary="ok\\x07"' in line.text


def test_a_long_line_is_cut_to_the_bound_commands_last(syslog: Syslog) -> None:
    commands = [f"nft add rule inet cttop pre ip saddr 10.0.{i}.0/24 notrack comment cttop:{i:060}"
                for i in range(60)]
    audit.send([audit.Ending(hostile_record(commands), audit.COMPLETED, "added")])
    line = syslog.next()
    assert len(line.raw) == audit.MAX_BYTES and line.text.endswith(audit.CUT_MARK)
    assert f'netns_inode=7 kind="test" summary="added" command="{commands[0]}"' in line.text


def test_a_cut_never_splits_a_character(syslog: Syslog) -> None:
    audit.send([audit.Ending(hostile_record(["é" * 3000]), audit.COMPLETED, "")])
    line = syslog.next()  # decoding as UTF-8 (in next) fails on half a character
    assert len(line.raw) <= audit.MAX_BYTES and line.text.endswith(audit.CUT_MARK)


def test_no_syslog_socket_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(audit.SOCKET_ENV, str(tmp_path / "no-such-socket"))
    j = Journal(str(tmp_path))
    state = {"x": 1}
    Recorder(j, state).apply()
    [r] = j.records()
    assert state == {"x": 2} and r.state == COMPLETE
    assert capfd.readouterr() == ("", "")


def test_a_socket_that_is_not_a_datagram_socket_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "log").write_text("")  # a plain file where the socket should be
    monkeypatch.setenv(audit.SOCKET_ENV, str(tmp_path / "log"))
    j = Journal(str(tmp_path / "state"))
    Recorder(j, {"x": 1}).apply()
    assert [r.state for r in j.records()] == [COMPLETE]
    assert capfd.readouterr() == ("", "")

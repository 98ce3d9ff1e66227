"""NOTRACK against the kernel: matching traffic stops creating entries, other traffic still does, undo resumes it.

Traffic is UDP to 127.0.0.1 sent by python inside the namespace; the oracle is
`conntrack -L` and `nft`/`iptables-save` run there.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from cttop.actions.errors import ActionError
from cttop.actions.flows import matching_rows
from cttop.actions.journal import Journal, Transaction
from cttop.actions.notrack.plans import AddNotrack, RemoveNotrack
from cttop.actions.notrack.rules import list_rules
from cttop.actions.persist import PersistPaths
from cttop.actions.plan import set_read_only
from cttop.actions.undo import undo_plan
from cttop.filter import compile_filter
from cttop.kernel import ctnetlink
from cttop.kernel.ctnetlink import Ctnetlink
from cttop.kernel.netns import NetnsSpec
from cttop.model import AF_INET, NO_PSTATE
from tests import oracle
from tests.actions_helpers import undo
from tests.conftest import CLI, delete_netns, make_netns, netns_holding, sh

pytestmark = pytest.mark.kernel
T = TypeVar("T")

SEND = "import socket, sys\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('127.0.0.1', int(sys.argv[1])))"


@pytest.fixture(autouse=True)
def writable(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("CTTOP_READ_ONLY", raising=False)
    set_read_only(False)
    yield
    set_read_only(False)  # a test that switched it on must not leave it on for the rest of the run


def send(netns: str, port: int) -> None:
    sh(sys.executable, "-c", SEND, str(port), netns=netns)


def entries(netns: str, port: int) -> int:
    out = sh("conntrack", "-L", "-p", "udp", "--dport", str(port), netns=netns)
    return len([line for line in out.splitlines() if line.strip()])


def cttop_table(netns: str) -> str | None:
    out = sh("nft", "list", "table", "inet", "cttop", netns=netns, check=False)
    return out or None


@pytest.mark.parametrize("backend", ["nft", "iptables"])
def test_notrack_stops_tracking_and_undo_resumes(netns: str, tmp_path: Path, backend: str) -> None:
    j = Journal(str(tmp_path))
    spec = NetnsSpec(name=netns)
    send(netns, 5353)
    assert entries(netns, 5353) == 1  # tracked before
    sh("conntrack", "-F", netns=netns)

    plan = AddNotrack(spec, "udp dport 5353", backend=backend, journal=j)
    res = plan.apply()
    if backend == "nft":
        table = cttop_table(netns)
        assert table is not None and "priority raw" in table
        assert table.count(f'notrack comment "cttop:{res.id}"') == 4
        assert "udp dport 5353" in table and "udp sport 5353" in table
    else:
        saved = sh("iptables-save", "-t", "raw", netns=netns)
        assert saved.count(f"cttop:{res.id}") == 4 and saved.count("-j CT --notrack") == 4
        assert cttop_table(netns) is None
    send(netns, 5353)
    send(netns, 5354)
    assert entries(netns, 5353) == 0  # exempted
    assert entries(netns, 5354) == 1  # other traffic still tracked

    undo(plan)
    assert cttop_table(netns) is None
    assert "cttop:" not in sh("iptables-save", "-t", "raw", netns=netns)
    send(netns, 5353)
    assert entries(netns, 5353) == 1  # tracking resumed
    assert [r.kind for r in j.records()] == ["notrack-add", "notrack-remove"]


def test_remove_by_id_leaves_other_changes_and_undo_adds_back(netns: str, tmp_path: Path) -> None:
    j = Journal(str(tmp_path))
    spec = NetnsSpec(name=netns)
    a = AddNotrack(spec, "udp dport 5353", journal=j).apply()
    b = AddNotrack(spec, "src 10.9.0.1 and tcp dport 80", journal=j).apply()
    assert {r.id for r in list_rules(spec)} == {a.id, b.id}

    rm = RemoveNotrack(spec, [a.id[:5]], journal=j)
    assert rm.ids == [a.id]
    rm.apply()
    table = cttop_table(netns) or ""
    assert f"cttop:{a.id}" not in table and table.count(f"cttop:{b.id}") == 4
    send(netns, 5353)
    assert entries(netns, 5353) == 1

    undo_plan(spec, None, j).apply()  # the last change was the removal: put the rules back
    assert (cttop_table(netns) or "").count(f"cttop:{a.id}") == 4
    sh("conntrack", "-F", netns=netns)
    send(netns, 5353)
    assert entries(netns, 5353) == 0

    RemoveNotrack(spec, None, journal=j).apply()
    assert cttop_table(netns) is None  # the last rule took the table with it
    with pytest.raises(ActionError, match="no cttop NOTRACK rules"):
        RemoveNotrack(spec, None, journal=j)


def test_persisted_file_loads_the_same_rules(netns: str, tmp_path: Path) -> None:
    j = Journal(str(tmp_path / "state"))
    spec = NetnsSpec(name=netns)
    paths = PersistPaths.under(str(tmp_path / "etc"))
    res = AddNotrack(spec, "udp dport 5353", persist=paths, journal=j).apply()
    nft_file = Path(paths.nft_file)
    text = nft_file.read_text()
    assert text.count(f"cttop:{res.id}") == 4
    other = make_netns("cttop-test-load")
    try:
        sh("nft", "-f", str(nft_file), netns=other)
        sh("nft", "-f", str(nft_file), netns=other)  # loading twice leaves one copy
        loaded = sh("nft", "list", "table", "inet", "cttop", netns=other)
        assert loaded.count(f"cttop:{res.id}") == 4
        send(other, 5353)
        assert entries(other, 5353) == 0
    finally:
        delete_netns(other)
    RemoveNotrack(spec, None, persist=paths, journal=j).apply()
    assert not nft_file.exists()  # no rules left: no file to load at boot


@pytest.mark.parametrize("expr", ["udp and (dport 53 or dport 54)", "state established", "not udp", "zone 1", ""])
def test_untranslatable_refused_and_nothing_added(netns: str, tmp_path: Path, expr: str) -> None:
    j = Journal(str(tmp_path))
    with pytest.raises(ActionError, match="NOTRACK"):
        AddNotrack(NetnsSpec(name=netns), expr, journal=j)
    assert cttop_table(netns) is None and j.records() == []


def test_failed_journal_removes_the_rules(netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    j = Journal(str(tmp_path))

    def full(self: Transaction, *args: object) -> None:
        raise ActionError("journal: No space left on device")

    monkeypatch.setattr(Transaction, "complete", full)
    with pytest.raises(ActionError, match="No space"):
        AddNotrack(NetnsSpec(name=netns), "udp dport 5353", journal=j).apply()
    assert cttop_table(netns) is None
    send(netns, 5353)
    assert entries(netns, 5353) == 1


def test_read_only_refuses(netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTTOP_READ_ONLY", "1")
    with pytest.raises(ActionError, match="read-only"):
        AddNotrack(NetnsSpec(name=netns), "udp dport 5353", journal=Journal(str(tmp_path))).apply()
    assert cttop_table(netns) is None


def conntrack_insert(netns: str, sport: int, dport: int, *nat: str) -> None:
    """A UDP entry 10.0.0.1:``sport`` -> 10.0.0.2:``dport``, rewritten as ``nat`` says (--dst-nat ADDR...)."""
    sh("conntrack", "-I", "-p", "udp", "-s", "10.0.0.1", "-d", "10.0.0.2", "--sport", str(sport),
       "--dport", str(dport), "-t", "300", *nat, netns=netns)


def natd_matching_udp_dport(netns: str, dport: int) -> int:
    """The oracle's count: NAT'd UDP entries to ``dport`` in `conntrack -L`, parsed independently."""
    return sum(1 for f in oracle.conntrack_list(netns)
               if f["proto"] == "udp" and f["orig"]["dport"] == str(dport) and oracle.nat_kind(f) is not None)


def test_warnings_name_nat_and_untracked_acceptance(netns: str, tmp_path: Path) -> None:
    """The NAT'd flows named are those the rules match in the kernel when the plan is made."""
    conntrack_insert(netns, 1000, 53, "--dst-nat", "192.0.2.9")
    conntrack_insert(netns, 1001, 53, "--src-nat", "192.0.2.8")
    conntrack_insert(netns, 1002, 53)
    conntrack_insert(netns, 1003, 54, "--dst-nat", "192.0.2.9")  # NAT'd, not matched
    conntrack_insert(netns, 1004, 55)  # matched by the second plan, not NAT'd
    assert natd_matching_udp_dport(netns, 53) == 2 and natd_matching_udp_dport(netns, 55) == 0

    plan = AddNotrack(NetnsSpec(name=netns), "udp dport 53", journal=Journal(str(tmp_path)))
    w = plan.warnings()
    assert plan.nat_rows == 2
    assert w[0].startswith("2 flows tracked now that these rules match are NAT'd")
    assert any("ct state untracked" in x for x in w) and any("lose NAT" in x for x in w)
    assert not any("NAT'd:" in x for x in AddNotrack(NetnsSpec(name=netns), "udp dport 55",
                                                       journal=Journal(str(tmp_path))).warnings())


# --- many matching flows: counted a chunk at a time --------------------------------------------------

MANY = 1 << 16  # entries the rules match: as rows, ~34 MB held by the adding (a dump chunk is ~32 kB)
NAT_EVERY = 1024  # one in this many is DNAT'd
CROWDED_EXPR = "udp dport 53"


def dns_flow(i: int) -> tuple[object, ...]:
    """UDP from 10.8.x.y to 10.9.0.2:53, every NAT_EVERY-th DNAT'd to 10.9.0.3 (its reply comes from there)."""
    src, dst = socket.inet_aton(f"10.8.{i >> 8 & 255}.{i & 255}"), socket.inet_aton("10.9.0.2")
    back = socket.inet_aton("10.9.0.3") if i % NAT_EVERY == 0 else dst
    return (0, AF_INET, 17, NO_PSTATE, 0, src, dst, 20000, 53, back, src, 53, 20000, 3600,
            0, 0, 0, None, None, None, None, 0, 0)


@pytest.fixture(scope="module")
def crowded() -> Iterator[str]:
    with netns_holding(map(dns_flow, range(MANY)), "cttop-test") as name:
        yield name


def traced(fn: Callable[[], T]) -> tuple[T, int, int]:
    """What ``fn`` returns, the Python memory it still holds in that, and its peak while it ran (tracemalloc)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        now, peak = tracemalloc.get_traced_memory()
        return out, now - base, peak - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("spare", [False, True], ids=["inline", "read-ahead"])
@pytest.mark.parametrize("entry", ["cli", "tui", "doctor"])
def test_adding_counts_the_natd_matches_without_holding_every_match(
        crowded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        entry: str, spare: bool) -> None:
    """`cttop notrack add`, the TUI's n and doctor's fix each made every flow the rules match a row, only for
    the NAT warning's count: tens of MB at 64k matches (all of them at a million) on a box short of memory.
    Counted a chunk at a time, the plan's peak is a small part of what holding the matches costs.

    Both ways a dump is read, chosen by the load average: with a core to spare a reader thread keeps up to
    READ_AHEAD_BATCHES of up to 1 MiB ahead, a bound of its own whatever the table (16 MiB: more than this
    test's quarter of 33 MB, so it failed on an idle machine only); one batch ahead here."""
    monkeypatch.setattr(ctnetlink, "core_to_spare", lambda: spare)
    monkeypatch.setattr(ctnetlink, "READ_AHEAD_BATCHES", 1)
    from cttop.cli.actions import notrack_add
    from cttop.doctor.fixes import notrack_remedy
    from cttop.ui.keys.remedy import notrack_plan

    spec = NetnsSpec(name=crowded)

    monkeypatch.setattr(sys, "stdin", io.StringIO())  # no terminal, even under `pytest -s`: nothing is asked

    def cli(expr: str) -> str:
        with pytest.raises(SystemExit):  # shown, then refused: no terminal to confirm on (cli/base.fail)
            notrack_add(expr, netns=crowded, state_dir=str(tmp_path))
        return capsys.readouterr().out

    build: dict[str, Callable[[str], object]] = {
        "cli": cli,
        "tui": lambda expr: notrack_plan(spec, expr)[0].warnings(),
        "doctor": lambda expr: notrack_remedy(spec, expr)(Journal(str(tmp_path))).warnings(),
    }
    build[entry]("udp dport 9")  # matches nothing: whatever is imported or made once is not measured
    natd = natd_matching_udp_dport(crowded, 53)
    assert natd == MANY // NAT_EVERY

    said, _, peak = traced(lambda: build[entry](CROWDED_EXPR))
    assert f"{natd} flows tracked now that these rules match are NAT'd" in str(said)
    with Ctnetlink(spec) as ct:
        rows, held, _ = traced(lambda: matching_rows(ct, compile_filter(CROWDED_EXPR)))
    assert len(rows) == MANY
    assert peak < held / 4, (peak, held)


# --- the operator's own SSH session ------------------------------------------------------------------

SSH = "192.0.2.7 51234 10.0.0.1 22"
LOCKOUT = "warning: this would stop tracking your own SSH session (192.0.2.7 → 10.0.0.1:22)"


def ssh_cli(netns: str | None, *args: str, state: Path) -> subprocess.CompletedProcess[str]:
    """A cttop command as run from an SSH login, inside ``netns`` when given (so that is cttop's own namespace)."""
    env = {k: v for k, v in os.environ.items() if k != "CTTOP_READ_ONLY"} | {"SSH_CONNECTION": SSH}
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, *CLI, *args, "--state-dir", str(state)], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, env=env, check=False)


def notrack_add_cli(netns: str | None, *args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return ssh_cli(netns, "notrack", "add", *args, state=state)


def test_cli_warns_of_the_ssh_session_only_in_its_own_namespace(netns: str, tmp_path: Path) -> None:
    here = notrack_add_cli(netns, "tcp", state=tmp_path)
    assert LOCKOUT in here.stdout
    assert "warning: 'tcp' matches every port and every address: it exempts all TCP traffic" in here.stdout
    assert here.returncode != 0 and "no terminal to confirm on" in here.stderr  # asked, so nothing was added
    assert cttop_table(netns) is None

    missed = notrack_add_cli(netns, "tcp dport 443", state=tmp_path)
    assert "SSH session" not in missed.stdout and "matches every port" not in missed.stdout

    # The same rules for another namespace: the session does not pass through it.
    elsewhere = notrack_add_cli(None, "tcp", "--netns", netns, state=tmp_path)
    assert "SSH session" not in elsewhere.stdout and "matches every port and every address" in elsewhere.stdout
    assert cttop_table(netns) is None


def test_undoing_a_removal_warns_as_adding_the_rules_did(netns: str, tmp_path: Path) -> None:
    # Written as a /0 prefix, the rules still exempt all of IPv4 TCP, the SSH session's included.
    added = notrack_add_cli(netns, "tcp and net 0.0.0.0/0", "--yes", state=tmp_path)
    assert LOCKOUT in added.stdout and "matches every port and every address: it exempts all IPv4 TCP" in added.stdout
    assert added.returncode == 0, added.stderr
    assert ssh_cli(netns, "notrack", "remove", "--all", "--yes", state=tmp_path).returncode == 0
    assert cttop_table(netns) is None

    # Putting them back is the same risk, and says so before it asks.
    back = ssh_cli(netns, "undo", state=tmp_path)
    assert LOCKOUT in back.stdout and "matches every port and every address: it exempts all IPv4 TCP" in back.stdout
    assert back.returncode != 0 and "no terminal to confirm on" in back.stderr
    assert cttop_table(netns) is None


def test_undoing_a_removal_counts_the_natd_flows_as_adding_did(netns: str, tmp_path: Path) -> None:
    """The NAT'd flows the rules match now are named when the rules go back in, as when they went in first."""
    sh("conntrack", "-I", "-p", "udp", "-s", "10.9.0.1", "-d", "10.9.0.2", "--sport", "5000", "--dport", "53",
       "-t", "300", "--dst-nat", "10.9.0.3", netns=netns)
    nat = "warning: 1 flows tracked now that these rules match are NAT'd: exempting them breaks them"
    added = notrack_add_cli(netns, "udp dport 53", "--yes", state=tmp_path)
    assert added.returncode == 0 and nat in added.stdout, added.stdout
    assert ssh_cli(netns, "notrack", "remove", "--all", "--yes", state=tmp_path).returncode == 0
    back = ssh_cli(netns, "undo", state=tmp_path)
    assert nat in back.stdout, back.stdout  # it said only "untracked packets lose NAT and helpers again"
    assert back.returncode != 0 and "no terminal to confirm on" in back.stderr
    assert cttop_table(netns) is None


def test_a_change_the_journal_cannot_record_takes_back_its_file_and_directories(
        netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules added and their nft file written, then the journal's completion refused (a full disk): the rules
    come out, the file goes, and so does the nftables.d/ the write made for it (it stayed, empty)."""
    j = Journal(str(tmp_path / "state"))
    spec = NetnsSpec(name=netns)
    etc = tmp_path / "etc"
    etc.mkdir()
    paths = PersistPaths.under(str(etc))

    def refused(self: Transaction, *args: object) -> None:
        raise ActionError(f"journal {j.path}: No space left on device")

    monkeypatch.setattr(Transaction, "complete", refused)
    monkeypatch.setattr(Transaction, "abort", refused)
    with pytest.raises(ActionError, match="could not be recorded, so it was rolled back; nothing was changed"):
        AddNotrack(spec, "udp dport 5353", persist=paths, journal=j).apply()
    assert list_rules(spec) == [] and "table inet cttop" not in sh("nft", "list", "tables", netns=netns).splitlines()
    assert list(etc.iterdir()) == []  # no file, and no directory made for it

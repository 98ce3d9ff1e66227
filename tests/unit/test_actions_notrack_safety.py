"""NOTRACK warnings that protect the operator: their own SSH session caught by the rules, and rules for all of a protocol.

No kernel: the warnings are computed from the filter and SSH_CONNECTION before anything is applied.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from cttop.actions.notrack import plans as notrack_plans
from cttop.actions import persist as P
from cttop.actions.notrack.plans import AddNotrack
from cttop.actions.persist import PersistPaths
from cttop.kernel.netns import NetnsSpec

SSH_V4 = "192.0.2.7 51234 10.0.0.1 22"
SSH_V6 = "2001:db8::7 51234 2001:db8::1 2222"
LOCKOUT = "this would stop tracking your own SSH session"
BROAD = "matches every port and every address"


def warnings(expr: str, spec: NetnsSpec | None = None) -> list[str]:
    # nat_rows given: the NAT'd flows are counted in the kernel otherwise (tests/kernel/test_actions_notrack.py).
    return AddNotrack(spec or NetnsSpec(), expr, backend="nft", nat_rows=0).warnings()


def lockout(expr: str, spec: NetnsSpec | None = None) -> list[str]:
    return [w for w in warnings(expr, spec) if LOCKOUT in w]


@pytest.fixture
def ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", SSH_V4)


# --- the operator's own SSH session ------------------------------------------------------------

@pytest.mark.usefixtures("ssh")
def test_all_tcp_in_cttops_own_namespace_warns_first_with_the_session() -> None:
    got = warnings("tcp")
    assert got[0] == ("this would stop tracking your own SSH session (192.0.2.7 → 10.0.0.1:22): "
                      "with a stateful firewall you may lock yourself out")


@pytest.mark.usefixtures("ssh")
@pytest.mark.parametrize("expr", [
    "tcp dport 22",  # the client's side as the original direction
    "port 22",
    "host 10.0.0.1",
    "src net 192.0.2.0/24 and tcp",
    "ipv4",
    "dst 10.0.0.1 and tcp dport 22",
    "tcp sport 22",  # only the mirror reads the server as the source: the rules exempt it too
    "src 10.0.0.1 and dst 192.0.2.7",
    "udp dport 53 or tcp dport 22",  # one alternative is enough
])
def test_rules_that_catch_the_session_either_way_round_warn(expr: str) -> None:
    assert len(lockout(expr)) == 1, expr


@pytest.mark.usefixtures("ssh")
@pytest.mark.parametrize("expr", [
    "udp", "udp dport 22", "tcp dport 443", "ipv6", "host 10.0.0.2", "tcp dport 22 and src 198.51.100.1",
    "tcp sport 51235", "mark 7 tcp",  # the session's packets carry no mark
])
def test_rules_that_miss_the_session_do_not_warn_of_it(expr: str) -> None:
    assert lockout(expr) == [], expr


@pytest.mark.usefixtures("ssh")
def test_the_same_namespace_named_another_way_still_warns() -> None:
    assert lockout("tcp dport 22", NetnsSpec(pid=os.getpid()))
    assert lockout("tcp dport 22", NetnsSpec(path="/proc/self/ns/net"))


@pytest.mark.usefixtures("ssh")
def test_another_namespace_does_not_hold_the_session() -> None:
    # The kernel test checks a real other namespace; one that cannot be looked at is not cttop's either.
    assert lockout("tcp dport 22", NetnsSpec(name="cttop-test-no-such-namespace")) == []


def test_ipv6_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", SSH_V6)
    assert "(2001:db8::7 → [2001:db8::1]:2222)" in lockout("ipv6 and tcp")[0]
    assert lockout("tcp dport 2222 and src 2001:db8::/32")
    assert lockout("ipv4 and tcp") == [] and lockout("tcp dport 22") == []


def test_an_ipv4_client_of_a_dual_stack_sshd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "::ffff:192.0.2.7 51234 ::ffff:10.0.0.1 22")
    assert "(192.0.2.7 → 10.0.0.1:22)" in lockout("ipv4 and tcp dport 22")[0]


@pytest.mark.parametrize("value", [None, "", "garbage", "192.0.2.7 51234 10.0.0.1", "192.0.2.7 x 10.0.0.1 22",
                                   "192.0.2.7 51234 2001:db8::1 22", "192.0.2.7 0 10.0.0.1 22"])
def test_no_or_unreadable_ssh_connection_gives_no_session_warning(monkeypatch: pytest.MonkeyPatch,
                                                                   value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("SSH_CONNECTION", raising=False)
    else:
        monkeypatch.setenv("SSH_CONNECTION", value)
    assert lockout("tcp") == []


# --- rules that exempt all of a protocol or family -----------------------------------------------

@pytest.fixture
def no_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_CONNECTION", raising=False)


@pytest.mark.usefixtures("no_ssh")
@pytest.mark.parametrize("expr, what", [
    ("tcp", "all TCP traffic"),
    ("udp", "all UDP traffic"),
    ("ipv6", "all IPv6 traffic"),
    ("ipv4 and icmp", "all IPv4 ICMP traffic"),
    ("icmpv6", "all ICMPv6 traffic"),
    ("tcp or udp", "all TCP and all UDP traffic"),
    ("udp dport 53 or tcp", "all TCP traffic"),  # the one alternative without a port or address
    # Written out, yet narrowing nothing: a /0 prefix, the whole port range, mark 0 under mask 0.
    ("src 0.0.0.0/0", "all IPv4 traffic"),
    ("net ::/0 and udp", "all IPv6 UDP traffic"),
    ("tcp dport 1-65535", "all TCP traffic"),
    ("udp port 0-65535", "all UDP traffic"),
    ("mark 0/0 and udp", "all UDP traffic"),
    ("mark 0/0", "all traffic"),  # read "all  traffic"
    ("port 0-65535", "all TCP, UDP and SCTP traffic"),
])
def test_broad_rules_say_they_exempt_everything_of_the_kind(expr: str, what: str) -> None:
    got = warnings(expr, NetnsSpec(name="lab"))
    assert got[0] == f"'{expr}' matches every port and every address: it exempts {what} from tracking, to and from every host"


@pytest.mark.usefixtures("no_ssh")
@pytest.mark.parametrize("expr", ["udp dport 53", "host 10.0.0.1", "net 10.0.0.0/8 and udp", "tcp sport 1000-2000",
                                  "ipv6 and dst fd00::1", "mark 7 udp", "udp dport 53 or tcp dport 80",
                                  "net 0.0.0.0/1", "udp dport 2-65535", "mark 0/1 and udp"])
def test_narrow_rules_do_not_warn_of_breadth(expr: str) -> None:
    got = warnings(expr, NetnsSpec(name="lab"))
    assert not [w for w in got if BROAD in w or LOCKOUT in w]
    assert any("ct state untracked" in w for w in got)  # the generic warnings stay


# --- whether the boot ruleset loads the persisted file -------------------------------------------------------

BOOT_WARNING = "loads at boot only if"


def boot_warned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conf: bytes) -> bool:
    (tmp_path / "nftables.conf").write_bytes(conf)
    monkeypatch.setattr(notrack_plans, "NFTABLES_CONF", str(tmp_path / "nftables.conf"))
    plan = AddNotrack(NetnsSpec(), "udp dport 53", backend="nft", nat_rows=0, persist=PersistPaths.under(str(tmp_path)))
    return any(BOOT_WARNING in w for w in plan.warnings())


def test_only_an_uncommented_include_of_the_file_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nft = PersistPaths.under(str(tmp_path)).nft_file
    for conf in (f'include "{nft}"\n', f'  include  "{nft}" ;  # cttop\n', f'flush ruleset\n\tinclude "{nft}"'):
        assert not boot_warned(tmp_path, monkeypatch, conf.encode()), conf
    for conf in (f'# include "{nft}"\n', f'  #include "{nft}"\n', f"# cttop writes {nft}\n",
                 f'include "{nft}.old"\n', f'include "/etc/other.nft" # not {nft}\n', ""):
        assert boot_warned(tmp_path, monkeypatch, conf.encode()), conf


def test_a_boot_ruleset_past_the_cap_is_not_read_and_the_warning_stands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nft = PersistPaths.under(str(tmp_path)).nft_file
    line = f'include "{nft}"\n'.encode()
    assert not boot_warned(tmp_path, monkeypatch, b"#" * (P.MAX_BOOT_CONF_BYTES - len(line) - 1) + b"\n" + line)
    assert boot_warned(tmp_path, monkeypatch, b"#" * P.MAX_BOOT_CONF_BYTES + b"\n" + line)


def test_a_fifo_as_the_boot_ruleset_is_not_waited_on(tmp_path: Path) -> None:
    """A FIFO where nftables.conf should be, with no writer: plain open() waited for one, and the plan with it,
    for good. It is not read, and the warning stands."""
    fifo = tmp_path / "nftables.conf"
    os.mkfifo(fifo)
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(P.boot_includes(str(fifo), "/etc/nftables.d/cttop.nft")),
                         daemon=True)
    t.start()
    t.join(timeout=60)  # a bound on a hang, not a speed: the call takes microseconds
    hung = t.is_alive()
    if hung:  # in open(): a writer lets it go, so no thread is left behind
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        t.join()
    assert not hung, "boot_includes waited on a FIFO for a writer"
    assert got == [False]


@pytest.mark.parametrize("odd", ["directory", "symlink", "device", "someone else's"])
def test_a_boot_ruleset_cttop_may_not_believe_is_not_read(tmp_path: Path, odd: str) -> None:
    """nftables.conf is believed as cttop's own files are (safefs's rule): a regular file of root's or yours,
    reached through no link in its last component; not a directory or a device."""
    nft = "/etc/nftables.d/cttop.nft"
    real = tmp_path / "real.conf"
    real.write_text(f'include "{nft}"\n')
    assert P.boot_includes(str(real), nft)  # a regular file still says so
    conf = tmp_path / "nftables.conf"
    if odd == "directory":
        conf.mkdir()
    elif odd == "symlink":
        conf.symlink_to(real)
    elif odd == "device":
        conf = Path("/dev/null")
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to make a file owned by someone else")
        os.chown(real, 65534, 65534)
        conf = real
    assert not P.boot_includes(str(conf), nft)


@pytest.mark.usefixtures("no_ssh")
@pytest.mark.parametrize("expr, said", [("dport 53", True), ("port 5000-6000 and src 10.0.0.1", True),
                                        ("udp dport 53", False), ("tcp or udp", False)])
def test_a_port_with_no_protocol_says_which_protocols_the_rules_match(expr: str, said: bool) -> None:
    """The filter's bare port matches DCCP and UDP-Lite flows too; the rules do not: the dialog says so."""
    narrower = "a port with no protocol is matched in TCP, UDP and SCTP packets: DCCP and UDP-Lite flows the " \
               "filter shows stay tracked"
    assert (narrower in warnings(expr, NetnsSpec(name="lab"))) == said

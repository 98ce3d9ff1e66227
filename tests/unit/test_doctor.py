"""cttop doctor's checks, verdict and output on hand-made observations: no kernel involved."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from typing import Any

import pytest
from typer.testing import CliRunner

from cttop.actions.drift import Drift
from cttop.doctor import checks as C
from cttop.doctor.collect import IDLE_SECONDS, Group, Idle, Observation, _Tally
from cttop.doctor.report import Finding, Report, render
from cttop.filter import compile_filter
from cttop.kernel.netns import NetnsSpec
from cttop.model import AF_INET, IPS_ASSURED, IPS_CONFIRMED, IPS_SEEN_REPLY, NO_PSTATE, Row

MAX = 262144
WEB1 = NetnsSpec(name="web1")
ZERO = {"drop": 0, "early_drop": 0, "insert_failed": 0, "chaintoolong": 0, "clash_resolve": 0}
SYSCTLS = {"nf_conntrack_acct": "0", "nf_conntrack_udp_timeout": "30", "nf_conntrack_tcp_timeout_time_wait": "120",
           "nf_conntrack_tcp_timeout_syn_recv": "60", "nf_conntrack_tcp_timeout_syn_sent": "120",
           "nf_conntrack_icmp_timeout": "30", "nf_conntrack_tcp_timeout_established": "432000"}


def obs(**kw: Any) -> Observation:
    base: dict[str, Any] = {"spec": WEB1, "initial": False, "seconds": 2.0, "count": 1000, "max": MAX, "buckets": MAX,
                                "sysctls": dict(SYSCTLS), "before": dict(ZERO), "after": dict(ZERO), "listed": 1000,
                                "by_state": {"tcp:ESTABLISHED": 1000}}
    base.update(kw)
    return Observation(**base)


def after(**counters: int) -> dict[str, int]:
    return {**ZERO, **counters}


class Recorder:
    """Stands in for a plan class: records how the remedy would build it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, spec: NetnsSpec, arg: Any, **kw: Any) -> tuple[str, NetnsSpec, Any]:
        self.calls.append((spec, arg, kw))
        return (self.kind, spec, arg)


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> dict[str, Recorder]:
    rec = {"sysctl": Recorder("sysctl")}
    monkeypatch.setattr(C, "SetSysctls", rec["sysctl"])
    return rec


def one(f: Finding | None) -> Finding:
    assert f is not None
    return f


# -- fill -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("count, severity", [(int(MAX * 0.79), "ok"), (int(MAX * 0.8) + 1, "warning"),
                                             (int(MAX * 0.95) + 1, "critical"), (MAX, "critical")])
def test_fill_levels(count: int, severity: str) -> None:
    f = one(C.fill(obs(count=count)))
    assert f.code == "fill" and f.severity == severity
    assert f.data["count"] == count and f.data["max"] == MAX
    assert str(count) in f.title + f.evidence
    assert bool(f.commands) == (severity != "ok")


def test_fill_fix_is_global_run_from_the_initial_namespace(plans: dict[str, Recorder]) -> None:
    f = one(C.fill(obs(count=MAX)))
    [cmd] = f.commands
    assert cmd.startswith(f"sysctl -w net.netfilter.nf_conntrack_max={2 * MAX} ")
    assert "ip netns exec" not in cmd and "initial namespace" in cmd
    assert "web1's table alone" in f.evidence
    assert f.action is not None and f.action.kind == "sysctl"
    f.action()
    [(spec, values, _kw)] = plans["sysctl"].calls
    assert spec == NetnsSpec() and values == {"nf_conntrack_max": 2 * MAX}


def test_fill_in_the_initial_namespace_says_global_without_asking_to_move() -> None:
    f = one(C.fill(obs(spec=NetnsSpec(), initial=True, count=MAX)))
    assert f.commands == [f"sysctl -w net.netfilter.nf_conntrack_max={2 * MAX}{C.GLOBAL_HERE}"]
    assert "table alone" not in f.evidence


def test_fill_raises_hashsize_too_when_the_new_max_would_outrun_it() -> None:
    f = one(C.fill(obs(count=MAX, buckets=MAX // 8)))
    assert len(f.commands) == 2
    assert f.commands[1].startswith(f"echo {2 * MAX} > /sys/module/nf_conntrack/parameters/hashsize")


def test_no_limit_is_ok() -> None:
    f = one(C.fill(obs(max=0, count=5)))
    assert f.severity == "ok" and "0" in f.evidence


# -- drops ------------------------------------------------------------------------------------------

def test_no_drops_is_ok_and_no_counters_is_no_finding() -> None:
    f = one(C.drops(obs()))
    assert f.severity == "ok" and f.title == "No drops while watched (2.0 s)"
    assert "none since boot either" in f.evidence
    assert C.drops(obs(before=None, after=None)) is None


def test_no_drops_while_watched_on_a_full_table_does_not_hide_earlier_ones() -> None:
    f = one(C.drops(obs(count=MAX, before=after(early_drop=35021), after=after(early_drop=35021))))
    assert f.severity == "ok"
    assert f.title == "No drops while watched (2.0 s)"
    assert "since boot: drop 0, early_drop 35021" in f.evidence


def test_early_drop_rising_is_a_warning_with_the_rate() -> None:
    f = one(C.drops(obs(count=MAX, before=after(early_drop=100), after=after(early_drop=4100), seconds=2.0)))
    assert f.severity == "warning"
    assert f.data["early_drop"] == 4000 and f.data["drop"] == 0 and f.data["early_drop_per_s"] == 2000
    assert "+4000" in f.title and "2000/s" in f.title
    assert f.commands and "nf_conntrack_max=" in f.commands[0]


def test_drop_rising_is_critical() -> None:
    f = one(C.drops(obs(count=MAX, after=after(drop=7, early_drop=3))))
    assert f.severity == "critical" and f.data["drop"] == 7 and "+7" in f.title


def test_drops_on_a_table_not_full_point_elsewhere_and_suggest_no_max() -> None:
    f = one(C.drops(obs(count=1000, after=after(drop=7))))
    assert f.severity == "critical"
    assert f.commands == [] and f.action is None
    assert "not table-full drops" in f.evidence


def test_counters_going_backwards_count_as_no_rise() -> None:
    # Per-CPU counters of a CPU that went offline vanish from the sum.
    f = one(C.drops(obs(before=after(drop=50), after=after(drop=40))))
    assert f.severity == "ok" and f.data["drop"] == 0


# -- hash inserts and ratio -------------------------------------------------------------------------

def test_no_failed_inserts_is_ok() -> None:
    assert one(C.hash_inserts(obs())).severity == "ok"


def test_insert_failed_with_enough_buckets_is_clashes_without_a_hashsize_fix() -> None:
    f = one(C.hash_inserts(obs(after=after(insert_failed=12))))
    assert f.severity == "warning" and f.commands == [] and "clashes" in f.evidence


def test_insert_failed_with_too_few_buckets_raises_hashsize_to_max(plans: dict[str, Recorder]) -> None:
    f = one(C.hash_inserts(obs(buckets=MAX // 4, after=after(insert_failed=12))))
    assert f.commands[0].startswith(f"echo {MAX} > /sys/module/nf_conntrack/parameters/hashsize")
    assert f.data["suggested_hashsize"] == MAX
    assert f.action is not None
    f.action()
    assert plans["sysctl"].calls[0][:2] == (NetnsSpec(), {"hashsize": MAX})


def test_chaintoolong_with_enough_buckets_doubles_them() -> None:
    f = one(C.hash_inserts(obs(after=after(chaintoolong=3, insert_failed=3))))
    assert "chaintoolong +3" in f.title
    assert f.data["suggested_hashsize"] == 2 * MAX and "flooding" in f.evidence


def test_ratio_of_eight_is_ok_above_warns_with_max_as_hashsize() -> None:
    assert one(C.hash_ratio(obs(max=8 * 1024, buckets=1024))).severity == "ok"
    f = one(C.hash_ratio(obs(max=9 * 1000, buckets=1000)))
    assert f.severity == "warning"
    # Rounded up to the kernel's allocation grain (512 buckets per page).
    assert f.data["suggested_hashsize"] == 9216
    assert f.commands[0].startswith("echo 9216 > /sys/module/nf_conntrack/parameters/hashsize")
    assert "run it in the initial namespace" in f.commands[0]
    assert C.hash_ratio(obs(buckets=None)) is None


# -- ESTABLISHED idle -------------------------------------------------------------------------------

def idle_obs(established: int, idle: int, listed: int, timeout: int = 432000) -> Observation:
    return obs(listed=listed, by_state={"tcp:ESTABLISHED": established},
               idle=Idle(established, idle, 4 * 86400, timeout))


def test_many_idle_established_entries_warn_with_timeout_and_flush(plans: dict[str, Recorder]) -> None:
    f = one(C.established_idle(idle_obs(established=60000, idle=40000, listed=70000)))
    assert f.severity == "warning"
    assert "40000" in f.title
    cut = 432000 - IDLE_SECONDS
    assert f.commands == [
        f"ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established={IDLE_SECONDS}",
        f"cttop flush --netns web1 --filter 'tcp state established and timeout < {cut}'"]
    compile_filter(f"tcp state established and timeout < {cut}")
    assert f.action is not None and f.action.kind == "sysctl"
    f.action()
    assert plans["sysctl"].calls[0][:2] == (WEB1, {"nf_conntrack_tcp_timeout_established": IDLE_SECONDS})


@pytest.mark.parametrize("established, idle, listed, timeout", [
    (30000, 30000, 70000, 432000),  # ESTABLISHED not the majority
    (60000, 10000, 70000, 432000),  # few of them idle
    (1000, 1000, 1200, 432000),  # too few entries to matter
    (60000, 40000, 70000, IDLE_SECONDS),  # timeout already at the floor
])
def test_established_idle_stays_quiet(established: int, idle: int, listed: int, timeout: int) -> None:
    f = one(C.established_idle(idle_obs(established, idle, listed, timeout)))
    assert f.severity == "ok" and f.commands == []


# -- states dominating ------------------------------------------------------------------------------

def test_time_wait_majority_suggests_its_timeout_in_the_namespace(plans: dict[str, Recorder]) -> None:
    f = one(C.time_wait(obs(listed=40000, by_state={"tcp:TIME_WAIT": 30000, "tcp:ESTABLISHED": 10000})))
    assert f.severity == "warning" and f.code == "time-wait"
    assert f.data["entries"] == 30000 and f.data["share"] == 0.75
    assert f.commands == ["ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30"]
    assert f.action is not None
    f.action()
    assert plans["sysctl"].calls[0][:2] == (WEB1, {"nf_conntrack_tcp_timeout_time_wait": 30})


def test_half_is_not_a_majority_and_a_small_table_is_no_pressure() -> None:
    assert one(C.time_wait(obs(listed=40000, by_state={"tcp:TIME_WAIT": 20000}))).severity == "ok"
    f = one(C.time_wait(obs(listed=1000, by_state={"tcp:TIME_WAIT": 900})))
    assert f.severity == "ok" and "no pressure" in f.evidence


def test_a_timeout_already_short_is_not_suggested_again() -> None:
    o = obs(listed=40000, by_state={"tcp:TIME_WAIT": 30000},
            sysctls={**SYSCTLS, "nf_conntrack_tcp_timeout_time_wait": "30"})
    f = one(C.time_wait(o))
    assert f.severity == "warning" and f.commands == [] and "already 30" in f.evidence


def test_unreplied_storm_names_its_port_for_notrack() -> None:
    port = Group("dport", "udp/9999", "udp dport 9999", 27000, {"udp:UNREPLIED": 27000})
    o = obs(listed=30000, by_state={"udp:UNREPLIED": 28000, "tcp:ESTABLISHED": 2000},
            state_ports={"udp:UNREPLIED": port})
    f = one(C.unreplied(o))
    assert f.severity == "warning" and f.code == "unreplied"
    assert f.commands == ["ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_udp_timeout=10",
                          "cttop notrack add --netns web1 'udp dport 9999'"]
    assert f.data["port"]["filter"] == "udp dport 9999"
    assert f.action is not None and f.action.kind == "sysctl"


def test_unreplied_sums_protocols_and_fixes_the_biggest() -> None:
    o = obs(listed=30000, by_state={"udp:UNREPLIED": 6000, "icmp:UNREPLIED": 14000, "tcp:ESTABLISHED": 10000})
    f = one(C.unreplied(o))
    assert f.data["entries"] == 20000
    assert f.commands == ["ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_icmp_timeout=10"]


def test_half_open_suggests_the_syn_timeout_of_the_bigger_state() -> None:
    o = obs(listed=30000, by_state={"tcp:SYN_RECV": 25000, "tcp:SYN_SENT": 100, "tcp:ESTABLISHED": 4900})
    f = one(C.half_open(o))
    assert f.severity == "warning"
    assert f.commands == ["ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_tcp_timeout_syn_recv=20"]


# -- group share ------------------------------------------------------------------------------------

def tops(shares: dict[str, tuple[str, str | None, int]], state: str = "udp:UNREPLIED") -> dict[str, list[Group]]:
    return {k: [Group(k, text, flt, n, {state: n})] for k, (text, flt, n) in shares.items()}


def test_the_narrowest_group_nearly_as_big_as_the_biggest_is_named() -> None:
    t = tops({"src": ("10.0.0.2", "src 10.0.0.2", 30000), "dst": ("10.9.0.1", "dst 10.9.0.1", 3),
              "dport": ("udp/9999", "udp dport 9999", 29000),
              "src-dport": ("10.0.0.2 → udp/9999", "src 10.0.0.2 and udp dport 9999", 29000)})
    f = one(C.group_share(obs(listed=30000, tops=t)))
    assert f.severity == "warning" and f.data["key"] == "src-dport"
    assert "10.0.0.2 → udp/9999" in f.title
    assert f.commands[:2] == ["cttop notrack add --netns web1 'src 10.0.0.2 and udp dport 9999'",
                              "cttop flush --netns web1 --filter 'src 10.0.0.2 and udp dport 9999'"]
    assert f.commands[2] == "ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_udp_timeout=10"
    assert f.action is not None and f.action.kind == "notrack-add"


def test_a_much_bigger_wider_group_wins_over_a_narrow_one() -> None:
    t = tops({"src": ("10.0.0.2", "src 10.0.0.2", 9000), "dport": ("udp/53", "udp dport 53", 28000),
              "src-dport": ("10.0.0.2 → udp/53", "src 10.0.0.2 and udp dport 53", 12000)})
    f = one(C.group_share(obs(listed=30000, tops=t)))
    assert f.data["key"] == "dport" and f.commands[0] == "cttop notrack add --netns web1 'udp dport 53'"


def test_one_client_owning_a_quiet_table_is_fine_and_says_why() -> None:
    t = tops({"dst": ("10.77.2.2", "dst 10.77.2.2", 11956)}, "tcp:ESTABLISHED")
    f = one(C.group_share(obs(count=11956, listed=11956, tops=t)))
    assert f.severity == "ok"
    assert "dominates" not in f.title and "4.6% full" in f.title
    assert f.evidence == "destination 10.77.2.2 holds 100% of entries (11956), but the table is only 4.6% full: " \
        "no pressure"


def test_no_big_share_names_the_heaviest_group() -> None:
    t = tops({"src": ("10.0.0.2", "src 10.0.0.2", 9000), "dport": ("udp/53", "udp dport 53", 6000)})
    f = one(C.group_share(obs(count=30000, listed=30000, tops=t)))
    assert f.severity == "ok" and f.title == "No group dominates"
    assert f.evidence == "heaviest: source 10.0.0.2, 9000 entries (30%)"


def test_no_flows_means_no_group_or_state_findings() -> None:
    o = obs(listed=None, by_state={}, before=None, after=None, problem="flows need CAP_NET_ADMIN (run with sudo)")
    codes = {f.code for f in C.run(o)}
    assert codes == {"permission", "fill", "hash-ratio", "drift", "netns-log"}


# -- accounting, drift, namespace note, permission --------------------------------------------------

def test_accounting_only_when_bytes_are_wanted() -> None:
    assert C.accounting(obs()) is None
    f = one(C.accounting(obs(want_bytes=True)))
    assert f.severity == "warning"
    assert f.commands == ["ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_acct=1"]
    assert "only flows created afterwards" in f.evidence
    on = obs(want_bytes=True, sysctls={**SYSCTLS, "nf_conntrack_acct": "1"})
    assert one(C.accounting(on)).severity == "ok"


def drift_of(name: str, expected: str, current: str | None) -> Drift:
    return Drift(name, expected, current, "ab12cd34", 0.0, "web1")


def test_drift_lists_each_value_and_puts_cttops_back(plans: dict[str, Recorder]) -> None:
    o = obs(drifts=[drift_of("nf_conntrack_udp_timeout", "10", "30"),
                    drift_of("nf_conntrack_tcp_timeout_time_wait", "30", "120")])
    f = one(C.drift(o))
    assert f.severity == "warning"
    assert "nf_conntrack_udp_timeout is 30, cttop set 10" in f.evidence
    assert f.commands == ["ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_udp_timeout=10",
                          "ip netns exec web1 sysctl -w net.netfilter.nf_conntrack_tcp_timeout_time_wait=30"]
    assert f.action is not None
    f.action()
    assert plans["sysctl"].calls[0][:2] == (WEB1, {"nf_conntrack_udp_timeout": 10,
                                                   "nf_conntrack_tcp_timeout_time_wait": 30})


def test_drift_of_global_and_local_values_has_commands_but_no_single_plan() -> None:
    o = obs(drifts=[drift_of("nf_conntrack_max", "524288", "262144"), drift_of("nf_conntrack_udp_timeout", "10", "30")])
    f = one(C.drift(o))
    assert f.commands[0].startswith("sysctl -w net.netfilter.nf_conntrack_max=524288 ")
    assert f.commands[1].startswith("ip netns exec web1 ")
    assert f.action is None


def test_drift_unreadable_journal_is_unknown_and_none_is_ok() -> None:
    assert one(C.drift(obs(drift_problem="journal /x: Permission denied"))).severity == "unknown"
    assert one(C.drift(obs())).severity == "ok"


def test_namespace_note_only_outside_the_initial_namespace() -> None:
    assert C.netns_log(obs(spec=NetnsSpec(), initial=True)) is None
    f = one(C.netns_log(obs()))
    assert f.severity == "ok" and "only the drop counter" in f.evidence
    assert "ip netns exec web1 conntrack -S" in f.evidence


def test_no_permission_is_unknown_and_says_how_to_rerun() -> None:
    f = one(C.permission(obs(problem="flows need CAP_NET_ADMIN (run with sudo)")))
    assert f.severity == "unknown" and f.commands == ["sudo cttop doctor --netns web1"]
    assert C.permission(obs()) is None


@pytest.mark.parametrize("spec, sysctl_cmd, cttop_cmd", [
    (NetnsSpec(pid=42), "nsenter -t 42 -n sysctl -w", "cttop notrack add --netns-pid 42 'udp dport 53'"),
    (NetnsSpec(path="/run/x ns"), "nsenter '--net=/run/x ns' sysctl -w",
     "cttop notrack add --netns-path '/run/x ns' 'udp dport 53'"),
    (NetnsSpec(), "sysctl -w", "cttop notrack add 'udp dport 53'"),
])
def test_commands_name_the_namespace_however_it_was_given(spec: NetnsSpec, sysctl_cmd: str, cttop_cmd: str) -> None:
    o = obs(spec=spec)
    assert C.set_command(o, "nf_conntrack_udp_timeout", 10) == f"{sysctl_cmd} net.netfilter.nf_conntrack_udp_timeout=10"
    assert C.cttop_command(spec, ["notrack", "add"], ["udp dport 53"]) == cttop_cmd


# -- the report -------------------------------------------------------------------------------------

def finding(code: str, severity: Any, commands: list[str] | None = None) -> Finding:
    return Finding(code, severity, f"{code} title", f"{code} evidence\nsecond line", {"n": 1}, commands or [])


@pytest.mark.parametrize("severities, status, code", [
    ([], "ok", 0), (["ok", "ok"], "ok", 0), (["ok", "warning"], "warning", 1),
    (["warning", "critical", "ok"], "critical", 2), (["ok", "unknown"], "unknown", 3),
    (["warning", "unknown"], "unknown", 3), (["unknown", "critical"], "critical", 2),
])
def test_verdict_and_exit_status(severities: list[str], status: str, code: int) -> None:
    r = Report("web1", 2.0, [finding(f"c{i}", s) for i, s in enumerate(severities)])
    assert r.status == status and r.exit == code


def test_findings_come_worst_first_keeping_check_order_among_equals() -> None:
    r = Report("web1", 2.0, [finding("a", "ok"), finding("b", "warning"), finding("c", "critical"),
                             finding("d", "warning"), finding("e", "unknown")])
    assert [f.code for f in r.findings] == ["c", "e", "b", "d", "a"]


def test_json_shape() -> None:
    f = replace(finding("fill", "critical", ["sysctl -w x=1"]), action=C.sysctl_remedy(obs(), {"nf_conntrack_max": 1}))
    doc = json.loads(json.dumps(Report("web1", 2.0, [f, finding("drift", "ok")]).to_json()))
    assert doc["status"] == "critical" and doc["exit"] == 2 and doc["netns"] == "web1"
    first = doc["findings"][0]
    assert set(first) == {"code", "severity", "title", "evidence", "data", "commands", "action"}
    assert first["action"] == "sysctl" and doc["findings"][1]["action"] is None


def test_render_is_compact_ok_on_one_line_problems_with_indented_commands() -> None:
    text = render(Report("web1", 2.0, [finding("okay", "ok"), finding("bad", "critical", ["cmd one", "cmd two"])]))
    lines = text.splitlines()
    assert lines[0] == "cttop doctor: namespace web1, watched 2.0 s: CRITICAL (1 ok, 1 critical)"
    assert "[CRIT] bad title" in lines
    assert "         cmd one" in lines and "         cmd two" in lines
    assert lines[-1] == "[OK] okay title: okay evidence; second line"
    assert lines.index("[CRIT] bad title") < len(lines) - 1


def test_cli_error_is_unknown_in_one_line() -> None:
    from cttop.cli import load_commands
    from cttop.cli.app import app

    load_commands(["doctor"])  # commands register on import; cttop's main does this from argv

    r = CliRunner().invoke(app, ["doctor", "--netns", "cttop-no-such-ns-7f3a", "--json"])
    assert r.exit_code == 3
    doc = json.loads(r.stdout.splitlines()[0])
    assert doc["status"] == "unknown" and "cttop-no-such-ns-7f3a" in doc["error"]


@pytest.mark.parametrize("args, says", [(["--bogus"], "No such option: --bogus"),
                                        (["--seconds", "0.01"], "0.01 is not in the range"),
                                        (["--seconds"], "requires an argument"),
                                        (["extra"], "unexpected extra argument"),
                                        (["--netns", "a", "--netns-pid", "1"], "exclusive")])
def test_cli_usage_errors_are_unknown_in_one_line(args: list[str], says: str) -> None:
    # Monitoring plugins read 2 as CRITICAL: a mistyped check command must not page anyone.
    from cttop.cli import load_commands
    from cttop.cli.app import app

    load_commands(["doctor"])
    r = CliRunner().invoke(app, ["doctor", *args])
    assert r.exit_code == 3, r.output
    [line] = r.stderr.strip().splitlines()
    assert line.startswith("cttop: ") and says in line
    assert r.stdout == ""


# -- what the dump is boiled down to ----------------------------------------------------------------

def flow(src: str, dst: str, proto: int, dport: int, *, pstate: int = NO_PSTATE, status: int = IPS_CONFIRMED,
         timeout: int = 30, sport: int = 40000) -> Row:
    a, b = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    return (1, AF_INET, proto, pstate, status, a, b, sport, dport, b, a, dport, sport, timeout, 0, 0, 1,
            None, None, None, None, 0, 0)


def test_tally_tops_states_per_group_and_idle_time() -> None:
    est = IPS_CONFIRMED | IPS_SEEN_REPLY | IPS_ASSURED
    storm = [flow("10.0.0.2", f"10.9.0.{i}", 17, 9999, sport=40000 + i) for i in range(10)]
    # Time left 432000-100 (idle 100 s), 432000-8000 and 432000-90000: two idle past 7440 s.
    sessions = [flow("10.0.0.3", "10.8.0.1", 6, 443, pstate=3, status=est, timeout=432000 - idle, sport=50000 + idle)
                for idle in (100, 8000, 90000)]
    t = _Tally(432000)
    t.add(storm[:4])
    t.add(storm[4:] + sessions)  # chunks add up
    tops, state_ports = t.tops()
    assert t.listed == 13
    assert t.agg.by_state == {"udp:UNREPLIED": 10, "tcp:ESTABLISHED": 3}
    [first, second] = tops["dport"][:2]
    assert (first.text, first.filter, first.entries, first.states) == \
        ("udp/9999", "udp dport 9999", 10, {"udp:UNREPLIED": 10})
    assert (second.text, second.entries, second.states) == ("tcp/443", 3, {"tcp:ESTABLISHED": 3})
    assert tops["src"][0].text == "10.0.0.2" and tops["src"][0].entries == 10
    assert tops["src-dport"][0].filter == "src 10.0.0.2 and udp dport 9999"
    assert len(tops["dst"]) == 3  # ten destinations of one flow each: the top three are kept
    assert state_ports["tcp:ESTABLISHED"].text == "tcp/443"
    assert t.idle_summary() == Idle(3, 2, 90000, 432000)


def test_tally_without_the_established_timeout_has_no_idle_summary() -> None:
    t = _Tally(None)
    t.add([flow("10.0.0.3", "10.8.0.1", 6, 443, pstate=3, timeout=5)])
    assert t.idle_summary() is None

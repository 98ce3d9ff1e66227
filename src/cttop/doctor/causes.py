"""Why the table holds what it holds, and three signals that hurt before it is full.

- :func:`timeouts`: each entry is put down to the timeout sysctl that keeps it
  (:mod:`cttop.doctor.held`); a timeout above its recommended or default value that
  keeps (or heads for) at least 5 % of nf_conntrack_max more entries than that value
  would is a finding, ranked by the entries of the table now it explains, its fix
  set in that namespace; so are the entries still on a timer from a longer value
  (the sysctl was lowered since), with the flush of exactly those;
- :func:`invalid`: INVALID rising, with tcp_be_liberal and what it costs;
- :func:`dns_races`: insert_failed or clash_resolve rising while UDP port 53 flows
  are tracked: parallel A/AAAA lookups racing to insert one tuple;
- :func:`stale_nat`: UDP DNAT'd to a backend that answers none of its entries,
  with the flush of exactly those.

A cause that holds 5 % of the max in a table at 95 % is critical, like the fill it
explains, and comes first: the fill says *that* the table is full, this says *why*.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Final

from cttop.actions.shell import cttop_command
from cttop.actions.tunables import default_of
from cttop.doctor.collect import DNS_PORT, NatKey, Observation
from cttop.doctor.fixes import (
    FILL_CRIT,
    duration,
    floor,
    flush_remedy,
    notrack_remedy,
    ok,
    rate,
    set_commands,
    sysctl_remedy,
)
from cttop.doctor.held import RECOMMENDED, Estimate, Held, estimate, target_for
from cttop.doctor.report import Finding, Remedy, Severity
from cttop.model import PROTO_NUMBERS, PSTATE_NAMES
from cttop.table.timeouts import PREFIX

PORT_SHARE: Final = 0.30  # of a timeout's entries, for its heaviest port to be worth a NOTRACK
INVALID_RATE: Final = 1.0  # INVALID packets a second that count as rising
STALE_MIN: Final = 5  # unanswered entries to one backend before it is called stale
STALE_SHOWN: Final = 5  # backends listed, worst first

def _severity(o: Observation, entries: float) -> Severity:
    return "critical" if o.max and o.fill >= FILL_CRIT and entries >= floor(o) else "warning"


def _about(n: float) -> str:
    """A rounded count for an estimate: two significant figures, no false precision."""
    if n < 100:
        return f"{n:.0f}"
    return f"{round(n, 2 - len(str(int(n)))):.0f}"


# -- timeouts ---------------------------------------------------------------------------------------

def _what(h: Held) -> str:
    """The states a timeout keeps, as people say them: ``udp ASSURED``, ``tcp SYN_SENT/SYN_RECV``."""
    keys = sorted(h.states, key=lambda k: -h.states[k])
    protos = {k.partition(":")[0] for k in keys}
    if len(protos) == 1:
        return f"{protos.pop()} {'/'.join(k.partition(':')[2] for k in keys)}"
    return ", ".join(k.replace(":", " ") for k in keys)


def _state_expr(key: str) -> str | None:
    """Filter text selecting the entries of state ``key``; None for protocols the grammar cannot name."""
    proto, _, state = key.partition(":")
    if proto not in PROTO_NUMBERS:
        return None
    if proto in ("icmp", "icmpv6"):
        return proto
    if PROTO_NUMBERS[proto] in PSTATE_NAMES or state in ("UNREPLIED", "REPLIED", "ASSURED"):
        return f"{proto} state {state.lower()}"
    return None


def _flush_expr(h: Held, timeout: str) -> str | None:
    """Filter text selecting ``h``'s entries whose time left passes ``timeout`` (e.g. ``< 480``)."""
    parts = [_state_expr(k) for k in sorted(h.states)]
    if not parts or None in parts:
        return None
    states = parts[0] if len(parts) == 1 else "(" + " or ".join(p for p in parts if p) + ")"
    return f"{states} and timeout {timeout}"


def _passing(key: str) -> bool:
    """Entries of a state no live connection needs tracked: unanswered, half-open, or over (TIME_WAIT).

    Only for those is NOTRACK on their port worth offering; untracking live sessions
    (ESTABLISHED, streams) would make every stateful rule drop their packets.
    """
    return key.endswith(":UNREPLIED") or key in ("tcp:TIME_WAIT", "tcp:SYN_SENT", "tcp:SYN_RECV")


def _held_finding(o: Observation, h: Held, est: Estimate) -> Finding:
    listed = o.listed or h.entries
    n, t, target = h.entries, h.timeout, est.target
    share = n / listed
    default = default_of(h.name)
    what = _what(h)
    table_at = listed - n + est.at
    short = h.name.removeprefix(PREFIX)
    said = f"{h.name}={t}" + (f" (default {default})" if default is not None else "")
    # The headline and the body speak of the same entries (these, not the whole table) with the same figures.
    flow = est.flow
    if flow == "filling":
        past = f", past nf_conntrack_max ({o.max})" if o.max and est.heading >= o.max else ""
        title = (f"{share:.0%} are {what} held by {said}: heading for about {_about(est.heading)}{past}; "
                 f"at {target} s about {_about(est.at)}")
    else:
        title = f"{share:.0%} are {what} held by {said}: at {target} s about {_about(est.at)} of them would stay"
    lines = [f"{n} of {listed} entries ({share:.0%}) are {what}; each stays {duration(t)} after its last packet "
             f"({h.name})"]
    stay = f"at {target} s each would be gone {target} s after its last packet, and about {_about(est.at)} would stay"
    if flow == "filling":
        lines.append(f"they go back only {duration(est.since or 0)}, under one timeout, so they have not reached their "
                     f"level: they start at about {est.rate:.0f}/s, so at {t} s they head for about "
                     f"{_about(est.heading)}, at {target} s about {_about(est.at)}")
    elif flow == "steady":
        lines.append(f"they began within {duration(est.since or 0)} and still start at about {est.rate:.0f}/s: a "
                     f"steady flow, about at the level {t} s keeps it at; {stay}")
    elif flow == "burst":
        lines.append(f"they all began within {duration(est.since or 0)}, few of them lately (about {est.rate:.0f}/s): "
                     f"a burst, not a steady flow; {stay}")
    else:
        lines.append(f"{n - int(est.at)} of them have been idle {duration(target)} or more: at {target} s they would "
                     f"have expired, leaving about {_about(est.at)}")
    rec = RECOMMENDED.get(h.name)
    if rec is not None and rec.seconds == target:
        lines.append(f"{target} s {rec.why}")
    elif target == default:
        lines.append(f"{target} s is the kernel's default")
    commands = set_commands(o, h.name, target)
    idle_past = sum(1 for i in h.idle if i >= target)
    expr = _flush_expr(h, f"< {t - target}")
    flush: Remedy | None = None
    if expr is not None and idle_past:
        lines.append(f"a new timeout applies to an entry when it next sees a packet: the {idle_past} already idle "
                     f"{duration(target)} or more go only when flushed (the flush below selects them)")
        commands.append(cttop_command(o.spec, ["flush"], ["--filter", expr]))
        flush = flush_remedy(o.spec, expr)
    remedy: Remedy | None = sysctl_remedy(o, {h.name: target})
    data: dict[str, object] = {
        "sysctl": h.name, "timeout": t, "default": default, "target": target, "entries": n, "listed": listed,
        "share": round(share, 4), "states": dict(h.states), "explains": round(est.explained),
        "at_target": round(est.at), "heading": round(est.heading), "table_at_target": round(table_at),
        "estimate": "rate" if est.young else "idle", "flow": flow, "idle_past_target": idle_past}
    main = max(h.states, key=lambda k: h.states[k])
    port = o.state_ports.get(main)
    if port is not None and port.filter is not None and port.entries > PORT_SHARE * h.states[main] \
            and _passing(main):
        data["port"] = {"group": port.text, "filter": port.filter, "entries": port.entries, "natted": port.natted}
        if port.natted:
            lines.append(f"{port.text} holds {port.entries} of the {h.states[main]} {main} entries, {port.natted} "
                         "of them NAT'd: NOTRACK would break that NAT, so it is not offered")
        else:
            lines.append(f"{port.text} holds {port.entries} of the {h.states[main]} {main} entries, none NAT'd: "
                         "NOTRACK stops tracking it")
            commands.append(cttop_command(o.spec, ["notrack", "add"], [port.filter]))
            remedy = remedy or notrack_remedy(o.spec, port.filter)
    # Ranked by the entries in the table now that would not be there at the target (a young table's projection
    # says where it heads, not what fills it now); a cause always ranks before the fill it explains.
    weight = max(n - est.at, 0.0) + 1
    # The flush is a fix of its own beside the timeout's (the screen's second button), or the only one offered.
    also = (flush,) if flush is not None and remedy is not None else ()
    return Finding(f"timeout-{short}", _severity(o, est.explained), title, "\n".join(lines), data, commands,
                   remedy or flush, weight=weight, also=also)


def _old_timers_finding(o: Observation, h: Held) -> Finding:
    """``h``'s entries on a timer from a longer value: they hold the table until it runs out, whatever it is now."""
    listed = o.listed or h.entries
    n, t, what = h.old, h.timeout, _what(h)
    share = n / listed
    title = f"{share:.0%} are {what} still on a timer from a longer {h.name}: up to {duration(h.longest)} left, " \
        f"{t} s now"
    lines = [(f"{n} of {listed} entries ({share:.0%}) are {what} with more than {t} s left (up to {h.longest} s): "
              f"{h.name} was longer when their timer was last set"),
             (f"a new timeout reaches an entry only with its next packet: these keep their old timer and go only when "
              f"it runs out (the last in {duration(h.longest)}) or when flushed (a ct timeout policy, `nft list ct "
              f"timeout`, would give them long timers too)")]
    expr = _flush_expr(h, f"> {t}")
    data: dict[str, object] = {"sysctl": h.name, "timeout": t, "entries": n, "listed": listed,
                               "share": round(share, 4), "states": dict(h.states), "longest": h.longest,
                               "offloaded": h.offloaded, "filter": expr}
    commands: list[str] = []
    flush: Remedy | None = None
    if expr is not None and h.offloaded:
        lines.append(f"{h.offloaded} offloaded entries (a flowtable renews their timers) also have more than {t} s "
                     f"left and that filter would flush them too: no flush is offered")
    elif expr is not None:
        lines.append("the flush below selects exactly them")
        commands.append(cttop_command(o.spec, ["flush"], ["--filter", expr]))
        flush = flush_remedy(o.spec, expr)
    return Finding(f"old-timers-{h.name.removeprefix(PREFIX)}", _severity(o, n), title, "\n".join(lines), data,
                   commands, flush, weight=n + 1)


def timeouts(o: Observation) -> Finding | list[Finding] | None:
    if not o.listed or not o.held:
        return None
    ranked: list[tuple[Held, Estimate]] = []
    for h in o.held.values():
        target = target_for(h.name, h.timeout)
        if target is not None:
            ranked.append((h, estimate(h, target)))
    ranked.sort(key=lambda he: (-max(he[0].entries - he[1].at, 0.0), -he[1].explained))
    least = max(floor(o), 1)
    found = [_held_finding(o, h, est) for h, est in ranked if est.explained >= least]
    # What a lowered timeout left behind holds the table as surely, until it expires or is flushed.
    found += [_old_timers_finding(o, h) for h in o.held.values() if h.old >= least]
    if found:
        return found
    top = max(o.held.values(), key=lambda h: h.entries)
    data: dict[str, object] = {"held": {h.name: {"timeout": h.timeout, "entries": h.entries, "old": h.old}
                                        for h in o.held.values()}}
    why = (f"the most, {top.entries} ({top.entries / o.listed:.0%}), are {_what(top)} under {top.name}={top.timeout}; "
           "no timeout keeps 5 % of nf_conntrack_max more entries than its recommended value would")
    old = [h for h in o.held.values() if h.old]
    if old:
        # Too few to matter, but said: they are what a timeout just lowered leaves, and they go by themselves.
        why += "; " + ", ".join(f"{h.old} {_what(h)} still on a timer from a longer {h.name} (up to "
                                f"{duration(h.longest)} left)" for h in old)
    return ok("timeouts", "No timeout keeps too much", why, data)


# -- INVALID ----------------------------------------------------------------------------------------

def invalid(o: Observation) -> Finding | None:
    d = o.delta("invalid")
    if d is None or o.after is None:
        return None
    s = o.seconds
    liberal = o.sysctl_int("nf_conntrack_tcp_be_liberal")
    data: dict[str, object] = {"invalid": d, "seconds": round(s, 3), "per_s": round(d / s, 3) if s else None,
                               "invalid_total": o.after.get("invalid", 0), "tcp_be_liberal": liberal}
    if not s or d / s < INVALID_RATE:
        return ok("invalid", "INVALID not rising", f"invalid +{d} in {s:.1f} s; {o.after.get('invalid', 0)} since "
                  "boot", data)
    lines = [f"in {s:.1f} s: invalid +{d} ({rate(d, s)}): packets conntrack could not place in any flow",
             "a 'ct state invalid drop' rule (kube-proxy and most firewalls have one) drops them; for TCP that is "
             "mostly segments outside the window conntrack tracks (after NAT, a missed window scale, a burst of "
             "retransmits), and the connection stalls or ends in 'connection reset by peer'",
             f"to see which: {set_commands(o, 'nf_conntrack_log_invalid', 255)[-1]} (non-initial namespaces also "
             "need net.netfilter.nf_log_all_netns=1 on the host), then read dmesg"]
    commands: list[str] = []
    remedy: Remedy | None = None
    if liberal == 0:
        lines.append("nf_conntrack_tcp_be_liberal=1 stops marking out-of-window TCP INVALID (bad flags and checksums "
                     "stay INVALID); the cost: conntrack no longer checks TCP windows, so segments injected blind "
                     "into a connection pass as part of it")
        commands = ["# cost: out-of-window (maybe injected) TCP segments then pass as part of their connection",
                    *set_commands(o, "nf_conntrack_tcp_be_liberal", 1)]
        remedy = sysctl_remedy(o, {"nf_conntrack_tcp_be_liberal": 1})
    else:
        lines.append("nf_conntrack_tcp_be_liberal is already on: these are not TCP window checks (bad flags, "
                     "checksums, ICMP errors for unknown flows)")
    return Finding("invalid", "warning", f"INVALID rising: +{d} in {s:.1f} s ({rate(d, s)})", "\n".join(lines), data,
                   commands, remedy)


# -- DNS insert races -------------------------------------------------------------------------------

def dns_races(o: Observation) -> Finding | None:
    d_fail, d_clash = o.delta("insert_failed"), o.delta("clash_resolve")
    if d_fail is None or d_clash is None or not o.dns:
        return None
    s = o.seconds
    natted = sum(seen[0] + seen[1] for (_vip, port, _b, _bp), seen in o.nat.items() if port == DNS_PORT)
    data: dict[str, object] = {"insert_failed": d_fail, "clash_resolve": d_clash, "seconds": round(s, 3),
                               "dns_flows": o.dns, "dns_natted": natted}
    if not d_fail and not d_clash:
        return ok("dns-races", "No DNS insert races",
                  f"{o.dns} UDP flows to port 53; insert_failed and clash_resolve did not rise in {s:.1f} s", data)
    lines = [f"in {s:.1f} s: insert_failed +{d_fail}, clash_resolve +{d_clash}, with {o.dns} UDP flows to port 53 "
             f"tracked ({natted} of them DNAT'd)",
             "glibc sends the A and AAAA queries of one lookup together, from one socket: two packets of one new "
             "flow race to insert it; clash_resolve counts races the kernel merged, insert_failed the ones it could "
             "not, whose packet is dropped and whose lookup waits out a 5 s resolver timeout"]
    commands = ["# on the clients: one socket per query, so A and AAAA never race (or a node-local DNS cache)",
                "echo 'options single-request-reopen' >> /etc/resolv.conf"]
    remedy: Remedy | None = None
    if natted:
        lines.append("these lookups are DNAT'd (a DNS service address): NOTRACK would break that NAT, so fix the "
                     "clients, or serve DNS from a node-local cache")
    else:
        expr = "udp port 53"
        lines.append("they are not NAT'd here: NOTRACK on port 53 takes DNS out of conntrack, and the race with it")
        commands.append(cttop_command(o.spec, ["notrack", "add"], [expr]))
        remedy = notrack_remedy(o.spec, expr)
    title = (f"DNS lookups dropped by insert races: insert_failed +{d_fail} in {s:.1f} s" if d_fail
             else f"DNS lookups racing: clash_resolve +{d_clash} in {s:.1f} s (merged, none dropped yet)")
    return Finding("dns-races", "warning", title, "\n".join(lines), data, commands, remedy)


# -- stale UDP NAT ----------------------------------------------------------------------------------

def _ip(b: bytes) -> str:
    return str(ipaddress.ip_address(b))


def stale_nat(o: Observation) -> Finding | None:
    if not o.nat:
        return None
    services: dict[tuple[bytes, int], dict[tuple[bytes, int], list[int]]] = defaultdict(dict)
    for (vip, port, backend, bport), seen in o.nat.items():
        services[(vip, port)][(backend, bport)] = seen
    stale: list[tuple[NatKey, int, int]] = []  # (service and backend, unanswered, answered by the service's others)
    for (vip, port), backends in services.items():
        for (backend, bport), (unanswered, answered) in backends.items():
            if answered == 0 and unanswered >= STALE_MIN:
                others = sum(seen[1] for b, seen in backends.items() if b != (backend, bport))
                stale.append(((vip, port, backend, bport), unanswered, others))
    data: dict[str, object] = {"services": len(services)}
    if not stale:
        return ok("stale-nat", "No stale UDP NAT",
                  f"{len(services)} DNAT'd UDP destinations; every backend holding entries answers some", data)
    stale.sort(key=lambda s: -s[1])
    total = sum(n for _k, n, _a in stale)
    lines: list[str] = []
    commands: list[str] = []
    listed: list[dict[str, object]] = []
    for (vip, port, backend, bport), n, others in stale[:STALE_SHOWN]:
        svc, to = f"{_ip(vip)}:{port}", f"{_ip(backend)}:{bport}"
        expr = f"udp and unreplied and dst {_ip(vip)} and dport {port} and host {_ip(backend)}"
        if others:
            lines.append(f"{n} UDP flows to {svc} are still DNAT'd to {to}, which answers none of them, while "
                         f"{others} to the same address are answered elsewhere: the target changed, and these "
                         "entries keep the old one for as long as their clients keep sending")
        else:
            lines.append(f"{n} UDP flows to {svc} are DNAT'd to {to}, which answers none of them, and no other "
                         "backend answers it either: point the DNAT rule at a live backend, then flush them")
        commands.append(cttop_command(o.spec, ["flush"], ["--filter", expr]))
        listed.append({"service": svc, "backend": to, "unanswered": n, "answered_elsewhere": others, "filter": expr})
    data["stale"] = listed
    lines.append("traffic of these flows goes nowhere (black-holed); deleting the entries lets the next packet "
                 "take the DNAT rule as it is now")
    (vip, port, backend, bport), _n, _o = stale[0]
    remedy = flush_remedy(o.spec, str(listed[0]["filter"]))
    title = (f"Stale UDP NAT: {total} flows DNAT'd to backends that do not answer "
             f"({_ip(backend)}:{bport} for {_ip(vip)}:{port}" + (", …)" if len(stale) > 1 else ")"))
    return Finding("stale-nat", _severity(o, total), title, "\n".join(lines), data, commands, remedy, weight=total)

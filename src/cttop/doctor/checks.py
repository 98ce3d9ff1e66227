"""The checks: each turns an :class:`Observation` into findings (one, a list, or None when it has nothing to look at).

Thresholds and why:

- fill: warning from 80 %, critical from 95 % (the live view's yellow and red);
- max/buckets: the kernel's default is 1 since 5.15 (d532bcd0b269, "sanitize table
  size default settings": nf_conntrack_max = buckets; before it, 4). Every entry is
  hashed twice, so a full table averages 2 × ratio per chain, and the kernel refuses
  an insert past a chain of 50 to 79 (chaintoolong). Warn above 8 (16 per chain), and
  recommend hashsize = max, the kernel's own ratio;
- a share of the table (a group, what a timeout keeps) matters only once it is also
  5 % of nf_conntrack_max: one client holding all 300 entries of a quiet box is no problem.

What fills the table, and the other signals (INVALID, DNS races, stale NAT), are in
:mod:`cttop.doctor.causes`; how fixes are spelt and scoped, in :mod:`cttop.doctor.fixes`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from cttop.actions.shell import cttop_command, shown
from cttop.actions.tunables import HASHSIZE_MAX
from cttop.doctor import causes
from cttop.doctor.collect import CULPRIT_KEYS, OWNER_KEYS, Observation, title
from cttop.doctor.fixes import (
    FILL_CRIT,
    FILL_WARN,
    floor,
    flush_remedy,
    notrack_remedy,
    ok,
    rate,
    set_commands,
    sysctl_remedy,
)
from cttop.doctor.host import owner_flush_remedy
from cttop.doctor.report import Finding, Remedy, Severity
from cttop.kernel.sysctl import is_global

RATIO_WARN: Final = 8.0
KERNEL_RATIO: Final = 1
GROUP_SHARE: Final = 0.30
NEAR_BEST: Final = 0.9  # a narrower group this close to the biggest share is named instead
# The kernel allocates hash buckets in whole pages of pointers.
HASH_GRAIN: Final = 512
# An nf_conn is a 256-byte slab object on 6.x x86-64 (/proc/slabinfo), plus NAT/accounting extensions.
ENTRY_BYTES: Final = 320

Check = Callable[[Observation], Finding | list[Finding] | None]


# -- helpers ----------------------------------------------------------------------------------------

def hash_target(n: int) -> int:
    return min(-(-n // HASH_GRAIN) * HASH_GRAIN, HASHSIZE_MAX)


def _raise_max(o: Observation) -> tuple[list[str], Remedy | None, str]:
    """Commands, plan (initial namespace only) and a cost line for doubling nf_conntrack_max (and hashsize)."""
    new_max = o.max * 2
    values = {"nf_conntrack_max": new_max}
    if o.buckets and new_max / o.buckets > RATIO_WARN:
        values["hashsize"] = hash_target(new_max)
    commands = [line for n, v in values.items() for line in set_commands(o, n, v)]
    mb = (new_max - o.max) * ENTRY_BYTES / 1e6
    cost = f"doubling nf_conntrack_max to {new_max} lets {new_max - o.max} more entries in, about {mb:.0f} MB " \
           "of kernel memory when all are used"
    return commands, sysctl_remedy(o, values), cost


# -- the checks -------------------------------------------------------------------------------------

def permission(o: Observation) -> Finding | None:
    if o.problem is None:
        return None
    # Without the capability the pressure counters still come from /proc/net/stat/nf_conntrack (world-readable).
    counters = ("drops and failed inserts come from /proc/net/stat/nf_conntrack, but " if o.before is not None
                else "drops, failed inserts, ")
    evidence = f"{o.problem}; fill comes from /proc/sys only, so {counters}states and groups were not checked"
    commands = ["sudo " + cttop_command(o.spec, ["doctor"])] if "CAP_NET_ADMIN" in o.problem else []
    return Finding("permission", "unknown", "Flows and counters not read", evidence, {"problem": o.problem},
                   commands)


def fill(o: Observation) -> Finding | None:
    data: dict[str, object] = {"count": o.count, "max": o.max, "fill": round(o.fill, 4)}
    if o.max <= 0:
        return ok("fill", "No table limit", f"nf_conntrack_max is 0: {o.count} entries, bounded only by memory",
                  data)
    f = o.fill
    if f < FILL_WARN:
        return ok("fill", f"Table {f:.1%} full", f"{o.count} of {o.max} entries", data)
    severity: Severity = "critical" if f >= FILL_CRIT else "warning"
    state = "full" if f >= FILL_CRIT else "nearly full"
    lines = [(f"{o.count} entries of nf_conntrack_max {o.max} ({f:.1%}): past the max a new flow gets in only "
              "if early_drop can evict an entry that is not ASSURED, else its packet is dropped")]
    if not o.initial:
        lines.append(f"nf_conntrack_max is one value for the host and each namespace may hold up to it; "
                     f"this is {o.spec.label()}'s table alone")
    commands, remedy, cost = _raise_max(o)
    lines.append(cost + "; or stop what fills it (the findings above it, if any, name what does)")
    data["suggested_max"] = o.max * 2
    return Finding("fill", severity, f"Table {state}: {f:.1%} ({o.count} of {o.max})", "\n".join(lines), data,
                   commands, remedy)


def drops(o: Observation) -> Finding | None:
    d_drop, d_early = o.delta("drop"), o.delta("early_drop")
    if d_drop is None or d_early is None or o.after is None:
        return None
    s = o.seconds
    data: dict[str, object] = {"drop": d_drop, "early_drop": d_early, "seconds": round(s, 3),
                               "drop_per_s": round(d_drop / s, 3) if s else None,
                               "early_drop_per_s": round(d_early / s, 3) if s else None,
                               "drop_total": o.after.get("drop", 0), "early_drop_total": o.after.get("early_drop", 0)}
    if not d_drop and not d_early:
        # Only the watched seconds are judged: a full table with drops before them is not "no drops".
        total = (o.after.get("drop", 0), o.after.get("early_drop", 0))
        earlier = (f"; before that, since boot: drop {total[0]}, early_drop {total[1]}" if any(total)
                   else "; none since boot either")
        return ok("drops", f"No drops while watched ({s:.1f} s)",
                  f"drop and early_drop did not rise in {s:.1f} s{earlier}", data)
    lines = [(f"in {s:.1f} s: drop +{d_drop} ({rate(d_drop, s)}), early_drop +{d_early} ({rate(d_early, s)}); "
              f"table {o.fill:.1%} full")]
    severity: Severity
    if d_drop:
        severity, title = "critical", f"New flows dropped: drop +{d_drop} in {s:.1f} s ({rate(d_drop, s)})"
    else:
        severity, title = "warning", f"Table at its max: early_drop +{d_early} in {s:.1f} s ({rate(d_early, s)})"
        lines.append("early_drop evicts entries not yet ASSURED to make room: new flows still get in, "
                     "but one-way and half-open ones are thrown out")
    if o.max and o.fill < FILL_WARN:
        lines.append("the table is not full, so these are not table-full drops: failed inserts "
                     "(see insert_failed) or no memory")
        return Finding("drops", severity, title, "\n".join(lines), data)
    commands, remedy, cost = _raise_max(o)
    lines.append(cost)
    return Finding("drops", severity, title, "\n".join(lines), data, commands, remedy)


def hash_inserts(o: Observation) -> Finding | None:
    d_fail, d_long = o.delta("insert_failed"), o.delta("chaintoolong")
    if d_fail is None or d_long is None:
        return None
    s = o.seconds
    ratio = o.max / o.buckets if o.buckets else None
    data: dict[str, object] = {"insert_failed": d_fail, "chaintoolong": d_long, "seconds": round(s, 3),
                               "max_per_bucket": round(ratio, 3) if ratio is not None else None}
    if not d_fail and not d_long:
        return ok("hash-inserts", "No failed inserts", f"insert_failed and chaintoolong did not rise in {s:.1f} s",
                  data)
    title = (f"Hash chains too long: chaintoolong +{d_long} in {s:.1f} s" if d_long
             else f"Inserts failing: insert_failed +{d_fail} in {s:.1f} s")
    lines = [(f"in {s:.1f} s: insert_failed +{d_fail} ({rate(d_fail, s)}), chaintoolong +{d_long} "
              f"({rate(d_long, s)}); the packets of failed inserts are dropped")]
    target: int | None = None
    if ratio is not None and o.buckets and ratio > KERNEL_RATIO:
        target = hash_target(o.max)
        lines.append(f"max/buckets is {ratio:.1f}: hashsize {o.buckets} is too small for nf_conntrack_max "
                     f"{o.max}; {target} gives the kernel's own ratio")
    elif d_long and o.buckets:
        target = hash_target(o.buckets * 2)
        lines.append(f"buckets ({o.buckets}) already cover nf_conntrack_max: chains this long point to hash "
                     "flooding (tuples crafted to collide); more buckets spread them")
    else:
        lines.append("buckets cover nf_conntrack_max, so these are clashes: two packets of one new flow raced "
                     "and could not be merged (often parallel UDP, e.g. DNS A/AAAA, through NAT)")
    if target is None:
        return Finding("hash-inserts", "warning", title, "\n".join(lines), data)
    data["suggested_hashsize"] = target
    return Finding("hash-inserts", "warning", title, "\n".join(lines), data, set_commands(o, "hashsize", target),
                   sysctl_remedy(o, {"hashsize": target}))


def hash_ratio(o: Observation) -> Finding | None:
    if not o.buckets or o.max <= 0:
        return None
    ratio = o.max / o.buckets
    data: dict[str, object] = {"max": o.max, "buckets": o.buckets, "ratio": round(ratio, 3)}
    if ratio <= RATIO_WARN:
        return ok("hash-ratio", f"max/buckets {ratio:.1f}",
                  f"{o.max} / {o.buckets} buckets (kernel default 1 since 5.15; warn above {RATIO_WARN:.0f})", data)
    target = hash_target(o.max)
    data["suggested_hashsize"] = target
    evidence = (f"nf_conntrack_max {o.max} / nf_conntrack_buckets {o.buckets} = {ratio:.1f}: each entry is hashed "
                f"twice, so a full table averages {2 * ratio:.0f} entries per chain and every packet walks one; "
                f"past 50 to 79 the kernel refuses inserts (chaintoolong)\n"
                f"hashsize {target} restores the kernel's default ratio of 1 (since 5.15), for "
                f"{(target - o.buckets) * 8 / 1e6:.1f} MB more; resizing rehashes under a lock (a short stall)")
    return Finding("hash-ratio", "warning", f"Hash table too small: {ratio:.0f} entries per bucket at max", evidence,
                   data, set_commands(o, "hashsize", target), sysctl_remedy(o, {"hashsize": target}))


def group_share(o: Observation) -> Finding | None:
    if not o.listed:
        return None
    tops = {k: o.tops[k][0] for k in CULPRIT_KEYS if o.tops.get(k)}
    if not tops:
        return None
    shares = {k: g.entries / o.listed for k, g in tops.items()}
    data: dict[str, object] = {"listed": o.listed, "tops": {
        k: {"group": g.text, "filter": g.filter, "entries": g.entries, "share": round(shares[k], 4)}
        for k, g in tops.items()}}
    big = {k: s for k, s in shares.items() if s > GROUP_SHARE and tops[k].entries >= floor(o)}
    if not big:
        k = max(shares, key=lambda x: shares[x])
        heaviest = f"{title(k)} {tops[k].text}"
        if shares[k] <= GROUP_SHARE:
            return ok("group-share", "No group dominates",
                      f"heaviest: {heaviest}, {tops[k].entries} entries ({shares[k]:.0%})", data)
        # A big share of a small table: say both, so the OK does not read as a contradiction.
        return ok("group-share", f"No group big enough to matter: the table is {o.fill:.1%} full",
                  f"{heaviest} holds {shares[k]:.0%} of entries ({tops[k].entries}), but the table is only "
                  f"{o.fill:.1%} full: no pressure", data)
    best = max(big.values())
    # CULPRIT_KEYS runs narrowest first: name the narrowest group that explains nearly as much.
    k = next(x for x in CULPRIT_KEYS if x in big and big[x] >= NEAR_BEST * best)
    g = tops[k]
    state, in_state = g.main_state()
    data.update({"key": k, "group": g.text, "filter": g.filter, "entries": g.entries, "share": round(shares[k], 4),
                 "states": g.states, "natted": g.natted})
    others = ", ".join(f"{title(x)} {tops[x].text} {shares[x]:.0%}" for x in CULPRIT_KEYS if x != k and x in tops)
    lines = [f"{g.entries} of {o.listed} entries ({shares[k]:.0%}), {in_state / g.entries:.0%} of them {state}",
             f"heaviest by {others}"]
    commands: list[str] = []
    remedy: Remedy | None = None
    if g.filter is not None and k in OWNER_KEYS:  # no NOTRACK rule can name a container; its flows can be flushed
        lines.append("the flush clears the entries it holds now; what it sends next is tracked again")
        commands.append(cttop_command(o.spec, ["flush"], ["--filter", g.filter]))
        remedy = owner_flush_remedy(o.spec, g.filter)
    elif g.filter is not None and g.natted:
        lines.append(f"{g.natted} of its entries are NAT'd, which NOTRACK would break; the flush clears the "
                     "entries it holds now, and the timeout findings say how to hold fewer")
        commands.append(cttop_command(o.spec, ["flush"], ["--filter", g.filter]))
        remedy = flush_remedy(o.spec, g.filter)
    elif g.filter is not None:
        lines.append("NOTRACK stops tracking it (untracked traffic loses NAT and helpers); "
                     "the flush clears the entries it holds now")
        commands += [cttop_command(o.spec, ["notrack", "add"], [g.filter]),
                     cttop_command(o.spec, ["flush"], ["--filter", g.filter])]
        remedy = notrack_remedy(o.spec, g.filter)
    return Finding("group-share", "warning", f"One {title(k)} holds {shares[k]:.0%} of the table: {g.text}",
                   "\n".join(lines), data, commands, remedy)


def accounting(o: Observation) -> Finding | None:
    if not o.want_bytes:
        return None
    acct = o.sysctl_int("nf_conntrack_acct")
    data: dict[str, object] = {"nf_conntrack_acct": acct}
    if acct is None:
        return Finding("accounting", "unknown", "Byte counters: state unknown",
                       f"nf_conntrack_acct cannot be read in {o.spec.label()}", data)
    if acct:
        return ok("accounting", "Byte counters on", "nf_conntrack_acct is 1", data)
    evidence = (f"nf_conntrack_acct is 0 in {o.spec.label()}: entries carry no byte or packet counters, so nothing "
                "can be ranked by bytes\nturning it on counts only flows created afterwards; the ones already "
                "there stay without counters until they end")
    return Finding("accounting", "warning", "Byte counters are off", evidence, data,
                   set_commands(o, "nf_conntrack_acct", 1), sysctl_remedy(o, {"nf_conntrack_acct": 1}))


def drift(o: Observation) -> Finding | None:
    if o.drift_problem is not None:
        return Finding("drift", "unknown", "Drift not checked", o.drift_problem, {"problem": o.drift_problem})
    if not o.drifts:
        return ok("drift", "No drift", "no value cttop set has been changed since", {"drifts": []})
    data: dict[str, object] = {"drifts": [{"name": d.name, "set": d.expected, "now": d.current, "change": d.record_id}
                                          for d in o.drifts]}
    evidence = "\n".join(d.message() for d in o.drifts) + \
        "\nsomething else (kube-proxy, tuned, a sysctl.d file, a container runtime) rewrote them; " \
        "put cttop's values back, or keep theirs and find what sets them"
    values = {d.name: int(d.expected) for d in o.drifts if d.expected.lstrip("-").isdigit()}
    # One plan sets values in one namespace: globals and this namespace's own are never mixed in one button.
    scopes = {is_global(n) for n in values}
    remedy = sysctl_remedy(o, values) if values and len(scopes) == 1 else None
    commands = [line for n, v in values.items() for line in set_commands(o, n, v)]
    return Finding("drift", "warning", f"Changed behind cttop's back: {', '.join(d.name for d in o.drifts)}",
                   evidence, data, commands, remedy)


def netns_log(o: Observation) -> Finding | None:
    if o.initial:
        return None
    watch = shown(o.spec, ["conntrack", "-S"])
    checked = "as checked above; " if o.after is not None else ""
    return ok("netns-log", "Table-full log: initial namespace only",
              f"the kernel logs 'nf_conntrack: table full, dropping packet' only for the initial namespace; in "
              f"{o.spec.label()} only the drop counter tells ({checked}by hand: {watch})", {})


CHECKS: Final[tuple[Check, ...]] = (permission, fill, drops, causes.timeouts, causes.invalid, causes.dns_races,
                                    causes.stale_nat, hash_inserts, hash_ratio, group_share, accounting, drift,
                                    netns_log)


def run(o: Observation) -> list[Finding]:
    out: list[Finding] = []
    for check in CHECKS:
        found = check(o)
        if isinstance(found, Finding):
            out.append(found)
        elif found is not None:
            out.extend(found)
    return out

"""The conntrack tunables cttop offers to change: default, meaning, valid range and what to warn about.

Names are the file names under /proc/sys/net/netfilter (``nf_conntrack_max``),
plus ``hashsize`` for the nf_conntrack module parameter. Defaults are the kernel's
(6.x); ``nf_conntrack_max`` and ``hashsize`` default from the machine's RAM, so
they are computed the way ``nf_conntrack_init_start`` does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cttop.actions.drift import Drift, check
from cttop.actions.errors import ActionError
from cttop.actions.journal import Journal
from cttop.kernel import sysctl
from cttop.kernel.netns import NetnsSpec

INT_MAX = 2**31 - 1
# Timeouts are stored in jiffies; the kernel refuses seconds whose jiffies overflow an int at HZ=1000.
TIMEOUT_MAX = INT_MAX // 1000
# nf_conntrack_set_hashsize refuses sizes whose bucket array would exceed INT_MAX bytes.
HASHSIZE_MAX = INT_MAX // 8
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class Tunable:
    name: str
    meaning: str
    default: int | None
    lo: int
    hi: int
    read_only: bool = False
    choices: tuple[int, ...] = ()
    why_read_only: str = sysctl.BUCKETS_READ_ONLY

    @property
    def is_global(self) -> bool:
        """Only the initial namespace may write it, and it affects every namespace."""
        return sysctl.is_global(self.name)

    @property
    def is_module_param(self) -> bool:
        """A helper's module parameter (``nf_conntrack_ftp.ports``), not a sysctl."""
        return "." in self.name

    @property
    def is_timeout(self) -> bool:
        return "timeout" in self.name

    def key(self) -> str:
        """The name as ``sysctl -w`` and sysctl.d files spell it."""
        return sysctl.sysctl_key(self.name) if self.name != "hashsize" and not self.is_module_param else self.name


def default_hashsize(mem_bytes: int | None = None, page_size: int = 4096) -> int:
    """The bucket count the kernel picks at boot for this much RAM (nf_conntrack_init_start)."""
    if mem_bytes is None:
        mem_bytes = _mem_total()
    nr_pages = mem_bytes // page_size
    size = (nr_pages * page_size // 16384) // 8
    if nr_pages > 4 * (1 << 30) // page_size:
        size = 262144
    elif nr_pages > (1 << 30) // page_size:
        size = 65536
    return max(size, 1024)


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


_TIMEOUTS: dict[str, tuple[int, str]] = {
    "generic_timeout": (600, "idle timeout of entries of protocols conntrack has no tracker for"),
    "icmp_timeout": (30, "idle timeout of ICMP entries (echo request/reply pairs)"),
    "icmpv6_timeout": (30, "idle timeout of ICMPv6 entries"),
    "udp_timeout": (30, "idle timeout of UDP entries that saw traffic one way only (DNS queries: the flood case)"),
    "udp_timeout_stream": (120, "idle timeout of UDP entries that saw replies (streams)"),
    "tcp_timeout_syn_sent": (120, "TCP: SYN sent, no answer yet (scans and dead peers)"),
    "tcp_timeout_syn_recv": (60, "TCP: SYN+ACK seen, final ACK pending"),
    "tcp_timeout_established": (432000, "TCP: idle established connection (default 5 days)"),
    "tcp_timeout_fin_wait": (120, "TCP: FIN sent, waiting for the other side"),
    "tcp_timeout_close_wait": (60, "TCP: FIN received, local side not closed yet"),
    "tcp_timeout_last_ack": (30, "TCP: both FINs seen, last ACK pending"),
    "tcp_timeout_time_wait": (120, "TCP: closed, kept to absorb late packets"),
    "tcp_timeout_close": (10, "TCP: closed by RST"),
    "tcp_timeout_max_retrans": (300, "TCP: packets retransmitted more than tcp_max_retrans times"),
    "tcp_timeout_unacknowledged": (300, "TCP: data sent but never acknowledged"),
    "sctp_timeout_closed": (10, "SCTP: association closed"),
    "sctp_timeout_cookie_wait": (3, "SCTP: INIT sent, COOKIE pending"),
    "sctp_timeout_cookie_echoed": (3, "SCTP: COOKIE ECHO sent"),
    "sctp_timeout_established": (210, "SCTP: idle established association"),
    "sctp_timeout_shutdown_sent": (3, "SCTP: SHUTDOWN sent"),
    "sctp_timeout_shutdown_recd": (3, "SCTP: SHUTDOWN received"),
    "sctp_timeout_shutdown_ack_sent": (3, "SCTP: SHUTDOWN ACK sent"),
    "sctp_timeout_heartbeat_sent": (30, "SCTP: heartbeat sent on an idle association"),
    "dccp_timeout_request": (240, "DCCP: REQUEST sent"),
    "dccp_timeout_respond": (240, "DCCP: RESPONSE sent"),
    "dccp_timeout_partopen": (480, "DCCP: PARTOPEN"),
    "dccp_timeout_open": (43200, "DCCP: idle open connection"),
    "dccp_timeout_closereq": (64, "DCCP: CLOSEREQ sent"),
    "dccp_timeout_closing": (64, "DCCP: CLOSE sent"),
    "dccp_timeout_timewait": (240, "DCCP: TIMEWAIT"),
    "gre_timeout": (30, "idle timeout of GRE entries that saw traffic one way"),
    "gre_timeout_stream": (180, "idle timeout of GRE entries that saw replies"),
    "frag6_timeout": (60, "how long IPv6 fragments wait for reassembly before conntrack"),
}

_SWITCHES: dict[str, tuple[int, str, tuple[int, ...]]] = {
    "acct": (0, "count packets and bytes per entry (only entries created after it is switched on)", (0, 1)),
    "events": (2, "send ctnetlink events (0 off, 1 on, 2 only while someone listens)", (0, 1, 2)),
    "timestamp": (0, "record each entry's start time (only entries created after it is switched on)", (0, 1)),
    "tcp_loose": (1, "pick up TCP connections already running (after a restart or flush) mid-stream", (0, 1)),
    "tcp_be_liberal": (0, "accept out-of-window TCP packets instead of marking them INVALID", (0, 1)),
}


# What each helper module parameter means; {h} is the helper's name. Parameters not listed are shown by name.
_HELPER_PARAMS: dict[str, str] = {
    "ports": "TCP/UDP ports the {h} helper watches for control connections",
    "loose": "{h}: also accept data connections to addresses other than the control connection's peer",
    "timeout": "{h}: how long its expectations live [s]",
    "master_timeout": "{h}: how long its expectations live [s]",
    "dcc_timeout": "{h}: how long DCC expectations live [s]",
    "max_dcc_channels": "{h}: most DCC channels per IRC connection",
    "sip_timeout": "{h}: how long a SIP signalling session's expectations live [s]",
    "sip_direct_media": "{h}: media only between the signalling endpoints",
    "sip_direct_signalling": "{h}: signalling only to the registrar's address",
    "sip_external_media": "{h}: media may go to addresses behind another route",
    "default_rrq_ttl": "{h}: registration TTL assumed when the RRQ gives none [s]",
    "gkrouted_only": "{h}: only accept calls routed by the gatekeeper",
    "callforward_filter": "{h}: call forwarding only between the same networks",
    "ts_algo": "{h}: the text search algorithm it uses",
}
# Shown, not set: cttop persists only sysctls and hashsize, and most of these are fixed once the helper loaded.
_HELPER_READ_ONLY = "a helper's module parameter: set where the helper loads (modprobe.d, or the kernel command line)"


def default_expect_max(hashsize: int | None = None) -> int:
    """The expectation limit the kernel picks at boot: 4 per expectation bucket, one bucket per 256 of the
    hash table's (nf_conntrack_expect_init)."""
    return max(1, (default_hashsize() if hashsize is None else hashsize) // 256) * 4


def catalogue_entry(name: str) -> Tunable | None:
    """The tunable of exactly this name (as the journal and ``cttop tunables`` spell it), or None."""
    if "." in name:
        mod, _, param = name.partition(".")
        if mod.removeprefix("nf_conntrack_") not in sysctl.HELPERS:
            return None
        meaning = _HELPER_PARAMS.get(param, f"{{h}} helper: {param.replace('_', ' ')}")
        return Tunable(name, meaning.format(h=mod.removeprefix("nf_conntrack_")), None, 0, 0, read_only=True,
                       why_read_only=_HELPER_READ_ONLY)
    if name == "nf_conntrack_expect_max":
        return Tunable(name, "most expectations (the openings FTP, SIP… helpers make for related flows) a "
                       "namespace may hold; a helper's new ones are refused beyond it", default_expect_max(),
                       0, INT_MAX)
    if name == "nf_conntrack_max":
        return Tunable(name, "most entries a namespace may hold; new flows are dropped beyond it (0: no limit)",
                       default_hashsize(), 0, INT_MAX)
    if name == "hashsize":
        return Tunable(name, "buckets of the conntrack hash table (module parameter; lookups slow down when "
                       "entries far outnumber buckets)", default_hashsize(), 1, HASHSIZE_MAX)
    if name == "nf_conntrack_buckets":
        return Tunable(name, "buckets of the conntrack hash table (shown here; change it through hashsize)",
                       default_hashsize(), 1, HASHSIZE_MAX, read_only=True)
    short = name.removeprefix("nf_conntrack_")
    if short != name and short in _SWITCHES:
        default, meaning, choices = _SWITCHES[short]
        return Tunable(name, meaning, default, min(choices), max(choices), choices=choices)
    if short != name and "timeout" in short:
        known = _TIMEOUTS.get(short)
        if known is None:
            # A timeout newer than this catalogue: offered, without a default to compare with.
            return Tunable(name, f"{short.replace('_', ' ')} [s]", None, 0, TIMEOUT_MAX)
        return Tunable(name, known[1] + " [s]", known[0], 0, TIMEOUT_MAX)
    return None


def default_of(name: str) -> int | None:
    """The kernel's default for tunable ``name`` (file name), whether or not this kernel has it."""
    t = catalogue_entry(name)
    return t.default if t is not None else None


def present_names(spec: NetnsSpec = NetnsSpec()) -> list[str]:
    """Every catalogued tunable this kernel has in that namespace, in screen order."""
    have = sysctl.read(spec)
    names = [n for n in ("nf_conntrack_max", "hashsize", "nf_conntrack_buckets", "nf_conntrack_expect_max")
             if n in have]
    rest = sorted(n for n in have if n not in names and catalogue_entry(n) is not None)
    switches = [n for n in rest if "timeout" not in n]
    helpers = [n for n in sysctl.helper_params() if catalogue_entry(n) is not None]
    return names + switches + [n for n in rest if "timeout" in n] + helpers


def lookup(name: str) -> Tunable:
    """The catalogue entry for ``name``, which may also be spelt ``net.netfilter.X`` or without ``nf_conntrack_``."""
    n = name.strip().removeprefix("net.netfilter.").removeprefix("net/netfilter/")
    if n in ("buckets", "nf_conntrack_buckets"):
        n = "nf_conntrack_buckets"
    elif n != "hashsize" and not n.startswith("nf_conntrack_"):
        n = "nf_conntrack_" + n
    t = catalogue_entry(n)
    if t is None:
        raise ActionError(f"{name}: not a conntrack tunable cttop knows (see `cttop tunables`)")
    if not os.path.exists(sysctl.path_of(n)):
        raise ActionError(f"{name}: this kernel has no {sysctl.path_of(n)}")
    return t


def parse_value(t: Tunable, text: str) -> int:
    """The value as the kernel will take it, or ActionError saying what range is allowed."""
    if t.read_only:
        raise ActionError(f"{t.name} is read-only: {t.why_read_only}")
    v = sysctl.as_int(str(text))
    if v is None:
        raise ActionError(f"{t.name}={text}: not an integer")
    if t.choices and v not in t.choices:
        raise ActionError(f"{t.name}={v}: must be one of {', '.join(map(str, t.choices))}")
    if not t.lo <= v <= t.hi:
        raise ActionError(f"{t.name}={v}: out of range {t.lo}..{t.hi}")
    return v


def plain_value(t: Tunable, v: object) -> bool:
    """Whether ``v`` is a value the journal may hold for ``t``, to be written back by an undo:
    decimal digits only (no sign, space or ``_``, which ``int()`` would take), in range."""
    if not isinstance(v, str) or not _DIGITS.fullmatch(v):
        return False
    try:
        parse_value(t, v)
    except ActionError:
        return False
    return True


def assignments(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``NAME=VALUE`` pairs as typed, keyed by catalogue name; the same tunable twice with two values is refused.

    ``udp_timeout`` and ``nf_conntrack_udp_timeout`` name one sysctl, so a mapping
    keyed by what was typed would silently keep one of them.
    """
    out: dict[str, str] = {}
    typed: dict[str, str] = {}
    for raw, text in pairs:
        t = lookup(raw)
        value = str(parse_value(t, text))
        if out.get(t.name, value) != value:
            raise ActionError(f"{t.name} given twice ({typed[t.name]}, {raw.strip()}={text.strip()}): give it once")
        out[t.name] = value
        typed.setdefault(t.name, f"{raw.strip()}={text.strip()}")
    return out


def warnings_for(t: Tunable, value: int, current: dict[str, str]) -> list[str]:
    """What to tell the person before ``value`` is set, given the namespace's current values."""
    out: list[str] = []

    count, cur_max, cur_hash = (sysctl.as_int(current.get(n)) for n in ("nf_conntrack_count", "nf_conntrack_max",
                                                                          "hashsize"))
    if t.name == "nf_conntrack_max":
        if value == 0:
            out.append("nf_conntrack_max=0 means no limit: the table may grow until memory runs out")
        elif count is not None and value < count:
            out.append(f"nf_conntrack_max={value} is below the current count {count}: "
                       "new flows will be dropped until entries expire")
        if value and cur_hash and cur_hash < value // 8:
            out.append(f"hashsize {cur_hash} is far below nf_conntrack_max/4 ({value // 4}): "
                       "long hash chains cost CPU on every packet; raise hashsize too")
    elif t.name == "hashsize":
        if cur_max and value < cur_max // 8:
            out.append(f"hashsize={value} is far below nf_conntrack_max/4 ({cur_max // 4}): "
                       "long hash chains cost CPU on every packet")
        out.append("changing hashsize rehashes every entry under a lock: a short stall on a busy host")
    elif t.is_timeout:
        if value == 0:
            out.append(f"{t.name}=0 expires such entries at once")
        elif t.default and (value * 10 < t.default or value < min(5, t.default)):
            out.append(f"{t.name}={value} s is far below the default {t.default} s: flows idle longer "
                       "than that lose their entry (NAT'd ones break, stateful rules drop them)")
    elif t.name == "nf_conntrack_tcp_be_liberal" and value == 1:
        out.append("tcp_be_liberal=1 stops marking out-of-window TCP packets INVALID: less protection")
    elif t.name == "nf_conntrack_tcp_loose" and value == 0:
        out.append("tcp_loose=0: connections already running when tracking starts (or after a flush) "
                   "are not picked up and stateful rules drop them")
    elif t.name == "nf_conntrack_expect_max" and value == 0:
        out.append("nf_conntrack_expect_max=0: helpers (FTP, SIP…) can open nothing; their data and media "
                   "flows fail")
    elif t.name == "nf_conntrack_events" and value == 0:
        out.append("events=0: event listeners (cttop's live view, conntrackd) stop seeing changes")
    elif t.name in ("nf_conntrack_acct", "nf_conntrack_timestamp") and value == 1:
        out.append(f"{t.name.removeprefix('nf_conntrack_')}=1 costs memory per entry and applies only "
                   "to entries created from now on")
    return out


@dataclass(frozen=True)
class TunableState:
    """One line of the tunables screen."""

    tunable: Tunable
    value: str | None
    writable: bool
    why_not: str  # empty when writable
    drift: Drift | None

    @property
    def name(self) -> str:
        return self.tunable.name

    def to_json(self) -> dict[str, object]:
        t = self.tunable
        return {"name": t.name, "value": _as_int(self.value), "default": t.default, "meaning": t.meaning,
                "global": t.is_global, "writable": self.writable, "why_not": self.why_not or None,
                "min": t.lo, "max": t.hi,
                "drift": None if self.drift is None else {"set": _as_int(self.drift.expected),
                                                         "change": self.drift.record_id,
                                                         "message": self.drift.message()}}


def _as_int(v: str | None) -> int | str | None:
    """A value for JSON: the number, or the kernel's text when it is not one."""
    n = sysctl.as_int(v)
    return v if n is None else n


def states(spec: NetnsSpec = NetnsSpec(), journal: Journal | None = None) -> list[TunableState]:
    """Every tunable with its value, default, writability here (and why not) and drift from what cttop set."""
    names = present_names(spec)
    values = sysctl.read(spec, names)
    drifts = {d.name: d for d in check(spec, journal)}
    out: list[TunableState] = []
    for n in names:
        t = catalogue_entry(n)
        assert t is not None  # present_names keeps catalogued names only
        ok, why = (False, t.why_read_only) if t.read_only else sysctl.writable(spec, n)
        out.append(TunableState(t, values.get(n), ok, why, drifts.get(n)))
    return out

"""Netlink and ctnetlink numbers (linux/netlink.h, linux/netfilter/nfnetlink*.h)."""

from typing import Final

NETLINK_NETFILTER: Final = 12
SOL_NETLINK: Final = 270
NETLINK_ADD_MEMBERSHIP: Final = 1
NETLINK_NO_ENOBUFS: Final = 5
NETLINK_EXT_ACK: Final = 11
SO_RCVBUFFORCE: Final = 33

NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
NLM_F_REQUEST: Final = 0x1
NLM_F_MULTI: Final = 0x2
NLM_F_ACK: Final = 0x4
NLM_F_DUMP_INTR: Final = 0x10
NLM_F_DUMP: Final = 0x300
NLM_F_CREATE: Final = 0x400
NLM_F_EXCL: Final = 0x200
NLA_F_NESTED: Final = 0x8000
NLA_TYPE_MASK: Final = 0x3FFF

NFNL_SUBSYS_CTNETLINK: Final = 1
NFNL_SUBSYS_CTNETLINK_EXP: Final = 2
NFNL_MSG_BATCH_BEGIN: Final = 0x10
NFNL_MSG_BATCH_END: Final = 0x11

IPCTNL_MSG_CT_NEW: Final = 0
IPCTNL_MSG_CT_GET: Final = 1
IPCTNL_MSG_CT_DELETE: Final = 2
IPCTNL_MSG_CT_GET_CTRZERO: Final = 3
IPCTNL_MSG_CT_GET_STATS_CPU: Final = 4
IPCTNL_MSG_CT_GET_STATS: Final = 5


def ct_msg(kind: int) -> int:
    return NFNL_SUBSYS_CTNETLINK << 8 | kind


# The expectation subsystem's messages (linux/netfilter/nfnetlink_conntrack.h, enum cntl_msg_types).
IPCTNL_MSG_EXP_NEW: Final = 0
IPCTNL_MSG_EXP_GET: Final = 1
IPCTNL_MSG_EXP_DELETE: Final = 2


def exp_msg(kind: int) -> int:
    return NFNL_SUBSYS_CTNETLINK_EXP << 8 | kind


NFNLGRP_CONNTRACK_NEW: Final = 1
NFNLGRP_CONNTRACK_UPDATE: Final = 2
NFNLGRP_CONNTRACK_DESTROY: Final = 3

CTA_TUPLE_ORIG: Final = 1
CTA_TUPLE_REPLY: Final = 2
CTA_STATUS: Final = 3
CTA_PROTOINFO: Final = 4
CTA_HELP: Final = 5
CTA_TIMEOUT: Final = 7
CTA_MARK: Final = 8
CTA_COUNTERS_ORIG: Final = 9
CTA_COUNTERS_REPLY: Final = 10
CTA_USE: Final = 11
CTA_ID: Final = 12
CTA_ZONE: Final = 18
CTA_TIMESTAMP: Final = 20
CTA_MARK_MASK: Final = 21
CTA_LABELS: Final = 22
CTA_FILTER: Final = 25
CTA_STATUS_MASK: Final = 26
# enum ctattr_expect
CTA_EXPECT_MASTER: Final = 1
CTA_EXPECT_TUPLE: Final = 2
CTA_EXPECT_MASK: Final = 3
CTA_EXPECT_TIMEOUT: Final = 4
CTA_EXPECT_ID: Final = 5
CTA_EXPECT_HELP_NAME: Final = 6
CTA_EXPECT_ZONE: Final = 7
CTA_EXPECT_FLAGS: Final = 8
CTA_EXPECT_CLASS: Final = 9
CTA_EXPECT_NAT: Final = 10
CTA_EXPECT_FN: Final = 11
# NF_CT_EXPECT_* flags, in bit order; the names are conntrack -L expect's.
EXPECT_FLAG_NAMES: Final = ("PERMANENT", "INACTIVE", "USERSPACE")

CTA_TUPLE_IP: Final = 1
CTA_TUPLE_PROTO: Final = 2
CTA_TUPLE_ZONE: Final = 3

CTA_IP_V4_SRC: Final = 1
CTA_IP_V4_DST: Final = 2
CTA_IP_V6_SRC: Final = 3
CTA_IP_V6_DST: Final = 4

CTA_PROTO_NUM: Final = 1
CTA_PROTO_SRC_PORT: Final = 2
CTA_PROTO_DST_PORT: Final = 3
CTA_PROTO_ICMP_ID: Final = 4
CTA_PROTO_ICMP_TYPE: Final = 5
CTA_PROTO_ICMP_CODE: Final = 6
CTA_PROTO_ICMPV6_ID: Final = 7
CTA_PROTO_ICMPV6_TYPE: Final = 8
CTA_PROTO_ICMPV6_CODE: Final = 9

CTA_PROTOINFO_TCP: Final = 1
CTA_PROTOINFO_DCCP: Final = 2
CTA_PROTOINFO_SCTP: Final = 3
CTA_PROTOINFO_TCP_STATE: Final = 1

CTA_COUNTERS_PACKETS: Final = 1
CTA_COUNTERS_BYTES: Final = 2
CTA_COUNTERS32_PACKETS: Final = 3
CTA_COUNTERS32_BYTES: Final = 4

CTA_TIMESTAMP_START: Final = 1

CTA_HELP_NAME: Final = 1

CTA_FILTER_ORIG_FLAGS: Final = 1
CTA_FILTER_REPLY_FLAGS: Final = 2
# CTA_FILTER_FLAG_* (nfnetlink_conntrack.h): which orig-tuple attributes the dump must match
CTA_FILTER_FLAG_CTA_IP_SRC: Final = 1 << 0
CTA_FILTER_FLAG_CTA_IP_DST: Final = 1 << 1
CTA_FILTER_FLAG_CTA_TUPLE_ZONE: Final = 1 << 2
CTA_FILTER_FLAG_CTA_PROTO_NUM: Final = 1 << 3
CTA_FILTER_FLAG_CTA_PROTO_SRC_PORT: Final = 1 << 4
CTA_FILTER_FLAG_CTA_PROTO_DST_PORT: Final = 1 << 5

# CTA_STATS_* per-CPU counters, in attribute-number order; the names are conntrack -S's.
STATS_CPU_NAMES: Final = {
    1: "searched", 2: "found", 3: "new", 4: "invalid", 5: "ignore", 6: "delete",
    7: "delete_list", 8: "insert", 9: "insert_failed", 10: "drop", 11: "early_drop",
    12: "error", 13: "search_restart", 14: "clash_resolve", 15: "chaintoolong",
}
CTA_STATS_GLOBAL_ENTRIES: Final = 1
CTA_STATS_GLOBAL_MAX_ENTRIES: Final = 2

/* What the message walk (_ctdecode.c) and its users share: the kernel's and the model's constants, the walk's
 * leaves, and the row fields they make. Counts (_counts.c) walks a dump's messages as the decoder does and
 * counts them without building rows. */
#ifndef CTTOP_WALK_H
#define CTTOP_WALK_H
#include <Python.h>
#include <stdint.h>

/* Kernel and model constants. Their one definition is Python's (kernel/nlconst.py, kernel/framing.py,
 * model.py); CONSTANTS exports these copies and tests/unit/test_decode_compiled.py checks each against it. */
#define NLH_LEN 16
#define HEADER_LEN 20
#define NFGEN_FAMILY 16
#define NLA_TYPE_MASK 0x3FFF
#define NLMSG_ERROR 2
#define NLMSG_DONE 3
#define NLM_F_DUMP_INTR 0x10
#define NLM_F_CREATE 0x400
#define NLM_F_EXCL 0x200
#define IPCTNL_MSG_CT_NEW 0
#define IPCTNL_MSG_CT_DELETE 2
#define CTA_TUPLE_ORIG 1
#define CTA_TUPLE_REPLY 2
#define CTA_STATUS 3
#define CTA_PROTOINFO 4
#define CTA_TIMEOUT 7
#define CTA_MARK 8
#define CTA_COUNTERS_ORIG 9
#define CTA_COUNTERS_REPLY 10
#define CTA_USE 11
#define CTA_ID 12
#define CTA_ZONE 18
#define CTA_TIMESTAMP 20
#define CTA_LABELS 22
#define CTA_TUPLE_IP 1
#define CTA_TUPLE_PROTO 2
#define CTA_TUPLE_ZONE 3
#define CTA_IP_V4_SRC 1
#define CTA_IP_V4_DST 2
#define CTA_IP_V6_SRC 3
#define CTA_IP_V6_DST 4
#define CTA_PROTO_NUM 1
#define CTA_PROTO_SRC_PORT 2
#define CTA_PROTO_DST_PORT 3
#define CTA_PROTO_ICMP_ID 4
#define CTA_PROTO_ICMP_TYPE 5
#define CTA_PROTO_ICMP_CODE 6
#define CTA_PROTO_ICMPV6_ID 7
#define CTA_PROTO_ICMPV6_TYPE 8
#define CTA_PROTO_ICMPV6_CODE 9
#define CTA_PROTOINFO_TCP 1
#define CTA_PROTOINFO_DCCP 2
#define CTA_PROTOINFO_SCTP 3
#define CTA_PROTOINFO_TCP_STATE 1
#define CTA_COUNTERS_PACKETS 1
#define CTA_COUNTERS_BYTES 2
#define CTA_COUNTERS32_PACKETS 3
#define CTA_COUNTERS32_BYTES 4
#define CTA_TIMESTAMP_START 1
#define AF_INET_ 2
#define AF_INET6_ 10
#define NO_PSTATE 255
#define EV_NEW 1
#define EV_UPDATE 2
#define EV_DESTROY 3
/* model.py's: what a state name reads of the status, what early_drop spares; packing.UNREAD: counters not read yet */
#define IPS_SEEN_REPLY_ 2
#define IPS_ASSURED_ 4
#define UNREAD_ 1
#define ROW_LEN 23
/* The row's fields (model.R_*). */
#define R_ID 0
#define R_FAMILY 1
#define R_PROTO 2
#define R_PSTATE 3
#define R_STATUS 4
#define R_SRC 5
#define R_DST 6
#define R_SPORT 7
#define R_DPORT 8
#define R_RSRC 9
#define R_RDST 10
#define R_RSPORT 11
#define R_RDPORT 12
#define R_TIMEOUT 13
#define R_MARK 14
#define R_ZONE 15
#define R_USE 16
#define R_OPKTS 17
#define R_OBYTES 18
#define R_RPKTS 19
#define R_RBYTES 20
#define R_START 21
#define R_LABELS 22

/* The leaves a walk collects (decode._walk's field names); the ones with a byte string are addresses. */
enum {
    F_ID, F_PROTO, F_PSTATE, F_STATUS, F_SRC, F_DST, F_SPORT, F_DPORT, F_RSRC, F_RDST, F_RSPORT, F_RDPORT,
    F_TIMEOUT, F_MARK, F_ZONE, F_USE, F_OPKTS, F_OBYTES, F_RPKTS, F_RBYTES, F_START, F_TZONE,
    F_ICMP_ID, F_ICMP_TYPE, F_ICMP_CODE, F_RICMP_ID, F_RICMP_TYPE, F_RICMP_CODE, F_COUNT
};
/* Offsets of the reply tuple's leaves from the original's: the walk names them "r" + name. */
#define REPLY_SHIFT (F_RSRC - F_SRC)
#define RICMP_SHIFT (F_RICMP_ID - F_ICMP_ID)

typedef struct {
    const uint8_t *b;        /* the buffer */
    uint32_t have;           /* bit F_x: the leaf was seen */
    uint64_t val[F_COUNT];   /* fixed-size leaves' values */
    Py_ssize_t at[F_COUNT];  /* variable leaves (addresses): where the payload starts */
    Py_ssize_t len[F_COUNT]; /* and its length */
} walk_t;

/* One row field (model.R_*) as the decoder makes it, before it is a Python object. */
enum { FIELD_NONE, FIELD_INT, FIELD_BYTES };
typedef struct {
    int kind;
    unsigned long long v;  /* FIELD_INT */
    const uint8_t *p;      /* FIELD_BYTES: the payload (NULL and 0 when absent: b"") */
    Py_ssize_t len;
} field_t;

static inline unsigned le16(const uint8_t *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }
static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The framing checks decode_chunk and decode_events make before a message: 0 when they pass, with its
 * length, type and flags; -1 leaves the raising to Python. */
static inline int frame(const uint8_t *b, Py_ssize_t pos, Py_ssize_t n, Py_ssize_t *length, unsigned *typ,
                        unsigned *flags) {
    if (n - pos < NLH_LEN)
        return -1;
    *length = le32(b + pos);
    *typ = le16(b + pos + 4);
    *flags = le16(b + pos + 6);
    if (*length < NLH_LEN || pos + *length > n)
        return -1;
    return 0;
}

/* decode._walk over the message at [off, off + length): 0 when it decodes, -1 when Python should look at it. */
int walk(walk_t *w, Py_ssize_t off, Py_ssize_t length);

static inline void as_int(field_t *f, unsigned long long v) {
    f->kind = FIELD_INT;
    f->v = v;
}

static inline void num(const walk_t *w, int leaf, unsigned long long dflt, field_t *f) {
    as_int(f, w->have & 1u << leaf ? w->val[leaf] : dflt);
}

static inline void addr(const walk_t *w, int leaf, field_t *f) {
    f->kind = FIELD_BYTES;
    f->p = w->have & 1u << leaf ? w->b + w->at[leaf] : NULL;
    f->len = w->have & 1u << leaf ? w->len[leaf] : 0;
}

static inline void counter(const walk_t *w, int leaf, field_t *f) {
    if (w->have & 1u << leaf)
        as_int(f, w->val[leaf]);
    else
        f->kind = FIELD_NONE;
}

/* decode._row_expr's row: the port slots hold an ICMP id and type << 8 | code where the tuple has them. */
static inline void port(const walk_t *w, int leaf, int id, field_t *f) {
    num(w, w->have & 1u << id ? id : leaf, 0, f);
}

static inline void icmp_port(const walk_t *w, int leaf, int type, int code, field_t *f) {
    if (!(w->have & 1u << type))
        num(w, leaf, 0, f);
    else
        as_int(f, w->val[type] << 8 | (w->have & 1u << code ? w->val[code] : 0));
}

/* The one place a walk's leaves become row fields (model.R_* order): build() makes the row of them, Counts
 * (_counts.c) its keys. Inline, so that a call with a constant field is only that field's code. */
static inline void row_field(const walk_t *w, unsigned family, int r, field_t *f) {
    switch (r) {
    case R_ID: num(w, F_ID, 0, f); break;
    case R_FAMILY: as_int(f, family); break;
    case R_PROTO: num(w, F_PROTO, 0, f); break;
    case R_PSTATE: num(w, F_PSTATE, NO_PSTATE, f); break;
    case R_STATUS: num(w, F_STATUS, 0, f); break;
    case R_SRC: addr(w, F_SRC, f); break;
    case R_DST: addr(w, F_DST, f); break;
    case R_SPORT: port(w, F_SPORT, F_ICMP_ID, f); break;
    case R_DPORT: icmp_port(w, F_DPORT, F_ICMP_TYPE, F_ICMP_CODE, f); break;
    case R_RSRC: addr(w, F_RSRC, f); break;
    case R_RDST: addr(w, F_RDST, f); break;
    case R_RSPORT: port(w, F_RSPORT, F_RICMP_ID, f); break;
    case R_RDPORT: icmp_port(w, F_RDPORT, F_RICMP_TYPE, F_RICMP_CODE, f); break;
    case R_TIMEOUT: num(w, F_TIMEOUT, 0, f); break;
    case R_MARK: num(w, F_MARK, 0, f); break;
    case R_ZONE: num(w, w->have & 1u << F_ZONE ? F_ZONE : F_TZONE, 0, f); break;
    case R_USE: num(w, F_USE, 0, f); break;
    case R_OPKTS: counter(w, F_OPKTS, f); break;
    case R_OBYTES: counter(w, F_OBYTES, f); break;
    case R_RPKTS: counter(w, F_RPKTS, f); break;
    case R_RBYTES: counter(w, F_RBYTES, f); break;
    case R_START: num(w, F_START, 0, f); break;
    default: as_int(f, 0); break;  /* R_LABELS: a message with labels is left to Python */
    }
}

/* packing.flow_key: the conntrack id in the low 32 bits, and above it the high half of Python's hash of the
 * original tuple, row[R_SRC:R_DPORT + 1]. */
#define KEY_HIGH 0xFFFFFFFF00000000ULL
_Static_assert(SIZEOF_PY_HASH_T == 8, "walked_key: CPython's 64-bit tuple hash");

/* hash() of one row field as Python hashes the object row_field stands for: bytes by _Py_HashBytes (b"" is 0),
 * an int by its value modulo 2**61 - 1 (sys.hash_info: a non-negative one is never -1). */
static inline uint64_t field_hash(const field_t *f) {
    if (f->kind == FIELD_BYTES)
        return (uint64_t)_Py_HashBytes(f->p, f->len);
    return f->v % ((1ULL << 61) - 1);  /* FIELD_INT; a key field is never None */
}

/* CPython's hash of a 4-tuple whose items hash to lane[0..4) (Objects/tupleobject.c: xxHash's round over each
 * item's hash, in CPython's source since 3.8). packing.flow_key of a walked flow without its row is that of
 * (src, dst, sport, dport) (walked_key), and of an event's row without the slice (_apply.c).
 * tests/unit/test_table_loading.py holds it to flow_key on every flow of the recorded dump and random tables, on the
 * Python the tests run on. */
static inline uint64_t tuple_hash4(const uint64_t lane[4]) {
    uint64_t acc = 2870177450012600261ULL;
    for (int i = 0; i < 4; i++) {
        acc += lane[i] * 14029467366897019727ULL;
        acc = acc << 31 | acc >> 33;
        acc *= 11400714785074694791ULL;
    }
    acc += 4 ^ (2870177450012600261ULL ^ 3527539UL);
    return acc == (uint64_t)-1 ? 1546275796 : acc;
}

static inline uint64_t walked_key(const walk_t *w, unsigned family) {
    static const int TUPLE[4] = {R_SRC, R_DST, R_SPORT, R_DPORT};
    uint64_t lane[4];
    for (int i = 0; i < 4; i++) {
        field_t f;
        row_field(w, family, TUPLE[i], &f);
        lane[i] = field_hash(&f);
    }
    field_t id;
    row_field(w, family, R_ID, &id);
    return (tuple_hash4(lane) & KEY_HIGH) | id.v;  /* (an id is 32 bits: CTA_ID) */
}

/* The whole row (a new tuple), or NULL with an exception set. */
PyObject *build(const walk_t *w, unsigned family);

int add_counts_type(PyObject *module);
int add_digests_type(PyObject *module);
/* Whether o is a Digests (_digests.c). */
int is_digests(PyObject *o);
/* A walked flow's digest: its flow key and the code of its shape (table.tally's _SHAPE of its row) in digests, a
 * Digests. digest_walked makes it (0, or -1 with an exception set), put_digested stores it (the same). */
typedef struct {
    uint64_t key;
    uint32_t code;
} Digested;
int digest_walked(PyObject *digests, const walk_t *w, unsigned family, Digested *out);
int put_digested(PyObject *digests, const Digested *one);
/* A bounded table's events (_apply.c): the shape under key, or None (a new reference; NULL with an exception set);
 * the same, taken out; shape stored under key (0, or -1 with an exception set). */
PyObject *digests_get(PyObject *digests, uint64_t key);
PyObject *digests_pop(PyObject *digests, uint64_t key);
int digests_put(PyObject *digests, uint64_t key, PyObject *shape);

#endif

/* Counts: a dump counted as table.aggregates.Aggregates counts it, without a row a flow.
 *
 * `cttop snapshot` holds no flow: it counts states, protocols, counters and one group's entries, bytes and
 * packets; the live view's load (FlowTable.loading) counts those of every group it tracks. Made into rows first, each flow cost ~0.6 us of Python objects and counting (a quarter of the
 * snapshot's CPU at 262k flows, the kernel's dump being the rest). Counts walks each message as the decoder
 * does (walk() and row_field(), _ctdecode.c: one place for what a row holds) and counts by raw values:
 *
 * - states: by (protocol, protocol state, status), each kept as that tuple, in the order first seen;
 * - totals: flows, flows with counters, their bytes and packets (both directions);
 * - each group: by the raw values of the row fields its key reads (GroupDef.reads), each distinct one with the
 *   first row that had it, its entries, bytes and packets, and the flow number at which its bytes and its
 *   packets first became non-zero.
 *
 * Aggregates.add_counts turns these into exactly what add_rows gives (the dicts in the same order: it breaks
 * ties in top()), by calling the group's own key on each distinct row. tests/unit/test_counts.py holds the two
 * to the same aggregates on real, random and hand-made rows. A message this does not count (anything walk()
 * leaves to Python, or counters without their pair) stops it at that message's offset, as dump() does; Python
 * decodes it and counts its row here with add_row, in its place. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_records.h"
#include "_walk.h"

#define MOST_READS 4     /* the most row fields a group key reads */
#define MOST_GROUPS 16   /* the most group keys counted at once (table.groups has ten) */
#define FIRST_SLOTS 256  /* a table's first index; it doubles at half full */

typedef unsigned __int128 big_t;  /* byte and packet sums: each flow's are two 64-bit counters */

#define INLINE_KEY 20  /* a key up to this long (an address of either family) is compared where its count is */
#define MOST_FIELD 0xFFFF  /* a field's bytes are at most a netlink attribute's payload: its length in 2 bytes */

/* What a flow's lookup touches, half a cache line: its count and (the start of) its key. The dump's own bytes go
 * through the caches between two lookups, so each line more was a miss more (~75 ns a flow when the key was
 * elsewhere, at 7,168 groups), and half the lines are half the misses: 64 bytes a group were ~6% of a snapshot's
 * CPU at 262k entries and 7,168 sources, most of it waiting on memory. */
typedef struct {
    uint64_t n;
    uint32_t key_len;
    uint8_t key[INLINE_KEY];
} Hot;

typedef struct {
    uint64_t hash;
    Py_ssize_t key_at;  /* the whole key, in Table.keys */
    big_t bytes, packets;
    long long bytes_at, packets_at;  /* the flow (Counts.flows before it) where these first became non-zero */
    PyObject *first;  /* a group's first row; a state's (proto, pstate, status) */
} Entry;

typedef struct {
    Hot *hot;
    Entry *e;
    Py_ssize_t n, cap;
    uint64_t *slots;  /* the hash's high 32 bits << 32 | entry + 1; 0 empty: a probe reads no entry to step on */
    Py_ssize_t mask;
    uint8_t *keys;
    Py_ssize_t keys_used, keys_cap;
    Py_ssize_t last;  /* the entry found last, or -1: most flows in a row share their state */
} Table;

/* One group key counted: the row fields it reads, and its entries by their raw values. */
typedef struct {
    int reads[MOST_READS];
    int nreads;
    Table t;
} Group;

typedef struct {
    PyObject_HEAD
    Group group[MOST_GROUPS];
    int ngroups;
    Table states;
    Table timeouts;  /* (seen, timeout) of the flows put into a Digests by dump() */
    uint64_t flows, counted;
    big_t bytes, packets;
} Counts;

/* What one flow counts by: its state fields, its four counters, each group key's fields. */
typedef struct {
    field_t state[3];  /* R_PROTO, R_PSTATE, R_STATUS */
    field_t ctr[4];    /* R_OPKTS, R_OBYTES, R_RPKTS, R_RBYTES */
    field_t key[MOST_GROUPS][MOST_READS];
    int hashed;                  /* each group key's hash is below (a walked flow's, see ahead()) */
    uint64_t hash[MOST_GROUPS];
} Seen;

static const int STATE_FIELDS[3] = {R_PROTO, R_PSTATE, R_STATUS};
static const int COUNTER_FIELDS[4] = {R_OPKTS, R_OBYTES, R_RPKTS, R_RBYTES};

static void table_free(Table *t) {
    for (Py_ssize_t i = 0; i < t->n; i++)
        Py_XDECREF(t->e[i].first);
    free(t->hot);
    PyMem_Free(t->e);
    PyMem_Free(t->slots);
    PyMem_Free(t->keys);
    memset(t, 0, sizeof *t);
    t->last = -1;
}

static inline uint64_t mix(uint64_t h) {  /* murmur3's fmix64: every input bit reaches the low bits probed */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(const uint8_t *p, Py_ssize_t n) {
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ULL;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h ^ w) + 0x9E3779B97F4A7C15ULL;
    }
    uint64_t tail = 0;
    for (int i = 0; i < n; i++)  /* shifted in, not copied: a load of bytes just stored one by one stalls */
        tail |= (uint64_t)p[i] << (8 * i);
    return mix(h ^ tail);
}

static inline uint64_t slot_of(uint64_t hash, Py_ssize_t i) { return (hash >> 32) << 32 | (uint64_t)(i + 1); }

static int reindex(Table *t, Py_ssize_t slots) {
    uint64_t *s = PyMem_Calloc((size_t)slots, sizeof *s);
    if (s == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < t->n; i++) {
        Py_ssize_t at = (Py_ssize_t)(t->e[i].hash & (uint64_t)(slots - 1));
        while (s[at])
            at = (at + 1) & (slots - 1);
        s[at] = slot_of(t->e[i].hash, i);
    }
    PyMem_Free(t->slots);
    t->slots = s;
    t->mask = slots - 1;
    return 0;
}

static int reserve_keys(Table *t, Py_ssize_t more) {
    if (t->keys_used + more <= t->keys_cap)
        return 0;
    Py_ssize_t cap = t->keys_cap ? t->keys_cap : 4096;
    while (cap < t->keys_used + more)
        cap *= 2;
    uint8_t *k = PyMem_Realloc(t->keys, (size_t)cap);
    if (k == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->keys = k;
    t->keys_cap = cap;
    return 0;
}

/* The length of the raw key of ``n`` fields: a kind byte a field, then 8 bytes of an int or 2 of length and the
 * bytes. -1 with an exception set for a field longer than an attribute's payload. */
static Py_ssize_t encoded_len(const field_t *f, int n) {
    Py_ssize_t need = 0;
    for (int i = 0; i < n; i++) {
        if (f[i].kind == FIELD_BYTES && f[i].len > MOST_FIELD) {  /* only a row Python made could hold one */
            PyErr_Format(PyExc_ValueError, "Counts: a row field of %zd bytes (at most %d)", f[i].len, MOST_FIELD);
            return -1;
        }
        need += 1 + (f[i].kind == FIELD_INT ? 8 : f[i].kind == FIELD_BYTES ? 2 + f[i].len : 0);
    }
    return need;
}

static void encode_to(uint8_t *p, const field_t *f, int n) {
    for (int i = 0; i < n; i++) {
        *p++ = (uint8_t)f[i].kind;
        if (f[i].kind == FIELD_INT) {
            memcpy(p, &f[i].v, 8);
            p += 8;
        } else if (f[i].kind == FIELD_BYTES) {
            uint16_t len = (uint16_t)f[i].len;
            memcpy(p, &len, 2);
            if (f[i].len)
                memcpy(p + 2, f[i].p, (size_t)f[i].len);
            p += 2 + f[i].len;
        }
    }
}

/* The raw key of ``n`` fields, written at the end of t->keys (not yet kept). Its length, or -1 with an exception
 * set. */
static Py_ssize_t encode(Table *t, const field_t *f, int n) {
    Py_ssize_t need = encoded_len(f, n);
    if (need < 0 || reserve_keys(t, need) < 0)
        return -1;
    encode_to(t->keys + t->keys_used, f, n);
    return need;
}

static int grow(Table *t) {
    Py_ssize_t cap = t->cap ? t->cap * 2 : FIRST_SLOTS / 2;
    /* Aligned to a cache line, so no entry straddles two (a key split over two lines is two misses). */
    Hot *hot = NULL;
    if (posix_memalign((void **)&hot, 64, (size_t)cap * sizeof *hot) == 0) {
        if (t->n)
            memcpy(hot, t->hot, (size_t)t->n * sizeof *hot);
        free(t->hot);
        t->hot = hot;
    }
    Entry *e = hot == NULL ? NULL : PyMem_Realloc(t->e, (size_t)cap * sizeof *e);
    if (e == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->e = e;
    t->cap = cap;
    return 0;
}

/* The entry of the key just encoded (length len at t->keys_used): found, or added and kept.
 * -1 with an exception set. */
static inline int same_key(const Table *t, Py_ssize_t i, const uint8_t *key, Py_ssize_t len) {
    const Hot *hot = &t->hot[i];
    return hot->key_len == len && memcmp(hot->key, key, (size_t)(len < INLINE_KEY ? len : INLINE_KEY)) == 0
           && (len <= INLINE_KEY || memcmp(t->keys + t->e[i].key_at, key, (size_t)len) == 0);
}

static Py_ssize_t find_or_add(Table *t, Py_ssize_t len, const uint64_t *hashed) {
    const uint8_t *key = t->keys + t->keys_used;
    if (t->last >= 0 && same_key(t, t->last, key, len))
        return t->last;
    uint64_t h = hashed != NULL ? *hashed : hash_bytes(key, len), tag = h >> 32;
    Py_ssize_t at = (Py_ssize_t)(h & (uint64_t)t->mask);
    for (uint64_t s; (s = t->slots[at]) != 0; at = (at + 1) & t->mask) {
        if (s >> 32 != tag)
            continue;
        Py_ssize_t i = (Py_ssize_t)(uint32_t)s - 1;
        if (same_key(t, i, key, len))
            return t->last = i;
    }
    if (t->n == t->cap && grow(t) < 0)
        return -1;
    if ((t->n + 1) * 2 > t->mask + 1) {  /* doubled before the entry goes in: a failure leaves the table whole */
        if (reindex(t, (t->mask + 1) * 2) < 0)
            return -1;
        at = (Py_ssize_t)(h & (uint64_t)t->mask);
        while (t->slots[at])
            at = (at + 1) & t->mask;
    }
    Py_ssize_t i = t->n++;
    Hot *hot = &t->hot[i];
    Entry *e = &t->e[i];
    memset(hot, 0, sizeof *hot);
    memset(e, 0, sizeof *e);
    hot->key_len = (uint32_t)len;
    memcpy(hot->key, key, (size_t)(len < INLINE_KEY ? len : INLINE_KEY));
    e->hash = h;
    e->key_at = t->keys_used;
    e->bytes_at = e->packets_at = -1;
    t->slots[at] = slot_of(h, i);
    t->keys_used += len;
    return t->last = i;
}

/* 1 when the flow cannot be counted here (its counters half there: Python's sums would fail on None). */
static int unusual(const Seen *s) {
    if (s->ctr[0].kind == FIELD_NONE)
        return 0;
    for (int i = 0; i < 4; i++)
        if (s->ctr[i].kind != FIELD_INT)
            return 1;
    return 0;
}

/* Count one flow. ``row`` is its row where Python made it, else NULL: walked (w, family), its row is built only
 * for a group key not seen before (once, whichever groups need it). 0, or -1 with an exception set (nothing
 * counted: entries are found or added for every table first, and counted only then). */
static int tally(Counts *c, const Seen *s, PyObject *row, const walk_t *w, unsigned family) {
    Py_ssize_t len = encode(&c->states, s->state, 3);
    Py_ssize_t st = len < 0 ? -1 : find_or_add(&c->states, len, NULL);
    if (st < 0)
        return -1;
    /* An entry's first row (a state's triple) is made while it has none, not only when the entry is added: one
     * whose making failed (no memory) has none, counts no flow and is not listed, until a flow makes it. */
    /* Only an entry that counts no flow yet can lack its first (hot, in the line just compared): the entry's
     * own line is not read for every flow (a miss a flow at thousands of groups). */
    if (c->states.hot[st].n == 0 && c->states.e[st].first == NULL) {
        c->states.e[st].first = Py_BuildValue("(KKK)", s->state[0].v, s->state[1].v, s->state[2].v);
        if (c->states.e[st].first == NULL)
            return -1;
    }
    Py_ssize_t gi[MOST_GROUPS];
    PyObject *made = NULL;  /* the walked flow's row, once a group needed it */
    for (int g = 0; g < c->ngroups; g++) {
        Table *t = &c->group[g].t;
        len = encode(t, s->key[g], c->group[g].nreads);
        gi[g] = len < 0 ? -1 : find_or_add(t, len, s->hashed ? &s->hash[g] : NULL);
        if (gi[g] >= 0 && t->hot[gi[g]].n == 0 && t->e[gi[g]].first == NULL) {
            if (row == NULL && made == NULL)
                made = build(w, family);
            PyObject *first = row != NULL ? row : made;
            Py_XINCREF(first);
            t->e[gi[g]].first = first;
        }
        if (gi[g] < 0 || (t->hot[gi[g]].n == 0 && t->e[gi[g]].first == NULL)) {
            Py_XDECREF(made);
            return -1;
        }
    }
    Py_XDECREF(made);
    c->states.hot[st].n++;
    for (int g = 0; g < c->ngroups; g++)
        c->group[g].t.hot[gi[g]].n++;
    if (s->ctr[0].kind == FIELD_INT) {
        big_t bytes = (big_t)s->ctr[1].v + s->ctr[3].v, packets = (big_t)s->ctr[0].v + s->ctr[2].v;
        c->counted++;
        c->bytes += bytes;
        c->packets += packets;
        for (int g = 0; g < c->ngroups; g++) {
            Entry *e = &c->group[g].t.e[gi[g]];
            if (bytes && !e->bytes)
                e->bytes_at = (long long)c->flows;
            if (packets && !e->packets)
                e->packets_at = (long long)c->flows;
            e->bytes += bytes;
            e->packets += packets;
        }
    }
    c->flows++;
    return 0;
}

static void free_tables(Counts *c) {
    for (int g = 0; g < MOST_GROUPS; g++)
        table_free(&c->group[g].t);
    table_free(&c->states);
    table_free(&c->timeouts);
}

/* Counts(*groups): each argument one group key's row fields (GroupDef.reads), a tuple of 1 to MOST_READS. */
static int Counts_init(Counts *c, PyObject *args, PyObject *kwds) {
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Counts(*groups) takes no keywords");
        return -1;
    }
    Py_ssize_t ngroups = PyTuple_GET_SIZE(args);
    if (ngroups > MOST_GROUPS) {
        PyErr_Format(PyExc_ValueError, "Counts: at most %d groups", MOST_GROUPS);
        return -1;
    }
    Group group[MOST_GROUPS];
    for (Py_ssize_t g = 0; g < ngroups; g++) {
        PyObject *reads = PyTuple_GET_ITEM(args, g);
        if (!PyTuple_Check(reads)) {
            PyErr_Format(PyExc_TypeError, "Counts: a group key's row fields are a tuple, not %.100s",
                         Py_TYPE(reads)->tp_name);
            return -1;
        }
        Py_ssize_t n = PyTuple_GET_SIZE(reads);
        if (n < 1 || n > MOST_READS) {
            PyErr_Format(PyExc_ValueError, "Counts: a group key reads a tuple of 1 to %d row fields", MOST_READS);
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            long r = PyLong_AsLong(PyTuple_GET_ITEM(reads, i));
            if (r == -1 && PyErr_Occurred())
                return -1;
            if (r < 0 || r >= ROW_LEN) {
                PyErr_Format(PyExc_ValueError, "Counts: %ld is not a row field", r);
                return -1;
            }
            group[g].reads[i] = (int)r;
        }
        group[g].nreads = (int)n;
    }
    free_tables(c);
    for (Py_ssize_t g = 0; g < ngroups; g++) {
        memcpy(c->group[g].reads, group[g].reads, sizeof group[g].reads);
        c->group[g].nreads = group[g].nreads;
    }
    c->ngroups = (int)ngroups;
    c->flows = c->counted = 0;
    c->bytes = c->packets = 0;
    if (reindex(&c->states, FIRST_SLOTS) < 0 || reindex(&c->timeouts, FIRST_SLOTS) < 0)
        return -1;
    for (int g = 0; g < c->ngroups; g++)
        if (reindex(&c->group[g].t, FIRST_SLOTS) < 0)
            return -1;
    return 0;
}

static void Counts_dealloc(Counts *c) {
    free_tables(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int ready(Counts *c) {
    if (c->states.slots == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Counts: not initialised");
        return -1;
    }
    return 0;
}

static void seen_walked(const Counts *c, const walk_t *w, unsigned family, Seen *s) {
    for (int i = 0; i < 3; i++)
        row_field(w, family, STATE_FIELDS[i], &s->state[i]);
    for (int i = 0; i < 4; i++)
        row_field(w, family, COUNTER_FIELDS[i], &s->ctr[i]);
    for (int g = 0; g < c->ngroups; g++)
        for (int i = 0; i < c->group[g].nreads; i++)
            row_field(w, family, c->group[g].reads[i], &s->key[g][i]);
}

/* A bounded table's timeouts (table.tally.FlowTally.timeouts): one more flow read at seen with timeout left. */
static int count_timeout(Counts *c, const walk_t *w, unsigned family, long long seen) {
    field_t f[2];
    as_int(&f[0], (unsigned long long)seen);
    row_field(w, family, R_TIMEOUT, &f[1]);
    Py_ssize_t len = encode(&c->timeouts, f, 2);
    Py_ssize_t i = len < 0 ? -1 : find_or_add(&c->timeouts, len, NULL);
    if (i < 0)
        return -1;
    Entry *e = &c->timeouts.e[i];
    if (c->timeouts.hot[i].n == 0 && e->first == NULL && (e->first = Py_BuildValue("(LK)", seen, f[1].v)) == NULL)
        return -1;
    c->timeouts.hot[i].n++;
    return 0;
}

/* How many messages are walked ahead of the one counted. Each group's lookup waits on memory twice (its slot, then
 * its entry: the kernel's dump goes through the caches between two chunks), ~40 ns a flow at 7,168 groups; asked
 * for a few flows ahead, both are in the cache when the flow is counted. */
#define AHEAD 8
#define AHEAD_ENTRY 4  /* its entry's line, for the flow this many ahead (its slot asked for AHEAD - 1 ahead) */
#define AHEAD_KEY 64  /* a key longer than this is hashed when counted, not ahead */

typedef struct {
    walk_t w;
    unsigned family;
    Seen s;
    Py_ssize_t next;  /* the message after it */
} Ahead;

/* Hash each group key of a flow walked ahead and ask for its slot's line. */
static void ahead(const Counts *c, Seen *s) {
    uint8_t key[AHEAD_KEY];
    s->hashed = 1;
    for (int g = 0; g < c->ngroups; g++) {
        const Table *t = &c->group[g].t;
        Py_ssize_t len = encoded_len(s->key[g], c->group[g].nreads);
        if (len < 0 || len > AHEAD_KEY) {
            PyErr_Clear();  /* encode() says so when the flow is counted */
            s->hashed = 0;
            return;
        }
        encode_to(key, s->key[g], c->group[g].nreads);
        s->hash[g] = hash_bytes(key, len);
        __builtin_prefetch(&t->slots[s->hash[g] & (uint64_t)t->mask]);
    }
}

/* Ask for the line of the entry each group key of the next flow first probes (its slot asked for earlier). */
static void ahead_entries(const Counts *c, const Seen *s) {
    if (!s->hashed)
        return;
    for (int g = 0; g < c->ngroups; g++) {
        const Table *t = &c->group[g].t;
        uint64_t slot = t->slots[s->hash[g] & (uint64_t)t->mask];
        if (slot != 0 && slot >> 32 == s->hash[g] >> 32)
            __builtin_prefetch(&t->hot[(uint32_t)slot - 1]);
    }
}

/* dump(buf, pos, into=None, seen=0) -> int: count a dump's messages from pos on, up to the first one left to
 * Python; its offset. With into, each flow counted is also held there, read at seen: a Records (made with
 * packing.PACK_SPEC) stores it packed as packing.pack(row, seen) packs its row, under packing.flow_key (the
 * held table, FlowTable.loading); a Digests stores its shape under that key, and its (seen, timeout) is counted
 * (timeouts(): a bounded table, FlowTally.loading). No row is made of a flow but a group's first. A flow the
 * Records would not pack is left to Python, as one walk() leaves. */
static PyObject *Counts_dump(Counts *c, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    PyObject *into = Py_None;
    long long seen = 0;
    if (ready(c) < 0 || !PyArg_ParseTuple(args, "y*n|OL", &view, &pos, &into, &seen))
        return NULL;
    Records *store = into != Py_None && is_records(into) ? (Records *)into : NULL;
    PyObject *digests = into != Py_None && is_digests(into) ? into : NULL;
    if (into != Py_None && store == NULL && digests == NULL) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_TypeError, "Counts.dump: into is a Records or Digests, not %.100s", Py_TYPE(into)->tp_name);
        return NULL;
    }
    const uint8_t *b = view.buf;
    Py_ssize_t n = view.len, length;
    unsigned typ, flags;
    Ahead ring[AHEAD];
    int head = 0, pending = 0, stopped = 0;
    Packed packed;
    Digested digested;
    if (pos < 0)
        pos = n;  /* Python checks the position: nothing to do here */
    Py_ssize_t scan = pos;  /* the next message to walk ahead */
    for (;;) {
        /* Walk up to AHEAD messages ahead of the one counted, each group's slot asked for as each is walked. */
        while (!stopped && pending < AHEAD) {
            Ahead *a = &ring[(head + pending) % AHEAD];
            a->w.b = b;
            if (scan >= n || frame(b, scan, n, &length, &typ, &flags) != 0 || typ == NLMSG_DONE
                || typ == NLMSG_ERROR || flags & NLM_F_DUMP_INTR || walk(&a->w, scan, length) < 0) {
                stopped = 1;
                break;
            }
            a->family = b[scan + NFGEN_FAMILY];
            seen_walked(c, &a->w, a->family, &a->s);
            if (unusual(&a->s)) {
                stopped = 1;
                break;
            }
            ahead(c, &a->s);
            a->next = scan + ((length + 3) & ~(Py_ssize_t)3);
            scan = a->next;
            pending++;
        }
        if (pending == 0)
            break;  /* pos is where the walk stopped: the end, or a message left to Python */
        Ahead *a = &ring[head];
        if (pending > AHEAD_ENTRY)
            ahead_entries(c, &ring[(head + AHEAD_ENTRY) % AHEAD].s);
        /* Packed first (a flow the store would not take stops here, counted nowhere), stored once counted. */
        int put = store != NULL ? pack_walked(store, &a->w, a->family, seen, &packed) : 0;
        if (put > 0)
            break;
        if (digests != NULL && put == 0)
            put = digest_walked(digests, &a->w, a->family, &digested) < 0
                  || count_timeout(c, &a->w, a->family, seen) < 0 ? -1 : 0;
        if (put < 0 || tally(c, &a->s, NULL, &a->w, a->family) < 0 || (store != NULL && put_packed(store, &packed) < 0)
            || (digests != NULL && put_digested(digests, &digested) < 0)) {
            PyBuffer_Release(&view);
            return NULL;
        }
        pos = a->next;
        head = (head + 1) % AHEAD;
        pending--;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos < n ? pos : n);
}

/* One field of a row Python made, as row_field gives it. */
static int py_field(PyObject *v, field_t *f) {
    if (v == Py_None) {
        f->kind = FIELD_NONE;
    } else if (PyLong_CheckExact(v)) {
        f->kind = FIELD_INT;
        f->v = PyLong_AsUnsignedLongLong(v);
        if (f->v == (unsigned long long)-1 && PyErr_Occurred())
            return -1;
    } else if (PyBytes_CheckExact(v)) {
        f->kind = FIELD_BYTES;
        f->p = (const uint8_t *)PyBytes_AS_STRING(v);
        f->len = PyBytes_GET_SIZE(v);
    } else {
        PyErr_Format(PyExc_TypeError, "Counts: a row field of type %.100s", Py_TYPE(v)->tp_name);
        return -1;
    }
    return 0;
}

/* add_row(row): one flow Python decoded, counted as a walked one would be. */
static PyObject *Counts_add_row(Counts *c, PyObject *row) {
    if (ready(c) < 0)
        return NULL;
    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ROW_LEN) {
        PyErr_SetString(PyExc_TypeError, "Counts.add_row: a row is a tuple of model.ROW_LEN fields");
        return NULL;
    }
    Seen s;
    s.hashed = 0;
    for (int i = 0; i < 3; i++)
        if (py_field(PyTuple_GET_ITEM(row, STATE_FIELDS[i]), &s.state[i]) < 0)
            return NULL;
    for (int i = 0; i < 4; i++)
        if (py_field(PyTuple_GET_ITEM(row, COUNTER_FIELDS[i]), &s.ctr[i]) < 0)
            return NULL;
    for (int g = 0; g < c->ngroups; g++)
        for (int i = 0; i < c->group[g].nreads; i++)
            if (py_field(PyTuple_GET_ITEM(row, c->group[g].reads[i]), &s.key[g][i]) < 0)
                return NULL;
    for (int i = 0; i < 3; i++)
        if (s.state[i].kind != FIELD_INT) {
            PyErr_SetString(PyExc_TypeError, "Counts.add_row: protocol, state and status are ints");
            return NULL;
        }
    if (unusual(&s)) {
        PyErr_SetString(PyExc_TypeError, "Counts.add_row: packets counted without bytes, or one direction only");
        return NULL;
    }
    if (tally(c, &s, row, NULL, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *big(big_t v) {
    if (v <= (big_t)ULLONG_MAX)
        return PyLong_FromUnsignedLongLong((unsigned long long)v);
    PyObject *hi = PyLong_FromUnsignedLongLong((unsigned long long)(v >> 64)), *sh = PyLong_FromLong(64);
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)v);
    PyObject *up = hi && sh ? PyNumber_Lshift(hi, sh) : NULL, *out = up && lo ? PyNumber_Or(up, lo) : NULL;
    Py_XDECREF(hi);
    Py_XDECREF(sh);
    Py_XDECREF(lo);
    Py_XDECREF(up);
    return out;
}

/* totals() -> (flows, counted, bytes, packets) */
static PyObject *Counts_totals(Counts *c, PyObject *unused) {
    (void)unused;
    return Py_BuildValue("(KKNN)", (unsigned long long)c->flows, (unsigned long long)c->counted, big(c->bytes),
                         big(c->packets));
}

/* Each entry of t that counted a flow, in the order first seen, made by ``item`` (an entry of none is one whose
 * row could not be built: its flow was not counted). */
static PyObject *listed(const Table *t, PyObject *(*item)(const Table *, Py_ssize_t)) {
    PyObject *out = PyList_New(0);
    for (Py_ssize_t i = 0; out != NULL && i < t->n; i++) {
        if (t->hot[i].n == 0)
            continue;
        PyObject *one = item(t, i);
        if (one == NULL || PyList_Append(out, one) < 0)
            Py_CLEAR(out);
        Py_XDECREF(one);
    }
    return out;
}

static PyObject *state_item(const Table *t, Py_ssize_t i) {
    return Py_BuildValue("(OK)", t->e[i].first, (unsigned long long)t->hot[i].n);
}

static PyObject *group_item(const Table *t, Py_ssize_t i) {
    const Entry *e = &t->e[i];
    return Py_BuildValue("(OKNLNL)", e->first, (unsigned long long)t->hot[i].n, big(e->bytes), e->bytes_at,
                         big(e->packets), e->packets_at);
}

/* states() -> [((proto, pstate, status), flows)], in the order first seen */
static PyObject *Counts_states(Counts *c, PyObject *unused) {
    (void)unused;
    return listed(&c->states, state_item);
}

/* groups(i=0) -> [(first row, entries, bytes, bytes_at, packets, packets_at)]: group i's, in the order first seen */
static PyObject *Counts_groups(Counts *c, PyObject *args) {
    int g = 0;
    if (!PyArg_ParseTuple(args, "|i", &g))
        return NULL;
    if (g < 0 || g >= c->ngroups) {
        PyErr_Format(PyExc_IndexError, "Counts.groups: group %d of %d", g, c->ngroups);
        return NULL;
    }
    return listed(&c->group[g].t, group_item);
}

/* ngroups() -> the groups counted */
static PyObject *Counts_ngroups(Counts *c, PyObject *unused) {
    (void)unused;
    return PyLong_FromLong(c->ngroups);
}

/* timeouts() -> [((seen, timeout), flows)]: what dump() put into a Digests, counted */
static PyObject *Counts_timeouts(Counts *c, PyObject *unused) {
    (void)unused;
    return listed(&c->timeouts, state_item);
}

static PyMethodDef Counts_methods[] = {
    {"dump", (PyCFunction)Counts_dump, METH_VARARGS,
     "dump(buf, pos, into=None, seen=0) -> int: count a dump's messages from pos on (each also held in into, a\n"
     "Records or a Digests, when given), up to the first one left to Python; its offset"},
    {"timeouts", (PyCFunction)Counts_timeouts, METH_NOARGS,
     "timeouts() -> [((seen, timeout), flows)]: the flows dump() put into a Digests, counted"},
    {"add_row", (PyCFunction)Counts_add_row, METH_O, "add_row(row): count one flow Python decoded"},
    {"totals", (PyCFunction)Counts_totals, METH_NOARGS, "totals() -> (flows, counted, bytes, packets)"},
    {"states", (PyCFunction)Counts_states, METH_NOARGS,
     "states() -> [((proto, pstate, status), flows)], in the order first seen"},
    {"groups", (PyCFunction)Counts_groups, METH_VARARGS,
     "groups(i=0) -> [(first row, entries, bytes, bytes_at, packets, packets_at)]: group i's, in the order first seen"},
    {"ngroups", (PyCFunction)Counts_ngroups, METH_NOARGS, "ngroups() -> the groups counted"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CountsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cttop.kernel._ctdecode.Counts",
    .tp_basicsize = sizeof(Counts),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Counts(*groups): a dump counted by state, counters and group keys (each the row fields it reads)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Counts_init,
    .tp_dealloc = (destructor)Counts_dealloc,
    .tp_methods = Counts_methods,
};

int add_counts_type(PyObject *module) {
    if (PyType_Ready(&CountsType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "Counts", (PyObject *)&CountsType);
}

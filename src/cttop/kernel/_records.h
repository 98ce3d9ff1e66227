/* The held flow store's records in C (_records.c) and their frozen copies (_frozen.c), added to the _ctdecode
 * module by its init. */
#ifndef CTTOP_RECORDS_H
#define CTTOP_RECORDS_H
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_walk.h"

#define LAYOUTS 4              /* packing.SIZES: IPv4 and IPv6, with and without counters */
#define ARENAS (2 * LAYOUTS)   /* each layout whole, then cut (its reply tuple mirrored the original's) */
#define CHUNK_SHIFT 12
#define CHUNK ((Py_ssize_t)1 << CHUNK_SHIFT)
#define MAX_SLOTS (((Py_ssize_t)1 << 29) - 1)  /* a reference is slot << 3 | arena, + 1 in 32 bits */
#define NO_SLOT UINT32_MAX
#define KEY_LEN 8
#define MOST_RECORD 4096       /* the longest layout Records takes */

typedef struct {
    Py_ssize_t size;    /* bytes stored a record: its layout's, less the reply tuple where cut */
    Py_ssize_t stride;  /* the stored record, then its key */
    Py_ssize_t full;    /* the layout's record length */
    Py_ssize_t tuple_at, addr;  /* the original tuple (src dst sport dport, the reply after it), address length */
    int cut;            /* the reply tuple is cut out: it mirrored the original (no NAT), and is made again */
    char **chunks;
    uint64_t *live;     /* a bit a slot: it holds a flow */
    Py_ssize_t nchunks, used;  /* chunks allocated; slots handed out, the free ones among them */
    uint32_t free;      /* the first free slot below used, NO_SLOT for none */
} Arena;

/* One field of a packed record (packing.PACK_SPEC): where its value comes from (a row index, or the record's
 * own SEEN_FIELD and FLAGS_FIELD) and its size in bytes, big-endian (0: an address, the layout's length). */
typedef struct {
    int source, size;
} PackField;
#define MOST_FIELDS 32
#define SEEN_FIELD (-1)
#define FLAGS_FIELD (-2)

typedef struct {
    PyObject_HEAD
    PackField head[MOST_FIELDS], counters[MOST_FIELDS];  /* every record's fields, then a counted one's */
    int nhead, ncounters;  /* 0 fields: made without a spec, it stores records but packs no row */
    uint64_t *index;    /* tag << 32 | (reference + 1); 0 for an empty slot */
    Py_ssize_t mask, n, grow_at, first_slots;
    int bits;
    double load;
    Arena arena[ARENAS];
    uint64_t stamp;     /* bumped when a flow comes or goes, or moves to another arena */
} Records;

/* A flow key (packing.flow_key) from Python: an int in [0, 2**64), else TypeError or OverflowError naming ``who``'s
 * keys. Records and Digests (_ctdecode.c) both take them. */
static inline int as_key(const char *who, PyObject *o, uint64_t *key) {
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s: a key is an int, not %.100s", who, Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long k = PyLong_AsUnsignedLongLong(o);
    if (k == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *key = (uint64_t)k;
    return 0;
}

/* A chunk of records is shared, not copied, by the Frozen copies taken of the store (Records.freeze): it starts
 * with how many hold it, and the store copies a chunk it shares before it writes there (copy on write), so a
 * copy costs 4 bytes a flow until the store changes, and then only the chunks it changed. */
#define CHUNK_HEAD 16  /* the count, padded: the records after it stay 16-byte aligned */

static inline Py_ssize_t *chunk_refs(char *chunk) { return (Py_ssize_t *)(void *)(chunk - CHUNK_HEAD); }

/* A new chunk of ``bytes`` of records, held once; NULL with MemoryError. */
static inline char *new_chunk(Py_ssize_t bytes) {
    char *p = PyMem_Malloc((size_t)(CHUNK_HEAD + bytes));
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *(Py_ssize_t *)(void *)p = 1;
    return p + CHUNK_HEAD;
}

static inline void hold_chunk(char *chunk) { ++*chunk_refs(chunk); }

static inline void drop_chunk(char *chunk) {
    if (--*chunk_refs(chunk) == 0)
        PyMem_Free(chunk - CHUNK_HEAD);
}

static inline char *slot_at(const Arena *a, Py_ssize_t slot) {
    return a->chunks[slot >> CHUNK_SHIFT] + (slot & (CHUNK - 1)) * a->stride;
}

static inline int is_live(const Arena *a, Py_ssize_t slot) {
    return (int)(a->live[slot >> 6] >> (slot & 63) & 1);
}

static inline uint64_t key_at(const Arena *a, Py_ssize_t slot) {
    uint64_t key;
    memcpy(&key, slot_at(a, slot) + a->size, KEY_LEN);
    return key;
}

static inline Py_ssize_t reply_at(const Arena *a) { return a->tuple_at + 2 * a->addr + 4; }

/* A stored record, whole, into out (a->full bytes): where cut, the reply tuple made again from the original's
 * mirror (reply src = dst, dst = src, sport = dport, dport = sport). */
static inline void expand(const Arena *a, const char *p, char *out) {
    if (!a->cut) {
        memcpy(out, p, (size_t)a->full);
        return;
    }
    Py_ssize_t at = reply_at(a), n = at - a->tuple_at, ad = a->addr;
    const char *orig = p + a->tuple_at;
    char *reply = out + at;
    memcpy(out, p, (size_t)at);
    memcpy(reply, orig + ad, (size_t)ad);
    memcpy(reply + ad, orig, (size_t)ad);
    memcpy(reply + 2 * ad, orig + 2 * ad + 2, 2);
    memcpy(reply + 2 * ad + 2, orig + 2 * ad, 2);
    memcpy(out + at + n, p + at, (size_t)(a->full - at - n));
}

int add_records_type(PyObject *module);
/* Whether o is a Records. */
int is_records(PyObject *o);
/* A walked flow (a dump's message, _counts.c) packed as packing.pack packs its row (flags 0), and its flow key
 * (walked_key). */
typedef struct {
    uint64_t key;
    int layout;
    char rec[MOST_RECORD];
} Packed;
/* Pack a walked flow into out: 0, 1 when Python should pack it, -1 with an exception set. Nothing is stored yet;
 * put_packed stores it. */
int pack_walked(Records *r, const walk_t *w, unsigned family, long long seen, Packed *out);
/* Store what pack_walked packed: 0, or -1 with an exception set. */
int put_packed(Records *r, const Packed *p);
/* The store as the event path (_apply.c) reads and changes it, a flow at a time: */
/* 0 when it is initialised and packs rows, else -1 with an exception set. */
int records_ready(Records *r);
/* The index slot of key: its flow's (r->index[i] != 0), or the empty one where it would go. */
Py_ssize_t records_probe(const Records *r, uint64_t key);
/* The whole record of the flow at index slot i into out (MOST_RECORD bytes); its layout, in packing.SIZES' order. */
int records_read(const Records *r, Py_ssize_t i, char *out);
/* Take the flow at index slot i out. */
void records_remove(Records *r, Py_ssize_t i);
/* packing.pack(row, seen, flags) into out: its layout, or -1 (no exception) for a row Python should pack. */
int records_pack(const Records *r, PyObject *row, long long seen, long flags, char *out);
/* Store a whole record of that layout under key: 0, or -1 with an exception set (the table as it was). */
int records_put(Records *r, uint64_t key, const char *whole, int layout);
/* apply_events (_apply.c): FlowTable.apply_events for the compiled store. */
int add_apply(PyObject *module);
/* Records.freeze(): a copy of the flows held, for the flow list (_frozen.c). */
PyObject *freeze(Records *r);
int add_frozen_type(PyObject *module);

#endif

/* Records: the held flow store's records (flow key -> packed record, table/store.py) outside Python objects.
 *
 * A dict of a million packed records costs ~200 bytes a flow: a dict slot (~42), its int key (40) and a
 * bytes object (33 bytes of header, then the record, rounded up). Here a record is copied into an arena of
 * records of its own layout, its key after it, and the index is one 64-bit word a slot. A reply tuple that
 * mirrors the original (every flow without NAT: reply src = dst, dst = src, and the ports swapped) is cut out
 * and made again when the record is read: 12 bytes of an IPv4 record, 36 of an IPv6 one. It answers as the
 * dict it replaces (get, pop, [k] = v, update with pairs, keys/values/items, in, len, clear): table/store.py
 * uses a plain dict where this was not built, and tests/unit/test_table_records.py holds the two to the same
 * answers on random operations.
 *
 * The index: open addressing, probed linearly from a multiplicative hash of the key's low 32 bits (the
 * conntrack id, packing.flow_key), emptied by shifting back so no tombstone lengthens a probe. A slot holds
 * the record's reference + 1 (0: empty) and, above it, those 32 bits as a tag: a probe reads a record only
 * where the tag matches, and growing the index never reads a record.
 *
 * The arenas: one per layout (the four whose sizes and tuple offsets packing.py passes), whole and cut, in
 * chunks of CHUNK records, so growing never copies or doubles what is held; a freed record's slot is reused,
 * its first four bytes linking the free list, and a bit a slot says which hold a flow. Iteration walks the
 * arenas in order, so a flow keeps its place among the others while it lives (the flow list's order among
 * equal sort keys).
 *
 * Every value handed out is a new bytes object, a copy, whole: nothing outside sees the arenas, which move and
 * are reused. Every method holds the GIL but freeze() (_frozen.c), which copies the arenas without it, so the
 * UI thread is not held up for the ~40 ms a million flows take; meanwhile the store only answers reads, and a
 * change is refused with RuntimeError. An iterator stops with RuntimeError when flows came or went since it
 * started, as a dict's does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_records.h"
#include "_walk.h"

static PyTypeObject RecordsType;

static inline uint32_t tag_of(uint64_t key) { return (uint32_t)key; }

static inline Py_ssize_t home_of(const Records *r, uint32_t tag) {
    return (Py_ssize_t)(((uint64_t)tag * 0x9E3779B97F4A7C15ull) >> (64 - r->bits));
}

/* The record a slot of the index refers to. */
static inline const Arena *arena_of(const Records *r, uint64_t word, Py_ssize_t *slot) {
    uint32_t ref = (uint32_t)word - 1;
    *slot = (Py_ssize_t)(ref >> 3);
    return &r->arena[ref & 7];
}

/* Where key is in the index, or the empty slot where it would go. */
static Py_ssize_t probe(const Records *r, uint64_t key) {
    uint32_t tag = tag_of(key);
    Py_ssize_t i = home_of(r, tag);
    for (uint64_t w; (w = r->index[i]) != 0; i = (i + 1) & r->mask) {
        if ((uint32_t)(w >> 32) == tag) {
            Py_ssize_t slot;
            const Arena *a = arena_of(r, w, &slot);
            if (key_at(a, slot) == key)
                break;
        }
    }
    return i;
}

static uint64_t *new_index(Py_ssize_t slots) {
    uint64_t *index = PyMem_Calloc((size_t)slots, sizeof *index);
    if (index == NULL)
        PyErr_NoMemory();
    return index;
}

static void use_index(Records *r, uint64_t *index, Py_ssize_t slots) {
    int bits = 0;
    while (((Py_ssize_t)1 << bits) < slots)
        bits++;
    r->index = index;
    r->mask = slots - 1;
    r->bits = bits;
    r->grow_at = (Py_ssize_t)((double)slots * r->load);
}

/* Twice the slots, every word placed again by its tag alone (no record is read). */
static int grow_index(Records *r) {
    uint64_t *old = r->index, *index = new_index(2 * (r->mask + 1));
    Py_ssize_t old_slots = r->mask + 1;
    if (index == NULL)
        return -1;
    use_index(r, index, 2 * old_slots);
    for (Py_ssize_t j = 0; j < old_slots; j++) {
        uint64_t w = old[j];
        if (!w)
            continue;
        Py_ssize_t i = home_of(r, (uint32_t)(w >> 32));
        while (r->index[i])
            i = (i + 1) & r->mask;
        r->index[i] = w;
    }
    PyMem_Free(old);
    return 0;
}

/* Slot ``slot``'s chunk held by the store alone, copied first if a Frozen copy shares it: where the store may
 * write its record. NULL with MemoryError (nothing changed). */
static char *own_slot(Arena *a, Py_ssize_t slot) {
    Py_ssize_t i = slot >> CHUNK_SHIFT;
    char *chunk = a->chunks[i];
    if (*chunk_refs(chunk) > 1) {
        char *mine = new_chunk(CHUNK * a->stride);
        if (mine == NULL)
            return NULL;
        memcpy(mine, chunk, (size_t)(CHUNK * a->stride));
        drop_chunk(chunk);
        a->chunks[i] = chunk = mine;
    }
    return chunk + (slot & (CHUNK - 1)) * a->stride;
}

/* A free slot of a's, marked live, its chunk the store's own: the first free one, else the next never used.
 * NULL on an error, nothing taken. */
static char *take_slot(Arena *a, Py_ssize_t *out) {
    Py_ssize_t slot = a->free;
    if (slot == NO_SLOT) {
        if (a->used >= MAX_SLOTS) {
            PyErr_SetString(PyExc_OverflowError, "Records: too many records of one layout");
            return NULL;
        }
        if (a->used == a->nchunks * CHUNK) {
            char **chunks = PyMem_Realloc(a->chunks, (size_t)(a->nchunks + 1) * sizeof *chunks);
            if (chunks == NULL) {
                PyErr_NoMemory();
                return NULL;
            }
            a->chunks = chunks;
            uint64_t *live = PyMem_Realloc(a->live, (size_t)(a->nchunks + 1) * (CHUNK / 64) * sizeof *live);
            if (live == NULL) {
                PyErr_NoMemory();
                return NULL;
            }
            a->live = live;
            memset(live + a->nchunks * (CHUNK / 64), 0, (CHUNK / 64) * sizeof *live);
            char *chunk = new_chunk(CHUNK * a->stride);
            if (chunk == NULL)
                return NULL;
            a->chunks[a->nchunks++] = chunk;
        }
        slot = a->used;
    }
    char *p = own_slot(a, slot);
    if (p == NULL)
        return NULL;
    if (slot == a->used)
        a->used++;
    else
        memcpy(&a->free, p, sizeof a->free);
    a->live[slot >> 6] |= (uint64_t)1 << (slot & 63);
    *out = slot;
    return p;
}

/* A slot no longer live, linked into the free list. Where its chunk is shared and cannot be copied (no memory),
 * it is left out of the list: never reused, rather than written under a Frozen copy that still shows it. */
static void give_slot(Arena *a, Py_ssize_t slot) {
    a->live[slot >> 6] &= ~((uint64_t)1 << (slot & 63));
    char *p = own_slot(a, slot);
    if (p == NULL) {
        PyErr_Clear();
        return;
    }
    memcpy(p, &a->free, sizeof a->free);
    a->free = (uint32_t)slot;
}

static void free_arenas(Records *r) {
    for (int c = 0; c < ARENAS; c++) {
        Arena *a = &r->arena[c];
        for (Py_ssize_t i = 0; i < a->nchunks; i++)
            drop_chunk(a->chunks[i]);
        PyMem_Free(a->chunks);
        PyMem_Free(a->live);
        a->chunks = NULL, a->live = NULL, a->nchunks = 0, a->used = 0, a->free = NO_SLOT;
    }
}

static int ready(Records *r) {
    if (r->index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Records: not initialised");
        return -1;
    }
    return 0;
}

/* The layout of a record of len bytes, or -1 (and ValueError) for none of them. */
static int layout_of(const Records *r, PyObject *rec) {
    if (!PyBytes_Check(rec)) {
        PyErr_Format(PyExc_TypeError, "Records: a record is bytes, not %.100s", Py_TYPE(rec)->tp_name);
        return -1;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(rec);
    for (int c = 0; c < LAYOUTS; c++)
        if (r->arena[c].full == len)
            return c;
    PyErr_Format(PyExc_ValueError, "Records: a record of %zd bytes is none of the layouts", len);
    return -1;
}

/* Whether a whole record's reply tuple mirrors its original, as it does without NAT: then it is cut. */
static int mirrored(const Arena *a, const char *rec) {
    Py_ssize_t ad = a->addr;
    const char *orig = rec + a->tuple_at, *reply = rec + reply_at(a);
    return !memcmp(reply, orig + ad, (size_t)ad) && !memcmp(reply + ad, orig, (size_t)ad)
        && !memcmp(reply + 2 * ad, orig + 2 * ad + 2, 2) && !memcmp(reply + 2 * ad + 2, orig + 2 * ad, 2);
}

/* A whole record stored into p, as arena a keeps it. */
static void store(const Arena *a, char *p, const char *rec) {
    if (!a->cut) {
        memcpy(p, rec, (size_t)a->full);
        return;
    }
    Py_ssize_t at = reply_at(a), n = at - a->tuple_at;
    memcpy(p, rec, (size_t)at);
    memcpy(p + at, rec + at + n, (size_t)(a->full - at - n));
}

/* Read packing.PACK_SPEC's half ``fields`` ((source, size) pairs) into out; the fields' count, or -1. */
static int read_fields(PyObject *fields, PackField *out) {
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) > MOST_FIELDS)
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(fields); i++) {
        PyObject *f = PyTuple_GET_ITEM(fields, i);
        if (!PyTuple_Check(f) || !PyArg_ParseTuple(f, "ii", &out[i].source, &out[i].size))
            return -1;
        int s = out[i].size, src = out[i].source;
        if (!(s == 0 || s == 1 || s == 2 || s == 4 || s == 8) || src < FLAGS_FIELD || src >= ROW_LEN
            || (s == 0 && src < 0))
            return -1;
    }
    return (int)PyTuple_GET_SIZE(fields);
}

/* The length of a record of these fields with ``addr``-byte addresses. */
static Py_ssize_t fields_len(const PackField *f, int n, Py_ssize_t addr) {
    Py_ssize_t len = 0;
    for (int i = 0; i < n; i++)
        len += f[i].size ? f[i].size : addr;
    return len;
}

static int Records_init(Records *r, PyObject *args, PyObject *kwds) {
    Py_ssize_t lay[LAYOUTS][3], slots;
    double load;
    PyObject *spec = NULL, *head = NULL, *counters = NULL;
    static char *kw[] = {"layouts", "slots", "load", "spec", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "((nnn)(nnn)(nnn)(nnn))nd|O", kw, &lay[0][0], &lay[0][1],
                                     &lay[0][2], &lay[1][0], &lay[1][1], &lay[1][2], &lay[2][0], &lay[2][1],
                                     &lay[2][2], &lay[3][0], &lay[3][1], &lay[3][2], &slots, &load, &spec))
        return -1;
    PackField hf[MOST_FIELDS] = {{0, 0}}, cf[MOST_FIELDS] = {{0, 0}};
    int nhead = 0, ncounters = 0;
    if (spec != NULL && spec != Py_None) {
        if (PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) == 2)
            head = PyTuple_GET_ITEM(spec, 0), counters = PyTuple_GET_ITEM(spec, 1);
        nhead = head ? read_fields(head, hf) : -1;
        ncounters = counters ? read_fields(counters, cf) : -1;
        PyErr_Clear();  /* (a malformed field's own error: the one below says what a spec is) */
        /* The spec's four records must be the four layouts, in packing.SIZES' order (IPv4, IPv6, each counted). */
        if (nhead <= 0 || ncounters <= 0 || fields_len(hf, nhead, 4) != lay[0][0]
            || fields_len(hf, nhead, 16) != lay[1][0]
            || fields_len(hf, nhead, 4) + fields_len(cf, ncounters, 4) != lay[2][0]
            || fields_len(hf, nhead, 16) + fields_len(cf, ncounters, 16) != lay[3][0]) {
            PyErr_SetString(PyExc_ValueError, "Records: spec is (head fields, counter fields), each (row index "
                            "or -1 seen or -2 flags, size 0 1 2 4 or 8), making the four layouts' records");
            return -1;
        }
    }
    if (slots < 2 || (slots & (slots - 1)) || !(load > 0.0 && load < 1.0)) {
        PyErr_SetString(PyExc_ValueError, "Records: slots must be a power of two, load between 0 and 1");
        return -1;
    }
    for (int c = 0; c < LAYOUTS; c++) {
        Py_ssize_t size = lay[c][0], tuple_at = lay[c][1], addr = lay[c][2], cut = 2 * addr + 4;
        int again = 0;
        for (int d = 0; d < c; d++)
            again |= lay[d][0] == size;
        /* (a cut record's first four bytes still link the free list when its slot is free) */
        if (size > MOST_RECORD || again || addr < 1 || addr > 16 || tuple_at < 0 || tuple_at + 2 * cut > size
            || size - cut < (Py_ssize_t)sizeof(uint32_t)) {
            PyErr_SetString(PyExc_ValueError, "Records: four distinct layouts of (size up to 4096 bytes, where "
                            "the tuples start, address length), both tuples inside the record");
            return -1;
        }
    }
    free_arenas(r);  /* (__init__ again: start empty) */
    PyMem_Free(r->index);
    r->index = NULL;
    for (int c = 0; c < ARENAS; c++) {
        Arena *a = &r->arena[c];
        const Py_ssize_t *l = lay[c % LAYOUTS];
        a->cut = c >= LAYOUTS, a->full = l[0], a->tuple_at = l[1], a->addr = l[2];
        a->size = a->full - (a->cut ? 2 * a->addr + 4 : 0), a->stride = a->size + KEY_LEN;
    }
    r->n = 0, r->load = load, r->first_slots = slots;
    r->nhead = nhead, r->ncounters = ncounters;
    memcpy(r->head, hf, sizeof hf);
    memcpy(r->counters, cf, sizeof cf);
    r->stamp++;
    uint64_t *index = new_index(slots);
    if (index == NULL)
        return -1;
    use_index(r, index, slots);
    return 0;
}

static PyObject *Records_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds)) {
    Records *r = (Records *)type->tp_alloc(type, 0);
    if (r != NULL)
        for (int c = 0; c < ARENAS; c++)
            r->arena[c].free = NO_SLOT;
    return (PyObject *)r;
}

static void Records_dealloc(Records *r) {
    free_arenas(r);
    PyMem_Free(r->index);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* A new bytes object of the whole record in a slot. */
static PyObject *bytes_at(const Arena *a, Py_ssize_t slot) {
    PyObject *b = PyBytes_FromStringAndSize(NULL, a->full);
    if (b != NULL)
        expand(a, slot_at(a, slot), PyBytes_AS_STRING(b));
    return b;
}

/* A copy of the record a word of the index refers to. */
static PyObject *record_of(const Records *r, uint64_t w) {
    Py_ssize_t slot;
    const Arena *a = arena_of(r, w, &slot);
    return bytes_at(a, slot);
}

/* Store the whole record ``whole`` of layout c under key (a new key, or the record replaced), in a chunk the store
 * holds alone (copied first where a Frozen shares it); -1 on an error, the table as it was. */
static int put_raw(Records *r, uint64_t key, const char *whole, int c) {
    if (mirrored(&r->arena[c], whole))
        c += LAYOUTS;
    Arena *a = &r->arena[c];
    Py_ssize_t i = probe(r, key), slot;
    uint64_t w = r->index[i];
    char *p;
    if (w) {
        Py_ssize_t was;
        Arena *old = (Arena *)arena_of(r, w, &was);
        if (old == a) {  /* kept the same way: in place */
            if ((p = own_slot(a, was)) == NULL)
                return -1;
            store(a, p, whole);
            return 0;
        }
        if ((p = take_slot(a, &slot)) == NULL)
            return -1;
        give_slot(old, was);
    } else {
        /* The index doubles before it would pass its load, so a failed doubling leaves it never full. */
        if (r->n >= r->grow_at) {
            if (grow_index(r) < 0)
                return -1;
            i = probe(r, key);
        }
        if ((p = take_slot(a, &slot)) == NULL)
            return -1;
        r->n++;
    }
    store(a, p, whole);
    memcpy(p + a->size, &key, KEY_LEN);
    r->index[i] = (uint64_t)tag_of(key) << 32 | ((uint32_t)(slot << 3 | c) + 1);
    r->stamp++;
    return 0;
}

/* Store rec, a record of bytes, under key: put_raw's, once its layout is known. */
static int put(Records *r, uint64_t key, PyObject *rec) {
    int c = layout_of(r, rec);
    if (c < 0)
        return -1;
    return put_raw(r, key, PyBytes_AS_STRING(rec), c);
}

/* Take index slot i's flow out, shifting back the words after it whose probe passed through i. */
static void remove_at(Records *r, Py_ssize_t i) {
    Py_ssize_t slot, mask = r->mask;
    Arena *a = (Arena *)arena_of(r, r->index[i], &slot);
    give_slot(a, slot);
    for (Py_ssize_t j = i;;) {
        j = (j + 1) & mask;
        uint64_t w = r->index[j];
        if (!w)
            break;
        Py_ssize_t h = home_of(r, (uint32_t)(w >> 32));
        if (((j - h) & mask) >= ((j - i) & mask)) {
            r->index[i] = w;
            i = j;
        }
    }
    r->index[i] = 0;
    r->n--;
    r->stamp++;
}

/* get and pop take a key and, optionally, a default. */
static int arity(const char *name, Py_ssize_t nargs) {
    if (nargs == 1 || nargs == 2)
        return 0;
    PyErr_Format(PyExc_TypeError, "Records.%s takes a key and an optional default (%zd arguments given)", name, nargs);
    return -1;
}

static PyObject *Records_get(Records *r, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t key;
    if (arity("get", nargs) < 0 || ready(r) < 0 || as_key("Records", args[0], &key) < 0)
        return NULL;
    uint64_t w = r->index[probe(r, key)];
    if (w)
        return record_of(r, w);
    PyObject *dflt = nargs > 1 ? args[1] : Py_None;
    Py_INCREF(dflt);
    return dflt;
}

static PyObject *Records_pop(Records *r, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t key;
    if (arity("pop", nargs) < 0 || ready(r) < 0 || as_key("Records", args[0], &key) < 0)
        return NULL;
    Py_ssize_t i = probe(r, key);
    if (!r->index[i]) {
        if (nargs > 1) {
            Py_INCREF(args[1]);
            return args[1];
        }
        PyErr_SetObject(PyExc_KeyError, args[0]);
        return NULL;
    }
    PyObject *rec = record_of(r, r->index[i]);  /* first: out of memory, the flow stays */
    if (rec != NULL)
        remove_at(r, i);
    return rec;
}

/* Write the value v in ``size`` bytes, big-endian; 0, or -1 when it does not fit (struct.pack would refuse it). */
static int put_be(char *p, unsigned long long v, int size) {
    if (size < 8 && v >> (8 * size))
        return -1;
    for (int i = size - 1; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xFF);
    return 0;
}

/* Where a record's row fields come from: a row Python made, or a message's walk (no row made). */
typedef struct {
    PyObject *row;  /* NULL: the walk's */
    const walk_t *w;
    unsigned family;
} From;

/* A field of Python's row as row_field gives a walk's; -1 (no exception) for a value packing.pack would not take
 * as it is (not an int, or bytes where an address goes; out of range): Python packs that row, and says so. */
static int from_row(PyObject *o, int address, field_t *f) {
    if (address) {
        if (!PyBytes_CheckExact(o))
            return -1;
        f->kind = FIELD_BYTES;
        f->p = (const uint8_t *)PyBytes_AS_STRING(o);
        f->len = PyBytes_GET_SIZE(o);
        return 0;
    }
    if (!PyLong_Check(o))  /* (an int subclass, AF_INET6 itself, packs as its value, as struct does) */
        return -1;
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    as_int(f, v);
    return 0;
}

/* The fields f[0..n) packed at out, as packing.pack packs them; -1 (no exception) for a value it would not take
 * as it is. */
static int pack_fields(const PackField *f, int n, const From *from, Py_ssize_t addr, uint32_t seen, int flags,
                       char *out, Py_ssize_t *at) {
    for (int i = 0; i < n; i++) {
        field_t v;
        if (f[i].source == SEEN_FIELD)
            as_int(&v, seen);
        else if (f[i].source == FLAGS_FIELD)
            as_int(&v, (unsigned long long)flags);
        else if (from->row == NULL)
            row_field(from->w, from->family, f[i].source, &v);
        else if (from_row(PyTuple_GET_ITEM(from->row, f[i].source), f[i].size == 0, &v) < 0)
            return -1;
        if (f[i].size == 0) {  /* an address: struct's "Ns" pads a shorter one with zeros, cuts a longer */
            if (v.kind != FIELD_BYTES)
                return -1;
            Py_ssize_t len = v.len < addr ? v.len : addr;
            if (len)
                memcpy(out + *at, v.p, (size_t)len);
            memset(out + *at + len, 0, (size_t)(addr - len));
            *at += addr;
            continue;
        }
        if (v.kind != FIELD_INT || put_be(out + *at, v.v, f[i].size) < 0)
            return -1;
        *at += f[i].size;
    }
    return 0;
}

/* packing.pack(row, seen, flags) into out; its layout, or -1 (no exception) where Python should pack it. */
static int pack_from(const Records *r, const From *from, int v6, int counted, long long seen, long flags, char *out) {
    if (seen < 0 || seen > UINT32_MAX || flags < 0 || flags > 0xFF)
        return -1;
    Py_ssize_t addr = v6 ? 16 : 4, at = 0;
    if (pack_fields(r->head, r->nhead, from, addr, (uint32_t)seen, (int)flags, out, &at) < 0
        || (counted && pack_fields(r->counters, r->ncounters, from, addr, (uint32_t)seen, (int)flags, out, &at) < 0))
        return -1;
    return v6 + 2 * counted;  /* packing.SIZES' order: V4, V6, V4C, V6C (checked in __init__) */
}

static int pack_row(const Records *r, PyObject *row, long long seen, long flags, char *out) {
    if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != ROW_LEN)
        return -1;
    PyObject *family = PyTuple_GET_ITEM(row, R_FAMILY);
    int v6 = PyLong_Check(family) && PyLong_AsLong(family) == AF_INET6_;
    PyErr_Clear();
    From from = {row, NULL, 0};
    return pack_from(r, &from, v6, PyTuple_GET_ITEM(row, R_OPKTS) != Py_None, seen, flags, out);
}

static int can_pack(Records *r) {
    if (ready(r) < 0)
        return -1;
    if (r->nhead == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Records: made without a spec, it packs no row");
        return -1;
    }
    return 0;
}

/* put_row(key, row, seen, flags) -> bool: packing.pack(row, seen, flags) stored under key; False (nothing
 * stored) for a row Python should pack. */
static PyObject *Records_put_row(Records *r, PyObject *const *args, Py_ssize_t nargs) {
    uint64_t key;
    char rec[MOST_RECORD];
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "Records.put_row(key, row, seen, flags)");
        return NULL;
    }
    if (can_pack(r) < 0 || as_key("Records", args[0], &key) < 0)
        return NULL;
    long long seen = PyLong_AsLongLong(args[2]);
    long flags = PyLong_AsLong(args[3]);
    if (PyErr_Occurred()) {  /* not an int, or far out of range: pack refuses it, in its words */
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    int c = pack_row(r, args[1], seen, flags, rec);
    if (c < 0)
        Py_RETURN_FALSE;
    if (put_raw(r, key, rec, c) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

/* put_rows(keys, rows, seen, start) -> int: put_row(keys[i], rows[i], seen, 0) from i = start on; where it
 * stopped, at a row Python should pack (len(rows) when none). */
static PyObject *Records_put_rows(Records *r, PyObject *const *args, Py_ssize_t nargs) {
    char rec[MOST_RECORD];
    if (nargs != 4 || !PyList_Check(args[0]) || !PyList_Check(args[1])
        || PyList_GET_SIZE(args[0]) != PyList_GET_SIZE(args[1])) {
        PyErr_SetString(PyExc_TypeError, "Records.put_rows(keys, rows, seen, start): two lists of one length");
        return NULL;
    }
    Py_ssize_t i = PyLong_AsSsize_t(args[3]), n = PyList_GET_SIZE(args[1]);
    if (PyErr_Occurred() || can_pack(r) < 0)
        return NULL;
    long long seen = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) {  /* as put_row: pack refuses it, in its words */
        PyErr_Clear();
        seen = -1;  /* (which pack_row leaves to Python) */
    }
    for (i = i < 0 ? 0 : i; i < n; i++) {
        uint64_t key;
        if (as_key("Records", PyList_GET_ITEM(args[0], i), &key) < 0)
            return NULL;
        int c = pack_row(r, PyList_GET_ITEM(args[1], i), seen, 0, rec);
        if (c < 0)
            break;
        if (put_raw(r, key, rec, c) < 0)
            return NULL;
    }
    return PyLong_FromSsize_t(i);
}

int is_records(PyObject *o) { return PyObject_TypeCheck(o, &RecordsType); }

int records_ready(Records *r) { return can_pack(r); }

Py_ssize_t records_probe(const Records *r, uint64_t key) { return probe(r, key); }

int records_read(const Records *r, Py_ssize_t i, char *out) {
    Py_ssize_t slot;
    const Arena *a = arena_of(r, r->index[i], &slot);
    expand(a, slot_at(a, slot), out);
    return (int)(a - r->arena) % LAYOUTS;
}

void records_remove(Records *r, Py_ssize_t i) { remove_at(r, i); }

int records_pack(const Records *r, PyObject *row, long long seen, long flags, char *out) {
    return pack_row(r, row, seen, flags, out);
}

int records_put(Records *r, uint64_t key, const char *whole, int layout) { return put_raw(r, key, whole, layout); }

int pack_walked(Records *r, const walk_t *w, unsigned family, long long seen, Packed *out) {
    if (can_pack(r) < 0)
        return -1;
    From from = {NULL, w, family};
    out->layout = pack_from(r, &from, family == AF_INET6_, (w->have >> F_OPKTS) & 1, seen, 0, out->rec);
    if (out->layout < 0)
        return 1;
    out->key = walked_key(w, family);
    /* Its index slot is a cache miss (a million flows' index is 16 MB): asked for now, it is there once the flow
     * has been counted (put_packed after tally, _counts.c). */
    __builtin_prefetch(&r->index[home_of(r, tag_of(out->key))], 1);
    return 0;
}

int put_packed(Records *r, const Packed *p) {
    return put_raw(r, p->key, p->rec, p->layout);
}

static PyObject *Records_update(Records *r, PyObject *pairs) {
    if (ready(r) < 0)
        return NULL;
    PyObject *it = PyObject_GetIter(pairs), *pair;
    if (it == NULL)
        return NULL;
    while ((pair = PyIter_Next(it)) != NULL) {
        uint64_t key;
        int bad;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "Records.update: (key, record) pairs");
            bad = 1;
        } else {
            bad = as_key("Records", PyTuple_GET_ITEM(pair, 0), &key) < 0
                  || put(r, key, PyTuple_GET_ITEM(pair, 1)) < 0;
        }
        Py_DECREF(pair);
        if (bad)
            break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Records_clear(Records *r, PyObject *Py_UNUSED(ignored)) {
    if (ready(r) < 0)
        return NULL;
    uint64_t *index = new_index(r->first_slots);
    if (index == NULL)
        return NULL;
    free_arenas(r);
    PyMem_Free(r->index);
    use_index(r, index, r->first_slots);
    r->n = 0;
    r->stamp++;
    Py_RETURN_NONE;
}

static PyObject *Records_freeze(Records *r, PyObject *Py_UNUSED(ignored)) {
    return ready(r) < 0 ? NULL : freeze(r);
}

/* timeouts(at) -> dict: how many flows hold each (seen, timeout) pair, two big-endian 32-bit fields of every
 * record, at[c] = (where seen is, where timeout is) in layout c's whole record (packing.SEEN_TIMEOUT_AT): what the
 * forecast reads once a dump (live.frame_builder), without a bytes object a flow (read back as bytes: 0.26 s of CPU at a million, this 4 ms). */
static PyObject *Records_timeouts(Records *r, PyObject *at) {
    Py_ssize_t where[LAYOUTS][2];
    if (ready(r) < 0)
        return NULL;
    if (!PyTuple_Check(at)) {
        PyErr_SetString(PyExc_TypeError, "Records.timeouts: at is a tuple of each layout's offsets");
        return NULL;
    }
    if (!PyArg_ParseTuple(at, "(nn)(nn)(nn)(nn)", &where[0][0], &where[0][1], &where[1][0], &where[1][1],
                          &where[2][0], &where[2][1], &where[3][0], &where[3][1]))
        return NULL;
    for (int c = 0; c < LAYOUTS; c++)
        for (int f = 0; f < 2; f++) {
            const Arena *a = &r->arena[c];
            Py_ssize_t off = where[c][f], cut = reply_at(a) + 2 * a->addr + 4;
            if (off < cut || off + 4 > a->full) {  /* after both tuples: where a cut record has it too */
                PyErr_SetString(PyExc_ValueError, "Records.timeouts: each layout's (seen, timeout) offsets, two "
                                "32-bit fields after the tuples");
                return NULL;
            }
        }
    /* Counted by pair in an open-addressing table (a real table has a few thousand pairs; the dict is made once). */
    Py_ssize_t cap = 1024, used = 0;
    uint64_t *keys = PyMem_Calloc((size_t)cap, sizeof *keys);
    Py_ssize_t *counts = PyMem_Calloc((size_t)cap, sizeof *counts);
    PyObject *out = NULL;
    if (keys == NULL || counts == NULL)
        goto fail;
    for (int c = 0; c < ARENAS; c++) {
        const Arena *a = &r->arena[c];
        Py_ssize_t shift = a->cut ? 2 * a->addr + 4 : 0;
        Py_ssize_t seen_at = where[c % LAYOUTS][0] - shift, timeout_at = where[c % LAYOUTS][1] - shift;
        for (Py_ssize_t slot = 0; slot < a->used; slot++) {
            if (!is_live(a, slot))
                continue;
            const uint8_t *p = (const uint8_t *)slot_at(a, slot);
            uint64_t seen = (uint64_t)p[seen_at] << 24 | (uint64_t)p[seen_at + 1] << 16 | (uint64_t)p[seen_at + 2] << 8
                            | p[seen_at + 3];
            uint64_t left = (uint64_t)p[timeout_at] << 24 | (uint64_t)p[timeout_at + 1] << 16
                            | (uint64_t)p[timeout_at + 2] << 8 | p[timeout_at + 3];
            uint64_t key = (seen << 32 | left) + 1;  /* 0: an empty slot */
            Py_ssize_t i = (Py_ssize_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
            while (keys[i] && keys[i] != key)
                i = (i + 1) & (cap - 1);
            if (!keys[i]) {
                keys[i] = key;
                if (++used * 2 > cap) {  /* doubled at half full */
                    Py_ssize_t bigger = cap * 2;
                    uint64_t *k2 = PyMem_Calloc((size_t)bigger, sizeof *k2);
                    Py_ssize_t *n2 = PyMem_Calloc((size_t)bigger, sizeof *n2);
                    if (k2 == NULL || n2 == NULL) {
                        PyMem_Free(k2);
                        PyMem_Free(n2);
                        goto fail;
                    }
                    counts[i]++;
                    for (Py_ssize_t j = 0; j < cap; j++) {
                        if (!keys[j])
                            continue;
                        Py_ssize_t h = (Py_ssize_t)((keys[j] * 0x9E3779B97F4A7C15ull) >> 32) & (bigger - 1);
                        while (k2[h])
                            h = (h + 1) & (bigger - 1);
                        k2[h] = keys[j], n2[h] = counts[j];
                    }
                    PyMem_Free(keys);
                    PyMem_Free(counts);
                    keys = k2, counts = n2, cap = bigger;
                    continue;
                }
            }
            counts[i]++;
        }
    }
    out = PyDict_New();
    for (Py_ssize_t i = 0; out != NULL && i < cap; i++) {
        if (!keys[i])
            continue;
        uint64_t key = keys[i] - 1;
        PyObject *pair = Py_BuildValue("(kk)", (unsigned long)(key >> 32), (unsigned long)(uint32_t)key);
        PyObject *n = pair == NULL ? NULL : PyLong_FromSsize_t(counts[i]);
        if (n == NULL || PyDict_SetItem(out, pair, n) < 0)
            Py_CLEAR(out);
        Py_XDECREF(pair);
        Py_XDECREF(n);
    }
    PyMem_Free(keys);
    PyMem_Free(counts);
    return out;
fail:
    PyMem_Free(keys);
    PyMem_Free(counts);
    return PyErr_NoMemory();
}

static PyObject *Records_sizeof(Records *r, PyObject *Py_UNUSED(ignored)) {
    size_t total = sizeof *r + (size_t)(r->mask + 1) * sizeof *r->index * (r->index != NULL);
    for (int c = 0; c < ARENAS; c++) {
        const Arena *a = &r->arena[c];
        total += (size_t)a->nchunks * ((size_t)(CHUNK * a->stride) + sizeof *a->chunks + CHUNK / 8);
    }
    return PyLong_FromSize_t(total);
}

static Py_ssize_t Records_len(Records *r) { return r->n; }

static int Records_contains(Records *r, PyObject *k) {
    uint64_t key;
    if (ready(r) < 0)
        return -1;
    if (!PyLong_Check(k))
        return 0;  /* as a dict of int keys answers */
    if (as_key("Records", k, &key) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();  /* a negative or too big int is no key held */
        return 0;
    }
    return r->index[probe(r, key)] != 0;
}

static PyObject *Records_subscript(Records *r, PyObject *k) {
    uint64_t key;
    if (ready(r) < 0 || as_key("Records", k, &key) < 0)
        return NULL;
    uint64_t w = r->index[probe(r, key)];
    if (w)
        return record_of(r, w);
    PyErr_SetObject(PyExc_KeyError, k);
    return NULL;
}

static int Records_ass_subscript(Records *r, PyObject *k, PyObject *rec) {
    uint64_t key;
    if (ready(r) < 0 || as_key("Records", k, &key) < 0)
        return -1;
    if (rec != NULL)
        return put(r, key, rec);
    Py_ssize_t i = probe(r, key);
    if (!r->index[i]) {
        PyErr_SetObject(PyExc_KeyError, k);
        return -1;
    }
    remove_at(r, i);
    return 0;
}

/* Iterators: the flows' keys, records or (key, record) pairs, arena by arena in slot order. */
enum { KEYS, VALUES, ITEMS };

typedef struct {
    PyObject_HEAD
    Records *of;
    int what, c;
    Py_ssize_t slot;
    uint64_t stamp;
} RecordsIter;

static PyTypeObject RecordsIterType;

static PyObject *iterate(Records *r, int what) {
    if (ready(r) < 0)
        return NULL;
    RecordsIter *it = PyObject_New(RecordsIter, &RecordsIterType);
    if (it == NULL)
        return NULL;
    Py_INCREF(r);
    it->of = r, it->what = what, it->c = 0, it->slot = 0, it->stamp = r->stamp;
    return (PyObject *)it;
}

static PyObject *Records_keys(Records *r, PyObject *Py_UNUSED(ignored)) { return iterate(r, KEYS); }
static PyObject *Records_values(Records *r, PyObject *Py_UNUSED(ignored)) { return iterate(r, VALUES); }
static PyObject *Records_items(Records *r, PyObject *Py_UNUSED(ignored)) { return iterate(r, ITEMS); }
static PyObject *Records_iter(Records *r) { return iterate(r, KEYS); }

static PyObject *RecordsIter_next(RecordsIter *it) {
    Records *r = it->of;
    if (it->c >= ARENAS)
        return NULL;
    if (it->stamp != r->stamp) {
        PyErr_SetString(PyExc_RuntimeError, "Records changed during iteration");
        return NULL;
    }
    for (; it->c < ARENAS; it->c++, it->slot = 0) {
        const Arena *a = &r->arena[it->c];
        for (; it->slot < a->used; it->slot++) {
            if (!is_live(a, it->slot))
                continue;
            Py_ssize_t slot = it->slot++;
            if (it->what == VALUES)
                return bytes_at(a, slot);
            PyObject *key = PyLong_FromUnsignedLongLong(key_at(a, slot));
            if (it->what == KEYS || key == NULL)
                return key;
            PyObject *rec = bytes_at(a, slot);
            if (rec == NULL) {
                Py_DECREF(key);
                return NULL;
            }
            PyObject *pair = PyTuple_Pack(2, key, rec);
            Py_DECREF(key);
            Py_DECREF(rec);
            return pair;
        }
    }
    return NULL;
}

static void RecordsIter_dealloc(RecordsIter *it) {
    Py_DECREF(it->of);
    PyObject_Free(it);
}

static PyTypeObject RecordsIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cttop.kernel._ctdecode.RecordsIterator",
    .tp_basicsize = sizeof(RecordsIter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)RecordsIter_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)RecordsIter_next,
};

static PyMethodDef Records_methods[] = {
    {"get", (PyCFunction)(void (*)(void))Records_get, METH_FASTCALL,
     "get(key, default=None) -> a copy of the record under key, or default"},
    {"pop", (PyCFunction)(void (*)(void))Records_pop, METH_FASTCALL,
     "pop(key[, default]) -> the record under key, which is gone; default (or KeyError) if none"},
    {"update", (PyCFunction)Records_update, METH_O, "update(pairs): store each (key, record)"},
    {"put_row", (PyCFunction)(void (*)(void))Records_put_row, METH_FASTCALL,
     "put_row(key, row, seen, flags) -> bool: packing.pack(row, seen, flags) stored under key; False, nothing\n"
     "stored, for a row Python should pack"},
    {"put_rows", (PyCFunction)(void (*)(void))Records_put_rows, METH_FASTCALL,
     "put_rows(keys, rows, seen, start) -> int: each row from start packed (flags 0) and stored under its key;\n"
     "where it stopped, at a row Python should pack (len(rows) when none)"},
    {"clear", (PyCFunction)Records_clear, METH_NOARGS, "clear(): hold nothing, and give the memory back"},
    {"keys", (PyCFunction)Records_keys, METH_NOARGS, "an iterator over the keys"},
    {"values", (PyCFunction)Records_values, METH_NOARGS, "an iterator over copies of the records"},
    {"items", (PyCFunction)Records_items, METH_NOARGS, "an iterator over (key, record) pairs"},
    {"freeze", (PyCFunction)Records_freeze, METH_NOARGS, "freeze() -> a Frozen copy of the records held now"},
    {"timeouts", (PyCFunction)Records_timeouts, METH_O,
     "timeouts(at) -> {(seen, timeout): flows}: at is each layout's (seen offset, timeout offset)"},
    {"__sizeof__", (PyCFunction)Records_sizeof, METH_NOARGS, "the bytes held: the object, index and arenas"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Records_as_sequence = {.sq_contains = (objobjproc)Records_contains};

static PyMappingMethods Records_as_mapping = {
    .mp_length = (lenfunc)Records_len,
    .mp_subscript = (binaryfunc)Records_subscript,
    .mp_ass_subscript = (objobjargproc)Records_ass_subscript,
};

static PyTypeObject RecordsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cttop.kernel._ctdecode.Records",
    .tp_basicsize = sizeof(Records),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Records(layouts, slots, load, spec=None): flow key -> packed record, as the dict table/store.py\n"
              "keeps; with packing.PACK_SPEC it also packs rows (put_row, put_rows)",
    .tp_new = Records_new,
    .tp_init = (initproc)Records_init,
    .tp_dealloc = (destructor)Records_dealloc,
    .tp_iter = (getiterfunc)Records_iter,
    .tp_methods = Records_methods,
    .tp_as_sequence = &Records_as_sequence,
    .tp_as_mapping = &Records_as_mapping,
};

int add_records_type(PyObject *module) {
    if (PyType_Ready(&RecordsIterType) < 0 || PyType_Ready(&RecordsType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "Records", (PyObject *)&RecordsType);
}

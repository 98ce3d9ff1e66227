/* Records: the held flow store's records (flow key -> packed record, table/store.py) outside Python objects.
 *
 * A dict of a million packed records costs ~210 bytes a flow: a dict slot (~42), its int key (40) and a
 * bytes object (33 bytes of header, then the record, rounded up). Here a record is copied into an arena of
 * records of its own length, its key after it, and the index is one 64-bit word a slot: ~90 bytes a flow for
 * an IPv4 record without counters. It answers as the dict it replaces (get, pop, [k] = v, update with pairs,
 * keys/values/items, in, len, clear): table/store.py uses a plain dict where this was not built, and
 * tests/unit/test_table_records.py holds the two to the same answers on random operations.
 *
 * The index: open addressing, probed linearly from a multiplicative hash of the key's low 32 bits (the
 * conntrack id, packing.flow_key), emptied by shifting back so no tombstone lengthens a probe. A slot holds
 * the record's reference + 1 (0: empty) and, above it, those 32 bits as a tag: a probe reads a record only
 * where the tag matches, and growing the index never reads a record.
 *
 * The arenas: one per record length (the four layouts, whose sizes packing.py passes), in chunks of CHUNK
 * records, so growing never copies or doubles what is held; a freed record's slot is reused, its first four
 * bytes linking the free list, and a bit a slot says which hold a flow. Iteration walks the arenas in order,
 * so a flow keeps its place among the others while it lives (the flow list's order among equal sort keys).
 *
 * Every value handed out is a new bytes object, a copy: nothing outside sees the arenas, which move and are
 * reused. Every method holds the GIL; an iterator stops with RuntimeError when flows came or went since it
 * started, as a dict's does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_records.h"

static inline uint32_t tag_of(uint64_t key) { return (uint32_t)key; }

static inline Py_ssize_t home_of(const Records *r, uint32_t tag) {
    return (Py_ssize_t)(((uint64_t)tag * 0x9E3779B97F4A7C15ull) >> (64 - r->bits));
}

/* The record a slot of the index refers to. */
static inline const Arena *arena_of(const Records *r, uint64_t word, Py_ssize_t *slot) {
    uint32_t ref = (uint32_t)word - 1;
    *slot = (Py_ssize_t)(ref >> 2);
    return &r->arena[ref & 3];
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

/* A free slot of a's, marked live: the first free one, else the next never used. -1 on an error. */
static int take_slot(Arena *a, Py_ssize_t *out) {
    Py_ssize_t slot;
    if (a->free != NO_SLOT) {
        slot = a->free;
        memcpy(&a->free, slot_at(a, slot), sizeof a->free);
    } else {
        if (a->used >= MAX_SLOTS) {
            PyErr_SetString(PyExc_OverflowError, "Records: too many records of one layout");
            return -1;
        }
        if (a->used == a->nchunks * CHUNK) {
            char **chunks = PyMem_Realloc(a->chunks, (size_t)(a->nchunks + 1) * sizeof *chunks);
            if (chunks == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            a->chunks = chunks;
            uint64_t *live = PyMem_Realloc(a->live, (size_t)(a->nchunks + 1) * (CHUNK / 64) * sizeof *live);
            if (live == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            a->live = live;
            memset(live + a->nchunks * (CHUNK / 64), 0, (CHUNK / 64) * sizeof *live);
            char *chunk = PyMem_Malloc((size_t)(CHUNK * a->stride));
            if (chunk == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            a->chunks[a->nchunks++] = chunk;
        }
        slot = a->used++;
    }
    a->live[slot >> 6] |= (uint64_t)1 << (slot & 63);
    *out = slot;
    return 0;
}

static void give_slot(Arena *a, Py_ssize_t slot) {
    a->live[slot >> 6] &= ~((uint64_t)1 << (slot & 63));
    memcpy(slot_at(a, slot), &a->free, sizeof a->free);
    a->free = (uint32_t)slot;
}

static void free_arenas(Records *r) {
    for (int c = 0; c < CLASSES; c++) {
        Arena *a = &r->arena[c];
        for (Py_ssize_t i = 0; i < a->nchunks; i++)
            PyMem_Free(a->chunks[i]);
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

static int as_key(PyObject *o, uint64_t *key) {
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "Records: a key is an int, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    unsigned long long k = PyLong_AsUnsignedLongLong(o);
    if (k == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *key = (uint64_t)k;
    return 0;
}

/* The arena for a record of len bytes, or -1 (and ValueError) for none of the layouts. */
static int class_of(const Records *r, PyObject *rec, Py_ssize_t *len) {
    if (!PyBytes_Check(rec)) {
        PyErr_Format(PyExc_TypeError, "Records: a record is bytes, not %.100s", Py_TYPE(rec)->tp_name);
        return -1;
    }
    *len = PyBytes_GET_SIZE(rec);
    for (int c = 0; c < CLASSES; c++)
        if (r->arena[c].size == *len)
            return c;
    PyErr_Format(PyExc_ValueError, "Records: a record of %zd bytes is none of the layouts", *len);
    return -1;
}

static int Records_init(Records *r, PyObject *args, PyObject *kwds) {
    Py_ssize_t sizes[CLASSES], slots;
    double load;
    static char *kw[] = {"sizes", "slots", "load", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "(nnnn)nd", kw, &sizes[0], &sizes[1], &sizes[2], &sizes[3],
                                     &slots, &load))
        return -1;
    if (slots < 2 || (slots & (slots - 1)) || !(load > 0.0 && load < 1.0)) {
        PyErr_SetString(PyExc_ValueError, "Records: slots must be a power of two, load between 0 and 1");
        return -1;
    }
    for (int c = 0; c < CLASSES; c++) {
        /* (a free slot's first four bytes link the free list) */
        int again = 0;
        for (int d = 0; d < c; d++)
            again |= sizes[d] == sizes[c];
        if (sizes[c] < (Py_ssize_t)sizeof(uint32_t) || sizes[c] > 4096 || again) {
            PyErr_SetString(PyExc_ValueError, "Records: four distinct record sizes, 4 to 4096 bytes");
            return -1;
        }
    }
    free_arenas(r);  /* (__init__ again: start empty) */
    PyMem_Free(r->index);
    r->index = NULL;
    for (int c = 0; c < CLASSES; c++)
        r->arena[c].size = sizes[c], r->arena[c].stride = sizes[c] + KEY_LEN;
    r->n = 0, r->load = load, r->first_slots = slots;
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
        for (int c = 0; c < CLASSES; c++)
            r->arena[c].free = NO_SLOT;
    return (PyObject *)r;
}

static void Records_dealloc(Records *r) {
    free_arenas(r);
    PyMem_Free(r->index);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* A copy of the record a word of the index refers to. */
static PyObject *record_of(const Records *r, uint64_t w) {
    Py_ssize_t slot;
    const Arena *a = arena_of(r, w, &slot);
    return PyBytes_FromStringAndSize(slot_at(a, slot), a->size);
}

/* Store rec under key (a new key, or the record replaced); -1 on an error, the table as it was. */
static int put(Records *r, uint64_t key, PyObject *rec) {
    Py_ssize_t len, slot;
    int c = class_of(r, rec, &len);
    if (c < 0)
        return -1;
    Py_ssize_t i = probe(r, key);
    uint64_t w = r->index[i];
    if (w) {
        Py_ssize_t was;
        Arena *old = (Arena *)arena_of(r, w, &was);
        if (old == &r->arena[c]) {  /* the same layout: in place */
            memcpy(slot_at(old, was), PyBytes_AS_STRING(rec), (size_t)len);
            return 0;
        }
        if (take_slot(&r->arena[c], &slot) < 0)
            return -1;
        give_slot(old, was);
    } else {
        /* The index doubles before it would pass its load, so a failed doubling leaves it never full. */
        if (r->n >= r->grow_at) {
            if (grow_index(r) < 0)
                return -1;
            i = probe(r, key);
        }
        if (take_slot(&r->arena[c], &slot) < 0)
            return -1;
        r->n++;
    }
    Arena *a = &r->arena[c];
    char *p = slot_at(a, slot);
    memcpy(p, PyBytes_AS_STRING(rec), (size_t)len);
    memcpy(p + len, &key, KEY_LEN);
    r->index[i] = (uint64_t)tag_of(key) << 32 | ((uint32_t)(slot << 2 | c) + 1);
    r->stamp++;
    return 0;
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
    if (arity("get", nargs) < 0 || ready(r) < 0 || as_key(args[0], &key) < 0)
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
    if (arity("pop", nargs) < 0 || ready(r) < 0 || as_key(args[0], &key) < 0)
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
            bad = as_key(PyTuple_GET_ITEM(pair, 0), &key) < 0 || put(r, key, PyTuple_GET_ITEM(pair, 1)) < 0;
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

static PyObject *Records_sizeof(Records *r, PyObject *Py_UNUSED(ignored)) {
    size_t total = sizeof *r + (size_t)(r->mask + 1) * sizeof *r->index * (r->index != NULL);
    for (int c = 0; c < CLASSES; c++) {
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
    if (as_key(k, &key) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();  /* a negative or too big int is no key held */
        return 0;
    }
    return r->index[probe(r, key)] != 0;
}

static PyObject *Records_subscript(Records *r, PyObject *k) {
    uint64_t key;
    if (ready(r) < 0 || as_key(k, &key) < 0)
        return NULL;
    uint64_t w = r->index[probe(r, key)];
    if (w)
        return record_of(r, w);
    PyErr_SetObject(PyExc_KeyError, k);
    return NULL;
}

static int Records_ass_subscript(Records *r, PyObject *k, PyObject *rec) {
    uint64_t key;
    if (ready(r) < 0 || as_key(k, &key) < 0)
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
    if (it->c >= CLASSES)
        return NULL;
    if (it->stamp != r->stamp) {
        PyErr_SetString(PyExc_RuntimeError, "Records changed during iteration");
        return NULL;
    }
    for (; it->c < CLASSES; it->c++, it->slot = 0) {
        const Arena *a = &r->arena[it->c];
        for (; it->slot < a->used; it->slot++) {
            if (!is_live(a, it->slot))
                continue;
            Py_ssize_t slot = it->slot++;
            if (it->what == VALUES)
                return PyBytes_FromStringAndSize(slot_at(a, slot), a->size);
            PyObject *key = PyLong_FromUnsignedLongLong(key_at(a, slot));
            if (it->what == KEYS || key == NULL)
                return key;
            PyObject *rec = PyBytes_FromStringAndSize(slot_at(a, slot), a->size);
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
    {"clear", (PyCFunction)Records_clear, METH_NOARGS, "clear(): hold nothing, and give the memory back"},
    {"keys", (PyCFunction)Records_keys, METH_NOARGS, "an iterator over the keys"},
    {"values", (PyCFunction)Records_values, METH_NOARGS, "an iterator over copies of the records"},
    {"items", (PyCFunction)Records_items, METH_NOARGS, "an iterator over (key, record) pairs"},
    {"freeze", (PyCFunction)Records_freeze, METH_NOARGS, "freeze() -> a Frozen copy of the records held now"},
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
    .tp_doc = "Records(sizes, slots, load): flow key -> packed record, as the dict table/store.py keeps",
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

/* Digests: table.digest.Digests in C (a bounded view's table.tally.FlowTally: each flow's state, status, mark and
 * zone under its flow key, and no record), added to the _ctdecode module by its init. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_records.h"
#include "_walk.h"

static PyTypeObject DigestsType;

/* Digests: table.digest.Digests in C, the same open-addressing table (a 64-bit key and a 32-bit shape code a
 * slot, probed linearly from (key ^ key >> 32) & mask, emptied by shifting back) with the same answers; the
 * Python one is its reference (tests/unit/test_table_tally.py runs both on the same random operations). A
 * Python put was ~1 µs a flow, ~1.1 s of a million-flow bounded first frame under cProfile. The sizes are Python's:
 * digest.py passes the first table's slots and the load at which it doubles. */
#define SHAPE_LEN 4     /* pstate, status, mark, zone */
#define SHAPE_CACHE 64  /* a power of two */

typedef struct {
    uint64_t v[SHAPE_LEN];
    uint32_t code;  /* 0: none yet */
} ShapeSeen;

typedef struct {
    PyObject_HEAD
    uint64_t *keys;
    uint32_t *codes;
    Py_ssize_t mask, n, grow_at;
    double load;
    PyObject *shapes;  /* list: code -> shape, [0] None (code 0 marks an empty slot) */
    PyObject *code;    /* dict: shape -> code */
    ShapeSeen seen[SHAPE_CACHE];  /* digest_walked's: shapes by their values */
} Digests;

static inline Py_ssize_t home(uint64_t key, Py_ssize_t mask) {
    return (Py_ssize_t)((key ^ key >> 32) & (uint64_t)mask);
}

static int alloc_slots(Digests *d, Py_ssize_t slots) {
    uint64_t *keys = PyMem_Calloc((size_t)slots, sizeof *keys);
    uint32_t *codes = PyMem_Calloc((size_t)slots, sizeof *codes);
    if (keys == NULL || codes == NULL) {
        PyMem_Free(keys);
        PyMem_Free(codes);
        PyErr_NoMemory();
        return -1;
    }
    d->keys = keys;
    d->codes = codes;
    d->mask = slots - 1;
    d->grow_at = (Py_ssize_t)((double)slots * d->load);
    return 0;
}

static int rehash(Digests *d, Py_ssize_t slots) {
    uint64_t *old_keys = d->keys;
    uint32_t *old_codes = d->codes;
    Py_ssize_t old_slots = d->mask + 1;
    if (alloc_slots(d, slots) < 0)
        return -1;
    for (Py_ssize_t j = 0; j < old_slots; j++) {
        if (!old_codes[j])
            continue;
        Py_ssize_t i = home(old_keys[j], d->mask);
        while (d->codes[i])
            i = (i + 1) & d->mask;
        d->keys[i] = old_keys[j], d->codes[i] = old_codes[j];
    }
    PyMem_Free(old_keys);
    PyMem_Free(old_codes);
    return 0;
}

static int Digests_init(Digests *d, PyObject *args, PyObject *kwds) {
    Py_ssize_t slots;
    double load;
    static char *kw[] = {"slots", "load", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "nd", kw, &slots, &load))
        return -1;
    if (slots < 2 || (slots & (slots - 1)) || !(load > 0.0 && load < 1.0)) {
        PyErr_SetString(PyExc_ValueError, "Digests: slots must be a power of two, load between 0 and 1");
        return -1;
    }
    PyMem_Free(d->keys);  /* (__init__ again: start empty) */
    PyMem_Free(d->codes);
    d->keys = NULL;
    d->codes = NULL;
    Py_CLEAR(d->shapes);
    Py_CLEAR(d->code);
    d->n = 0, d->load = load;
    memset(d->seen, 0, sizeof d->seen);  /* (codes are the shapes list's: a new one numbers them anew) */
    d->shapes = Py_BuildValue("[O]", Py_None);
    d->code = PyDict_New();
    if (d->shapes == NULL || d->code == NULL)
        return -1;
    return alloc_slots(d, slots);
}

static void Digests_dealloc(Digests *d) {
    PyMem_Free(d->keys);
    PyMem_Free(d->codes);
    Py_XDECREF(d->shapes);
    Py_XDECREF(d->code);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static int ready(Digests *d) {
    if (d->keys == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Digests: not initialised");
        return -1;
    }
    return 0;
}

/* The shape under code, a new reference; None for code 0. */
static PyObject *shape_of(Digests *d, uint32_t code) {
    PyObject *s = code ? PyList_GET_ITEM(d->shapes, code) : Py_None;
    Py_INCREF(s);
    return s;
}

/* The code of shape, numbered anew where it has none; 0 on an error. */
static uint32_t code_of(Digests *d, PyObject *shape) {
    PyObject *c = PyDict_GetItemWithError(d->code, shape);
    if (c != NULL)
        return (uint32_t)PyLong_AsUnsignedLong(c);
    if (PyErr_Occurred())
        return 0;  /* an unhashable shape */
    Py_ssize_t next = PyList_GET_SIZE(d->shapes);
    if (next > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "Digests: too many shapes");
        return 0;
    }
    PyObject *v = PyLong_FromSsize_t(next);
    if (v == NULL || PyDict_SetItem(d->code, shape, v) < 0 || PyList_Append(d->shapes, shape) < 0) {
        Py_XDECREF(v);
        return 0;
    }
    Py_DECREF(v);
    return (uint32_t)next;
}

/* Store code under key: the code it had (0 for a new key) in *was; -1 on an error. */
static int put_code(Digests *d, uint64_t key, uint32_t code, uint32_t *was) {
    Py_ssize_t i = home(key, d->mask);
    for (; d->codes[i]; i = (i + 1) & d->mask) {
        if (d->keys[i] == key) {
            *was = d->codes[i];
            d->codes[i] = code;
            return 0;
        }
    }
    /* A new key. The table doubles before it would pass its load, so a failed doubling (MemoryError) leaves
     * the key out and the table as it was: never full, so every probe still ends at an empty slot. */
    if (d->n >= d->grow_at) {
        if (rehash(d, 2 * (d->mask + 1)) < 0)
            return -1;
        for (i = home(key, d->mask); d->codes[i]; i = (i + 1) & d->mask)
            ;
    }
    d->keys[i] = key, d->codes[i] = code;
    d->n++;
    *was = 0;
    return 0;
}

/* Store shape under key: the code it had (0 for a new key) in *was; -1 on an error. */
static int put_one(Digests *d, uint64_t key, PyObject *shape, uint32_t *was) {
    uint32_t code = code_of(d, shape);
    return code == 0 ? -1 : put_code(d, key, code, was);
}

int is_digests(PyObject *o) { return PyObject_TypeCheck(o, &DigestsType); }

/* The shape fields of table.tally's _SHAPE, in its order. */
static const int SHAPE_FIELDS[SHAPE_LEN] = {R_PSTATE, R_STATUS, R_MARK, R_ZONE};

int digest_walked(PyObject *digests, const walk_t *w, unsigned family, Digested *out) {
    Digests *d = (Digests *)digests;
    if (ready(d) < 0)
        return -1;
    uint64_t v[SHAPE_LEN], h = 0;
    for (int i = 0; i < SHAPE_LEN; i++) {
        field_t f;
        row_field(w, family, SHAPE_FIELDS[i], &f);
        v[i] = f.v;  /* (each an int: a state, status, mark or zone is never None or bytes) */
        h = (h ^ f.v) * 0x9E3779B97F4A7C15ull;
    }
    /* A table has a few dozen shapes: a small cache of them by value spares a tuple and a dict lookup a flow. */
    ShapeSeen *seen = &d->seen[(h >> 58) & (SHAPE_CACHE - 1)];
    uint32_t code = seen->code;
    if (code == 0 || memcmp(seen->v, v, sizeof v) != 0) {
        PyObject *shape = Py_BuildValue("(KKKK)", v[0], v[1], v[2], v[3]);
        code = shape == NULL ? 0 : code_of(d, shape);
        Py_XDECREF(shape);
        if (code == 0)
            return -1;
        memcpy(seen->v, v, sizeof v);
        seen->code = code;
    }
    out->code = code;
    out->key = walked_key(w, family);
    __builtin_prefetch(&d->keys[home(out->key, d->mask)], 1);  /* as pack_walked's: stored after the counting */
    __builtin_prefetch(&d->codes[home(out->key, d->mask)], 1);
    return 0;
}

int put_digested(PyObject *digests, const Digested *one) {
    uint32_t was;
    return put_code((Digests *)digests, one->key, one->code, &was);
}

PyObject *digests_get(PyObject *digests, uint64_t key) {
    Digests *d = (Digests *)digests;
    if (ready(d) < 0)
        return NULL;
    Py_ssize_t i = home(key, d->mask);
    for (; d->codes[i]; i = (i + 1) & d->mask)
        if (d->keys[i] == key)
            return shape_of(d, d->codes[i]);
    Py_RETURN_NONE;
}

int digests_put(PyObject *digests, uint64_t key, PyObject *shape) {
    uint32_t was;
    return put_one((Digests *)digests, key, shape, &was);
}

static PyObject *Digests_put(Digests *d, PyObject *args) {
    PyObject *k, *shape;
    uint64_t key;
    uint32_t was;
    if (!PyArg_ParseTuple(args, "OO", &k, &shape) || ready(d) < 0 || as_key("Digests", k, &key) < 0
        || put_one(d, key, shape, &was) < 0)
        return NULL;
    return shape_of(d, was);
}

static PyObject *Digests_put_many(Digests *d, PyObject *args) {
    PyObject *ks, *shapes;
    if (!PyArg_ParseTuple(args, "OO", &ks, &shapes) || ready(d) < 0)
        return NULL;
    PyObject *ki = PyObject_GetIter(ks), *si = ki == NULL ? NULL : PyObject_GetIter(shapes);
    PyObject *k = NULL, *shape = NULL;
    int bad = si == NULL;
    while (!bad && (k = PyIter_Next(ki)) != NULL) {
        uint64_t key;
        uint32_t was;
        shape = PyIter_Next(si);
        if (shape == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "Digests.put_many: fewer shapes than keys");
            bad = 1;
        } else {
            bad = as_key("Digests", k, &key) < 0 || put_one(d, key, shape, &was) < 0;
        }
        Py_DECREF(k);
        Py_XDECREF(shape);
    }
    if (!bad && !PyErr_Occurred() && (shape = PyIter_Next(si)) != NULL) {
        Py_DECREF(shape);
        PyErr_SetString(PyExc_ValueError, "Digests.put_many: more shapes than keys");
    }
    Py_XDECREF(ki);
    Py_XDECREF(si);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Digests_get(Digests *d, PyObject *arg) {
    uint64_t key;
    if (as_key("Digests", arg, &key) < 0)
        return NULL;
    return digests_get((PyObject *)d, key);
}

PyObject *digests_pop(PyObject *digests, uint64_t key) {
    Digests *d = (Digests *)digests;
    if (ready(d) < 0)
        return NULL;
    Py_ssize_t mask = d->mask, i = home(key, mask);
    for (; d->codes[i]; i = (i + 1) & mask)
        if (d->keys[i] == key)
            break;
    uint32_t was = d->codes[i];
    if (!was)
        Py_RETURN_NONE;
    /* Shift back the entries after it whose probe passed through slot i, so every probe still finds its key
     * before the first empty slot. */
    for (Py_ssize_t j = i;;) {
        j = (j + 1) & mask;
        if (!d->codes[j])
            break;
        Py_ssize_t h = home(d->keys[j], mask);
        if (((j - h) & mask) >= ((j - i) & mask)) {
            d->keys[i] = d->keys[j], d->codes[i] = d->codes[j];
            i = j;
        }
    }
    d->codes[i] = 0;
    d->n--;
    return shape_of(d, was);
}

static PyObject *Digests_pop(Digests *d, PyObject *arg) {
    uint64_t key;
    if (as_key("Digests", arg, &key) < 0)
        return NULL;
    return digests_pop((PyObject *)d, key);
}

static Py_ssize_t Digests_len(Digests *d) { return d->n; }

static PyMethodDef Digests_methods[] = {
    {"get", (PyCFunction)Digests_get, METH_O, "get(key) -> the shape under key, or None"},
    {"put", (PyCFunction)Digests_put, METH_VARARGS, "put(key, shape) -> the shape it had, or None for a new key"},
    {"put_many", (PyCFunction)Digests_put_many, METH_VARARGS,
     "put_many(keys, shapes): put each key's shape, the two iterables in step"},
    {"pop", (PyCFunction)Digests_pop, METH_O, "pop(key) -> the shape it had, or None; the key is gone"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Digests_as_sequence = {.sq_length = (lenfunc)Digests_len};

static PyTypeObject DigestsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cttop.kernel._ctdecode.Digests",
    .tp_basicsize = sizeof(Digests),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Digests(slots, load): flow key -> shape, as table.digest.Digests",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Digests_init,
    .tp_dealloc = (destructor)Digests_dealloc,
    .tp_methods = Digests_methods,
    .tp_as_sequence = &Digests_as_sequence,
};

int add_digests_type(PyObject *module) {
    if (PyType_Ready(&DigestsType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "Digests", (PyObject *)&DigestsType);
}

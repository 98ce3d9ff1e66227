/* Frozen: the held flows' records as they were at one moment (Records.freeze), and views of them in a flow list's
 * order: what the list scrolls through, filters and sorts, while the store goes on changing.
 *
 * The copy shares the store's chunks of records (as the store keeps them: a mirrored reply tuple cut, each
 * followed by its flow key) and lists each live one's slot, 4 bytes a flow; the store copies a chunk a Frozen
 * holds before it writes there (copy on write, _records.h), so the copy costs only the chunks the store has
 * changed since (a copy of every record was ~80 MB at a million flows, held beside the store while the list
 * showed it). A view is the copy and 4 bytes a flow of order. A record is made whole when it is read. Items are
 * handed out as new bytes objects, as a tuple of records would give them, so live/index.py's list of records
 * (the pure-Python path, and a bounded view's page) and a Frozen answer alike to the list.
 *
 * sorted() orders a view by a key built from each record by a recipe (live/index.py's SORT_RECIPES, made from
 * packing.py's offsets): segments copied, masked or summed, compared as bytes, ties kept in the view's order,
 * as Python's stable sort keeps them; index.py's key functions are the reference (tests/unit/test_index_frozen.py).
 * The sort runs without the GIL: the copy never changes (the store writes only chunks it holds alone, and a
 * chunk's count changes only with the GIL), and the UI thread goes on drawing meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_records.h"

typedef struct {
    PyObject_HEAD
    PyObject *base;                 /* the Frozen that holds the chunks and slots (NULL: this one does) */
    char **chunks[ARENAS];          /* each arena's chunks as the store had them, each held (hold_chunk) */
    Py_ssize_t nchunks[ARENAS];
    uint32_t *slots;                /* each position's slot in its arena, the arenas one after another */
    Py_ssize_t start[ARENAS + 1];   /* the copy's first position of each arena's records; start[ARENAS]: all */
    Arena shape[ARENAS];            /* each arena's record shape (size, stride, whole or cut); no chunks */
    uint32_t *order;                /* this view's positions in the copy; NULL: the copy's own order */
    Py_ssize_t n;                   /* this view's length */
} Frozen;

static PyTypeObject FrozenType;

static Frozen *new_view(const Frozen *of, uint32_t *order, Py_ssize_t n) {
    Frozen *f = PyObject_New(Frozen, &FrozenType);
    if (f == NULL) {
        PyMem_Free(order);
        return NULL;
    }
    PyObject *base = of->base != NULL ? of->base : (PyObject *)of;
    Py_INCREF(base);
    f->base = base, f->slots = of->slots, f->order = order, f->n = n;
    memcpy(f->chunks, of->chunks, sizeof f->chunks);
    memcpy(f->nchunks, of->nchunks, sizeof f->nchunks);
    memcpy(f->start, of->start, sizeof f->start);
    memcpy(f->shape, of->shape, sizeof f->shape);
    return f;
}

PyObject *freeze(Records *r) {
    Frozen *f = PyObject_New(Frozen, &FrozenType);
    if (f == NULL)
        return NULL;
    f->base = NULL, f->slots = NULL, f->order = NULL, f->n = 0;
    memset(f->chunks, 0, sizeof f->chunks);
    memset(f->nchunks, 0, sizeof f->nchunks);
    for (int c = 0; c < ARENAS; c++) {
        const Arena *a = &r->arena[c];
        Py_ssize_t live = 0;
        for (Py_ssize_t w = 0; w < (a->used + 63) / 64; w++)
            live += __builtin_popcountll(a->live[w]);
        f->shape[c] = *a;
        f->shape[c].chunks = NULL, f->shape[c].live = NULL, f->shape[c].nchunks = 0, f->shape[c].used = 0;
        f->start[c] = f->n;
        f->n += live;
    }
    f->start[ARENAS] = f->n;
    f->slots = PyMem_Malloc((size_t)(f->n ? f->n : 1) * sizeof *f->slots);
    if (f->slots == NULL) {
        Py_DECREF(f);
        return PyErr_NoMemory();
    }
    /* No record is copied: the chunks are shared with the store, which copies one before it writes there. */
    uint32_t *out = f->slots;
    for (int c = 0; c < ARENAS; c++) {
        const Arena *a = &r->arena[c];
        if (a->nchunks) {
            f->chunks[c] = PyMem_Malloc((size_t)a->nchunks * sizeof **f->chunks);
            if (f->chunks[c] == NULL) {
                Py_DECREF(f);
                return PyErr_NoMemory();
            }
            for (Py_ssize_t i = 0; i < a->nchunks; i++)
                hold_chunk(f->chunks[c][i] = a->chunks[i]);
            f->nchunks[c] = a->nchunks;
        }
        for (Py_ssize_t w = 0; w < (a->used + 63) / 64; w++)
            for (uint64_t bits = a->live[w]; bits; bits &= bits - 1)
                *out++ = (uint32_t)(w * 64 + __builtin_ctzll(bits));
    }
    return (PyObject *)f;
}

/* The record at a position of the copy, as stored, and its arena. */
static inline const char *at(const Frozen *f, Py_ssize_t pos, int *layout) {
    int c = 0;
    while (pos >= f->start[c + 1])
        c++;
    *layout = c;
    Py_ssize_t slot = f->slots[pos];
    return f->chunks[c][slot >> CHUNK_SHIFT] + (slot & (CHUNK - 1)) * f->shape[c].stride;
}

static inline Py_ssize_t position(const Frozen *f, Py_ssize_t i) {
    return f->order != NULL ? (Py_ssize_t)f->order[i] : i;
}

static PyObject *item(Frozen *f, Py_ssize_t i) {
    if (i < 0 || i >= f->n) {
        PyErr_SetString(PyExc_IndexError, "Frozen index out of range");
        return NULL;
    }
    int c;
    const char *p = at(f, position(f, i), &c);
    PyObject *b = PyBytes_FromStringAndSize(NULL, f->shape[c].full);
    if (b != NULL)
        expand(&f->shape[c], p, PyBytes_AS_STRING(b));
    return b;
}

static PyObject *Frozen_subscript(Frozen *f, PyObject *k) {
    if (PyIndex_Check(k)) {
        Py_ssize_t i = PyNumber_AsSsize_t(k, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred())
            return NULL;
        return item(f, i < 0 ? i + f->n : i);
    }
    if (!PySlice_Check(k)) {
        PyErr_Format(PyExc_TypeError, "Frozen indices are integers or slices, not %.100s", Py_TYPE(k)->tp_name);
        return NULL;
    }
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(k, &start, &stop, &step) < 0)
        return NULL;
    Py_ssize_t len = PySlice_AdjustIndices(f->n, &start, &stop, step);
    PyObject *out = PyList_New(len);
    for (Py_ssize_t j = 0; out != NULL && j < len; j++) {
        PyObject *rec = item(f, start + j * step);
        if (rec == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, j, rec);
    }
    return out;
}

static Py_ssize_t Frozen_len(Frozen *f) { return f->n; }

static uint64_t key_of(const Frozen *f, Py_ssize_t i) {
    int c;
    const char *p = at(f, position(f, i), &c);
    uint64_t key;
    memcpy(&key, p + f->shape[c].size, KEY_LEN);
    return key;
}

static PyObject *Frozen_key(Frozen *f, PyObject *arg) {
    Py_ssize_t i = PyNumber_AsSsize_t(arg, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i >= f->n) {
        PyErr_SetString(PyExc_IndexError, "Frozen index out of range");
        return NULL;
    }
    return PyLong_FromUnsignedLongLong(key_of(f, i));
}

static PyObject *Frozen_find(Frozen *f, PyObject *arg) {
    unsigned long long key = PyLong_AsUnsignedLongLong(arg);
    if (key == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return NULL;
        PyErr_Clear();  /* a negative or too big int is no flow's key */
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < f->n; i++)
        if (key_of(f, i) == key)
            return PyLong_FromSsize_t(i);
    Py_RETURN_NONE;
}

/* This view's items at positions (an array('I') of indexes into this view), as a new view. */
static PyObject *Frozen_select(Frozen *f, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    uint32_t *order = NULL;
    if (b.itemsize != 4 || b.format == NULL || strcmp(b.format, "I") != 0) {
        PyErr_SetString(PyExc_TypeError, "Frozen.select: positions are an array('I')");
        goto done;
    }
    Py_ssize_t n = b.len / 4;
    order = PyMem_Malloc((size_t)(n ? n : 1) * sizeof *order);
    if (order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint32_t *want = b.buf;
    for (Py_ssize_t j = 0; j < n; j++) {
        if ((Py_ssize_t)want[j] >= f->n) {
            PyErr_Format(PyExc_IndexError, "Frozen.select: position %u of %zd", want[j], f->n);
            goto done;
        }
        order[j] = (uint32_t)position(f, want[j]);
    }
    PyBuffer_Release(&b);
    return (PyObject *)new_view(f, order, n);
done:
    PyMem_Free(order);
    PyBuffer_Release(&b);
    return NULL;
}

/* A sort key recipe: segments, each built from a record of every layout into width bytes (zeros where that
 * layout lacks the field). */
enum { COPY, MASK, SUM };  /* live/index.py's SEG_COPY, SEG_MASK, SEG_SUM */
#define MOST_SEGMENTS 8
#define MOST_WIDTH 64

typedef struct {
    int op, width, has[LAYOUTS];
    Py_ssize_t a[LAYOUTS], b[LAYOUTS];  /* COPY: offset, length; MASK: offset, mask; SUM: the two offsets */
    Py_ssize_t n[LAYOUTS];              /* SUM: each number's length */
} segment_t;

typedef struct {
    segment_t seg[MOST_SEGMENTS];
    int count, width;
} recipe_t;

static int bad_recipe(const char *why) {
    PyErr_Format(PyExc_ValueError, "Frozen.sorted: a bad recipe (%s)", why);
    return -1;
}

/* (op, width, (per layout: None, or (offset, length) / (offset, mask) / (offset, offset, length))) ... */
static int parse_recipe(const Frozen *f, PyObject *o, recipe_t *r) {
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) < 1 || PyTuple_GET_SIZE(o) > MOST_SEGMENTS)
        return bad_recipe("a tuple of 1 to 8 segments");
    r->count = (int)PyTuple_GET_SIZE(o), r->width = 0;
    for (int s = 0; s < r->count; s++) {
        segment_t *g = &r->seg[s];
        PyObject *layouts;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(o, s), "iiO!", &g->op, &g->width, &PyTuple_Type, &layouts))
            return -1;
        if (g->op < COPY || g->op > SUM || g->width < 1 || PyTuple_GET_SIZE(layouts) != LAYOUTS)
            return bad_recipe("a segment is (op, width, a field for each of the four layouts)");
        r->width += g->width;
        for (int c = 0; c < LAYOUTS; c++) {
            PyObject *field = PyTuple_GET_ITEM(layouts, c);
            g->has[c] = field != Py_None;
            if (!g->has[c])
                continue;
            Py_ssize_t end;
            if (g->op == SUM) {
                if (!PyArg_ParseTuple(field, "nnn", &g->a[c], &g->b[c], &g->n[c]))
                    return -1;
                if (g->n[c] < 1 || g->n[c] > 8 || g->width != g->n[c] + 2)
                    return bad_recipe("a sum is of 1 to 8 bytes, its width 2 more");
                end = (g->a[c] > g->b[c] ? g->a[c] : g->b[c]) + g->n[c];
            } else {
                if (!PyArg_ParseTuple(field, "nn", &g->a[c], &g->b[c]))
                    return -1;
                if (g->op == COPY ? g->b[c] < 1 || g->b[c] > g->width : g->width != 1 || g->b[c] < 0 || g->b[c] > 255)
                    return bad_recipe("a copy fits its width, a mask is one byte");
                end = g->a[c] + (g->op == COPY ? g->b[c] : 1);
            }
            if (g->a[c] < 0 || (g->op == SUM && g->b[c] < 0) || end > f->shape[c].full)
                return bad_recipe("a field outside its record");
        }
    }
    if (r->width > MOST_WIDTH)
        return bad_recipe("wider than 64 bytes");
    return 0;
}

static inline uint64_t be(const unsigned char *p, Py_ssize_t n) {
    uint64_t v = 0;
    for (Py_ssize_t k = 0; k < n; k++)
        v = v << 8 | p[k];
    return v;
}

static void build_key(const recipe_t *r, const unsigned char *rec, int c, unsigned char *out) {
    for (int s = 0; s < r->count; s++) {
        const segment_t *g = &r->seg[s];
        memset(out, 0, (size_t)g->width);
        if (g->has[c]) {
            if (g->op == COPY) {
                memcpy(out, rec + g->a[c], (size_t)g->b[c]);
            } else if (g->op == MASK) {
                out[0] = rec[g->a[c]] & (unsigned char)g->b[c];
            } else {  /* present (1), then the (8n + 1)-bit sum, big-endian */
                Py_ssize_t n = g->n[c];
                uint64_t x = be(rec + g->a[c], n), y = be(rec + g->b[c], n), sum = x + y;
                out[0] = 1;
                out[1] = (unsigned char)(n == 8 ? sum < x : sum >> (8 * n));
                for (Py_ssize_t k = 0; k < n; k++)
                    out[2 + k] = (unsigned char)(sum >> (8 * (n - 1 - k)));
            }
        }
        out += g->width;
    }
}

typedef struct {
    const unsigned char *keys;
    size_t width;
    int descending;
} sort_ctx;

static int compare(const void *pa, const void *pb, void *arg) {
    const sort_ctx *s = arg;
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    int c = memcmp(s->keys + a * s->width, s->keys + b * s->width, s->width);
    if (c != 0)
        return s->descending ? -c : c;
    return a < b ? -1 : 1;  /* ties stay in the view's order, either way: a stable sort */
}

static PyObject *Frozen_sorted(Frozen *f, PyObject *args) {
    PyObject *o;
    int descending;
    recipe_t r;
    if (!PyArg_ParseTuple(args, "Op", &o, &descending) || parse_recipe(f, o, &r) < 0)
        return NULL;
    size_t width = (size_t)r.width, n = (size_t)f->n;
    unsigned char *keys = PyMem_RawMalloc(n ? n * width : 1);
    uint32_t *idx = PyMem_RawMalloc((n ? n : 1) * sizeof *idx);
    uint32_t *order = PyMem_Malloc((n ? n : 1) * sizeof *order);
    if (keys == NULL || idx == NULL || order == NULL) {
        PyMem_RawFree(keys);
        PyMem_RawFree(idx);
        PyMem_Free(order);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    for (size_t i = 0; i < n; i++) {
        int c;
        const char *p = at(f, position(f, (Py_ssize_t)i), &c);
        char whole[MOST_RECORD];
        if (f->shape[c].cut) {
            expand(&f->shape[c], p, whole);
            p = whole;
        }
        build_key(&r, (const unsigned char *)p, c % LAYOUTS, keys + i * width);
        idx[i] = (uint32_t)i;
    }
    sort_ctx ctx = {keys, width, descending};
    qsort_r(idx, n, sizeof *idx, compare, &ctx);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)position(f, idx[i]);
    Py_END_ALLOW_THREADS
    PyMem_RawFree(keys);
    PyMem_RawFree(idx);
    return (PyObject *)new_view(f, order, f->n);
}

/* The object, its order and (the copy itself) its slots and the chunks only it holds: those the store has
 * copied since, to write there. A chunk still shared with the store is the store's count. */
static PyObject *Frozen_sizeof(Frozen *f, PyObject *Py_UNUSED(ignored)) {
    size_t total = sizeof *f + (f->order != NULL ? (size_t)f->n * sizeof *f->order : 0);
    if (f->base == NULL) {
        total += (size_t)f->n * sizeof *f->slots;
        for (int c = 0; c < ARENAS; c++) {
            total += (size_t)f->nchunks[c] * sizeof **f->chunks;
            for (Py_ssize_t i = 0; i < f->nchunks[c]; i++)
                if (*chunk_refs(f->chunks[c][i]) == 1)
                    total += (size_t)(CHUNK_HEAD + CHUNK * f->shape[c].stride);
        }
    }
    return PyLong_FromSize_t(total);
}

static void Frozen_dealloc(Frozen *f) {
    if (f->base != NULL) {
        Py_DECREF(f->base);
    } else {
        for (int c = 0; c < ARENAS; c++) {
            for (Py_ssize_t i = 0; i < f->nchunks[c]; i++)
                drop_chunk(f->chunks[c][i]);
            PyMem_Free(f->chunks[c]);
        }
        PyMem_Free(f->slots);
    }
    PyMem_Free(f->order);
    PyObject_Free(f);
}

static PyMethodDef Frozen_methods[] = {
    {"key", (PyCFunction)Frozen_key, METH_O, "key(i) -> the flow key of the record at i"},
    {"find", (PyCFunction)Frozen_find, METH_O, "find(key) -> where the record of flow key is, or None"},
    {"select", (PyCFunction)Frozen_select, METH_O, "select(positions: array('I')) -> a view of those items"},
    {"sorted", (PyCFunction)Frozen_sorted, METH_VARARGS,
     "sorted(recipe, descending) -> a view in the order of the key the recipe builds, ties as they were"},
    {"__sizeof__", (PyCFunction)Frozen_sizeof, METH_NOARGS,
     "the bytes held: the object, its order, its slots and the chunks the store no longer shares"},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Frozen_as_sequence = {
    .sq_length = (lenfunc)Frozen_len,
    .sq_item = (ssizeargfunc)item,
};

static PyMappingMethods Frozen_as_mapping = {
    .mp_length = (lenfunc)Frozen_len,
    .mp_subscript = (binaryfunc)Frozen_subscript,
};

static PyTypeObject FrozenType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "cttop.kernel._ctdecode.Frozen",
    .tp_basicsize = sizeof(Frozen),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "the records of a Records at one moment (Records.freeze()), or a view of them in another order",
    .tp_dealloc = (destructor)Frozen_dealloc,
    .tp_methods = Frozen_methods,
    .tp_as_sequence = &Frozen_as_sequence,
    .tp_as_mapping = &Frozen_as_mapping,
};

int add_frozen_type(PyObject *module) {
    if (PyType_Ready(&FrozenType) < 0)
        return -1;
    return PyModule_AddObjectRef(module, "Frozen", (PyObject *)&FrozenType);
}

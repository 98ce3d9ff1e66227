/* apply_events: FlowTable.apply_events (table/store.py) in C, for the compiled store.
 *
 * An event cost ~2.3 us of Python to apply (issue 17's goal, 400k events a CPU second with their decoding, is
 * 2.5 us in all): its flow key, the store's lookup, the old record unpacked, the counters carried over, the row
 * packed, then Aggregates.add or Aggregates.replace (table/aggregates.py). This does the same, step for step,
 * on the same objects: the store, the labels dict, the aggregates' dicts (keys set, moved and dropped in the same
 * order: their order breaks ties in top()) and its totals. tests/unit/test_apply_events.py holds the two to the
 * same store, labels and aggregates on recorded, random and hand-made events.
 *
 * An event this does not apply as it is (not a (kind, row) pair of ints and a row tuple, a row packing.pack would
 * not pack as it is, a tuple that does not hash) stops it before anything of that event is changed: Python
 * applies that one in its place (and raises what it raises), then calls this again for the rest. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "_records.h"
#include "_walk.h"

#define STATE_BITS_ (IPS_ASSURED_ | IPS_SEEN_REPLY_)  /* model.STATE_BITS */
#define MOST_TRACKED 16    /* the most groups a table tracks (table.groups has ten) */
#define STATE_MEMO 64      /* state names remembered: a table holds a few dozen */

static PyObject *ZERO;  /* 0, a row's labels where it has none */
/* The attribute names read each call, made once: a name made from a C string each time cost more than a
 * one-event call's own work. */
enum { BY_PROTO, BY_STATE, GROUPS, KEY, EVICTABLE, COUNTED, BYTES, PACKETS, NAMES };
static const char *const NAME_TEXT[NAMES] = {"by_proto", "by_state", "groups", "key", "evictable", "counted",
                                              "bytes", "packets"};
static PyObject *NAME[NAMES];

typedef struct {
    PyObject *entries, *nbytes, *npkts;  /* borrowed: Aggregates.groups' values */
    PyObject *key;                       /* entries.key, held */
} Tracked;

typedef struct {
    PyObject *by_proto, *by_state, *groups;  /* held */
    PyObject *state_keys, *state_key3;       /* model.STATE_KEYS and model.state_key3, borrowed */
    Tracked g[MOST_TRACKED];
    int ng;
    /* The totals' changes, added to the aggregates' attributes once, at the end of the call. */
    long long evictable, counted;
    __int128 bytes, packets;
} Agg;

/* State names by (proto, pstate, status & STATE_BITS), as model.state_key3 gives them (a name never changes:
 * STATE_KEYS is its memo). Kept across calls: the live view applies a datagram's events a call, often one. */
static struct {
    uint64_t k;
    PyObject *name;  /* held; NULL: empty */
} memo[STATE_MEMO];

/* An int of any 128-bit value (a sum of 64-bit counters, signed). */
static PyObject *long_from_i128(__int128 v) {
    if (v >= LLONG_MIN && v <= LLONG_MAX)
        return PyLong_FromLongLong((long long)v);
    unsigned __int128 m = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    PyObject *hi = PyLong_FromUnsignedLongLong((unsigned long long)(m >> 64));
    PyObject *lo = PyLong_FromUnsignedLongLong((unsigned long long)m), *sh = PyLong_FromLong(64);
    PyObject *up = hi && sh ? PyNumber_Lshift(hi, sh) : NULL, *sum = up && lo ? PyNumber_Or(up, lo) : NULL;
    Py_XDECREF(hi);
    Py_XDECREF(lo);
    Py_XDECREF(sh);
    Py_XDECREF(up);
    if (sum != NULL && v < 0) {
        PyObject *neg = PyNumber_Negative(sum);
        Py_DECREF(sum);
        sum = neg;
    }
    return sum;
}

/* d[k] = d.get(k, 0) + by, dropped at 0: aggregates._bump, for a count that fits in 64 bits. */
static int bump(PyObject *d, PyObject *k, long long by) {
    PyObject *v = PyDict_GetItemWithError(d, k);
    if (v == NULL && PyErr_Occurred())
        return -1;
    long long n = by;
    if (v != NULL) {
        long long was = PyLong_AsLongLong(v);
        if (was == -1 && PyErr_Occurred())
            return -1;
        n += was;
    }
    if (n == 0)
        return v == NULL ? 0 : PyDict_DelItem(d, k);
    PyObject *o = PyLong_FromLongLong(n);
    int rc = o == NULL ? -1 : PyDict_SetItem(d, k, o);
    Py_XDECREF(o);
    return rc;
}

/* The same for a byte or packet sum: Python's ints, of any size. */
static int bump_sum(PyObject *d, PyObject *k, __int128 by) {
    PyObject *v = PyDict_GetItemWithError(d, k);
    if (v == NULL && PyErr_Occurred())
        return -1;
    PyObject *add = long_from_i128(by), *n = add == NULL ? NULL : v == NULL ? (Py_INCREF(add), add)
                                                                          : PyNumber_Add(v, add);
    Py_XDECREF(add);
    if (n == NULL)
        return -1;
    int zero = PyObject_Not(n), rc = zero < 0 ? -1 : !zero ? PyDict_SetItem(d, k, n)
                                                 : v == NULL ? 0 : PyDict_DelItem(d, k);
    Py_DECREF(n);
    return rc;
}

/* A row field that pack_row has checked is an int of at most 64 bits (or a counter of a counted row). */
static inline unsigned long long uint_at(PyObject *row, int i) {
    return PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(row, i));
}

static inline int counted(PyObject *row) { return PyTuple_GET_ITEM(row, R_OPKTS) != Py_None; }

static inline __int128 row_bytes(PyObject *row) {
    return (__int128)uint_at(row, R_OBYTES) + uint_at(row, R_RBYTES);
}

static inline __int128 row_packets(PyObject *row) {
    return (__int128)uint_at(row, R_OPKTS) + uint_at(row, R_RPKTS);
}

/* model.STATE_KEYS.get((proto, pstate, status & STATE_BITS)) or model.state_key3(proto, pstate, status): a new
 * reference, or NULL with an exception set. */
static PyObject *state_name(Agg *a, PyObject *proto, PyObject *pstate, PyObject *status) {
    unsigned long long bits = PyLong_AsUnsignedLongLong(status) & STATE_BITS_;
    uint64_t k = PyLong_AsUnsignedLongLong(proto) << 16 | PyLong_AsUnsignedLongLong(pstate) << 8 | bits;
    /* (each of them an int of one byte: a packed row's, or a record's) */
    int at = (int)((k * 0x9E3779B97F4A7C15ULL) >> 58);
    if (memo[at].name != NULL && memo[at].k == k) {
        Py_INCREF(memo[at].name);
        return memo[at].name;
    }
    PyObject *masked = PyLong_FromUnsignedLongLong(bits);
    PyObject *t = masked == NULL ? NULL : PyTuple_Pack(3, proto, pstate, masked), *name = NULL;
    Py_XDECREF(masked);
    if (t == NULL)
        return NULL;
    name = PyDict_GetItemWithError(a->state_keys, t);
    Py_DECREF(t);
    if (name != NULL && PyObject_IsTrue(name) == 1)
        Py_INCREF(name);
    else if (PyErr_Occurred())
        return NULL;
    else
        name = PyObject_CallFunctionObjArgs(a->state_key3, proto, pstate, status, NULL);
    if (name != NULL) {
        Py_XSETREF(memo[at].name, name);
        Py_INCREF(name);
        memo[at].k = k;
    }
    return name;
}

/* Aggregates.add(row, sign). */
static int agg_add(Agg *a, PyObject *row, int sign) {
    if (bump(a->by_proto, PyTuple_GET_ITEM(row, R_PROTO), sign) < 0)
        return -1;
    PyObject *state = state_name(a, PyTuple_GET_ITEM(row, R_PROTO), PyTuple_GET_ITEM(row, R_PSTATE),
                                 PyTuple_GET_ITEM(row, R_STATUS));
    int rc = state == NULL ? -1 : bump(a->by_state, state, sign);
    Py_XDECREF(state);
    if (rc < 0)
        return -1;
    if (!(uint_at(row, R_STATUS) & IPS_ASSURED_))
        a->evictable += sign;
    int c = counted(row);
    __int128 bytes = 0, packets = 0;
    if (c) {
        bytes = sign * row_bytes(row), packets = sign * row_packets(row);
        a->counted += sign;
        a->bytes += bytes;
        a->packets += packets;
    }
    for (int g = 0; g < a->ng; g++) {
        const Tracked *t = &a->g[g];
        PyObject *k = PyObject_CallOneArg(t->key, row);
        rc = k == NULL ? -1 : bump(t->entries, k, sign);
        if (rc == 0 && c)
            rc = bump_sum(t->nbytes, k, bytes) < 0 || bump_sum(t->npkts, k, packets) < 0 ? -1 : 0;
        Py_XDECREF(k);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Whether two row fields differ, as Python's != says. -1 with an exception set. */
static inline int differ(PyObject *old, PyObject *new, int i) {
    return PyObject_RichCompareBool(PyTuple_GET_ITEM(old, i), PyTuple_GET_ITEM(new, i), Py_NE);
}

/* Aggregates._regroup(old, new). */
static int regroup(Agg *a, PyObject *old, PyObject *new) {
    int oc = counted(old), nc = counted(new);
    if (!oc && !nc) {
        for (int g = 0; g < a->ng; g++) {
            const Tracked *t = &a->g[g];
            PyObject *was = PyObject_CallOneArg(t->key, old), *now = was ? PyObject_CallOneArg(t->key, new) : NULL;
            int ne = now == NULL ? -1 : PyObject_RichCompareBool(was, now, Py_NE), rc = ne < 0 ? -1 : 0;
            if (ne == 1)
                rc = bump(t->entries, was, -1) < 0 || bump(t->entries, now, 1) < 0 ? -1 : 0;
            else if (ne == 0) {
                /* What out-then-in does to a key of one flow: it goes last in the dict's order. */
                PyObject *n = PyDict_GetItemWithError(t->entries, was);
                if (n == NULL)
                    rc = PyErr_Occurred() ? -1 : 0;
                else if (PyLong_Check(n) && PyLong_AsLongLong(n) == 1) {
                    Py_INCREF(n);
                    rc = PyDict_DelItem(t->entries, was) < 0 || PyDict_SetItem(t->entries, was, n) < 0 ? -1 : 0;
                    Py_DECREF(n);
                }
            }
            Py_XDECREF(was);
            Py_XDECREF(now);
            if (rc < 0)
                return -1;
        }
        return 0;
    }
    a->counted += nc - oc;
    PyObject *rows[2] = {old, new};
    int signs[2] = {-1, 1}, cs[2] = {oc, nc};
    __int128 bytes[2] = {0, 0}, packets[2] = {0, 0};
    for (int j = 0; j < 2; j++)
        if (cs[j]) {
            bytes[j] = signs[j] * row_bytes(rows[j]), packets[j] = signs[j] * row_packets(rows[j]);
            a->bytes += bytes[j];
            a->packets += packets[j];
        }
    /* Out with the old row, in with the new, in that order: the dicts' order breaks ties in top(). */
    for (int g = 0; g < a->ng; g++) {
        const Tracked *t = &a->g[g];
        for (int j = 0; j < 2; j++) {
            PyObject *k = PyObject_CallOneArg(t->key, rows[j]);
            int rc = k == NULL ? -1 : bump(t->entries, k, signs[j]);
            if (rc == 0 && cs[j])
                rc = bump_sum(t->nbytes, k, bytes[j]) < 0 || bump_sum(t->npkts, k, packets[j]) < 0 ? -1 : 0;
            Py_XDECREF(k);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

/* Aggregates.replace(old, new): an update of one flow, touching only what changed. */
static int agg_replace(Agg *a, PyObject *old, PyObject *new) {
    unsigned long long os = uint_at(old, R_STATUS), ns = uint_at(new, R_STATUS);
    int changed = os != ns || uint_at(old, R_PSTATE) != uint_at(new, R_PSTATE);
    if (changed) {
        /* (both named with the old row's protocol, as Aggregates.replace names them) */
        PyObject *proto = PyTuple_GET_ITEM(old, R_PROTO);
        PyObject *was = state_name(a, proto, PyTuple_GET_ITEM(old, R_PSTATE), PyTuple_GET_ITEM(old, R_STATUS));
        PyObject *now = was ? state_name(a, proto, PyTuple_GET_ITEM(new, R_PSTATE), PyTuple_GET_ITEM(new, R_STATUS))
                            : NULL;
        int ne = now == NULL ? -1 : PyObject_RichCompareBool(was, now, Py_NE), rc = ne < 0 ? -1 : 0;
        if (ne == 1)
            rc = bump(a->by_state, was, -1) < 0 || bump(a->by_state, now, 1) < 0 ? -1 : 0;
        Py_XDECREF(was);
        Py_XDECREF(now);
        if (rc < 0)
            return -1;
        a->evictable += !(ns & IPS_ASSURED_) - !(os & IPS_ASSURED_);
    }
    /* Group keys read the tuples (unchanged), the state, mark and zone; totals read the counters. */
    static const int MOVED[6] = {R_MARK, R_ZONE, R_OPKTS, R_OBYTES, R_RPKTS, R_RBYTES};
    for (int i = 0; !changed && i < 6; i++)
        if ((changed = differ(old, new, MOVED[i])) < 0)
            return -1;
    return changed ? regroup(a, old, new) : 0;
}

/* The fields f[0..n) of a whole record into row (packing.unpack's); their bytes read from *at on. */
static int unpack_fields(PyObject *row, const PackField *f, int n, const char *rec, Py_ssize_t addr,
                         Py_ssize_t *at) {
    for (int i = 0; i < n; i++) {
        Py_ssize_t size = f[i].size ? f[i].size : addr;
        if (f[i].source >= 0) {
            PyObject *v;
            if (f[i].size == 0)
                v = PyBytes_FromStringAndSize(rec + *at, addr);
            else {
                unsigned long long x = 0;
                for (Py_ssize_t b = 0; b < size; b++)
                    x = x << 8 | (uint8_t)rec[*at + b];
                v = PyLong_FromUnsignedLongLong(x);
            }
            if (v == NULL)
                return -1;
            Py_XSETREF(((PyTupleObject *)row)->ob_item[f[i].source], v);
        }
        *at += size;
    }
    return 0;
}

/* packing.unpack(record, labels): the row of a whole record of that layout. */
static PyObject *unpack(const Records *r, const char *rec, int layout, PyObject *labels) {
    PyObject *row = PyTuple_New(ROW_LEN);
    Py_ssize_t addr = layout & 1 ? 16 : 4, at = 0;
    if (row == NULL || unpack_fields(row, r->head, r->nhead, rec, addr, &at) < 0
        || (layout >> 1 && unpack_fields(row, r->counters, r->ncounters, rec, addr, &at) < 0)) {
        Py_XDECREF(row);
        return NULL;
    }
    for (int i = 0; i < ROW_LEN; i++)  /* an uncounted record's counters: None; then the labels */
        if (PyTuple_GET_ITEM(row, i) == NULL) {
            PyObject *v = i == R_LABELS ? labels : Py_None;
            Py_INCREF(v);
            PyTuple_SET_ITEM(row, i, v);
        }
    return row;
}

/* A whole record's flags byte (packing.FLAGS_AT). */
static int flags_of(const Records *r, const char *rec, int layout) {
    Py_ssize_t addr = layout & 1 ? 16 : 4, at = 0;
    for (int i = 0; i < r->nhead; i++) {
        if (r->head[i].source == FLAGS_FIELD)
            return (uint8_t)rec[at];
        at += r->head[i].size ? r->head[i].size : addr;
    }
    return 0;
}

/* packing.flow_key(row), or -1 (no exception) where Python should compute it (an item that does not hash, an id
 * that is not an int of at most 64 bits: the store refuses that key, in Python's words). */
static int flow_key(PyObject *row, uint64_t *key) {
    uint64_t lane[4];
    for (int i = 0; i < 4; i++) {
        Py_hash_t h = PyObject_Hash(PyTuple_GET_ITEM(row, R_SRC + i));
        if (h == -1) {
            PyErr_Clear();
            return -1;
        }
        lane[i] = (uint64_t)h;
    }
    PyObject *id = PyTuple_GET_ITEM(row, R_ID);
    unsigned long long low = PyLong_Check(id) ? PyLong_AsUnsignedLongLong(id) : (unsigned long long)-1;
    if (low == (unsigned long long)-1 && (!PyLong_Check(id) || PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    *key = (tuple_hash4(lane) & KEY_HIGH) | low;
    return 0;
}

/* labels.get(key, dflt) as a new reference; pop too when pop. */
static PyObject *label_of(PyObject *labels, uint64_t key, PyObject *dflt, int pop) {
    PyObject *k = PyLong_FromUnsignedLongLong(key), *v = k ? PyDict_GetItemWithError(labels, k) : NULL;
    if (v == NULL && (k == NULL || PyErr_Occurred())) {
        Py_XDECREF(k);
        return NULL;
    }
    v = v != NULL ? v : dflt;
    Py_INCREF(v);
    if (pop && v != dflt && PyDict_DelItem(labels, k) < 0)
        Py_CLEAR(v);
    Py_DECREF(k);
    return v;
}

/* The labels an updated or new row leaves: labels[key] = its labels, or no entry where it has none. */
static int set_labels(PyObject *labels, uint64_t key, PyObject *row) {
    PyObject *l = PyTuple_GET_ITEM(row, R_LABELS);
    int has = PyObject_IsTrue(l);
    if (has < 0 || (!has && PyDict_GET_SIZE(labels) == 0))
        return has < 0 ? -1 : 0;
    PyObject *k = PyLong_FromUnsignedLongLong(key);
    if (k == NULL)
        return -1;
    int rc = has ? PyDict_SetItem(labels, k, l) : 0;
    if (!has && PyDict_DelItem(labels, k) < 0) {
        if (PyErr_ExceptionMatches(PyExc_KeyError))
            PyErr_Clear();
        else
            rc = -1;
    }
    Py_DECREF(k);
    return rc;
}

/* row[:R_OPKTS] + old[R_OPKTS:R_RBYTES + 1] + row[R_START:]: an update's row with the counters last seen. */
static PyObject *with_counters(PyObject *row, PyObject *old) {
    PyObject *out = PyTuple_New(ROW_LEN);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < ROW_LEN; i++) {
        PyObject *v = PyTuple_GET_ITEM(i >= R_OPKTS && i <= R_RBYTES ? old : row, i);
        Py_INCREF(v);
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

/* Whether a protocol state is NO_PSTATE: what an UPDATE that left the state out says (an int of another value, or
 * not an int, is not). */
static inline int no_pstate(PyObject *v) {
    int overflow;
    return PyLong_Check(v) && PyLong_AsLongAndOverflow(v, &overflow) == NO_PSTATE && !overflow;
}

/* row with item ``at`` replaced by v. */
static PyObject *with_item(PyObject *row, int at, PyObject *v) {
    PyObject *out = PyTuple_New(ROW_LEN);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < ROW_LEN; i++) {
        PyObject *x = i == at ? v : PyTuple_GET_ITEM(row, i);
        Py_INCREF(x);
        PyTuple_SET_ITEM(out, i, x);
    }
    return out;
}

/* An event's kind, row and flow key: 0, or 1 where Python should apply it (not a (kind, row) pair, ...). */
static int event_of(PyObject *ev, long *kind, PyObject **row, uint64_t *key) {
    if (!PyTuple_CheckExact(ev) || PyTuple_GET_SIZE(ev) != 2)
        return 1;
    PyObject *kind_o = PyTuple_GET_ITEM(ev, 0);
    *row = PyTuple_GET_ITEM(ev, 1);
    if (!PyLong_Check(kind_o) || !PyTuple_CheckExact(*row) || PyTuple_GET_SIZE(*row) != ROW_LEN)
        return 1;
    *kind = PyLong_AsLong(kind_o);
    if ((*kind == -1 && PyErr_Occurred()) || flow_key(*row, key) < 0) {
        PyErr_Clear();
        return 1;
    }
    return 0;
}

/* One event to the held store (FlowTable._apply_rows): 0 applied, 1 left to Python (nothing changed), -1 with an
 * exception set. */
static int held_one(Records *r, Agg *a, PyObject *labels, PyObject *ev, long long seen, long long *made,
                    long long *gone) {
    long kind;
    PyObject *row;
    uint64_t key;
    if (event_of(ev, &kind, &row, &key))
        return 1;
    char old_rec[MOST_RECORD], rec[MOST_RECORD];
    Py_ssize_t i = records_probe(r, key);
    int found = r->index[i] != 0, layout = found ? records_read(r, i, old_rec) : -1;
    if (kind == EV_DESTROY) {
        ++*gone;
        if (!found)
            return 0;
        PyObject *lab = PyDict_GET_SIZE(labels) ? label_of(labels, key, ZERO, 1) : NULL;
        if (lab == NULL && PyErr_Occurred())
            return -1;
        PyObject *old = unpack(r, old_rec, layout, lab ? lab : ZERO);
        Py_XDECREF(lab);
        if (old == NULL)
            return -1;
        records_remove(r, i);
        int rc = agg_add(a, old, -1);
        Py_DECREF(old);
        return rc;
    }
    if (!found) {
        int c = records_pack(r, row, seen, counted(row) ? 0 : UNREAD_, rec);
        if (c < 0)
            return 1;
        *made += kind == EV_NEW;
        if (records_put(r, key, rec, c) < 0)
            return -1;
        /* A label is only ever held for a flow the table holds, so there is none to drop here. */
        if (PyObject_IsTrue(PyTuple_GET_ITEM(row, R_LABELS)) && set_labels(labels, key, row) < 0)
            return -1;
        return agg_add(a, row, 1);
    }
    PyObject *lab = PyDict_GET_SIZE(labels) ? label_of(labels, key, ZERO, 0) : NULL;
    if (lab == NULL && PyErr_Occurred())
        return -1;
    PyObject *old = unpack(r, old_rec, layout, lab ? lab : ZERO), *now = row;
    Py_XDECREF(lab);
    if (old == NULL)
        return -1;
    Py_INCREF(now);
    int flags = 0;
    if (!counted(row)) {
        if (counted(old))  /* UPDATE events carry no counters: keep the last ones seen */
            Py_SETREF(now, with_counters(row, old));
        else
            flags = flags_of(r, old_rec, layout);  /* a dump showed none (accounting off), or none read yet */
    }
    /* An UPDATE carries the protocol's state only when it changed: the last one seen is kept (_apply_rows). */
    if (now != NULL && no_pstate(PyTuple_GET_ITEM(now, R_PSTATE)) && !no_pstate(PyTuple_GET_ITEM(old, R_PSTATE)))
        Py_SETREF(now, with_item(now, R_PSTATE, PyTuple_GET_ITEM(old, R_PSTATE)));
    int c = now == NULL ? -2 : records_pack(r, now, seen, flags, rec), rc = 0;
    if (c == -1)
        rc = 1;
    else if (c < 0)
        rc = -1;
    else {
        *made += kind == EV_NEW;
        rc = records_put(r, key, rec, c) < 0 || set_labels(labels, key, now) < 0 || agg_replace(a, old, now) < 0
                 ? -1 : 0;
    }
    Py_DECREF(old);
    Py_XDECREF(now);
    return rc;
}

/* Whether o is an int from 0 to most, as a row the aggregates count has its protocol, protocol state and status
 * (the state names' memo and the sums read them as such: a packed row's are). */
static inline int small(PyObject *o, unsigned long long most) {
    if (!PyLong_Check(o))
        return 0;
    unsigned long long v = PyLong_AsUnsignedLongLong(o);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return v <= most;
}

/* table.tally's _SHAPE of a row (pstate, status, mark, zone) that the aggregates can count and the digests hold;
 * NULL where Python should apply the row (no exception) or with an exception set (no memory). */
static PyObject *shape_of_row(PyObject *row) {
    if (!small(PyTuple_GET_ITEM(row, R_PROTO), 0xFF) || !small(PyTuple_GET_ITEM(row, R_PSTATE), 0xFF)
        || !small(PyTuple_GET_ITEM(row, R_STATUS), UINT64_MAX))
        return NULL;
    PyObject *mark = PyTuple_GET_ITEM(row, R_MARK), *zone = PyTuple_GET_ITEM(row, R_ZONE);
    PyObject *shape = PyTuple_Pack(4, PyTuple_GET_ITEM(row, R_PSTATE), PyTuple_GET_ITEM(row, R_STATUS), mark, zone);
    /* One the digests would refuse (a mark or zone that does not hash) is Python's to refuse, in its words; a shape
     * of ints always hashes, and is not hashed twice for it (the digests hash it to store it). */
    if (shape != NULL && !(PyLong_CheckExact(mark) && PyLong_CheckExact(zone)) && PyObject_Hash(shape) == -1) {
        PyErr_Clear();
        Py_CLEAR(shape);
    }
    return shape;
}

/* Whether a shape the digests hold is one the aggregates can count (it came from a row Python may have kept). */
static int countable(PyObject *shape) {
    return PyTuple_Check(shape) && PyTuple_GET_SIZE(shape) == 4 && small(PyTuple_GET_ITEM(shape, 0), 0xFF)
           && small(PyTuple_GET_ITEM(shape, 1), UINT64_MAX);
}

/* table.tally.shaped(row, shape): the row as counted under shape, without counters. */
static PyObject *shaped(PyObject *row, PyObject *shape) {
    PyObject *out = PyTuple_New(ROW_LEN);
    if (out == NULL)
        return NULL;
    for (int i = 0; i < ROW_LEN; i++) {
        PyObject *v = i == R_PSTATE ? PyTuple_GET_ITEM(shape, 0) : i == R_STATUS ? PyTuple_GET_ITEM(shape, 1)
                      : i == R_MARK ? PyTuple_GET_ITEM(shape, 2) : i == R_ZONE ? PyTuple_GET_ITEM(shape, 3)
                      : i >= R_OPKTS && i <= R_RBYTES ? Py_None : PyTuple_GET_ITEM(row, i);
        Py_INCREF(v);
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

/* One event to a bounded table's digests (FlowTally._apply_rows, no owners counted): as held_one answers. */
static int tally_one(PyObject *digests, Agg *a, PyObject *ev, long long *made, long long *gone) {
    long kind;
    PyObject *row, *shape = NULL, *old, *was = NULL, *now = NULL;
    uint64_t key;
    if (event_of(ev, &kind, &row, &key) || (kind != EV_DESTROY && (shape = shape_of_row(row)) == NULL))
        return PyErr_Occurred() ? -1 : 1;
    if ((old = digests_get(digests, key)) == NULL) {
        Py_XDECREF(shape);
        return -1;
    }
    int rc = 0;
    if (old != Py_None && (!countable(old) || !small(PyTuple_GET_ITEM(row, R_PROTO), 0xFF)))
        rc = 1;
    else if (kind == EV_DESTROY) {
        ++*gone;
        if (old != Py_None) {
            PyObject *popped = digests_pop(digests, key);
            was = popped == NULL ? NULL : shaped(row, old);
            rc = was == NULL ? -1 : agg_add(a, was, -1);
            Py_XDECREF(popped);
        }
    } else {
        *made += kind == EV_NEW;
        if (old != Py_None && no_pstate(PyTuple_GET_ITEM(shape, 0)) && !no_pstate(PyTuple_GET_ITEM(old, 0))) {
            /* the state an UPDATE left out, kept (FlowTally._apply_rows) */
            PyObject *kept = PyTuple_Pack(4, PyTuple_GET_ITEM(old, 0), PyTuple_GET_ITEM(shape, 1),
                                          PyTuple_GET_ITEM(shape, 2), PyTuple_GET_ITEM(shape, 3));
            if (kept == NULL) {
                Py_DECREF(old);
                Py_DECREF(shape);
                return -1;
            }
            Py_SETREF(shape, kept);
        }
        if (digests_put(digests, key, shape) < 0)
            rc = -1;
        else if (old == Py_None)
            rc = (now = shaped(row, shape)) == NULL ? -1 : agg_add(a, now, 1);
        else {
            int ne = PyObject_RichCompareBool(old, shape, Py_NE);
            if (ne < 0)
                rc = -1;
            else if (ne) {
                was = shaped(row, old), now = was ? shaped(row, shape) : NULL;
                rc = now == NULL ? -1 : agg_replace(a, was, now);
            }
        }
    }
    Py_DECREF(old);
    Py_XDECREF(shape);
    Py_XDECREF(was);
    Py_XDECREF(now);
    return rc;
}

static int agg_open(Agg *a, PyObject *agg) {
    a->by_proto = PyObject_GetAttr(agg, NAME[BY_PROTO]);
    a->by_state = a->by_proto ? PyObject_GetAttr(agg, NAME[BY_STATE]) : NULL;
    a->groups = a->by_state ? PyObject_GetAttr(agg, NAME[GROUPS]) : NULL;
    if (a->groups == NULL)
        return -1;
    if (!PyDict_Check(a->by_proto) || !PyDict_Check(a->by_state) || !PyDict_Check(a->groups)
        || PyDict_GET_SIZE(a->groups) > MOST_TRACKED) {
        PyErr_SetString(PyExc_TypeError, "apply_events: agg is an Aggregates (dicts, at most 16 groups)");
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    while (PyDict_Next(a->groups, &pos, &name, &value)) {
        Tracked *t = &a->g[a->ng];
        if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 3) {
            PyErr_SetString(PyExc_TypeError, "apply_events: a group's totals are (entries, bytes, packets)");
            return -1;
        }
        t->entries = PyTuple_GET_ITEM(value, 0), t->nbytes = PyTuple_GET_ITEM(value, 1);
        t->npkts = PyTuple_GET_ITEM(value, 2);
        if (!PyDict_Check(t->entries) || !PyDict_Check(t->nbytes) || !PyDict_Check(t->npkts)) {
            PyErr_SetString(PyExc_TypeError, "apply_events: a group's totals are dicts");
            return -1;
        }
        if ((t->key = PyObject_GetAttr(t->entries, NAME[KEY])) == NULL)
            return -1;
        a->ng++;
    }
    return 0;
}

/* Add what changed to one of the aggregates' totals: agg.name += by. */
static int add_total(PyObject *agg, int name, __int128 by) {
    if (by == 0)
        return 0;
    PyObject *was = PyObject_GetAttr(agg, NAME[name]), *add = was ? long_from_i128(by) : NULL;
    PyObject *now = add ? PyNumber_Add(was, add) : NULL;
    int rc = now == NULL ? -1 : PyObject_SetAttr(agg, NAME[name], now);
    Py_XDECREF(was);
    Py_XDECREF(add);
    Py_XDECREF(now);
    return rc;
}

/* The totals, also after an error: the dicts changed so far stay changed, and the totals go with them. */
static int agg_close(Agg *a, PyObject *agg) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    int rc = add_total(agg, EVICTABLE, a->evictable) < 0 || add_total(agg, COUNTED, a->counted) < 0
             || add_total(agg, BYTES, a->bytes) < 0 || add_total(agg, PACKETS, a->packets) < 0 ? -1 : 0;
    if (type != NULL) {
        PyErr_Restore(type, value, tb);  /* the first error is the one to tell */
        rc = -1;
    }
    for (int g = 0; g < a->ng; g++)
        Py_XDECREF(a->g[g].key);
    Py_XDECREF(a->by_proto);
    Py_XDECREF(a->by_state);
    Py_XDECREF(a->groups);
    return rc;
}

/* apply_events(store, events, start, seen, labels, agg, state_keys, state_key3) -> (stop, created, destroyed):
 * FlowTable._apply_rows' work on events[start:] (a list of (kind, row)), read at seen, up to the first event it
 * leaves to Python (len(events) when none): store the table's Records (labels its labels dict), or a bounded
 * table's Digests (FlowTally._apply_rows' work, no owners counted; labels unused); agg its Aggregates,
 * state_keys and state_key3 model's. created and destroyed: the NEW and DESTROY events applied. */
static PyObject *apply_events(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 8 || !(is_records(args[0]) || is_digests(args[0])) || !PyList_Check(args[1])
        || !PyDict_Check(args[4]) || !PyDict_Check(args[6])) {
        PyErr_SetString(PyExc_TypeError, "apply_events(store, events, start, seen, labels, agg, state_keys, "
                        "state_key3): a Records or Digests, a list, two ints, a dict, an Aggregates, a dict, a "
                        "function");
        return NULL;
    }
    Records *r = is_records(args[0]) ? (Records *)args[0] : NULL;
    PyObject *events = args[1], *labels = args[4], *agg = args[5];
    Py_ssize_t i = PyLong_AsSsize_t(args[2]);
    long long seen = PyLong_AsLongLong(args[3]);
    if (PyErr_Occurred() || (r != NULL && records_ready(r) < 0))
        return NULL;
    Agg a;
    memset(&a, 0, sizeof a);
    a.state_keys = args[6], a.state_key3 = args[7];
    long long made = 0, gone = 0;
    int rc = agg_open(&a, agg);
    for (i = i < 0 ? 0 : i; rc == 0 && i < PyList_GET_SIZE(events); i++) {
        PyObject *ev = PyList_GET_ITEM(events, i);
        Py_INCREF(ev);  /* (a key function could change the list) */
        rc = r != NULL ? held_one(r, &a, labels, ev, seen, &made, &gone) : tally_one(args[0], &a, ev, &made, &gone);
        Py_DECREF(ev);
    }
    if (rc == 1)
        i--;  /* the event left to Python */
    if (agg_close(&a, agg) < 0)
        return NULL;
    return Py_BuildValue("(nLL)", i, made, gone);
}

static PyMethodDef apply_methods[] = {
    {"apply_events", (PyCFunction)(void (*)(void))apply_events, METH_FASTCALL,
     "apply_events(store, events, start, seen, labels, agg, state_keys, state_key3) -> (stop, created,\n"
     "destroyed): FlowTable's or FlowTally's _apply_rows on events[start:], up to the first event left to Python."},
    {NULL, NULL, 0, NULL},
};

int add_apply(PyObject *module) {
    if (ZERO == NULL && (ZERO = PyLong_FromLong(0)) == NULL)
        return -1;
    for (int i = 0; i < NAMES; i++)
        if (NAME[i] == NULL && (NAME[i] = PyUnicode_InternFromString(NAME_TEXT[i])) == NULL)
            return -1;
    return PyModule_AddFunctions(module, apply_methods);
}

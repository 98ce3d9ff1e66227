/* The compiled decoder: ctnetlink conntrack messages into flow rows, a whole buffer per call; and a dump's
 * chunks and events received a batch at a time without the GIL (recv_queued and framed, at the end).
 *
 * The pure-Python decoder (decode.py) is the reference and the fallback. This one walks each message's
 * attributes the way decode._walk does, checks exactly what it checks, and builds the same 23-field row
 * (model.R_*). It stops at the first message it does not decode itself and returns that message's offset,
 * so everything else (broken framing, NLMSG_DONE, errors, NLM_F_DUMP_INTR, malformed messages, labels)
 * takes the Python path: one place for every error and its wording. tests/unit/test_decode_compiled.py
 * holds the two decoders to the same rows on real and mutated kernel bytes.
 *
 * Every number the kernel sends is read with bounds checked against the message and the buffer. Netlink
 * and attribute headers are host order, read little-endian as framing.py reads them; values are
 * big-endian (network order), as decode.py's templates read them.
 *
 * The held flow store's records (Records) are in _records.c, their frozen copies for the flow list (Frozen) in
 * _frozen.c, a dump counted without rows (Counts) in _counts.c, all built into this module; what the walk
 * shares with them is in _walk.h.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>

#include "_records.h"

#include "_walk.h"


/* The next attribute between *pos and end: 1 with its offset, length and type (flags masked off); 0 when
 * fewer than 4 bytes are left (netlink padding); -1 on a length shorter than its header or past the end. */
static inline int next_attr(const uint8_t *b, Py_ssize_t *pos, Py_ssize_t end, Py_ssize_t *at, Py_ssize_t *ln,
                            unsigned *typ) {
    if (*pos + 4 > end)
        return 0;
    *ln = le16(b + *pos);
    *typ = le16(b + *pos + 2) & NLA_TYPE_MASK;
    if (*ln < 4 || *pos + *ln > end)
        return -1;
    *at = *pos;
    *pos += (*ln + 3) & ~(Py_ssize_t)3;
    return 1;
}

/* One leaf at attribute offset ``at`` of length ``ln``: ``size`` bytes exactly (big-endian), or any (size 0:
 * an address). 0 on success, -1 when the size is wrong (decode._leaf raises). */
static inline int leaf(walk_t *w, int f, Py_ssize_t at, Py_ssize_t ln, int size) {
    const uint8_t *p = w->b + at + 4;
    Py_ssize_t plen = ln - 4;
    uint64_t v = 0;
    if (size == 0) {
        w->at[f] = at + 4;
        w->len[f] = plen;
    } else {
        if (plen != size)
            return -1;
        for (int i = 0; i < size; i++)
            v = v << 8 | p[i];
        w->val[f] = v;
    }
    w->have |= 1u << f;
    return 0;
}

/* Each attribute in [start, end), with ``cur`` as the cursor; ``rc`` ends 0, or -1 on a broken length. */
#define FOR_ATTRS(cur, start, end, at, ln, typ, rc) \
    for (Py_ssize_t cur = (start); ((rc) = next_attr(w->b, &cur, (end), &(at), &(ln), &(typ))) == 1;)

/* decode._tuple: the original (reply = 0) or reply tuple nested at [start, end). */
static int tuple(walk_t *w, Py_ssize_t start, Py_ssize_t end, int reply) {
    Py_ssize_t at, ln, at2, ln2;
    unsigned t, t2;
    int rc, rc2 = 0;
    int sh = reply ? REPLY_SHIFT : 0, ish = reply ? RICMP_SHIFT : 0;
    FOR_ATTRS(p1, start + 4, end, at, ln, t, rc) {
        if (t == CTA_TUPLE_IP) {
            FOR_ATTRS(p2, at + 4, at + ln, at2, ln2, t2, rc2) {
                if (t2 == CTA_IP_V4_SRC || t2 == CTA_IP_V6_SRC)
                    leaf(w, F_SRC + sh, at2, ln2, 0);
                else if (t2 == CTA_IP_V4_DST || t2 == CTA_IP_V6_DST)
                    leaf(w, F_DST + sh, at2, ln2, 0);
            }
        } else if (t == CTA_TUPLE_PROTO) {
            FOR_ATTRS(p2, at + 4, at + ln, at2, ln2, t2, rc2) {
                int bad = 0;
                if (t2 == CTA_PROTO_NUM && !reply)
                    bad = leaf(w, F_PROTO, at2, ln2, 1);
                else if (t2 == CTA_PROTO_SRC_PORT)
                    bad = leaf(w, F_SPORT + sh, at2, ln2, 2);
                else if (t2 == CTA_PROTO_DST_PORT)
                    bad = leaf(w, F_DPORT + sh, at2, ln2, 2);
                else if (t2 == CTA_PROTO_ICMP_ID || t2 == CTA_PROTO_ICMPV6_ID)
                    bad = leaf(w, F_ICMP_ID + ish, at2, ln2, 2);
                else if (t2 == CTA_PROTO_ICMP_TYPE || t2 == CTA_PROTO_ICMPV6_TYPE)
                    bad = leaf(w, F_ICMP_TYPE + ish, at2, ln2, 1);
                else if (t2 == CTA_PROTO_ICMP_CODE || t2 == CTA_PROTO_ICMPV6_CODE)
                    bad = leaf(w, F_ICMP_CODE + ish, at2, ln2, 1);
                if (bad)
                    return -1;
            }
        } else if (t == CTA_TUPLE_ZONE && !reply) {
            if (leaf(w, F_TZONE, at, ln, 2))
                return -1;
            continue;
        } else {
            continue;
        }
        if (rc2 < 0)
            return -1;
    }
    return rc;
}

/* decode._walk over the message at [off, off + length): 0 when it decodes, -1 when Python should look at it
 * (malformed: Python raises the error; or carrying labels, which Python decodes). */
int walk(walk_t *w, Py_ssize_t off, Py_ssize_t length) {
    Py_ssize_t at, ln, at2, ln2, at3, ln3, end = off + length;
    unsigned t, t2, t3;
    int rc, rc2 = 0, rc3 = 0;
    if (length < HEADER_LEN)
        return -1;
    w->have = 0;
    FOR_ATTRS(p1, off + HEADER_LEN, end, at, ln, t, rc) {
        int bad = 0;
        switch (t) {
        case CTA_TUPLE_ORIG: bad = tuple(w, at, at + ln, 0); break;
        case CTA_TUPLE_REPLY: bad = tuple(w, at, at + ln, 1); break;
        case CTA_STATUS: bad = leaf(w, F_STATUS, at, ln, 4); break;
        case CTA_TIMEOUT: bad = leaf(w, F_TIMEOUT, at, ln, 4); break;
        case CTA_MARK: bad = leaf(w, F_MARK, at, ln, 4); break;
        case CTA_USE: bad = leaf(w, F_USE, at, ln, 4); break;
        case CTA_ID: bad = leaf(w, F_ID, at, ln, 4); break;
        case CTA_ZONE: bad = leaf(w, F_ZONE, at, ln, 2); break;
        case CTA_LABELS: return -1;  /* rare: the Python path turns the bitmap into an int */
        case CTA_PROTOINFO:
            FOR_ATTRS(p2, at + 4, at + ln, at2, ln2, t2, rc2) {
                if (t2 == CTA_PROTOINFO_TCP || t2 == CTA_PROTOINFO_DCCP || t2 == CTA_PROTOINFO_SCTP) {
                    FOR_ATTRS(p3, at2 + 4, at2 + ln2, at3, ln3, t3, rc3) {
                        if (t3 == CTA_PROTOINFO_TCP_STATE && leaf(w, F_PSTATE, at3, ln3, 1))
                            return -1;
                    }
                    if (rc3 < 0)
                        return -1;
                }
            }
            bad = rc2 < 0;
            break;
        case CTA_COUNTERS_ORIG:
        case CTA_COUNTERS_REPLY: {
            int pk = t == CTA_COUNTERS_ORIG ? F_OPKTS : F_RPKTS, by = pk + 1;
            FOR_ATTRS(p2, at + 4, at + ln, at2, ln2, t2, rc2) {
                int b2 = 0;
                if (t2 == CTA_COUNTERS_PACKETS) b2 = leaf(w, pk, at2, ln2, 8);
                else if (t2 == CTA_COUNTERS_BYTES) b2 = leaf(w, by, at2, ln2, 8);
                else if (t2 == CTA_COUNTERS32_PACKETS) b2 = leaf(w, pk, at2, ln2, 4);
                else if (t2 == CTA_COUNTERS32_BYTES) b2 = leaf(w, by, at2, ln2, 4);
                if (b2)
                    return -1;
            }
            bad = rc2 < 0;
            break;
        }
        case CTA_TIMESTAMP:
            FOR_ATTRS(p2, at + 4, at + ln, at2, ln2, t2, rc2) {
                if (t2 == CTA_TIMESTAMP_START && leaf(w, F_START, at2, ln2, 8))
                    return -1;
            }
            bad = rc2 < 0;
            break;
        default:
            break;
        }
        if (bad)
            return -1;
    }
    if (rc < 0)
        return -1;
    const uint32_t need = 1u << F_ID | 1u << F_SRC | 1u << F_PROTO;
    if ((w->have & need) != need)
        return -1;
    unsigned family = w->b[off + NFGEN_FAMILY];
    Py_ssize_t expect = family == AF_INET_ ? 4 : family == AF_INET6_ ? 16 : -1;
    if (expect < 0 || (w->len[F_SRC] != 0 && w->len[F_SRC] != expect))
        return -1;
    if (w->have & 1u << F_DST && w->len[F_DST] != 0 && w->len[F_DST] != expect)
        return -1;
    return 0;
}

static PyObject *empty_bytes;  /* the defaults decode._DEFAULTS gives absent fields */

static inline PyObject *field_object(const field_t *f) {
    if (f->kind == FIELD_NONE)
        Py_RETURN_NONE;
    if (f->kind == FIELD_INT)
        return PyLong_FromUnsignedLongLong(f->v);
    if (f->len == 0) {
        Py_INCREF(empty_bytes);
        return empty_bytes;
    }
    return PyBytes_FromStringAndSize((const char *)f->p, f->len);
}

PyObject *build(const walk_t *w, unsigned family) {
    PyObject *row = PyTuple_New(ROW_LEN);
    if (row == NULL)
        return NULL;
    int failed = 0;
    /* Written out a field at a time, each with its index a constant: row_field's switch folds away (a loop
     * over the index kept it, and decoding a dump ran a fifth slower). */
#define ITEM(r) do { \
        field_t f; \
        row_field(w, family, (r), &f); \
        PyObject *item = field_object(&f); \
        failed |= item == NULL; \
        PyTuple_SET_ITEM(row, (r), item);  /* a NULL slot is safe: the tuple's dealloc skips it */ \
    } while (0)
    ITEM(R_ID); ITEM(R_FAMILY); ITEM(R_PROTO); ITEM(R_PSTATE); ITEM(R_STATUS); ITEM(R_SRC); ITEM(R_DST);
    ITEM(R_SPORT); ITEM(R_DPORT); ITEM(R_RSRC); ITEM(R_RDST); ITEM(R_RSPORT); ITEM(R_RDPORT); ITEM(R_TIMEOUT);
    ITEM(R_MARK); ITEM(R_ZONE); ITEM(R_USE); ITEM(R_OPKTS); ITEM(R_OBYTES); ITEM(R_RPKTS); ITEM(R_RBYTES);
    ITEM(R_START); ITEM(R_LABELS);
#undef ITEM
    if (failed) {
        Py_DECREF(row);
        return NULL;
    }
    return row;
}

/* Decode from ``pos`` on, appending rows (or (kind, row) for events) to ``out``; the offset where it stopped. */
static PyObject *scan(PyObject *args, int events) {
    Py_buffer view;
    Py_ssize_t pos;
    PyObject *out;
    if (!PyArg_ParseTuple(args, "y*nO!", &view, &pos, &PyList_Type, &out))
        return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t n = view.len, length;
    unsigned typ, flags;
    walk_t w;
    w.b = b;
    if (pos < 0)
        pos = n;  /* Python checks the position: nothing to do here */
    while (pos < n && frame(b, pos, n, &length, &typ, &flags) == 0) {
        long kind = 0;
        if (events) {
            unsigned k = typ & 0xFF;
            if (k == IPCTNL_MSG_CT_NEW)
                kind = (flags & (NLM_F_CREATE | NLM_F_EXCL)) == (NLM_F_CREATE | NLM_F_EXCL) ? EV_NEW : EV_UPDATE;
            else if (k == IPCTNL_MSG_CT_DELETE)
                kind = EV_DESTROY;
            else {
                pos += (length + 3) & ~(Py_ssize_t)3;
                continue;
            }
        } else if (typ == NLMSG_DONE || typ == NLMSG_ERROR || flags & NLM_F_DUMP_INTR) {
            break;
        }
        if (walk(&w, pos, length) < 0)
            break;
        PyObject *row = build(&w, b[pos + NFGEN_FAMILY]);
        if (row == NULL)
            goto fail;
        if (events) {
            PyObject *ev = Py_BuildValue("(lN)", kind, row);
            if (ev == NULL)
                goto fail;
            row = ev;
        }
        int rc = PyList_Append(out, row);
        Py_DECREF(row);
        if (rc < 0)
            goto fail;
        pos += (length + 3) & ~(Py_ssize_t)3;
    }
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(pos < n ? pos : n);
fail:
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *dump(PyObject *self, PyObject *args) {
    (void)self;
    return scan(args, 0);
}

static PyObject *events(PyObject *self, PyObject *args) {
    (void)self;
    return scan(args, 1);
}

/* recv_queued(fd, buf, block, room, most) -> (lengths, errno): the datagrams queued on fd (a dump's chunks, or
 * events), received back to back into ``buf`` with the GIL released, at most ``most`` of them, and none while
 * less than ``room`` is left in the buffer, so none is cut (the caller sizes room over the biggest datagram:
 * ctnetlink.DUMP_ROOM, events.EVENT_ROOM). A reader thread that took the GIL back after every recv() waited up
 * to a switch interval each time on the thread decoding what it had read (~7,700 chunks at a million flows),
 * and an event cost a recv_into and a decode call of its own (3.0 us read and decoded; 1.9 us batched). With
 * ``block`` the first recv() waits; the rest never do. errno is EAGAIN when nothing more was queued, 0 when the
 * buffer or the batch was full, or the error that stopped it (ENOBUFS: events were dropped; EMSGSIZE: a datagram
 * over room, received and lost). */
static PyObject *recv_queued(PyObject *self, PyObject *args) {
    (void)self;
    int fd, block;
    Py_ssize_t room, most;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "iw*pnn", &fd, &view, &block, &room, &most))
        return NULL;
    if (room < NLH_LEN || most < 1 || view.len < room) {  /* (a buffer under room would receive nothing, ever) */
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "recv_queued: room and most must be positive, the buffer at least room");
        return NULL;
    }
    Py_ssize_t *lens = PyMem_Malloc((size_t)most * sizeof *lens), used, n;
    if (lens == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    int err;
again:
    n = 0, used = 0, err = 0;
    Py_BEGIN_ALLOW_THREADS
    while (n < most && view.len - used >= room) {
        /* MSG_TRUNC: the datagram's real length even if it did not fit, so a cut one is an error, not data. */
        ssize_t got = recv(fd, (char *)view.buf + used, (size_t)(view.len - used),
                           MSG_TRUNC | (n == 0 && block ? 0 : MSG_DONTWAIT));
        if (got < 0) {
            err = errno == EWOULDBLOCK ? EAGAIN : errno;
            break;
        }
        if (got == 0 || got > view.len - used) {
            err = got == 0 ? ECONNRESET : EMSGSIZE;
            break;
        }
        lens[n++] = got;
        used += got;
    }
    Py_END_ALLOW_THREADS
    if (err == EINTR) {  /* a signal: its handler runs (Ctrl-C raises), then the receive goes on (PEP 475) */
        if (PyErr_CheckSignals() < 0) {
            PyMem_Free(lens);
            PyBuffer_Release(&view);
            return NULL;
        }
        if (n == 0)
            goto again;
        err = 0;  /* what was received is returned; the caller asks again */
    }
    PyBuffer_Release(&view);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *v = PyLong_FromSsize_t(lens[i]);
        if (v == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, v);
    }
    PyMem_Free(lens);
    return out == NULL ? NULL : Py_BuildValue("(Ni)", out, err);
}

/* framed(buf, lengths) -> bool: whether each of the datagrams laid back to back in buf (recv_queued's lengths)
 * is netlink messages end to end, each padded to 4 bytes and the last ending where the datagram does. Then
 * one walk over them all reads exactly what a walk of each would, and the batch is decoded in one call. */
static PyObject *framed(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    PyObject *lengths;
    if (!PyArg_ParseTuple(args, "y*O!", &view, &PyList_Type, &lengths))
        return NULL;
    const uint8_t *b = view.buf;
    Py_ssize_t at = 0;
    int ok = 1;
    for (Py_ssize_t i = 0; ok && i < PyList_GET_SIZE(lengths); i++) {
        Py_ssize_t n = PyLong_AsSsize_t(PyList_GET_ITEM(lengths, i));
        if (n < 0 || n > view.len - at) {  /* (an error from PyLong_AsSsize_t is -1: raised below) */
            ok = 0;
            break;
        }
        Py_ssize_t end = at + n;
        while (at < end) {
            if (end - at < NLH_LEN) {
                ok = 0;
                break;
            }
            uint32_t len = (uint32_t)b[at] | (uint32_t)b[at + 1] << 8 | (uint32_t)b[at + 2] << 16
                           | (uint32_t)b[at + 3] << 24;
            Py_ssize_t step = ((Py_ssize_t)len + 3) & ~(Py_ssize_t)3;
            if (len < NLH_LEN || step > end - at) {
                ok = 0;
                break;
            }
            at += step;
        }
    }
    PyBuffer_Release(&view);
    if (PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(ok);
}

/* flow_keys(rows) -> list[int]: packing.flow_key of each row, hash(row[R_SRC:R_DPORT + 1]) & KEY_HIGH | row[R_ID],
 * computed as Python computes it (the tuple's own hash), without a Python call a row: ~0.5 s of a million-flow
 * first frame went to those calls under cProfile. */
static PyObject *flow_keys(PyObject *self, PyObject *rows) {
    (void)self;
    PyObject *seq = PySequence_Fast(rows, "flow_keys: rows must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *row = PySequence_Fast_GET_ITEM(seq, i), *tuple = PySequence_GetSlice(row, R_SRC, R_DPORT + 1);
        PyObject *id = tuple == NULL ? NULL : PySequence_GetItem(row, R_ID), *key = NULL;
        Py_hash_t h = id == NULL ? -1 : PyObject_Hash(tuple);
        if (h != -1 || !PyErr_Occurred()) {
            unsigned long long low = PyLong_AsUnsignedLongLong(id);
            if (!(low == (unsigned long long)-1 && PyErr_Occurred()))
                key = PyLong_FromUnsignedLongLong(((unsigned long long)h & KEY_HIGH) | low);
        }
        Py_XDECREF(tuple);
        Py_XDECREF(id);
        if (key == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, key);
    }
    Py_DECREF(seq);
    return out;
}

/* Digests: table.digest.Digests in C, the same open-addressing table (a 64-bit key and a 32-bit shape code a
 * slot, probed linearly from (key ^ key >> 32) & mask, emptied by shifting back) with the same answers; the
 * Python one is its reference (tests/unit/test_table_tally.py runs both on the same random operations). A
 * Python put was ~1 µs a flow, ~1.1 s of a million-flow bounded first frame under cProfile. The sizes are Python's:
 * digest.py passes the first table's slots and the load at which it doubles. */
typedef struct {
    PyObject_HEAD
    uint64_t *keys;
    uint32_t *codes;
    Py_ssize_t mask, n, grow_at;
    double load;
    PyObject *shapes;  /* list: code -> shape, [0] None (code 0 marks an empty slot) */
    PyObject *code;    /* dict: shape -> code */
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

static PyObject *Digests_get(Digests *d, PyObject *arg) {
    uint64_t key;
    if (ready(d) < 0 || as_key("Digests", arg, &key) < 0)
        return NULL;
    Py_ssize_t i = home(key, d->mask);
    for (; d->codes[i]; i = (i + 1) & d->mask)
        if (d->keys[i] == key)
            return shape_of(d, d->codes[i]);
    Py_RETURN_NONE;
}

/* Store shape under key: the code it had (0 for a new key) in *was; -1 on an error. */
static int put_one(Digests *d, uint64_t key, PyObject *shape, uint32_t *was) {
    PyObject *c = PyDict_GetItemWithError(d->code, shape);
    uint32_t code;
    if (c != NULL) {
        code = (uint32_t)PyLong_AsUnsignedLong(c);
    } else {
        if (PyErr_Occurred())
            return -1;  /* an unhashable shape */
        Py_ssize_t next = PyList_GET_SIZE(d->shapes);
        if (next > (Py_ssize_t)UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "Digests: too many shapes");
            return -1;
        }
        PyObject *v = PyLong_FromSsize_t(next);
        if (v == NULL || PyDict_SetItem(d->code, shape, v) < 0 || PyList_Append(d->shapes, shape) < 0) {
            Py_XDECREF(v);
            return -1;
        }
        Py_DECREF(v);
        code = (uint32_t)next;
    }
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

static PyObject *Digests_pop(Digests *d, PyObject *arg) {
    uint64_t key;
    if (ready(d) < 0 || as_key("Digests", arg, &key) < 0)
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

static PyMethodDef methods[] = {
    {"dump", dump, METH_VARARGS,
     "dump(buf, pos, out) -> int: decode a dump's messages from pos on into out, up to the first one this\n"
     "decoder leaves to Python (NLMSG_DONE, an error, NLM_F_DUMP_INTR, broken or unusual); its offset."},
    {"events", events, METH_VARARGS,
     "events(buf, pos, out) -> int: the same for event messages, appending (kind, row); other message types\n"
     "are stepped over."},
    {"recv_queued", recv_queued, METH_VARARGS,
     "recv_queued(fd, buf, block, room, most) -> (lengths, errno): the datagrams queued on fd, received into buf\n"
     "back to back without the GIL (the first waited for with block; none while less than room is left, at most\n"
     "most); errno EAGAIN when no more were queued."},
    {"flow_keys", flow_keys, METH_O, "flow_keys(rows) -> list[int]: packing.flow_key of each row"},
    {"framed", framed, METH_VARARGS,
     "framed(buf, lengths) -> bool: whether each datagram laid back to back in buf is whole netlink messages,\n"
     "padded, end to end: one walk over them all then reads what a walk of each would."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_ctdecode", .m_size = -1, .m_methods = methods,
};

#define CONST(name) {#name, name}
static const struct { const char *name; long value; } constants[] = {
    CONST(NLH_LEN), CONST(HEADER_LEN), CONST(NFGEN_FAMILY), CONST(NLA_TYPE_MASK), CONST(NLMSG_ERROR),
    CONST(NLMSG_DONE), CONST(NLM_F_DUMP_INTR), CONST(NLM_F_CREATE), CONST(NLM_F_EXCL), CONST(IPCTNL_MSG_CT_NEW),
    CONST(IPCTNL_MSG_CT_DELETE), CONST(CTA_TUPLE_ORIG), CONST(CTA_TUPLE_REPLY), CONST(CTA_STATUS),
    CONST(CTA_PROTOINFO), CONST(CTA_TIMEOUT), CONST(CTA_MARK), CONST(CTA_COUNTERS_ORIG), CONST(CTA_COUNTERS_REPLY),
    CONST(CTA_USE), CONST(CTA_ID), CONST(CTA_ZONE), CONST(CTA_TIMESTAMP), CONST(CTA_LABELS), CONST(CTA_TUPLE_IP),
    CONST(CTA_TUPLE_PROTO), CONST(CTA_TUPLE_ZONE), CONST(CTA_IP_V4_SRC), CONST(CTA_IP_V4_DST), CONST(CTA_IP_V6_SRC),
    CONST(CTA_IP_V6_DST), CONST(CTA_PROTO_NUM), CONST(CTA_PROTO_SRC_PORT), CONST(CTA_PROTO_DST_PORT),
    CONST(CTA_PROTO_ICMP_ID), CONST(CTA_PROTO_ICMP_TYPE), CONST(CTA_PROTO_ICMP_CODE), CONST(CTA_PROTO_ICMPV6_ID),
    CONST(CTA_PROTO_ICMPV6_TYPE), CONST(CTA_PROTO_ICMPV6_CODE), CONST(CTA_PROTOINFO_TCP), CONST(CTA_PROTOINFO_DCCP),
    CONST(CTA_PROTOINFO_SCTP), CONST(CTA_PROTOINFO_TCP_STATE), CONST(CTA_COUNTERS_PACKETS),
    CONST(CTA_COUNTERS_BYTES), CONST(CTA_COUNTERS32_PACKETS), CONST(CTA_COUNTERS32_BYTES),
    CONST(CTA_TIMESTAMP_START), {"AF_INET", AF_INET_}, {"AF_INET6", AF_INET6_}, CONST(NO_PSTATE), CONST(EV_NEW),
    CONST(EV_UPDATE), CONST(EV_DESTROY), CONST(ROW_LEN), CONST(R_ID), CONST(R_FAMILY), CONST(R_PROTO),
    CONST(R_PSTATE), CONST(R_STATUS), CONST(R_SRC), CONST(R_DST), CONST(R_SPORT), CONST(R_DPORT), CONST(R_RSRC),
    CONST(R_RDST), CONST(R_RSPORT), CONST(R_RDPORT), CONST(R_TIMEOUT), CONST(R_MARK), CONST(R_ZONE), CONST(R_USE),
    CONST(R_OPKTS), CONST(R_OBYTES), CONST(R_RPKTS), CONST(R_RBYTES), CONST(R_START), CONST(R_LABELS),
};

PyMODINIT_FUNC PyInit__ctdecode(void) {
    PyObject *m = PyModule_Create(&module), *d = PyDict_New();
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    if (m == NULL || d == NULL || empty_bytes == NULL)
        goto fail;
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
        PyObject *v = PyLong_FromLong(constants[i].value);
        if (v == NULL || PyDict_SetItemString(d, constants[i].name, v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
    }
    if (PyModule_AddObject(m, "CONSTANTS", d) < 0)
        goto fail;
    d = NULL;  /* the module's now */
    /* What this file offers, checked by kernel/native.py: raised with every change to a function's arguments
     * or meaning, so a build left from before is not called the new way. */
    if (PyModule_AddIntConstant(m, "API", 5) < 0)
        goto fail;
    if (PyType_Ready(&DigestsType) < 0 || PyModule_AddObjectRef(m, "Digests", (PyObject *)&DigestsType) < 0
        || add_records_type(m) < 0 || add_frozen_type(m) < 0 || add_counts_type(m) < 0)
        goto fail;
    return m;
fail:
    Py_XDECREF(d);
    Py_XDECREF(m);
    return NULL;
}

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
    {"IPS_ASSURED", IPS_ASSURED_}, {"IPS_SEEN_REPLY", IPS_SEEN_REPLY_}, {"UNREAD", UNREAD_},
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
    if (PyModule_AddIntConstant(m, "API", 6) < 0)
        goto fail;
    if (add_digests_type(m) < 0 || add_records_type(m) < 0 || add_frozen_type(m) < 0 || add_counts_type(m) < 0
        || add_apply(m) < 0)
        goto fail;
    return m;
fail:
    Py_XDECREF(d);
    Py_XDECREF(m);
    return NULL;
}

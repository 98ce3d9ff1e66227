/* The held flow store's records in C (_records.c) and their frozen copies (_frozen.c), added to the _ctdecode
 * module by its init. */
#ifndef CTTOP_RECORDS_H
#define CTTOP_RECORDS_H
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define CLASSES 4
#define CHUNK_SHIFT 12
#define CHUNK ((Py_ssize_t)1 << CHUNK_SHIFT)
#define MAX_SLOTS (((Py_ssize_t)1 << 30) - 1)  /* a reference is slot << 2 | class, + 1 in 32 bits */
#define NO_SLOT UINT32_MAX
#define KEY_LEN 8

typedef struct {
    Py_ssize_t size;    /* a record's bytes */
    Py_ssize_t stride;  /* the record, then its key */
    char **chunks;
    uint64_t *live;     /* a bit a slot: it holds a flow */
    Py_ssize_t nchunks, used;  /* chunks allocated; slots handed out, the free ones among them */
    uint32_t free;      /* the first free slot below used, NO_SLOT for none */
} Arena;

typedef struct {
    PyObject_HEAD
    uint64_t *index;    /* tag << 32 | (reference + 1); 0 for an empty slot */
    Py_ssize_t mask, n, grow_at, first_slots;
    int bits;
    double load;
    Arena arena[CLASSES];
    uint64_t stamp;     /* bumped when a flow comes or goes, or moves to another arena */
} Records;

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

int add_records_type(PyObject *module);
/* Records.freeze(): a copy of the flows held, for the flow list (_frozen.c). */
PyObject *freeze(const Records *r);
int add_frozen_type(PyObject *module);

#endif

/* The held flow store's records in C (_records.c), added to the _ctdecode module by its init. */
#ifndef CTTOP_RECORDS_H
#define CTTOP_RECORDS_H
#include <Python.h>

int add_records_type(PyObject *module);

#endif

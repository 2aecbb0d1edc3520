/* hundi._columns: the record fields of a batch as column buffers, in one C pass per column.
 *
 * Why C: ``records.to_arrow`` runs for every batch a collector stores, and in Python each value
 * of each column costs an attribute lookup, a strictness check and an iterator step (~100 ns a
 * value on a 2-core box, ~1.3 us per 11-field trade: most of the embedded store's CPU per frame,
 * bench/micro.py). Here a value is a slot read and a type check. No library does this for
 * msgspec Structs (pyarrow's own conversion of Python objects loads pandas, and is no faster).
 *
 * Exact types only: every record must be of the given Struct type and every value an exact
 * ``int`` (int64/int32/int8 columns, in range), ``float`` (float64), ``bool`` (bool) or ``str``
 * (dictionary columns). Anything else makes ``extract`` return None, and the caller converts the
 * batch with its Python path, which accepts, coerces or refuses each value as it always has: this
 * module never decides what a value means, it only makes the common case fast.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

enum Kind { K_INT64 = 0, K_INT32 = 1, K_INT8 = 2, K_FLOAT64 = 3, K_BOOL = 4, K_DICT = 5 };

/* The slot of a field of ``owner``: its member descriptor's offset in the instance. */
static int slot_offset(PyObject *descr, PyTypeObject *owner, Py_ssize_t *offset) {
    if (!PyObject_TypeCheck(descr, &PyMemberDescr_Type) ||
        !PyType_IsSubtype(owner, PyDescr_TYPE(descr))) {
        PyErr_SetString(PyExc_TypeError, "expected a field (member descriptor) of the type");
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX) {
        PyErr_SetString(PyExc_TypeError, "expected an object slot");
        return -1;
    }
    *offset = member->offset;
    return 0;
}

/* Row ``i``'s value of the field at ``offset`` (borrowed), or NULL when the record is not
 * exactly ``type`` or the field is unset: the caller's Python path decides then. */
static inline PyObject *value_at(PyObject *const *records, Py_ssize_t i, PyTypeObject *type,
                                 Py_ssize_t offset) {
    if (Py_TYPE(records[i]) != type) {
        return NULL;
    }
    return *(PyObject **)((char *)records[i] + offset);
}

/* Up to this many distinct names in a column, a scan of them beats hashing; past it a dict
 * from name to code keeps the column linear in its rows (an instruments batch has one
 * symbol per record). */
#define SCAN_MAX 16

/* ``value``'s code in ``distinct`` (first-seen order), adding it if new; -1 on error. Past
 * SCAN_MAX names ``index`` (empty until then) maps each name to its code. Exact str only: no
 * comparison or hash runs Python code, and codes are untracked ints (no collection). */
static Py_ssize_t code_of(PyObject *value, PyObject *distinct, PyObject *index) {
    Py_ssize_t count = PyList_GET_SIZE(distinct);
    if (count <= SCAN_MAX) {
        for (Py_ssize_t j = 0; j < count; j++) {
            if (PyList_GET_ITEM(distinct, j) == value) {
                return j;
            }
        }
        for (Py_ssize_t j = 0; j < count; j++) {
            int equal = PyUnicode_Compare(PyList_GET_ITEM(distinct, j), value) == 0;
            if (PyErr_Occurred()) {
                return -1;
            }
            if (equal) {
                return j;
            }
        }
    } else {
        if (PyDict_GET_SIZE(index) == 0) { /* the names so far, once */
            for (Py_ssize_t j = 0; j < count; j++) {
                PyObject *code = PyLong_FromSsize_t(j);
                int failed = code == NULL ||
                             PyDict_SetItem(index, PyList_GET_ITEM(distinct, j), code) < 0;
                Py_XDECREF(code);
                if (failed) {
                    return -1;
                }
            }
        }
        PyObject *code = PyDict_GetItemWithError(index, value); /* borrowed */
        if (code != NULL) {
            return PyLong_AsSsize_t(code);
        }
        if (PyErr_Occurred()) {
            return -1;
        }
        PyObject *new_code = PyLong_FromSsize_t(count);
        int failed = new_code == NULL || PyDict_SetItem(index, value, new_code) < 0;
        Py_XDECREF(new_code);
        if (failed) {
            return -1;
        }
    }
    return PyList_Append(distinct, value) < 0 ? -1 : count;
}

/* Dictionary codes (int32, first-seen order) and the distinct strings. Names repeat: the
 * previous row's value is tried first, by identity, then :c:func:`code_of`. Returns 1 when a
 * record is not of ``type`` or a value not an exact str (the caller's path decides), 0 done,
 * -1 error. */
static int dict_column(PyObject *const *records, Py_ssize_t n, PyTypeObject *type,
                       Py_ssize_t offset, int32_t *codes, PyObject *distinct, PyObject *index) {
    PyObject *last = NULL;
    int32_t last_code = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = value_at(records, i, type, offset);
        if (value == NULL) {
            return 1;
        }
        if (value == last) {
            codes[i] = last_code;
            continue;
        }
        if (!PyUnicode_CheckExact(value)) {
            return 1;
        }
        if (PyList_GET_SIZE(distinct) >= INT32_MAX) {
            return 1;
        }
        Py_ssize_t code = code_of(value, distinct, index);
        if (code < 0) {
            return -1;
        }
        last = value;
        last_code = (int32_t)code;
        codes[i] = last_code;
    }
    return 0;
}

/* One numeric column into ``out``. Returns 1 on a value that is not of the exact type or does
 * not fit (the caller's path decides), 0 done, -1 error. */
static int number_column(PyObject *const *records, Py_ssize_t n, PyTypeObject *type,
                         Py_ssize_t offset, int kind, char *out) {
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = value_at(records, i, type, offset);
        if (value == NULL) {
            return 1;
        }
        if (kind == K_FLOAT64) {
            if (!PyFloat_CheckExact(value)) {
                return 1;
            }
            ((double *)out)[i] = PyFloat_AS_DOUBLE(value);
        } else if (kind == K_BOOL) {
            if (value != Py_True && value != Py_False) {
                return 1;
            }
            ((uint8_t *)out)[i] = value == Py_True;
        } else {
            if (!PyLong_CheckExact(value)) {
                return 1;
            }
            int overflow = 0;
            long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (number == -1 && PyErr_Occurred()) {
                return -1;
            }
            if (overflow) {
                return 1;
            }
            if (kind == K_INT64) {
                ((int64_t *)out)[i] = (int64_t)number;
            } else if (kind == K_INT32) {
                if (number < INT32_MIN || number > INT32_MAX) {
                    return 1;
                }
                ((int32_t *)out)[i] = (int32_t)number;
            } else {
                if (number < INT8_MIN || number > INT8_MAX) {
                    return 1;
                }
                ((int8_t *)out)[i] = (int8_t)number;
            }
        }
    }
    return 0;
}

static Py_ssize_t width_of(int kind) {
    switch (kind) {
    case K_INT64:
    case K_FLOAT64:
        return 8;
    case K_INT32:
    case K_DICT:
        return 4;
    default:
        return 1;
    }
}

PyDoc_STRVAR(extract_doc,
             "extract(records, record_type, fields) -> list | None\n\n"
             "``fields``: (member descriptor, kind) pairs, kind 0 int64, 1 int32, 2 int8, "
             "3 float64, 4 bool (one byte each), 5 dictionary. Per field: the column's bytes, "
             "or (int32 code bytes, distinct strings) for a dictionary. None when a record is "
             "not exactly ``record_type`` or a value not exactly of its column's type or range.");

static PyObject *extract(PyObject *module, PyObject *args) {
    PyObject *records, *fields;
    PyTypeObject *record_type;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyList_Type, &records, &PyType_Type, &record_type,
                          &PyTuple_Type, &fields)) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(records);
    Py_ssize_t nfields = PyTuple_GET_SIZE(fields);
    PyObject *result = PyList_New(nfields);
    if (result == NULL) {
        return NULL;
    }
    for (Py_ssize_t f = 0; f < nfields; f++) {
        PyObject *spec = PyTuple_GET_ITEM(fields, f);
        PyObject *descr;
        int kind;
        Py_ssize_t offset;
        if (!PyArg_ParseTuple(spec, "Oi", &descr, &kind) || slot_offset(descr, record_type, &offset) < 0) {
            goto error;
        }
        if (kind < K_INT64 || kind > K_DICT) {
            PyErr_Format(PyExc_ValueError, "unknown column kind %d", kind);
            goto error;
        }
        /* bytes are filled here before anyone else sees them, then never changed */
        PyObject *data = PyBytes_FromStringAndSize(NULL, n * width_of(kind));
        PyObject *distinct = kind == K_DICT ? PyList_New(0) : NULL;
        PyObject *index = kind == K_DICT ? PyDict_New() : NULL;
        if (data == NULL || (kind == K_DICT && (distinct == NULL || index == NULL))) {
            Py_XDECREF(data);
            Py_XDECREF(distinct);
            Py_XDECREF(index);
            goto error;
        }
        /* An allocation may run a collection, and a finalizer any Python code: the list is
         * read after this column's allocations, its size checked again, and each record's
         * type checked on its row (where its slot is read anyway). Nothing below allocates
         * a tracked object until the column is done. */
        PyObject *const *items = (PyObject *const *)((PyListObject *)records)->ob_item;
        int status = 1;
        PyObject *column = NULL;
        if (PyList_GET_SIZE(records) != n) {
            status = 1;
        } else if (kind == K_DICT) {
            status = dict_column(items, n, record_type, offset, (int32_t *)PyBytes_AS_STRING(data),
                                 distinct, index);
        } else {
            status = number_column(items, n, record_type, offset, kind, PyBytes_AS_STRING(data));
        }
        if (status == 0) {
            column = kind == K_DICT ? PyTuple_Pack(2, data, distinct) : Py_NewRef(data);
        }
        Py_DECREF(data);
        Py_XDECREF(distinct);
        Py_XDECREF(index);
        if (status < 0) {
            goto error;
        }
        if (status > 0) {
            Py_DECREF(result);
            Py_RETURN_NONE;
        }
        if (column == NULL) {
            goto error;
        }
        PyList_SET_ITEM(result, f, column);
    }
    return result;
error:
    Py_DECREF(result);
    return NULL;
}

PyDoc_STRVAR(tally_doc,
             "tally(records, record_type, exchange_field, symbol_field) -> tuple | None\n\n"
             "A batch's streams in one pass, for the collector's per-batch bookkeeping (four "
             "Python passes cost ~140 ns a record): (exchange, symbols in first-seen order, "
             "records per symbol, each symbol's last record). None when the batch is empty, a "
             "record not exactly ``record_type``, a name not an exact str, or the records of "
             "more than one exchange: the caller's Python path decides then.");

static PyObject *tally(PyObject *module, PyObject *args) {
    PyObject *records, *exchange_descr, *symbol_descr;
    PyTypeObject *record_type;
    Py_ssize_t exchange_at, symbol_at;
    if (!PyArg_ParseTuple(args, "O!O!OO", &PyList_Type, &records, &PyType_Type, &record_type,
                          &exchange_descr, &symbol_descr) ||
        slot_offset(exchange_descr, record_type, &exchange_at) < 0 ||
        slot_offset(symbol_descr, record_type, &symbol_at) < 0) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(records);
    if (n == 0) {
        Py_RETURN_NONE;
    }
    PyObject *distinct = PyList_New(0);
    PyObject *index = PyDict_New();
    Py_ssize_t capacity = 16;
    Py_ssize_t *counts = PyMem_Calloc((size_t)capacity, sizeof(Py_ssize_t));
    Py_ssize_t *lasts = PyMem_Calloc((size_t)capacity, sizeof(Py_ssize_t));
    PyObject **kept = NULL;
    PyObject *result = NULL;
    int status = 0; /* 0 done, 1 not for this path, -1 error */
    if (distinct == NULL || index == NULL || counts == NULL || lasts == NULL) {
        if (counts == NULL || lasts == NULL) PyErr_NoMemory();
        status = -1;
        goto done;
    }
    /* As in extract: nothing in this loop allocates a tracked object (code_of appends to a
     * list and a dict, PyMem grows the arrays), so no collection runs a finalizer that could
     * change the list while its items are read. */
    PyObject *const *items = (PyObject *const *)((PyListObject *)records)->ob_item;
    PyObject *exchange = value_at(items, 0, record_type, exchange_at);
    if (exchange == NULL || !PyUnicode_CheckExact(exchange)) {
        status = 1;
        goto done;
    }
    PyObject *previous = NULL;
    Py_ssize_t code = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ex = value_at(items, i, record_type, exchange_at);
        PyObject *symbol = value_at(items, i, record_type, symbol_at);
        if (ex == NULL || symbol == NULL) {
            status = 1;
            goto done;
        }
        if (ex != exchange) {
            if (!PyUnicode_CheckExact(ex) || PyUnicode_Compare(ex, exchange) != 0) {
                status = PyErr_Occurred() ? -1 : 1;
                goto done;
            }
        }
        if (symbol != previous) {
            if (!PyUnicode_CheckExact(symbol)) {
                status = 1;
                goto done;
            }
            code = code_of(symbol, distinct, index);
            if (code < 0) {
                status = -1;
                goto done;
            }
            previous = symbol;
            if (code >= capacity) {
                Py_ssize_t grown = capacity * 2;
                Py_ssize_t *more_counts = PyMem_Realloc(counts, (size_t)grown * sizeof(Py_ssize_t));
                if (more_counts != NULL) counts = more_counts;
                Py_ssize_t *more_lasts = PyMem_Realloc(lasts, (size_t)grown * sizeof(Py_ssize_t));
                if (more_lasts != NULL) lasts = more_lasts;
                if (more_counts == NULL || more_lasts == NULL) {
                    PyErr_NoMemory();
                    status = -1;
                    goto done;
                }
                memset(counts + capacity, 0, (size_t)(grown - capacity) * sizeof(Py_ssize_t));
                capacity = grown;
            }
        }
        counts[code] += 1;
        lasts[code] = i;
    }
    /* The last records, referenced before any tracked object is made. */
    Py_ssize_t k = PyList_GET_SIZE(distinct);
    kept = PyMem_Calloc((size_t)k + 1, sizeof(PyObject *));
    if (kept == NULL) {
        PyErr_NoMemory();
        status = -1;
        goto done;
    }
    kept[k] = Py_NewRef(exchange);
    for (Py_ssize_t j = 0; j < k; j++) kept[j] = Py_NewRef(items[lasts[j]]);
    PyObject *count_list = PyList_New(k);
    PyObject *last_list = count_list ? PyList_New(k) : NULL;
    if (last_list == NULL) {
        Py_XDECREF(count_list);
        status = -1;
        goto done;
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        PyList_SET_ITEM(last_list, j, kept[j]);
        kept[j] = NULL;
        PyObject *c = PyLong_FromSsize_t(counts[j]);
        if (c == NULL) {
            Py_DECREF(count_list);
            Py_DECREF(last_list);
            status = -1;
            goto done;
        }
        PyList_SET_ITEM(count_list, j, c);
    }
    result = Py_BuildValue("(OONN)", kept[k], distinct, count_list, last_list);
    if (result == NULL) status = -1;
done:
    if (kept != NULL) {
        for (Py_ssize_t j = 0; j <= PyList_GET_SIZE(distinct); j++) Py_XDECREF(kept[j]);
        PyMem_Free(kept);
    }
    PyMem_Free(counts);
    PyMem_Free(lasts);
    Py_XDECREF(distinct);
    Py_XDECREF(index);
    if (status < 0) {
        Py_XDECREF(result);
        return NULL;
    }
    if (status > 0) Py_RETURN_NONE;
    return result;
}

static PyMethodDef methods[] = {
    {"extract", extract, METH_VARARGS, extract_doc},
    {"tally", tally, METH_VARARGS, tally_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hundi._columns",
    "Record fields as column buffers in C (see records.to_arrow).", -1, methods,
};

PyMODINIT_FUNC PyInit__columns(void) { return PyModule_Create(&module); }

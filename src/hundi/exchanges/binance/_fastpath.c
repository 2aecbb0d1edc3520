/* The common Binance market-data frames (aggTrade, bookTicker), parsed and turned into records
 * in one C call: the receive path's cost at full speed is interpreter overhead around two
 * msgspec decodes (route lookup, range checks, the record's keyword call): an aggTrade frame
 * through protocol.receive took 2.46 us on the Python path and 1.00 us with this one, and the
 * collector's CPU per frame at full speed fell 5.2 -> 3.4 us (docs/venue-binance.md).
 *
 * It never decides anything the Python path would decide differently: it accepts only frames
 * of one exact compact shape, `{"stream":"<name>","data":{...}}` of a route whose type is
 * exactly AggTradeRoute or BookTickerRoute, with every field it needs present once, integers as
 * plain JSON integers, decimals as quoted plain decimals, every check passing and (aggTrade)
 * the id the next one. Anything else (whitespace, escapes, exponents, signs, a hole, a bad
 * value, another stream) returns None *before any side effect*, and the frame takes the Python
 * path, which decodes it again and says precisely what is wrong. Decimals are converted
 * correctly rounded, as msgspec's parser does, so both paths give the same float;
 * tests/exchanges/binance/test_binance_fastpath.py holds them to the same records, state and
 * errors over the recordings, generated frames and random ones.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE /* strtod_l */
#include <Python.h>
#include <float.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000LL
#define MAX_MILLIS 9223372036854LL /* (2**63 - 1) // 1_000_000: Millis' bound */
#define MAX_DIGITS 18              /* integers that surely fit int64 */
#define MAX_DECIMAL 64             /* longer decimals take the Python path */
#define MAX_KEYS 8

static PyObject *agg_route_type, *book_ticker_route_type, *trade_type, *bbo_type;
static PyObject *buy, *sell, *processed;
static PyObject *trade_kwnames, *bbo_kwnames;
static PyObject *s_exchange, *s_symbol, *s_native, *s_ids, *s_last, *s_trades, *s_bbo;
static double max_value;
static long long max_skew_ns;
static int configured;
static locale_t c_locale;

static const double POW10[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

enum kind { K_INT, K_DECIMAL, K_BOOL };

typedef struct {
    char name;
    enum kind kind;
    int required;
} Key;

typedef union {
    long long i;
    double d;
    int b;
} Value;

/* aggTrade: a p q f l T m E (msgspec AggTradeMsg: all required; "e", "s", "M" ignored) */
static const Key AGG_KEYS[] = {
    {'a', K_INT, 1}, {'p', K_DECIMAL, 1}, {'q', K_DECIMAL, 1}, {'f', K_INT, 1},
    {'l', K_INT, 1}, {'T', K_INT, 1},     {'m', K_BOOL, 1},    {'E', K_INT, 1},
};
enum { A_ID, A_PRICE, A_QTY, A_FIRST, A_LAST, A_TIME, A_MAKER, A_EVENT, A_N };

/* bookTicker: u b B a A, E optional (spot sends none) */
static const Key BBO_KEYS[] = {
    {'u', K_INT, 1},     {'b', K_DECIMAL, 1}, {'B', K_DECIMAL, 1},
    {'a', K_DECIMAL, 1}, {'A', K_DECIMAL, 1}, {'E', K_INT, 0},
};
enum { B_UPDATE, B_BID, B_BID_QTY, B_ASK, B_ASK_QTY, B_EVENT, B_N };

/* A JSON integer token without sign: 0 or [1-9][0-9]{0,17}, not followed by '.', 'e', 'E'. */
static int parse_int(const char **pp, const char *end, long long *out) {
    const char *p = *pp;
    if (p >= end || *p < '0' || *p > '9') return 0;
    if (*p == '0') {
        p++;
        *out = 0;
    } else {
        long long v = 0;
        int n = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (++n > MAX_DIGITS) return 0;
            v = v * 10 + (*p++ - '0');
        }
        *out = v;
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9'))) return 0;
    *pp = p;
    return 1;
}

/* A quoted plain decimal: "(0|[1-9][0-9]*)(.[0-9]+)?", the grammar msgspec's lax mode accepts
 * and more; converted correctly rounded. */
static int parse_decimal(const char **pp, const char *end, double *out) {
    const char *p = *pp;
    if (p >= end || *p != '"') return 0;
    const char *start = ++p;
    if (p >= end || *p < '0' || *p > '9') return 0;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && *p == '.') {
        p++;
        const char *frac = p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == frac) return 0;
    }
    if (p >= end || *p != '"') return 0;
    Py_ssize_t len = p - start;
    if (len > MAX_DECIMAL) return 0;
    /* Clinger's fast path: digits that fit 2**53 over a power of ten up to 1e22 are two exact
     * doubles, and one IEEE division rounds their quotient correctly. Binance's decimals
     * (up to 8 places, ~15 digits) all take it. */
    uint64_t mantissa = 0;
    int significant = 0, places = 0, after_point = 0;
    for (const char *c = start; c < p; c++) {
        if (*c == '.') {
            after_point = 1;
            continue;
        }
        places += after_point;
        if (mantissa == 0 && *c == '0') continue;
        if (++significant > 19) break;
        mantissa = mantissa * 10 + (uint64_t)(*c - '0');
    }
#if FLT_EVAL_METHOD == 0 /* doubles rounded as doubles (not x87's extended precision) */
    if (significant <= 19 && mantissa <= (1ULL << 53) && places <= 22) {
        *out = (double)mantissa / POW10[places];
        *pp = p + 1;
        return 1;
    }
#endif
    /* Otherwise the correctly rounded conversion of the C library, in the "C" locale (a '.'
     * whatever the process's locale). */
    char buf[MAX_DECIMAL + 1];
    memcpy(buf, start, (size_t)len);
    buf[len] = '\0';
    char *stop = NULL;
    double v = strtod_l(buf, &stop, c_locale);
    if (stop != buf + len) return 0;
    *out = v;
    *pp = p + 1;
    return 1;
}

static int parse_bool(const char **pp, const char *end, int *out) {
    const char *p = *pp;
    if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
        *out = 1;
        *pp = p + 4;
        return 1;
    }
    if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
        *out = 0;
        *pp = p + 5;
        return 1;
    }
    return 0;
}

/* A string of printable ASCII without escapes (anything else: the Python path). */
static int skip_string(const char **pp, const char *end) {
    const char *p = *pp;
    if (p >= end || *p != '"') return 0;
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            *pp = p + 1;
            return 1;
        }
        if (c < 0x20 || c >= 0x7f || c == '\\') return 0;
    }
    return 0;
}

static int digits(const char **pp, const char *end) {
    const char *p = *pp;
    while (p < end && *p >= '0' && *p <= '9') p++;
    if (p == *pp) return 0;
    *pp = p;
    return 1;
}

/* A value of a field the record does not use: a string, a number in full JSON grammar, true,
 * false or null. Objects and arrays take the Python path. */
static int skip_value(const char **pp, const char *end) {
    const char *p = *pp;
    if (p >= end) return 0;
    if (*p == '"') return skip_string(pp, end);
    if (*p == 't' || *p == 'f') {
        int unused;
        return parse_bool(pp, end, &unused);
    }
    if (*p == 'n') {
        if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            *pp = p + 4;
            return 1;
        }
        return 0;
    }
    if (*p == '-') p++;
    if (p < end && *p == '0') {
        p++;
    } else if (!digits(&p, end)) {
        return 0;
    }
    if (p < end && *p == '.') {
        p++;
        if (!digits(&p, end)) return 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (!digits(&p, end)) return 0;
    }
    *pp = p;
    return 1;
}

/* The payload object, all of [p, end): each known one-letter key once, with its kind; others
 * skipped. */
static int parse_payload(const char *p, const char *end, const Key *keys, int n, Value *values,
                         int *seen) {
    memset(seen, 0, sizeof(int) * (size_t)n);
    if (p >= end || *p != '{') return 0;
    p++;
    if (p < end && *p == '}') return 0; /* required fields missing */
    for (;;) {
        const char *key = p;
        if (!skip_string(&p, end)) return 0;
        Py_ssize_t key_len = p - key - 2;
        if (p >= end || *p != ':') return 0;
        p++;
        int index = -1;
        if (key_len == 1) {
            for (int i = 0; i < n; i++) {
                if (keys[i].name == key[1]) {
                    index = i;
                    break;
                }
            }
        }
        if (index < 0) {
            if (!skip_value(&p, end)) return 0;
        } else {
            if (seen[index]) return 0; /* a repeated key: let msgspec say what it means */
            seen[index] = 1;
            int ok;
            switch (keys[index].kind) {
            case K_INT:
                ok = parse_int(&p, end, &values[index].i);
                break;
            case K_DECIMAL:
                ok = parse_decimal(&p, end, &values[index].d);
                break;
            default:
                ok = parse_bool(&p, end, &values[index].b);
            }
            if (!ok) return 0;
        }
        if (p >= end) return 0;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '}') {
            p++;
            break;
        }
        return 0;
    }
    for (int i = 0; i < n; i++) {
        if (keys[i].required && !seen[i]) return 0;
    }
    return p == end; /* the payload is all that is left of the frame */
}

static inline int in_range(double v) { return v > 0.0 && v <= max_value; }

static inline int near(long long ts, long long recv_ns) {
    long long skew = ts - recv_ns; /* both in [0, 2**63): no overflow */
    return -max_skew_ns <= skew && skew <= max_skew_ns;
}

/* The route's three names, as every record carries them (new references). */
static int names(PyObject *route, PyObject **out) {
    out[0] = PyObject_GetAttr(route, s_exchange);
    out[1] = out[0] ? PyObject_GetAttr(route, s_symbol) : NULL;
    out[2] = out[1] ? PyObject_GetAttr(route, s_native) : NULL;
    if (out[2]) return 1;
    Py_XDECREF(out[0]);
    Py_XDECREF(out[1]);
    return 0;
}

/* The sink's list of a channel (new reference), or NULL with no error when it is not exactly a
 * list (then the Python path appends as it likes), or NULL with the error. Taken before any
 * side effect. */
static PyObject *sink_list(PyObject *sink, PyObject *list_name) {
    PyObject *list = PyObject_GetAttr(sink, list_name);
    if (list != NULL && !PyList_CheckExact(list)) Py_CLEAR(list);
    return list;
}

/* TradeIdRoute._admit's common case only: ``id`` is the next of a started sequence. 1 yes,
 * 0 no (the Python path decides), -1 error. */
static int is_next(PyObject *ids, long long id) {
    PyObject *last_obj = PyObject_GetAttr(ids, s_last);
    if (last_obj == NULL) return -1;
    int overflow = 0;
    long long last = PyLong_Check(last_obj) ? PyLong_AsLongLongAndOverflow(last_obj, &overflow) : -1;
    Py_DECREF(last_obj);
    if (last == -1 && PyErr_Occurred()) return -1;
    return !overflow && last >= 0 && id == last + 1;
}

/* The record made of ``args`` (their references released), or NULL with the error. */
static PyObject *record_of(PyObject *type, PyObject *kwnames, PyObject **args, int n) {
    PyObject *record = NULL;
    int built = 1;
    for (int i = 0; i < n; i++) built &= args[i] != NULL;
    if (built) record = PyObject_Vectorcall(type, args, 0, kwnames);
    for (int i = 0; i < n; i++) Py_XDECREF(args[i]);
    return record;
}

/* A handler's result: the status, the error (NULL), or None for the Python path. */
static PyObject *outcome(PyObject *result) {
    if (result == NULL && !PyErr_Occurred()) return Py_NewRef(Py_None);
    return result;
}

static PyObject *agg_trade(PyObject *route, const char *p, const char *end, PyObject *recv_obj,
                           long long recv_ns, PyObject *sink) {
    Value v[A_N];
    int seen[A_N];
    if (!parse_payload(p, end, AGG_KEYS, A_N, v, seen)) Py_RETURN_NONE;
    if (v[A_TIME].i > MAX_MILLIS || v[A_EVENT].i > MAX_MILLIS) Py_RETURN_NONE;
    long long ts = v[A_TIME].i * MS;
    if (!in_range(v[A_PRICE].d) || !in_range(v[A_QTY].d) || !near(ts, recv_ns)) Py_RETURN_NONE;
    PyObject *result = NULL, *ids = NULL, *trade_id = NULL, *record = NULL, *args[11];
    PyObject *list = sink_list(sink, s_trades);
    if (list == NULL) goto done;
    ids = PyObject_GetAttr(route, s_ids);
    if (ids == NULL || is_next(ids, v[A_ID].i) <= 0 || !names(route, args)) goto done;
    trade_id = PyLong_FromLongLong(v[A_ID].i);
    args[3] = PyLong_FromLongLong(ts);
    args[4] = Py_NewRef(recv_obj);
    args[5] = Py_XNewRef(trade_id);
    args[6] = PyFloat_FromDouble(v[A_PRICE].d);
    args[7] = PyFloat_FromDouble(v[A_QTY].d);
    args[8] = Py_NewRef(v[A_MAKER].b ? sell : buy);
    args[9] = PyLong_FromLongLong(v[A_FIRST].i);
    args[10] = PyLong_FromLongLong(v[A_LAST].i);
    record = record_of(trade_type, trade_kwnames, args, 11);
    if (record != NULL && PyObject_SetAttr(ids, s_last, trade_id) == 0 &&
        PyList_Append(list, record) == 0)
        result = Py_NewRef(processed);
done:
    Py_XDECREF(record);
    Py_XDECREF(trade_id);
    Py_XDECREF(ids);
    Py_XDECREF(list);
    return outcome(result);
}

static PyObject *book_ticker(PyObject *route, const char *p, const char *end, PyObject *recv_obj,
                             long long recv_ns, PyObject *sink) {
    Value v[B_N];
    int seen[B_N];
    if (!parse_payload(p, end, BBO_KEYS, B_N, v, seen)) Py_RETURN_NONE;
    long long ts = recv_ns; /* spot sends no event time */
    if (seen[B_EVENT]) {
        if (v[B_EVENT].i > MAX_MILLIS) Py_RETURN_NONE;
        ts = v[B_EVENT].i * MS;
    }
    double bid = v[B_BID].d, ask = v[B_ASK].d;
    /* both sides present and not crossed; an empty side or anything odd: the Python path */
    if (!in_range(bid) || !in_range(v[B_BID_QTY].d) || !in_range(ask) ||
        !in_range(v[B_ASK_QTY].d) || bid > ask || !near(ts, recv_ns))
        Py_RETURN_NONE;
    PyObject *result = NULL, *record = NULL, *args[10];
    PyObject *list = sink_list(sink, s_bbo);
    if (list == NULL || !names(route, args)) goto done;
    args[3] = seen[B_EVENT] ? PyLong_FromLongLong(ts) : Py_NewRef(recv_obj);
    args[4] = Py_NewRef(recv_obj);
    args[5] = PyLong_FromLongLong(v[B_UPDATE].i);
    args[6] = PyFloat_FromDouble(bid);
    args[7] = PyFloat_FromDouble(v[B_BID_QTY].d);
    args[8] = PyFloat_FromDouble(ask);
    args[9] = PyFloat_FromDouble(v[B_ASK_QTY].d);
    record = record_of(bbo_type, bbo_kwnames, args, 10);
    if (record != NULL && PyList_Append(list, record) == 0) result = Py_NewRef(processed);
done:
    Py_XDECREF(record);
    Py_XDECREF(list);
    return outcome(result);
}

#define STREAM_HEAD "{\"stream\":\""
#define DATA_HEAD "\",\"data\":"

/* receive(data, recv_ns, routes, sink) -> the PROCESSED status, or None (the Python path). */
static PyObject *receive(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "receive(data, recv_ns, routes, sink)");
        return NULL;
    }
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "_fastpath.configure was not called");
        return NULL;
    }
    PyObject *data = args[0], *recv_obj = args[1], *routes = args[2], *sink = args[3];
    if (!PyBytes_CheckExact(data) || !PyLong_CheckExact(recv_obj) || !PyDict_CheckExact(routes))
        Py_RETURN_NONE;
    int overflow = 0;
    long long recv_ns = PyLong_AsLongLongAndOverflow(recv_obj, &overflow);
    if (recv_ns == -1 && PyErr_Occurred()) return NULL;
    if (overflow || recv_ns < 0) Py_RETURN_NONE;
    const char *p = PyBytes_AS_STRING(data);
    const char *end = p + PyBytes_GET_SIZE(data);
    size_t head = sizeof(STREAM_HEAD) - 1;
    if ((size_t)(end - p) < head || memcmp(p, STREAM_HEAD, head) != 0) Py_RETURN_NONE;
    const char *name = p + head - 1; /* at the name's opening quote */
    p = name;
    if (!skip_string(&p, end)) Py_RETURN_NONE;
    Py_ssize_t name_len = p - name - 2;
    p--; /* at the closing quote: DATA_HEAD starts with it */
    size_t data_head = sizeof(DATA_HEAD) - 1;
    if ((size_t)(end - p) < data_head || memcmp(p, DATA_HEAD, data_head) != 0) Py_RETURN_NONE;
    p += data_head;
    if (end[-1] != '}') Py_RETURN_NONE; /* the envelope's own end (DATA_HEAD is before it) */
    end--;
    PyObject *stream = PyUnicode_DecodeASCII(name + 1, name_len, NULL);
    if (stream == NULL) return NULL;
    PyObject *route = PyDict_GetItemWithError(routes, stream); /* borrowed */
    Py_DECREF(stream);
    if (route == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *type = (PyObject *)Py_TYPE(route);
    Py_INCREF(route); /* the dict may change while records are built */
    PyObject *result;
    if (type == agg_route_type) {
        result = agg_trade(route, p, end, recv_obj, recv_ns, sink);
    } else if (type == book_ticker_route_type) {
        result = book_ticker(route, p, end, recv_obj, recv_ns, sink);
    } else {
        result = Py_NewRef(Py_None);
    }
    Py_DECREF(route);
    return result;
}

static PyObject *kwnames(const char *const *fields, int n) {
    PyObject *names = PyTuple_New(n);
    if (names == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *s = PyUnicode_InternFromString(fields[i]);
        if (s == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, i, s);
    }
    return names;
}

static const char *const TRADE_FIELDS[] = {
    "exchange", "symbol", "native_symbol", "ts", "recv_ts", "trade_id",
    "price", "size", "side", "first_trade_id", "last_trade_id",
};
static const char *const BBO_FIELDS[] = {
    "exchange", "symbol", "native_symbol", "ts", "recv_ts",
    "update_id", "bid_price", "bid_size", "ask_price", "ask_size",
};

/* configure(AggTradeRoute, BookTickerRoute, Trade, Bbo, BUY, SELL, PROCESSED, MAX_VALUE,
 * MAX_CLOCK_SKEW_NS): the Python objects the records and checks are made of. */
static PyObject *configure(PyObject *module, PyObject *args) {
    PyObject *a, *b, *t, *bb, *buy_obj, *sell_obj, *done;
    double value;
    long long skew;
    if (!PyArg_ParseTuple(args, "OOOOOOOdL", &a, &b, &t, &bb, &buy_obj, &sell_obj, &done, &value,
                          &skew))
        return NULL;
    PyObject *trade_names = kwnames(TRADE_FIELDS, 11);
    PyObject *bbo_names = trade_names ? kwnames(BBO_FIELDS, 10) : NULL;
    if (bbo_names == NULL) {
        Py_XDECREF(trade_names);
        return NULL;
    }
    Py_XSETREF(agg_route_type, Py_NewRef(a));
    Py_XSETREF(book_ticker_route_type, Py_NewRef(b));
    Py_XSETREF(trade_type, Py_NewRef(t));
    Py_XSETREF(bbo_type, Py_NewRef(bb));
    Py_XSETREF(buy, Py_NewRef(buy_obj));
    Py_XSETREF(sell, Py_NewRef(sell_obj));
    Py_XSETREF(processed, Py_NewRef(done));
    Py_XSETREF(trade_kwnames, trade_names);
    Py_XSETREF(bbo_kwnames, bbo_names);
    max_value = value;
    max_skew_ns = skew;
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"receive", (PyCFunction)(void (*)(void))receive, METH_FASTCALL,
     "receive(data, recv_ns, routes, sink): a common frame's records, or None (Python path)."},
    {"configure", configure, METH_VARARGS, "The types and constants records are made of."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_fastpath", "Binance's common frames in one C call.", -1, methods,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    s_exchange = PyUnicode_InternFromString("exchange");
    s_symbol = PyUnicode_InternFromString("symbol");
    s_native = PyUnicode_InternFromString("native");
    s_ids = PyUnicode_InternFromString("ids");
    s_last = PyUnicode_InternFromString("last");
    s_trades = PyUnicode_InternFromString("trades");
    s_bbo = PyUnicode_InternFromString("bbo");
    if (!s_exchange || !s_symbol || !s_native || !s_ids || !s_last || !s_trades || !s_bbo)
        return NULL;
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) return PyErr_NoMemory();
    return PyModule_Create(&module_def);
}

/* The branch and bound's level loop (`costscaler.core.exact.solve`), compiled.
 *
 * Why C: the loop visits up to a few thousand partial plans per level; as numpy it was
 * ~30 array calls a level whose per-call cost, not arithmetic, was most of a decision's time.
 * The arithmetic is the numpy version's, operation for operation and in the same order
 * (IEEE doubles, no contraction into fused multiply-adds: built with -ffp-contract=off), so
 * the partial plans kept, their bounds and the give-up points are the same bit for bit.
 * exact.py's module docstring has the bounds; `grow`'s docstring has the interface.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Columns of the per-level parameter rows (exact.py's `Tree.levels` writes them). */
enum {
    PRICE, CAP, SPOT, TOP, CUR, START, TWIN, RATIO, RATIO_PAST, SPOT_CAP, OD_PRICE, OD_CAP,
    POOL, COLUMNS
};

/* numpy's maximum and minimum: NaN wins (C's fmax and fmin drop it). */
static inline double np_max(double a, double b) {
    return (isnan(a) || isnan(b)) ? NAN : (a >= b ? a : b);
}
static inline double np_min(double a, double b) {
    return (isnan(a) || isnan(b)) ? NAN : (a <= b ? a : b);
}

/* RiskCost.at: the cell is capped before the cast (a capacity far past the grid). */
static inline double at(const double *table, Py_ssize_t cells, double step, double capacity) {
    double x = np_min(capacity / step, (double)(cells - 1));
    return table[(Py_ssize_t)x];
}

typedef struct {
    double money, cap, replicas, spot;
} Row;

static int buffer_of(PyObject *obj, Py_buffer *view, Py_ssize_t items, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != 8 || view->format == NULL || strcmp(view->format, "d") != 0 ||
        view->len != items * 8) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous float64 values", what, items);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *grow(PyObject *self, PyObject *args) {
    double best, per_od, per_spot, step;
    Py_ssize_t max_nodes, total_max, n, cells;
    PyObject *levels_obj, *tables_obj;
    if (!PyArg_ParseTuple(args, "dnnddOdOnn", &best, &max_nodes, &total_max, &per_od, &per_spot,
                          &levels_obj, &step, &tables_obj, &cells, &n))
        return NULL;
    if (n < 1 || cells < 1 || max_nodes < 1) {
        PyErr_SetString(PyExc_ValueError, "grow: n, cells and max_nodes must be positive");
        return NULL;
    }
    Py_buffer lv_view, tb_view;
    if (buffer_of(levels_obj, &lv_view, n * COLUMNS, "levels") < 0) return NULL;
    if (buffer_of(tables_obj, &tb_view, (2 * n + 1) * cells, "tables") < 0) {
        PyBuffer_Release(&lv_view);
        return NULL;
    }
    const double *lv = (const double *)lv_view.buf;
    const double *tables = (const double *)tb_view.buf;
    const double *last_table = tables + 2 * n * cells;
    const Py_ssize_t max_children = 4 * max_nodes;

    PyObject *result = NULL;
    Row *rows = malloc(sizeof(Row) * (size_t)max_children);
    Row *next = malloc(sizeof(Row) * (size_t)max_children);
    double *lower = malloc(sizeof(double) * (size_t)max_children);
    double *next_lower = malloc(sizeof(double) * (size_t)max_children);
    /* links[level][k]: (parent row, count) of kept row k at that level */
    Py_ssize_t *parents = malloc(sizeof(Py_ssize_t) * (size_t)(n * max_nodes));
    Py_ssize_t *counts = malloc(sizeof(Py_ssize_t) * (size_t)(n * max_nodes));
    Py_ssize_t *next_parent = malloc(sizeof(Py_ssize_t) * (size_t)max_children);
    Py_ssize_t *next_count = malloc(sizeof(Py_ssize_t) * (size_t)max_children);
    double *last = malloc(sizeof(double) * (size_t)max_nodes); /* each row's last count */
    if (!last || !rows || !next || !lower || !next_lower || !parents || !counts || !next_parent ||
        !next_count) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t size = 1;
    rows[0] = (Row){0.0, 0.0, 0.0, 0.0};
    int gave_up = 0;
    for (Py_ssize_t level = 0; level < n && !gave_up; level++) {
        const double *p = lv + level * COLUMNS;
        const double price = p[PRICE], cap = p[CAP], spot_step = p[SPOT] > 0 ? 1.0 : 0.0;
        const double top = p[TOP], start = p[START];
        const long cur = (long)p[CUR];
        const int twin = p[TWIN] > 0;
        const double *table = tables + level * cells;
        const double *past_table = tables + (n + level) * cells;
        const int split = p[RATIO_PAST] > p[RATIO];
        const int od_left = p[OD_PRICE] < INFINITY;
        /* The children's count first: too many and the search gives up before making them. */
        Py_ssize_t total = 0;
        for (Py_ssize_t r = 0; r < size; r++) {
            double room = price > 0 ? floor((best - rows[r].money) / price) : top;
            /* No more than its identical twin before it: one of each permutation. */
            if (twin) room = np_min(room, (double)counts[(level - 1) * max_nodes + r]);
            double hi = np_min(room, top);
            if (hi >= 0) total += (Py_ssize_t)hi + 1;
            last[r] = hi;
        }
        if (total > max_children) {
            gave_up = 1;
            break;
        }
        Py_ssize_t kept = 0;
        for (Py_ssize_t r = 0; r < size; r++) {
            const Row row = rows[r];
            for (long c = 0; (double)c <= last[r]; c++) {
                const double dc = (double)c;
                Row x;
                x.money = row.money + dc * price;
                x.cap = row.cap + dc * cap;
                x.replicas = row.replicas + dc * 1.0;
                x.spot = row.spot + dc * spot_step;
                x.money += (double)(c - cur > 0 ? c - cur : 0) * start;
                const double od = x.replicas - x.spot;
                double still = at(table, cells, step, x.cap);
                if (split) { /* within the spot allowance at the spot ratio, past it at ratio_past */
                    const double allowance = p[SPOT_CAP] * np_max(od * per_od - x.spot, 0.0);
                    const double within = np_max(still, at(last_table, cells, step, x.cap + allowance));
                    const double past =
                        p[RATIO] * allowance + at(past_table, cells, step, x.cap + allowance);
                    still = np_min(within, past);
                }
                double owed = ceil(x.spot * per_spot - 1e-9) - od;
                double companion;
                if (od_left) {
                    /* The owed replicas cost at least the cheapest on-demand price left and
                     * add at most the largest on-demand capacity left. */
                    owed = np_max(owed, 0.0);
                    companion = owed * p[OD_PRICE] + at(table, cells, step, x.cap + owed * p[OD_CAP]);
                } else {
                    companion = owed > 0 ? INFINITY : 0.0;
                }
                const double low = x.money + np_max(still, companion);
                if (low < best - 1e-9 && x.replicas <= (double)total_max) {
                    if (kept >= max_nodes) {
                        gave_up = 1;
                        break;
                    }
                    next[kept] = x;
                    next_lower[kept] = low;
                    next_parent[kept] = r;
                    next_count[kept] = c;
                    kept++;
                }
            }
            if (gave_up) break;
        }
        if (gave_up) break;
        memcpy(parents + level * max_nodes, next_parent, sizeof(Py_ssize_t) * (size_t)kept);
        memcpy(counts + level * max_nodes, next_count, sizeof(Py_ssize_t) * (size_t)kept);
        Row *swap = rows;
        rows = next;
        next = swap;
        double *swap_lower = lower;
        lower = next_lower;
        next_lower = swap_lower;
        size = kept;
    }
    if (gave_up) {
        Py_INCREF(Py_None);
        result = Py_None;
        goto done;
    }
    /* The complete plans: walk each leaf's links back to the root. */
    PyObject *plans = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(sizeof(long long) * size * n));
    PyObject *bounds = PyBytes_FromStringAndSize((const char *)lower, (Py_ssize_t)(sizeof(double) * size));
    if (!plans || !bounds) {
        Py_XDECREF(plans);
        Py_XDECREF(bounds);
        goto done;
    }
    long long *out = (long long *)PyBytes_AS_STRING(plans);
    for (Py_ssize_t k = 0; k < size; k++) {
        Py_ssize_t at_row = k;
        for (Py_ssize_t level = n - 1; level >= 0; level--) {
            const Py_ssize_t pool = (Py_ssize_t)lv[level * COLUMNS + POOL];
            out[k * n + pool] = (long long)counts[level * max_nodes + at_row];
            at_row = parents[level * max_nodes + at_row];
        }
    }
    result = Py_BuildValue("(NN)", plans, bounds);
done:
    free(rows);
    free(next);
    free(lower);
    free(next_lower);
    free(parents);
    free(counts);
    free(next_parent);
    free(next_count);
    free(last);
    PyBuffer_Release(&lv_view);
    PyBuffer_Release(&tb_view);
    return result;
}

static PyMethodDef methods[] = {
    {"grow", grow, METH_VARARGS,
     "grow(best, max_nodes, total_max, per_od, per_spot, levels, step, tables, cells, n)\n"
     "-> (plans, lower) as bytes (int64 rows of n counts, float64 bounds), or None when the\n"
     "tree is wider than max_nodes partial plans at a level (4 x max_nodes children)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_levels",
                                    "The branch and bound's level loop, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__levels(void) { return PyModule_Create(&module); }

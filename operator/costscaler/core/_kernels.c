/* The engine's hot loops, compiled (each function's docstring, at the end, has its interface):
 *   setup       the branch and bound's levels and bounds     core/exact.py  Tree
 *   grow        the branch and bound's level loop            core/exact.py  solve
 *   tables      the bound per capacity cell                  core/exact.py  RiskCost.tables
 *   evaluate    plans' spend, risk and objective             core/risk.py  RiskModel.evaluate
 *   feasible    plans within the hard bounds                 core/allocate.py  feasible
 *   exceedance  P(demand > c), and the risk bound R(c)       core/forecast.py, exact.risk_bound
 *   quantile    the demand exceeded with probability 1 - q   core/forecast.py
 *   best_level  the demand level's smoothing span            core/forecast.py  _best_level
 *   start       the local search's starts                    core/fill.py  fill, max_spot
 *   stalled     the stalled-pool scan over the window        core/stock.py  stalled
 * The Python files named keep the formulas and say what each means.
 *
 * Why C: a decision runs these a few times each on a handful of pools, ten demand samples and
 * tens of plans. As numpy (or Python loops) they were dozens of calls each whose per-call cost,
 * not the arithmetic, was most of a decision's time (issue #3's 1 ms target at six pools,
 * issue #4's 60 s for 14 replayed days).
 *
 * The arithmetic is the numpy formulas', operation for operation and in the same order (IEEE
 * doubles, no fused multiply-adds: built with -ffp-contract=off), so results are the same bit
 * for bit, except where numpy summed with BLAS (`evaluate`, `exceedance`, and
 * `best_level`'s scores), whose order is its own: those may differ from numpy's in the last
 * bits. tests/unit/core/test_kernels.py replays each against its numpy formulas. The normal
 * CDF is scipy's own `ndtr`, taken from scipy.special.cython_special at import.
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

/* The bound at a capacity: its cell, capped before the cast (a capacity far past the grid).
 * A NaN capacity (numpy raised there) reads the last cell, the weakest bound: it prunes nothing. */
static inline double at(const double *table, Py_ssize_t cells, double step, double capacity) {
    const double x = np_min(capacity / step, (double)(cells - 1));
    return table[isnan(x) ? cells - 1 : (Py_ssize_t)x];
}

typedef struct {
    double money, cap, replicas, spot;
} Row;

/* A C-contiguous buffer of `items` float64 (kind 'd') or int64 (kind 'q') values. */
static int typed_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t items, char kind,
                        const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    const char *f = view->format == NULL ? "" : view->format;
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    int ok = view->itemsize == 8 && view->len == items * 8 && f[0] != '\0' && f[1] == '\0' &&
             (kind == 'd' ? f[0] == 'd' : (f[0] == 'q' || f[0] == 'l'));
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd contiguous %s values", what, items,
                     kind == 'd' ? "float64" : "int64");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The buffers a call holds, released together: `take` each argument's in turn, check
 * `held >= 0` once (a failed take released the others and set the error), `drop` at the end. */
#define MAX_BUFFERS 6
typedef struct {
    Py_buffer view[MAX_BUFFERS];
    int held;
} Buffers;

static void drop(Buffers *b) {
    for (int k = 0; k < b->held; k++) PyBuffer_Release(&b->view[k]);
    b->held = 0;
}

static void *take(Buffers *b, PyObject *obj, Py_ssize_t items, char kind, const char *what) {
    if (b->held < 0) return NULL;
    if (typed_buffer(obj, &b->view[b->held], items, kind, what) < 0) {
        drop(b);
        b->held = -1;
        return NULL;
    }
    return b->view[b->held++].buf;
}

/* Columns of `setup`'s per-pool rows (exact.py's `Tree` writes them). */
enum { S_PRICE, S_CAP, S_SPOT, S_LOSS, S_BURST, S_MAX, S_CUR, S_START, S_COLUMNS };
#define SIGNATURE 9 /* ratio, then the S_ columns: what makes two pools interchangeable */

/* Python's tuple `<` on two signatures (floats compared with == and <). */
static int sig_less(const double *a, const double *b) {
    for (int j = 0; j < SIGNATURE; j++)
        if (!(a[j] == b[j])) return a[j] < b[j];
    return 0;
}

static int sig_equal(const double *a, const double *b) {
    for (int j = 0; j < SIGNATURE; j++)
        if (!(a[j] == b[j])) return 0;
    return 1;
}

/* Python's min(acc, v) and max(acc, v): the first argument unless the second is beyond it. */
static inline double py_min(double acc, double v) { return v < acc ? v : acc; }
static inline double py_max(double acc, double v) { return v > acc ? v : acc; }

/* out[l] = op over values[l + 1:], out[n - 1] = empty (exact.py's bounds for pools left). */
static void after(const double *values, double *out, Py_ssize_t n, int minimum, double empty) {
    double acc = empty;
    out[n - 1] = empty;
    for (Py_ssize_t i = n - 1; i > 0; i--) {
        acc = i == n - 1 ? values[i]
                         : (minimum ? py_min(acc, values[i]) : py_max(acc, values[i]));
        out[i - 1] = acc;
    }
}

static PyObject *setup(PyObject *self, PyObject *args) {
    PyObject *pools_obj;
    Py_ssize_t n;
    long long total_max;
    double f;
    int limited;
    if (!PyArg_ParseTuple(args, "OnLdp", &pools_obj, &n, &total_max, &f, &limited)) return NULL;
    if (n < 1 || n > 4096) {
        PyErr_SetString(PyExc_ValueError, "setup: need 1 to 4096 pools");
        return NULL;
    }
    Buffers b = {.held = 0};
    const double *pool = take(&b, pools_obj, n * S_COLUMNS, 'd', "pools");
    if (b.held < 0) return NULL;
    PyObject *out = NULL;
    double *sig = malloc(sizeof(double) * (size_t)(n * SIGNATURE));
    double *work = malloc(sizeof(double) * (size_t)(n * 12));
    Py_ssize_t *order = malloc(sizeof(Py_ssize_t) * (size_t)n);
    if (!sig || !work || !order) {
        PyErr_NoMemory();
        goto done;
    }
    /* Pools cheapest per req/s first, identical pools next to each other (a stable sort). */
    for (Py_ssize_t i = 0; i < n; i++) {
        const double *r = pool + i * S_COLUMNS;
        double *g = sig + i * SIGNATURE;
        g[0] = r[S_PRICE] / (r[S_CAP] >= 1e-12 || isnan(r[S_CAP]) ? r[S_CAP] : 1e-12);
        for (int j = 0; j < S_COLUMNS; j++) g[1 + j] = r[j];
        Py_ssize_t k = i;
        while (k > 0 && sig_less(g, sig + order[k - 1] * SIGNATURE)) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    double *price = work, *c = work + n, *ratio = work + 2 * n, *masked = work + 3 * n;
    double *best = work + 4 * n, *past = work + 5 * n, *od_price = work + 6 * n;
    double *od_cap = work + 7 * n, *spot_cap = work + 8 * n, *has_spot = work + 9 * n;
    double *pair = work + 10 * n, *spot = work + 11 * n;
    int any_spot = 0, all_spot = 1;
    for (Py_ssize_t l = 0; l < n; l++) {
        const double *r = pool + order[l] * S_COLUMNS;
        spot[l] = r[S_SPOT] > 0 ? 1.0 : 0.0;
        price[l] = r[S_PRICE];
        c[l] = r[S_CAP];
        ratio[l] = price[l] / py_max(c[l], 1e-12);
        any_spot |= spot[l] > 0;
        all_spot &= spot[l] > 0;
    }
    const double per_spot = limited && f > 0.0 ? py_min((1.0 - f) / f, 1e12) : 0.0;
    const double per_od = limited ? f / (1.0 - f) : INFINITY;
    /* Level l's pools left are l+1 on: suffix minima and maxima, shifted by one. */
    after(ratio, best, n, 1, INFINITY);
    for (Py_ssize_t l = 0; l < n; l++) masked[l] = spot[l] > 0 ? INFINITY : ratio[l];
    after(masked, past, n, 1, INFINITY);
    for (Py_ssize_t l = 0; l < n; l++) masked[l] = spot[l] > 0 ? INFINITY : price[l];
    after(masked, od_price, n, 1, INFINITY);
    for (Py_ssize_t l = 0; l < n; l++) masked[l] = spot[l] > 0 ? 0.0 : c[l];
    after(masked, od_cap, n, 0, 0.0);
    for (Py_ssize_t l = 0; l < n; l++) masked[l] = spot[l] > 0 ? c[l] : 0.0;
    after(masked, spot_cap, n, 0, 0.0);
    if (limited && f > 0.0 && any_spot && !all_spot) {
        /* The least $/h per req/s of a mix within the share: one on-demand pool, or a spot
         * and an on-demand pool at the share's limit; for level l, pairs after it. */
        double running = INFINITY;
        for (Py_ssize_t m = n - 1; m >= 0; m--) {
            for (Py_ssize_t other = m; other < n; other++) {
                const Py_ssize_t a = spot[m] > 0 ? m : other, b = spot[m] > 0 ? other : m;
                if (spot[a] > 0 && !(spot[b] > 0)) {
                    const double v = (price[a] + per_spot * price[b]) / (c[a] + per_spot * c[b]);
                    running = py_min(running, v);
                }
            }
            pair[m] = running;
        }
        for (Py_ssize_t l = 0; l < n; l++)
            past[l] = py_min(past[l], l + 1 < n ? pair[l + 1] : INFINITY);
    }
    after(spot, has_spot, n, 0, 0.0);
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(double) * n * COLUMNS);
    if (out == NULL) goto done;
    double *row = (double *)PyBytes_AS_STRING(out);
    for (Py_ssize_t l = 0; l < n; l++, row += COLUMNS) {
        const double *r = pool + order[l] * S_COLUMNS;
        row[PRICE] = r[S_PRICE];
        row[CAP] = r[S_CAP];
        row[SPOT] = spot[l];
        row[TOP] = r[S_MAX] < (double)total_max ? r[S_MAX] : (double)total_max;
        row[CUR] = r[S_CUR];
        row[START] = r[S_START];
        row[TWIN] =
            l > 0 && sig_equal(sig + order[l] * SIGNATURE, sig + order[l - 1] * SIGNATURE);
        row[RATIO] = best[l];
        row[RATIO_PAST] = has_spot[l] > 0 && limited ? past[l] : best[l];
        row[SPOT_CAP] = spot_cap[l];
        row[OD_PRICE] = od_price[l];
        row[OD_CAP] = od_cap[l];
        row[POOL] = (double)order[l];
    }
    out = Py_BuildValue("(Ndd)", out, per_od, per_spot);
done:
    free(sig);
    free(work);
    free(order);
    drop(&b);
    return out;
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
    Buffers b = {.held = 0};
    const double *lv = take(&b, levels_obj, n * COLUMNS, 'd', "levels");
    const double *tables = take(&b, tables_obj, (2 * n + 1) * cells, 'd', "tables");
    if (b.held < 0) return NULL;
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
                if (split) {
                    /* Within the spot allowance at the spot ratio, past it at ratio_past. */
                    const double allowance = p[SPOT_CAP] * np_max(od * per_od - x.spot, 0.0);
                    const double within =
                        np_max(still, at(last_table, cells, step, x.cap + allowance));
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
                    companion =
                        owed * p[OD_PRICE] + at(table, cells, step, x.cap + owed * p[OD_CAP]);
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
    PyObject *plans = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(long long) * size * n);
    PyObject *bounds =
        PyBytes_FromStringAndSize((const char *)lower, (Py_ssize_t)sizeof(double) * size);
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
    drop(&b);
    return result;
}

/* scipy's ndtr (double (double, int skip_dispatch)), found at import. */
typedef double (*ndtr_fn)(double, int);
static ndtr_fn ndtr;

/* Columns of the per-pool rows (`allocate.Problem.columns` and `risk.RiskModel.columns`). */
enum { P_PRICE, P_VARIANCE, P_SURVIVING, P_CURRENT, P_START, P_SHIFT };

/* The SLO risk of one plan x: core/risk.py's formula. Scenario 0 (no burst) counts
   P(capacity < demand); a burst scenario counts the late share of the outage it causes
   and of its backlog's drain (C' = -shift left, C = -base after it), never less than the
   no-burst term. It grows with the capacity a burst takes, so the risk is continuous in
   the hazard. */
static double plan_risk(const long long *x, const double *pools, Py_ssize_t n, Py_ssize_t cols,
                        Py_ssize_t scenarios, const double *samples, const double *kernel,
                        Py_ssize_t g, const double *weights, double bandwidth, double grace) {
    double variance = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) variance += (double)x[i] * pools[i * cols + P_VARIANCE];
    const double sd = sqrt(bandwidth * bandwidth + variance);
    double base = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) base += (double)x[i] * pools[i * cols + P_SHIFT];
    double risk = 0.0;
    for (Py_ssize_t s = 0; s < scenarios; s++) {
        double shift = 0.0;
        for (Py_ssize_t i = 0; i < n; i++) shift += (double)x[i] * pools[i * cols + P_SHIFT + s];
        double tail = 0.0;
        for (Py_ssize_t k = 0; k < g; k++) {
            const double z = (samples[k] + shift) / sd;
            double term = ndtr(z, 0);
            if (s > 0 && samples[k] > 0) {
                /* Late share of the outage, then the drain of its backlog at full capacity
                   (a plan that cannot drain it counts the whole outage twice). */
                const double left = -shift, over = samples[k] + shift;
                const double full = -base, spare = full - samples[k];
                double miss = 0.0;
                if (over > 0) {
                    miss = left <= 0 ? 1.0 : np_max(0.0, 1.0 - grace * left / over);
                    miss += spare > 0 ? np_max(0.0, (over - grace * full) / spare) : 1.0;
                }
                term = np_max(ndtr((samples[k] + base) / sd, 0), miss);
            }
            tail += term * kernel[k];
        }
        risk += tail * weights[s];
    }
    return np_min(np_max(risk, 0.0), 1.0);
}

/* `evaluate`'s arrays, checked against their sizes. */
typedef struct {
    Buffers b;
    const long long *plans;
    const double *pools, *samples, *kernel, *weights;
} Inputs;

static int inputs(Inputs *in, PyObject *plans, PyObject *pools, PyObject *samples,
                  PyObject *kernel, PyObject *weights, Py_ssize_t count, Py_ssize_t n,
                  Py_ssize_t scenarios, Py_ssize_t g) {
    in->b.held = 0;
    if (count < 0 || n < 1 || scenarios < 1 || g < 1) {
        PyErr_SetString(PyExc_ValueError, "plans, pools, scenarios and samples: sizes < 1");
        return -1;
    }
    in->plans = take(&in->b, plans, count * n, 'q', "plans");
    in->pools = take(&in->b, pools, n * (P_SHIFT + scenarios), 'd', "pools");
    in->samples = take(&in->b, samples, g, 'd', "samples");
    in->kernel = take(&in->b, kernel, g, 'd', "kernel");
    in->weights = take(&in->b, weights, scenarios, 'd', "weights");
    return in->b.held < 0 ? -1 : 0;
}

static PyObject *evaluate(PyObject *self, PyObject *args) {
    PyObject *plans_obj, *pools_obj, *samples_obj, *kernel_obj, *weights_obj;
    Py_ssize_t count, n, scenarios, g;
    double bandwidth, floor_demand, risk_floor, miss_cost, floor_w, budget, budget_w;
    double grace = 0.0;
    int warm;
    if (!PyArg_ParseTuple(args, "OOOOOnnnndddddddp|d", &plans_obj, &pools_obj, &samples_obj,
                          &kernel_obj, &weights_obj, &count, &n, &scenarios, &g, &bandwidth,
                          &floor_demand, &risk_floor, &miss_cost, &floor_w, &budget, &budget_w,
                          &warm, &grace))
        return NULL;
    Inputs in;
    if (inputs(&in, plans_obj, pools_obj, samples_obj, kernel_obj, weights_obj, count, n,
               scenarios, g) < 0)
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(double) * 3 * count);
    if (out != NULL) {
        double *spend = (double *)PyBytes_AS_STRING(out), *risks = spend + count,
               *obj = spend + 2 * count;
        const long long *plans = in.plans;
        const double *pools = in.pools;
        const Py_ssize_t cols = P_SHIFT + scenarios;
        const double floor_scale = np_max(floor_demand, 1e-9);
        for (Py_ssize_t k = 0; k < count; k++) {
            const long long *x = plans + k * n;
            double money = 0.0, surviving = 0.0, warm_up = 0.0;
            for (Py_ssize_t i = 0; i < n; i++) {
                const double *pool = pools + i * cols;
                money += (double)x[i] * pool[P_PRICE];
                surviving += (double)x[i] * pool[P_SURVIVING];
                const double more = (double)x[i] - pool[P_CURRENT];
                if (more > 0) warm_up += more * pool[P_START];
            }
            const double r = plan_risk(x, pools, n, cols, scenarios, in.samples, in.kernel, g,
                                       in.weights, bandwidth, grace);
            const double missing = np_max(floor_demand - surviving, 0.0) / floor_scale;
            const double over = r > risk_floor ? r - risk_floor + missing : 0.0;
            double j = (warm ? money + warm_up : money) + miss_cost * r + floor_w * over;
            if (isfinite(budget)) j = j + budget_w * np_max(money - budget, 0.0);
            spend[k] = money;
            risks[k] = r;
            obj[k] = j;
        }
    }
    drop(&in.b);
    return out;
}

/* P(demand > c), or with `bound` the risk bound R(c): core/forecast.py's formula. */
static double exceed(const double *samples, const double *weights, Py_ssize_t g,
                     double bandwidth, double c, int bound) {
    double total = 0.0;
    for (Py_ssize_t i = 0; i < g; i++) {
        const double gap = samples[i] - c;
        /* The bound (exact.risk_bound) counts a sample at or above C as 1/2. */
        const double phi = bound && !(gap < 0) ? 0.5 : ndtr(gap / bandwidth, 0);
        total += phi * weights[i];
    }
    return total;
}

static PyObject *exceedance(PyObject *self, PyObject *args) {
    PyObject *samples_obj, *weights_obj, *capacity_obj;
    Py_ssize_t g, count;
    double bandwidth;
    int bound;
    if (!PyArg_ParseTuple(args, "OOOnndp", &samples_obj, &weights_obj, &capacity_obj, &g,
                          &count, &bandwidth, &bound))
        return NULL;
    if (g < 1 || count < 0) {
        PyErr_SetString(PyExc_ValueError, "exceedance: need 1 demand sample at least");
        return NULL;
    }
    Buffers b = {.held = 0};
    const double *samples = take(&b, samples_obj, g, 'd', "samples");
    const double *weights = take(&b, weights_obj, g, 'd', "weights");
    const double *capacity = take(&b, capacity_obj, count, 'd', "capacity");
    if (b.held < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(double) * count);
    if (out != NULL) {
        double *ex = (double *)PyBytes_AS_STRING(out);
        for (Py_ssize_t k = 0; k < count; k++)
            ex[k] = exceed(samples, weights, g, bandwidth, capacity[k], bound);
    }
    drop(&b);
    return out;
}

static PyObject *quantile(PyObject *self, PyObject *args) {
    PyObject *samples_obj, *weights_obj, *unit_obj;
    Py_ssize_t g, points;
    double bandwidth, top, q;
    if (!PyArg_ParseTuple(args, "OOnddOnd", &samples_obj, &weights_obj, &g, &bandwidth, &top,
                          &unit_obj, &points, &q))
        return NULL;
    if (g < 1 || points < 2 || points > 1024) {
        PyErr_SetString(PyExc_ValueError, "quantile: need 1 sample and 2 to 1024 grid points");
        return NULL;
    }
    Buffers b = {.held = 0};
    const double *samples = take(&b, samples_obj, g, 'd', "samples");
    const double *weights = take(&b, weights_obj, g, 'd', "weights");
    const double *unit = take(&b, unit_obj, points, 'd', "unit");
    if (b.held < 0) return NULL;
    double grid[1024], ex[1024];
    const double tail = 1.0 - q;
    double lo = 0.0, hi = top, value = lo;
    for (int pass = 0; pass < 2; pass++) {
        for (Py_ssize_t k = 0; k < points; k++) {
            grid[k] = pass == 0 ? top * unit[k] : lo + (hi - lo) * unit[k];
            ex[k] = exceed(samples, weights, g, bandwidth, grid[k], 0);
        }
        /* numpy's searchsorted(-ex, -tail, side="right"), a bisection as numpy's. */
        Py_ssize_t a = 0, b = points;
        while (a < b) {
            const Py_ssize_t mid = a + ((b - a) >> 1);
            if (-tail < -ex[mid])
                b = mid;
            else
                a = mid + 1;
        }
        const Py_ssize_t k = a;
        if (k == 0 || k >= points) {
            value = k == 0 ? lo : hi;
            break;
        }
        lo = grid[k - 1];
        hi = grid[k];
        const double share = (ex[k - 1] - tail) / np_max(ex[k - 1] - ex[k], 1e-300);
        value = lo + (hi - lo) * np_min(np_max(share, 0.0), 1.0);
    }
    drop(&b);
    return PyFloat_FromDouble(value);
}

static PyObject *best_level(PyObject *self, PyObject *args) {
    PyObject *rate_obj;
    Py_ssize_t n, fit, min_errors, spans[3];
    double dt, trend, widen;
    if (!PyArg_ParseTuple(args, "Onnnnddndn", &rate_obj, &n, &spans[0], &spans[1], &spans[2], &dt,
                          &trend, &fit, &widen, &min_errors))
        return NULL;
    if (n < 1 || fit < 1) {
        PyErr_SetString(PyExc_ValueError, "best_level: need 1 sample and a lag of 1 at least");
        return NULL;
    }
    Buffers b = {.held = 0};
    const double *r = take(&b, rate_obj, n, 'd', "rate");
    if (b.held < 0) return NULL;
    const Py_ssize_t m_err = n > fit ? n - fit : 0;
    PyObject *out = NULL;
    double *csum = malloc(sizeof(double) * (size_t)(n + 1));
    double *level = malloc(sizeof(double) * (size_t)(2 * n));
    double *errors = malloc(sizeof(double) * (size_t)(2 * (m_err > 0 ? m_err : 1)));
    if (!csum || !level || !errors) {
        PyErr_NoMemory();
        goto done;
    }
    csum[0] = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) csum[i + 1] = csum[i] + r[i];
    /* Two buffers: the best span so far, and the one being scored. */
    int best = -1, slot = 0;
    double best_score = 0.0;
    for (int k = 0; k < 3; k++) {
        double *lv = level + slot * n, *er = errors + slot * (m_err > 0 ? m_err : 1);
        const Py_ssize_t m = spans[k];
        /* A trailing mean lags a trend by half its span: add that back. */
        const double back = trend * (double)((m < n ? m : n) - 1) * dt / 2.0;
        for (Py_ssize_t i = 0; i < n; i++) {
            const Py_ssize_t hi = i + 1, lo = hi - m > 0 ? hi - m : 0;
            lv[i] = (csum[hi] - csum[lo]) / (double)(hi - lo) + back;
        }
        const double ahead = trend * (double)fit * dt;
        double sq = 0.0;
        for (Py_ssize_t j = 0; j < m_err; j++) {
            er[j] = (r[fit + j] - (lv[j] + ahead)) * widen;
            sq += er[j] * er[j];
        }
        const double score = m_err >= min_errors ? sq / (double)m_err : INFINITY;
        if (best < 0 || score < best_score) {
            best = k;
            best_score = score;
            slot = 1 - slot; /* keep this one; score the next in the other buffer */
        }
    }
    const int kept = 1 - slot;
    PyObject *lv_bytes = PyBytes_FromStringAndSize((const char *)(level + kept * n),
                                                   (Py_ssize_t)sizeof(double) * n);
    const double *kept_errors = errors + kept * (m_err > 0 ? m_err : 1);
    PyObject *er_bytes = PyBytes_FromStringAndSize((const char *)kept_errors,
                                                   (Py_ssize_t)sizeof(double) * m_err);
    if (lv_bytes && er_bytes)
        out = Py_BuildValue("(NN)", lv_bytes, er_bytes);
    else {
        Py_XDECREF(lv_bytes);
        Py_XDECREF(er_bytes);
    }
done:
    free(csum);
    free(level);
    free(errors);
    drop(&b);
    return out;
}

static PyObject *tables(PyObject *self, PyObject *args) {
    PyObject *grid_obj, *cost_obj, *rho_obj;
    Py_ssize_t cells, rows;
    if (!PyArg_ParseTuple(args, "OOOnn", &grid_obj, &cost_obj, &rho_obj, &cells, &rows))
        return NULL;
    if (cells < 2 || rows < 1) {
        PyErr_SetString(PyExc_ValueError, "tables: need 2 grid points and 1 ratio at least");
        return NULL;
    }
    Buffers b = {.held = 0};
    const double *grid = take(&b, grid_obj, cells, 'd', "grid");
    const double *cost = take(&b, cost_obj, cells, 'd', "cost");
    const double *rhos = take(&b, rho_obj, rows, 'd', "rho");
    if (b.held < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(double) * rows * cells);
    if (out != NULL) {
        const double *upper = cost + 1;
        for (Py_ssize_t k = 0; k < rows; k++) {
            double *row = (double *)PyBytes_AS_STRING(out) + k * cells;
            const double rho = rhos[k];
            const int finite = isfinite(rho);
            const double r = finite ? rho : 0.0;
            double after = INFINITY; /* min over later cells of G_k rho + B_{k+1} */
            for (Py_ssize_t j = cells - 2; j >= 0; j--) {
                row[j] = finite ? np_min(upper[j], after - grid[j + 1] * r) : upper[j];
                const double later = grid[j] * r + upper[j];
                after = j == cells - 2 ? later : np_min(after, later);
            }
            row[cells - 1] = 0.0;
        }
    }
    drop(&b);
    return out;
}

static PyObject *feasible(PyObject *self, PyObject *args) {
    PyObject *plans_obj, *maxima_obj, *spot_obj;
    Py_ssize_t count, n;
    long long reachable_min, total_max, od_floor;
    int limits;
    double fraction;
    if (!PyArg_ParseTuple(args, "OOOnnLLpdL", &plans_obj, &maxima_obj, &spot_obj, &count, &n,
                          &reachable_min, &total_max, &limits, &fraction, &od_floor))
        return NULL;
    if (count < 0 || n < 1) {
        PyErr_SetString(PyExc_ValueError, "feasible: plans and pools: sizes < 1");
        return NULL;
    }
    Buffers b = {.held = 0};
    const long long *plans = take(&b, plans_obj, count * n, 'q', "plans");
    const long long *maxima = take(&b, maxima_obj, n, 'q', "maxima");
    const long long *spot_flag = take(&b, spot_obj, n, 'q', "spot");
    if (b.held < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, count);
    if (out != NULL) {
        char *ok = PyBytes_AS_STRING(out);
        for (Py_ssize_t k = 0; k < count; k++) {
            const long long *x = plans + k * n;
            long long total = 0, spot = 0;
            char good = 1;
            for (Py_ssize_t i = 0; i < n; i++) {
                if (x[i] < 0 || x[i] > maxima[i]) good = 0;
                total += x[i];
                spot += x[i] * spot_flag[i];
            }
            good = good && total >= reachable_min && total <= total_max;
            if (good && limits) {
                good = (double)spot <= floor(fraction * (double)total + 1e-9) &&
                       total - spot >= (od_floor < total ? od_floor : total);
            }
            ok[k] = good;
        }
    }
    drop(&b);
    return out;
}

/* fill.max_spot's plan for a total of `total` replicas (see there). */
static void spot_plan(long long total, long long *x, Py_ssize_t n, const long long *caps,
                      const long long *order, const long long *is_spot, int limits,
                      double fraction, long long od_floor) {
    const long long share = limits ? (long long)floor(fraction * (double)total + 1e-9) : total;
    const long long floor_ = limits ? (od_floor < total ? od_floor : total) : 0;
    for (Py_ssize_t i = 0; i < n; i++) x[i] = 0;
    const long long spot_count = share < total - floor_ ? share : total - floor_;
    for (int pass = 0; pass < 2; pass++) {
        long long count = pass == 0 ? spot_count : total;
        for (Py_ssize_t i = 0; i < n; i++) count -= x[i];
        for (Py_ssize_t k = 0; k < n; k++) {
            const long long i = order[k];
            if ((is_spot[i] != 0) != (pass == 0)) continue;
            const long long want = count > 0 ? count : 0;
            x[i] = caps[i] < want ? caps[i] : want;
            count -= x[i];
        }
    }
}

/* fill.py's _Filler: whole replicas added within the bounds and the spot share. */
typedef struct {
    const double *eff;
    const long long *caps, *is_spot;
    long long *x, total, nspot, total_max;
    double rps, fraction;
    int limits; /* spot.maxFraction binds (the spot limits hold and it is below 1) */
} Filler;

static long long spot_room(const Filler *f) {
    if (!f->limits) return 1LL << 40;
    const double free_share = f->fraction * (double)f->total - (double)f->nspot;
    const long long room = (long long)floor(free_share / (1.0 - f->fraction) + 1e-9);
    return room > 0 ? room : 0;
}

static long long fill_add(Filler *f, Py_ssize_t i, long long want) {
    if (want <= 0) return 0;
    long long room = f->caps[i] - f->x[i];
    if (f->total_max - f->total < room) room = f->total_max - f->total;
    long long k = want < room ? want : room;
    if (f->is_spot[i]) {
        const long long spot = spot_room(f);
        if (spot < k) k = spot;
    }
    if (k < 0) k = 0;
    f->x[i] += k;
    f->total += k;
    if (f->is_spot[i]) f->nspot += k;
    f->rps += (double)k * f->eff[i];
    return k;
}

/* Replicas of pool i closing the gap to `demand` (at least 1 while a gap is left), or -1 with
 * ValueError set when the pool carries nothing (capacity.replicas_needed's error). */
static long long fill_need(const Filler *f, Py_ssize_t i, double demand) {
    const double gap = demand - f->rps;
    if (gap <= 1e-9) return 0;
    const double per = f->eff[i] * 1.0;
    if (!(per > 0)) {
        PyErr_SetString(PyExc_ValueError, "capacity_rps x scale must be > 0");
        return -1;
    }
    const double want = ceil(gap / per - 1e-9);
    /* Beyond any bound: add() caps it at the room left either way. */
    const long long k = want > 4e18 ? (long long)4e18 : (want > 0 ? (long long)want : 0);
    return k > 1 ? k : 1;
}

/* The starts of fill.py: mode 0 `fill` with spot, 1 `fill` on-demand only, 2 `max_spot`. */
static PyObject *start(PyObject *self, PyObject *args) {
    PyObject *eff_obj, *caps_obj, *order_obj, *spot_obj;
    Py_ssize_t n;
    long long total_max, reachable_min, od_floor;
    int spot_limits, mode;
    double fraction, demand;
    if (!PyArg_ParseTuple(args, "OOOOnLLpdLdi", &eff_obj, &caps_obj, &order_obj, &spot_obj, &n,
                          &total_max, &reachable_min, &spot_limits, &fraction, &od_floor, &demand,
                          &mode))
        return NULL;
    if (n < 1 || mode < 0 || mode > 2) {
        PyErr_SetString(PyExc_ValueError, "start: need 1 pool at least and a mode of 0, 1 or 2");
        return NULL;
    }
    Buffers b = {.held = 0};
    const double *eff = take(&b, eff_obj, n, 'd', "eff");
    const long long *caps = take(&b, caps_obj, n, 'q', "caps");
    const long long *order = take(&b, order_obj, n, 'q', "order");
    const long long *is_spot = take(&b, spot_obj, n, 'q', "spot");
    if (b.held < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(long long) * n);
    if (out == NULL) {
        drop(&b);
        return NULL;
    }
    long long *x = (long long *)PyBytes_AS_STRING(out);
    if (mode == 2) {
        /* The plan's capacity grows with its total: bisect for the fewest that cover. */
        long long lo = reachable_min, hi = total_max;
        while (lo < hi) {
            const long long mid = (lo + hi) / 2;
            spot_plan(mid, x, n, caps, order, is_spot, spot_limits, fraction, od_floor);
            double rps = 0.0;
            for (Py_ssize_t i = 0; i < n; i++) rps += (double)x[i] * eff[i];
            if (rps >= demand - 1e-9)
                hi = mid;
            else
                lo = mid + 1;
        }
        spot_plan(lo, x, n, caps, order, is_spot, spot_limits, fraction, od_floor);
        drop(&b);
        return out;
    }
    const int use_spot = mode == 0;
    for (Py_ssize_t i = 0; i < n; i++) x[i] = 0;
    Filler f = {eff, caps, is_spot, x, 0, 0, total_max, 0.0, fraction,
                spot_limits && fraction < 1.0};
    /* The on-demand floor first, in merit order. */
    long long want = spot_limits ? od_floor : 0;
    for (Py_ssize_t k = 0; k < n; k++)
        if (!is_spot[order[k]]) want -= fill_add(&f, order[k], want);
    /* Then the demand; a second pass uses spot room the on-demand pass opened. */
    for (int pass = 0; pass < 2 && out != NULL; pass++) {
        for (Py_ssize_t k = 0; k < n; k++) {
            const Py_ssize_t i = order[k];
            if (f.rps >= demand - 1e-9) break;
            if (use_spot || !is_spot[i]) {
                const long long need = fill_need(&f, i, demand);
                if (need < 0) {
                    Py_CLEAR(out);
                    break;
                }
                fill_add(&f, i, need);
            }
        }
    }
    /* Then the total up to the (reachable) minimum, best merit first. */
    for (Py_ssize_t k = 0; k < n && out != NULL; k++) {
        if (f.total >= reachable_min) break;
        if (use_spot || !is_spot[order[k]]) fill_add(&f, order[k], reachable_min - f.total);
    }
    drop(&b);
    return out;
}

static PyObject *stalled(PyObject *self, PyObject *args) {
    PyObject *times_obj, *ready_obj, *warming_obj, *wait_obj;
    Py_ssize_t n, t;
    if (!PyArg_ParseTuple(args, "OOOOnn", &times_obj, &ready_obj, &warming_obj, &wait_obj, &n,
                          &t))
        return NULL;
    if (n < 1 || t < 1) {
        PyErr_SetString(PyExc_ValueError, "stalled: pools and samples must be positive");
        return NULL;
    }
    Buffers b = {.held = 0};
    const double *times = take(&b, times_obj, t, 'd', "times");
    const double *ready_all = take(&b, ready_obj, n * t, 'd', "ready");
    const double *warming_all = take(&b, warming_obj, n * t, 'd', "warming");
    const double *wait = take(&b, wait_obj, n, 'd', "wait");
    if (b.held < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out != NULL) {
        char *flag = PyBytes_AS_STRING(out);
        for (Py_ssize_t i = 0; i < n; i++) {
            const double *ready = ready_all + i * t;
            const double *warming = warming_all + i * t;
            double last = -INFINITY; /* the latest sample with progress */
            char stuck = 0;
            for (Py_ssize_t k = 0; k < t && !stuck; k++) {
                const double w = isnan(warming[k]) ? 0.0 : warming[k];
                const double r = isnan(ready[k]) ? 0.0 : ready[k];
                const double before = k == 0 ? 0.0 : (isnan(ready[k - 1]) ? 0.0 : ready[k - 1]);
                if ((w <= 0 || k == 0 || r > before) && times[k] > last) last = times[k];
                if (w > 0 && times[k] - last > wait[i]) stuck = 1;
            }
            flag[i] = stuck;
        }
    }
    drop(&b);
    return out;
}

static PyMethodDef methods[] = {
    {"setup", setup, METH_VARARGS,
     "setup(pools, n, total_max, fraction, limited) -> (levels, per_od, per_spot): the\n"
     "branch and bound's level rows (pools cheapest per req/s first; `grow`'s columns) as\n"
     "bytes, and the on-demand replicas a spot one allows and owes (`exact.Tree`)."},
    {"grow", grow, METH_VARARGS,
     "grow(best, max_nodes, total_max, per_od, per_spot, levels, step, tables, cells, n)\n"
     "-> (plans, lower) as bytes (int64 rows of n counts, float64 bounds), or None when the\n"
     "tree is wider than max_nodes partial plans at a level (4 x max_nodes children)."},
    {"evaluate", evaluate, METH_VARARGS,
     "evaluate(plans, pools, samples, kernel, weights, count, n, scenarios, g, bandwidth,\n"
     "floor_demand, risk_floor, slo_miss_cost, floor_weight, budget, budget_weight, warm\n"
     "[, grace])"
     "-> bytes: count float64 spends, then risks, then objectives."},
    {"exceedance", exceedance, METH_VARARGS,
     "exceedance(samples, weights, capacity, g, count, bandwidth, bound) -> bytes: count\n"
     "float64 P(demand > c) (`forecast.DemandForecast.exceedance`), or with `bound` the\n"
     "risk's lower bound R(c) (`exact.risk_bound`)."},
    {"quantile", quantile, METH_VARARGS,
     "quantile(samples, weights, g, bandwidth, top, unit, points, q) -> float: the demand\n"
     "exceeded with probability 1 - q (`forecast.DemandForecast.quantile`)."},
    {"best_level", best_level, METH_VARARGS,
     "best_level(rate, n, span0, span1, span2, dt, trend, fit, widen, min_errors)\n"
     "-> (level, errors) as float64 bytes: the trailing-mean level (of the three spans) whose\n"
     "errors `fit` samples ahead were least, and those errors (`forecast._best_level`)."},
    {"tables", tables, METH_VARARGS,
     "tables(grid, cost, rho, cells, rows) -> bytes: rows x cells float64, the bound per\n"
     "grid cell for each ratio (`exact.RiskCost.tables`)."},
    {"feasible", feasible, METH_VARARGS,
     "feasible(plans, maxima, spot, count, n, reachable_min, total_max, limits, fraction,\n"
     "on_demand_floor) -> bytes: per plan 1 when within every hard bound, else 0."},
    {"start", start, METH_VARARGS,
     "start(eff, caps, order, spot, n, total_max, reachable_min, spot_limits, fraction,\n"
     "on_demand_floor, demand, mode) -> bytes: n int64, a start covering demand within the\n"
     "bounds: mode 0 the merit-order fill, 1 the same on on-demand pools, 2 the fewest\n"
     "replicas with the most spot allowed (`fill.fill`, `fill.max_spot`)."},
    {"stalled", stalled, METH_VARARGS,
     "stalled(times, ready, warming, wait, n, t) -> bytes: per pool 1 when some sample had\n"
     "replicas warming longer than its wait (s) since the last progress, else 0."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kernels",
                                    "The engine's hot loops, compiled.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kernels(void) {
    /* scipy's double ndtr: the function scipy.special.ndtr applies per element. */
    PyObject *special = PyImport_ImportModule("scipy.special.cython_special");
    if (special == NULL) return NULL;
    PyObject *capi = PyObject_GetAttrString(special, "__pyx_capi__");
    Py_DECREF(special);
    if (capi == NULL) return NULL;
    PyObject *capsule = PyDict_GetItemString(capi, "__pyx_fuse_1ndtr");
    if (capsule == NULL || !PyCapsule_CheckExact(capsule) ||
        strcmp(PyCapsule_GetName(capsule), "double (double, int __pyx_skip_dispatch)") != 0) {
        Py_DECREF(capi);
        PyErr_SetString(PyExc_ImportError,
                        "costscaler.core._kernels: scipy.special.cython_special has no double "
                        "ndtr (__pyx_fuse_1ndtr); install the scipy version pyproject.toml names");
        return NULL;
    }
    ndtr = (ndtr_fn)PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule));
    Py_DECREF(capi);
    if (ndtr == NULL) return NULL;
    return PyModule_Create(&module);
}

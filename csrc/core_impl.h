/*
 * core_impl.h -- the typed kernels, written once and compiled twice:
 * core_f32.c and core_f64.c define T (float / double), FN(name) (the
 * _f32 / _f64 suffix) and the matching libm functions, then include this file.
 *
 * Nothing here allocates.  Every exported function checks its arguments and
 * returns a pynn_status.
 */
#include <math.h>
#include <string.h>
#include "pynn.h"
#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef T
#error "core_impl.h needs T, FN, T_EXP, T_LOG, T_TANH, T_SQRT, T_EPS"
#endif

/* Threads for a kernel doing `work` multiply-adds: one unless it pays. */
static int FN(threads_for)(int n_threads, size_t work, size_t parallel_items)
{
#ifdef _OPENMP
    if (work < PYNN_PAR_MIN_WORK || parallel_items < 2)
        return 1;
    int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
    if ((size_t)nt > parallel_items)
        nt = (int)parallel_items;
    return nt < 1 ? 1 : nt;
#else
    (void)n_threads; (void)work; (void)parallel_items;
    return 1;
#endif
}

/* ======================================================================== */
/* Products.  Every output element is accumulated along K in ascending order */
/* whatever the blocking and the thread count, so results are bitwise        */
/* reproducible and a row gives the same bits alone or inside a batch.       */
/* ======================================================================== */

/* Rows of the output handled together so each W row is loaded once per group. */
#define ROWS 4
/* Output columns per pass, so ROWS output rows stay in L1. */
#define COLS 512

/* out = x W + b  (b may be NULL); x (n, k), W (k, m), out (n, m). */
static void FN(gemm_nn)(T *restrict out, const T *restrict x, const T *restrict W,
                        const T *restrict b, size_t n, size_t k, size_t m, int nt)
{
    size_t groups = (n + ROWS - 1) / ROWS;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (ptrdiff_t g = 0; g < (ptrdiff_t)groups; g++) {
        size_t i0 = (size_t)g * ROWS;
        size_t rows = n - i0 < ROWS ? n - i0 : ROWS;
        for (size_t j0 = 0; j0 < m; j0 += COLS) {
            size_t jn = m - j0 < COLS ? m - j0 : COLS;
            for (size_t r = 0; r < rows; r++) {
                T *o = out + (i0 + r) * m + j0;
                if (b)
                    memcpy(o, b + j0, jn * sizeof(T));
                else
                    memset(o, 0, jn * sizeof(T));
            }
            if (rows == ROWS) {
                T *o0 = out + i0 * m + j0, *o1 = o0 + m, *o2 = o1 + m, *o3 = o2 + m;
                const T *x0 = x + i0 * k, *x1 = x0 + k, *x2 = x1 + k, *x3 = x2 + k;
                for (size_t p = 0; p < k; p++) {
                    const T *w = W + p * m + j0;
                    T a0 = x0[p], a1 = x1[p], a2 = x2[p], a3 = x3[p];
                    for (size_t j = 0; j < jn; j++) {
                        T wj = w[j];
                        o0[j] += a0 * wj;
                        o1[j] += a1 * wj;
                        o2[j] += a2 * wj;
                        o3[j] += a3 * wj;
                    }
                }
            } else {
                for (size_t r = 0; r < rows; r++) {
                    T *o = out + (i0 + r) * m + j0;
                    const T *xr = x + (i0 + r) * k;
                    for (size_t p = 0; p < k; p++) {
                        const T *w = W + p * m + j0;
                        T a = xr[p];
                        for (size_t j = 0; j < jn; j++)
                            o[j] += a * w[j];
                    }
                }
            }
        }
    }
}

/* dW = x^T d * scale + W * wscale;  x (n, k), d (n, m), dW (k, m).
 * Accumulates over the n rows in ascending order. */
static void FN(gemm_tn)(T *restrict dW, const T *restrict x, const T *restrict d,
                        const T *restrict W, T scale, T wscale,
                        size_t n, size_t k, size_t m, int nt)
{
    size_t groups = (k + ROWS - 1) / ROWS;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (ptrdiff_t g = 0; g < (ptrdiff_t)groups; g++) {
        size_t i0 = (size_t)g * ROWS;
        size_t rows = k - i0 < ROWS ? k - i0 : ROWS;
        for (size_t j0 = 0; j0 < m; j0 += COLS) {
            size_t jn = m - j0 < COLS ? m - j0 : COLS;
            for (size_t r = 0; r < rows; r++)
                memset(dW + (i0 + r) * m + j0, 0, jn * sizeof(T));
            if (rows == ROWS) {
                T *o0 = dW + i0 * m + j0, *o1 = o0 + m, *o2 = o1 + m, *o3 = o2 + m;
                for (size_t p = 0; p < n; p++) {
                    const T *dr = d + p * m + j0;
                    const T *xr = x + p * k + i0;
                    T a0 = xr[0], a1 = xr[1], a2 = xr[2], a3 = xr[3];
                    for (size_t j = 0; j < jn; j++) {
                        T dj = dr[j];
                        o0[j] += a0 * dj;
                        o1[j] += a1 * dj;
                        o2[j] += a2 * dj;
                        o3[j] += a3 * dj;
                    }
                }
            } else {
                for (size_t r = 0; r < rows; r++) {
                    T *o = dW + (i0 + r) * m + j0;
                    for (size_t p = 0; p < n; p++) {
                        const T *dr = d + p * m + j0;
                        T a = x[p * k + i0 + r];
                        for (size_t j = 0; j < jn; j++)
                            o[j] += a * dr[j];
                    }
                }
            }
            for (size_t r = 0; r < rows; r++) {
                T *o = dW + (i0 + r) * m + j0;
                const T *w = W + (i0 + r) * m + j0;
                if (wscale != 0)
                    for (size_t j = 0; j < jn; j++)
                        o[j] = o[j] * scale + w[j] * wscale;
                else
                    for (size_t j = 0; j < jn; j++)
                        o[j] *= scale;
            }
        }
    }
}

/* Dot product with eight fixed partial sums (vectorisable, same order always). */
static inline T FN(dot)(const T *restrict a, const T *restrict b, size_t m)
{
    T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t j = 0;
    for (; j + 8 <= m; j += 8)
        for (int u = 0; u < 8; u++)
            acc[u] += a[j + u] * b[j + u];
    T tail = 0;
    for (; j < m; j++)
        tail += a[j] * b[j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

/* dx = d W^T;  d (n, m), W (k, m), dx (n, k). */
static void FN(gemm_nt)(T *restrict dx, const T *restrict d, const T *restrict W,
                        size_t n, size_t k, size_t m, int nt)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
        const T *dr = d + (size_t)i * m;
        T *o = dx + (size_t)i * k;
        for (size_t p = 0; p < k; p++)
            o[p] = FN(dot)(dr, W + p * m, m);
    }
}

/* ======================================================================== */
/* Activations                                                               */
/* ======================================================================== */

/* Logistic without overflow: exp only ever sees a non-positive argument. */
static inline T FN(sigmoid)(T z)
{
    if (z >= 0)
        return (T)1 / ((T)1 + T_EXP(-z));
    T e = T_EXP(z);
    return e / ((T)1 + e);
}

/* a = act(z) in place on n rows of m. */
static void FN(activate_rows)(T *a, size_t n, size_t m, pynn_activation act)
{
    size_t nm = n * m;
    switch (act) {
    case PYNN_ACT_IDENTITY:
        break;
    case PYNN_ACT_LOGISTIC:
        for (size_t i = 0; i < nm; i++)
            a[i] = FN(sigmoid)(a[i]);
        break;
    case PYNN_ACT_TANH:
        for (size_t i = 0; i < nm; i++)
            a[i] = T_TANH(a[i]);
        break;
    case PYNN_ACT_RELU:
        for (size_t i = 0; i < nm; i++)
            a[i] = a[i] > 0 ? a[i] : (T)0;
        break;
    case PYNN_ACT_STEP:
        for (size_t i = 0; i < nm; i++)
            a[i] = a[i] >= 0 ? (T)1 : (T)0;
        break;
    case PYNN_ACT_SOFTMAX:
        /* Subtracting the row maximum keeps exp() <= 1: no overflow for any input. */
        for (size_t r = 0; r < n; r++) {
            T *row = a + r * m;
            T mx = row[0];
            for (size_t j = 1; j < m; j++)
                mx = row[j] > mx ? row[j] : mx;
            T s = 0;
            for (size_t j = 0; j < m; j++) {
                row[j] = T_EXP(row[j] - mx);
                s += row[j];
            }
            T inv = (T)1 / s;
            for (size_t j = 0; j < m; j++)
                row[j] *= inv;
        }
        break;
    }
}

/* delta *= act'(z), with act' written through the cached output a. */
static void FN(backward_rows)(T *delta, const T *a, size_t n, size_t m, pynn_activation act)
{
    size_t nm = n * m;
    switch (act) {
    case PYNN_ACT_IDENTITY:
        break;
    case PYNN_ACT_LOGISTIC: /* s' = s (1 - s) */
        for (size_t i = 0; i < nm; i++)
            delta[i] *= a[i] * ((T)1 - a[i]);
        break;
    case PYNN_ACT_TANH: /* tanh' = 1 - tanh^2 */
        for (size_t i = 0; i < nm; i++)
            delta[i] *= (T)1 - a[i] * a[i];
        break;
    case PYNN_ACT_RELU: /* relu' = [z > 0] = [a > 0] */
        for (size_t i = 0; i < nm; i++)
            delta[i] = a[i] > 0 ? delta[i] : (T)0;
        break;
    case PYNN_ACT_STEP: /* zero almost everywhere */
        for (size_t i = 0; i < nm; i++)
            delta[i] = 0;
        break;
    case PYNN_ACT_SOFTMAX: /* J^T delta with J = diag(a) - a a^T */
        for (size_t r = 0; r < n; r++) {
            T *d = delta + r * m;
            const T *ar = a + r * m;
            T s = 0;
            for (size_t j = 0; j < m; j++)
                s += d[j] * ar[j];
            for (size_t j = 0; j < m; j++)
                d[j] = ar[j] * (d[j] - s);
        }
        break;
    }
}

static int FN(act_ok)(pynn_activation act) { return (unsigned)act <= PYNN_ACT_STEP; }
static int FN(loss_ok)(pynn_loss l) { return (unsigned)l <= PYNN_LOSS_CATEGORICAL_CE; }

pynn_status FN(pynn_activate)(T *a, size_t n, size_t m, pynn_activation act)
{
    size_t nm;
    if (a == NULL || n == 0 || m == 0 || !FN(act_ok)(act))
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, m, &nm))
        return PYNN_ERR_OVERFLOW;
    FN(activate_rows)(a, n, m, act);
    return PYNN_OK;
}

pynn_status FN(pynn_activation_backward)(T *delta, const T *a, size_t n, size_t m,
                                         pynn_activation act)
{
    size_t nm;
    if (delta == NULL || a == NULL || n == 0 || m == 0 || !FN(act_ok)(act))
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, m, &nm))
        return PYNN_ERR_OVERFLOW;
    FN(backward_rows)(delta, a, n, m, act);
    return PYNN_OK;
}

/* ======================================================================== */
/* Losses.  Logs see p clipped to [eps, 1 - eps] (eps of the dtype), as      */
/* scikit-learn does, so a confident wrong answer costs a large finite loss. */
/* ======================================================================== */

static inline T FN(clip_p)(T p)
{
    const T lo = T_EPS, hi = (T)1 - T_EPS;
    return p < lo ? lo : (p > hi ? hi : p);
}

static double FN(loss_sum)(const T *yh, const T *y, size_t nm, pynn_loss kind)
{
    double s = 0;
    switch (kind) {
    case PYNN_LOSS_HALF_SQUARED:
    case PYNN_LOSS_SQUARED:
        for (size_t i = 0; i < nm; i++) {
            double e = (double)yh[i] - (double)y[i];
            s += e * e;
        }
        return kind == PYNN_LOSS_HALF_SQUARED ? 0.5 * s : s;
    case PYNN_LOSS_BINARY_CE:
        for (size_t i = 0; i < nm; i++) {
            double p = (double)FN(clip_p)(yh[i]), t = (double)y[i];
            /* x log y with 0 log 0 = 0, as scipy's xlogy */
            if (t != 0)
                s -= t * log(p);
            if (t != 1)
                s -= (1 - t) * log1p(-p);
        }
        return s;
    case PYNN_LOSS_CATEGORICAL_CE:
        for (size_t i = 0; i < nm; i++)
            if (y[i] != 0)
                s -= (double)y[i] * log((double)FN(clip_p)(yh[i]));
        return s;
    }
    return NAN;
}

pynn_status FN(pynn_loss)(double *loss, const T *y_hat, const T *y, size_t n, size_t m,
                          pynn_loss kind)
{
    size_t nm;
    if (loss == NULL || y_hat == NULL || y == NULL || n == 0 || m == 0 || !FN(loss_ok)(kind))
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, m, &nm))
        return PYNN_ERR_OVERFLOW;
    *loss = FN(loss_sum)(y_hat, y, nm, kind) / (double)n;
    return PYNN_OK;
}

/* delta_k = d loss_k / d z_k for each row k. */
static void FN(output_delta_rows)(T *delta, const T *yh, const T *y, size_t n, size_t m,
                                  pynn_activation act, pynn_loss kind)
{
    size_t nm = n * m;
    int fused = (act == PYNN_ACT_SOFTMAX && kind == PYNN_LOSS_CATEGORICAL_CE) ||
                (act == PYNN_ACT_LOGISTIC && kind == PYNN_LOSS_BINARY_CE) ||
                (act == PYNN_ACT_IDENTITY && kind == PYNN_LOSS_HALF_SQUARED) ||
                /* Rosenblatt: w <- w + lr (y - yhat) x, i.e. delta = yhat - y */
                act == PYNN_ACT_STEP;
    if (fused) {
        /* The matched pairs: dl/dyhat * dyhat/dz collapses to yhat - y. */
        for (size_t i = 0; i < nm; i++)
            delta[i] = yh[i] - y[i];
        return;
    }
    /* General chain rule: delta = dl/dyhat, then times act'(z) from the output. */
    switch (kind) {
    case PYNN_LOSS_HALF_SQUARED:
        for (size_t i = 0; i < nm; i++)
            delta[i] = yh[i] - y[i];
        break;
    case PYNN_LOSS_SQUARED:
        for (size_t i = 0; i < nm; i++)
            delta[i] = (T)2 * (yh[i] - y[i]);
        break;
    case PYNN_LOSS_BINARY_CE:
        for (size_t i = 0; i < nm; i++) {
            T p = FN(clip_p)(yh[i]);
            delta[i] = (p - y[i]) / (p * ((T)1 - p));
        }
        break;
    case PYNN_LOSS_CATEGORICAL_CE:
        for (size_t i = 0; i < nm; i++)
            delta[i] = -y[i] / FN(clip_p)(yh[i]);
        break;
    }
    FN(backward_rows)(delta, yh, n, m, act);
}

pynn_status FN(pynn_output_delta)(T *delta, const T *y_hat, const T *y, size_t n, size_t m,
                                  pynn_activation act, pynn_loss kind)
{
    size_t nm;
    if (delta == NULL || y_hat == NULL || y == NULL || n == 0 || m == 0 ||
        !FN(act_ok)(act) || !FN(loss_ok)(kind))
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, m, &nm))
        return PYNN_ERR_OVERFLOW;
    FN(output_delta_rows)(delta, y_hat, y, n, m, act, kind);
    return PYNN_OK;
}

/* ======================================================================== */
/* Dense layer                                                               */
/* ======================================================================== */

static pynn_status FN(check_dense)(size_t n, size_t n_in, size_t n_out)
{
    size_t a, b, c;
    if (n == 0 || n_in == 0 || n_out == 0)
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, n_in, &a) || !pynn__mul(n_in, n_out, &b) || !pynn__mul(n, n_out, &c) ||
        !pynn__mul(a, n_out, &c))
        return PYNN_ERR_OVERFLOW;
    return PYNN_OK;
}

/* out = act(x W + b);  x (n, n_in), W (n_in, n_out), b (n_out), out (n, n_out). */
static void FN(dense_fwd)(T *out, const T *x, const T *W, const T *b, size_t n, size_t n_in,
                          size_t n_out, pynn_activation act, int n_threads)
{
    int nt = FN(threads_for)(n_threads, n * n_in * n_out, (n + ROWS - 1) / ROWS);
    FN(gemm_nn)(out, x, W, b, n, n_in, n_out, nt);
    FN(activate_rows)(out, n, n_out, act);
}

pynn_status FN(pynn_dense_forward)(T *out, const T *x, const T *W, const T *b, size_t n,
                                   size_t n_in, size_t n_out, pynn_activation act,
                                   int n_threads)
{
    if (out == NULL || x == NULL || W == NULL || b == NULL || !FN(act_ok)(act))
        return PYNN_ERR_ARG;
    pynn_status st = FN(check_dense)(n, n_in, n_out);
    if (st != PYNN_OK)
        return st;
    FN(dense_fwd)(out, x, W, b, n, n_in, n_out, act, n_threads);
    return PYNN_OK;
}

/* Inverts  z = x W + b  (mean over n rows):
 *   dW = x^T delta / n + alpha W / n,  db = sum_k delta_k / n,  dx = delta W^T. */
static void FN(dense_bwd)(T *dx, T *dW, T *db, const T *delta, const T *x, const T *W,
                          size_t n, size_t n_in, size_t n_out, double alpha, int n_threads)
{
    size_t work = n * n_in * n_out;
    T inv_n = (T)(1.0 / (double)n);
    T wscale = (T)(alpha / (double)n);
    FN(gemm_tn)(dW, x, delta, W, inv_n, wscale, n, n_in, n_out,
                FN(threads_for)(n_threads, work, (n_in + ROWS - 1) / ROWS));
    memset(db, 0, n_out * sizeof(T));
    for (size_t k = 0; k < n; k++) {
        const T *d = delta + k * n_out;
        for (size_t j = 0; j < n_out; j++)
            db[j] += d[j];
    }
    for (size_t j = 0; j < n_out; j++)
        db[j] *= inv_n;
    if (dx)
        FN(gemm_nt)(dx, delta, W, n, n_in, n_out, FN(threads_for)(n_threads, work, n));
}

pynn_status FN(pynn_dense_backward)(T *dx, T *dW, T *db, const T *delta, const T *x,
                                    const T *W, size_t n, size_t n_in, size_t n_out,
                                    double alpha, int n_threads)
{
    if (dW == NULL || db == NULL || delta == NULL || x == NULL || W == NULL ||
        !(alpha >= 0) || alpha == INFINITY)
        return PYNN_ERR_ARG;
    pynn_status st = FN(check_dense)(n, n_in, n_out);
    if (st != PYNN_OK)
        return st;
    FN(dense_bwd)(dx, dW, db, delta, x, W, n, n_in, n_out, alpha, n_threads);
    return PYNN_OK;
}

/* ======================================================================== */
/* Optimizers: one flat loop over the arena.                                 */
/* ======================================================================== */

static void FN(sgd)(T *restrict p, T *restrict v, const T *restrict g, size_t size, T lr,
                    T mom, int nesterov)
{
    if (nesterov) {
        for (size_t i = 0; i < size; i++) {
            v[i] = mom * v[i] - lr * g[i];
            p[i] += mom * v[i] - lr * g[i];
        }
    } else {
        for (size_t i = 0; i < size; i++) {
            v[i] = mom * v[i] - lr * g[i];
            p[i] += v[i];
        }
    }
}

pynn_status FN(pynn_sgd_update)(T *params, T *velocity, const T *grads, size_t size,
                                double lr, double momentum, int nesterov)
{
    if (params == NULL || velocity == NULL || grads == NULL || size == 0 || !(lr > 0) ||
        !(momentum >= 0 && momentum <= 1))
        return PYNN_ERR_ARG;
    FN(sgd)(params, velocity, grads, size, (T)lr, (T)momentum, nesterov);
    return PYNN_OK;
}

static void FN(adam)(T *restrict p, T *restrict m, T *restrict v, const T *restrict g,
                     size_t size, double lr, double b1, double b2, double eps, uint64_t t)
{
    /* Bias correction folded into the step size, as scikit-learn does. */
    double lr_t = lr * sqrt(1.0 - pow(b2, (double)t)) / (1.0 - pow(b1, (double)t));
    T lt = (T)lr_t, c1 = (T)b1, c2 = (T)b2, e = (T)eps;
    T d1 = (T)(1.0 - b1), d2 = (T)(1.0 - b2);
    for (size_t i = 0; i < size; i++) {
        m[i] = c1 * m[i] + d1 * g[i];
        v[i] = c2 * v[i] + d2 * g[i] * g[i];
        p[i] -= lt * m[i] / (T_SQRT(v[i]) + e);
    }
}

pynn_status FN(pynn_adam_update)(T *params, T *m, T *v, const T *grads, size_t size, double lr,
                                 double beta1, double beta2, double eps, uint64_t t)
{
    if (params == NULL || m == NULL || v == NULL || grads == NULL || size == 0 || t == 0 ||
        !(lr > 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0))
        return PYNN_ERR_ARG;
    FN(adam)(params, m, v, grads, size, lr, beta1, beta2, eps, t);
    return PYNN_OK;
}

/* ======================================================================== */
/* Whole network                                                             */
/* ======================================================================== */

/* Forward n rows (n <= the workspace's batch) into acts (layer l at acts_off). */
static void FN(net_forward)(const pynn_net *net, const T *params, const size_t *w_off,
                            const size_t *b_off, const T *x, size_t n, T *acts, int nt)
{
    const T *in = x;
    T *out = acts;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        pynn_activation act = l + 1 == net->n_layers ? net->output : net->hidden;
        FN(dense_fwd)(out, in, params + w_off[l], params + b_off[l], n, nin, nout, act, nt);
        in = out;
        out += n * nout;
    }
}

/* Sum of squared weights (not biases), for the L2 term. */
static double FN(weight_sq)(const pynn_net *net, const T *params, const size_t *w_off)
{
    double s = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        const T *w = params + w_off[l];
        size_t cnt = (size_t)net->units[l] * (size_t)net->units[l + 1];
        for (size_t i = 0; i < cnt; i++)
            s += (double)w[i] * (double)w[i];
    }
    return s;
}

/* Loss and gradients of n rows whose forward pass is already in acts. */
static double FN(net_backward)(const pynn_net *net, const T *params, T *grads,
                               const size_t *w_off, const size_t *b_off, const T *x,
                               const T *y, size_t n, double alpha, T *acts, T *d0, T *d1,
                               int nt)
{
    size_t L = net->n_layers;
    size_t m = (size_t)net->units[L];
    /* the start of each layer's cached output inside acts */
    T *a_last = acts;
    for (size_t l = 1; l < L; l++)
        a_last += n * (size_t)net->units[l];
    double loss = FN(loss_sum)(a_last, y, n * m, net->loss) / (double)n;
    if (alpha > 0)
        loss += 0.5 * alpha * FN(weight_sq)(net, params, w_off) / (double)n;
    FN(output_delta_rows)(d0, a_last, y, n, m, net->output, net->loss);
    T *a_in = a_last;
    for (size_t l = L; l-- > 0;) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        const T *in;
        if (l == 0) {
            in = x;
        } else {
            a_in -= n * nin;
            in = a_in;
        }
        /* no dx for the first layer: nothing upstream needs it */
        FN(dense_bwd)(l ? d1 : NULL, grads + w_off[l], grads + b_off[l], d0, in,
                      params + w_off[l], n, nin, nout, alpha, nt);
        if (l) {
            FN(backward_rows)(d1, in, n, nin, net->hidden);
            T *t = d0; d0 = d1; d1 = t;
        }
    }
    return loss;
}

/* Offsets of at most this many layers live on the stack. */
#define PYNN_MAX_LAYERS 256

pynn_status FN(pynn_net_predict)(T *out, const pynn_net *net, const T *params, const T *x,
                                 size_t n, T *ws, size_t ws_len, size_t batch, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    if (out == NULL || params == NULL || x == NULL || ws == NULL || n == 0)
        return PYNN_ERR_ARG;
    pynn_status st = pynn__workspace_layout(&lay, net, batch);
    if (st != PYNN_OK)
        return st;
    if (net->n_layers > PYNN_MAX_LAYERS)
        return PYNN_ERR_UNSUPPORTED;
    if (ws_len < lay.total)
        return PYNN_ERR_WORKSPACE;
    if ((st = pynn_param_offsets(w_off, b_off, net)) != PYNN_OK)
        return st;
    size_t L = net->n_layers, nin = (size_t)net->units[0], m = (size_t)net->units[L];
    for (size_t r0 = 0; r0 < n; r0 += batch) {
        size_t rows = n - r0 < batch ? n - r0 : batch;
        T *acts = ws + lay.acts;
        FN(net_forward)(net, params, w_off, b_off, x + r0 * nin, rows, acts, n_threads);
        T *a_last = acts;
        for (size_t l = 1; l < L; l++)
            a_last += rows * (size_t)net->units[l];
        memcpy(out + r0 * m, a_last, rows * m * sizeof(T));
    }
    return PYNN_OK;
}

pynn_status FN(pynn_net_loss_grad)(double *loss, T *grads, const pynn_net *net, const T *params,
                                   const T *x, const T *y, size_t n, double alpha, T *ws,
                                   size_t ws_len, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    if (loss == NULL || grads == NULL || params == NULL || x == NULL || y == NULL ||
        ws == NULL || n == 0 || !(alpha >= 0) || alpha == INFINITY)
        return PYNN_ERR_ARG;
    pynn_status st = pynn__workspace_layout(&lay, net, n);
    if (st != PYNN_OK)
        return st;
    if (net->n_layers > PYNN_MAX_LAYERS)
        return PYNN_ERR_UNSUPPORTED;
    if (ws_len < lay.total)
        return PYNN_ERR_WORKSPACE;
    if ((st = pynn_param_offsets(w_off, b_off, net)) != PYNN_OK)
        return st;
    T *acts = ws + lay.acts;
    FN(net_forward)(net, params, w_off, b_off, x, n, acts, n_threads);
    *loss = FN(net_backward)(net, params, grads, w_off, b_off, x, y, n, alpha, acts,
                             ws + lay.delta0, ws + lay.delta1, n_threads);
    return PYNN_OK;
}

pynn_status FN(pynn_train)(const pynn_net *net, const pynn_optim *opt, pynn_train_state *state,
                           T *params, T *grads, T *opt_a, T *opt_b, const T *x, const T *y,
                           size_t n, int64_t *order, int shuffle, size_t batch_size,
                           size_t max_steps, size_t *steps_done, int *epoch_done,
                           double *epoch_loss, T *ws, size_t ws_len, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    size_t n_params;
    if (steps_done)
        *steps_done = 0;
    if (epoch_done)
        *epoch_done = 0;
    if (opt == NULL || state == NULL || params == NULL || grads == NULL || opt_a == NULL ||
        x == NULL || y == NULL || order == NULL || ws == NULL || steps_done == NULL ||
        epoch_done == NULL || epoch_loss == NULL || n == 0 || batch_size == 0 ||
        state->pos >= n)
        return PYNN_ERR_ARG;
    if ((unsigned)opt->solver > PYNN_SOLVER_ADAM || !(opt->learning_rate > 0) ||
        !(opt->alpha >= 0) || opt->alpha == INFINITY)
        return PYNN_ERR_ARG;
    if (opt->solver == PYNN_SOLVER_ADAM &&
        (opt_b == NULL || !(opt->beta1 >= 0 && opt->beta1 < 1) ||
         !(opt->beta2 >= 0 && opt->beta2 < 1) || !(opt->epsilon > 0)))
        return PYNN_ERR_ARG;
    if (opt->solver == PYNN_SOLVER_SGD && !(opt->momentum >= 0 && opt->momentum <= 1))
        return PYNN_ERR_ARG;
    if (batch_size > n)
        batch_size = n;
    pynn_status st = pynn__workspace_layout(&lay, net, batch_size);
    if (st != PYNN_OK)
        return st;
    if (net->n_layers > PYNN_MAX_LAYERS)
        return PYNN_ERR_UNSUPPORTED;
    if (ws_len < lay.total)
        return PYNN_ERR_WORKSPACE;
    if ((st = pynn_param_offsets(w_off, b_off, net)) != PYNN_OK ||
        (st = pynn_param_count(&n_params, net)) != PYNN_OK)
        return st;

    size_t nin = (size_t)net->units[0], m = (size_t)net->units[net->n_layers];
    T *acts = ws + lay.acts, *xb = ws + lay.xb, *yb = ws + lay.yb;
    size_t steps = 0;
    while (steps < max_steps) {
        if (state->pos == 0 && shuffle)
            pynn_shuffle(order, n, state->rng);
        size_t rows = n - state->pos < batch_size ? n - state->pos : batch_size;
        const T *xs, *ys;
        if (shuffle) {
            /* gather this batch's rows; the only copy of X a fit makes */
            const int64_t *idx = order + state->pos;
            for (size_t r = 0; r < rows; r++) {
                memcpy(xb + r * nin, x + (size_t)idx[r] * nin, nin * sizeof(T));
                memcpy(yb + r * m, y + (size_t)idx[r] * m, m * sizeof(T));
            }
            xs = xb;
            ys = yb;
        } else {
            xs = x + state->pos * nin;
            ys = y + state->pos * m;
        }
        FN(net_forward)(net, params, w_off, b_off, xs, rows, acts, n_threads);
        double loss = FN(net_backward)(net, params, grads, w_off, b_off, xs, ys, rows,
                                       opt->alpha, acts, ws + lay.delta0, ws + lay.delta1,
                                       n_threads);
        if (!isfinite(loss))
            return PYNN_ERR_NONFINITE; /* before the update: weights stay as they were */
        if (opt->solver == PYNN_SOLVER_SGD) {
            FN(sgd)(params, opt_a, grads, n_params, (T)opt->learning_rate, (T)opt->momentum,
                    opt->nesterov);
        } else {
            state->t += 1;
            FN(adam)(params, opt_a, opt_b, grads, n_params, opt->learning_rate, opt->beta1,
                     opt->beta2, opt->epsilon, state->t);
        }
        steps++;
        *steps_done = steps;
        state->loss_acc += loss * (double)rows;
        state->pos += rows;
        if (state->pos == n) {
            *epoch_loss = state->loss_acc / (double)n;
            *epoch_done = 1;
            state->pos = 0;
            state->loss_acc = 0;
            break;
        }
    }
    return PYNN_OK;
}

#undef ROWS
#undef COLS

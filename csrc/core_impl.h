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
/* Products: C = epilogue(A B), see gemm_tile.h for the contract.  Every     */
/* output element is one chain of multiply-adds along K from zero, in order, */
/* whatever the tiling and the thread count: bitwise reproducible, and a row */
/* gives the same bits alone or inside a batch.                              */
/* ======================================================================== */

typedef FN(pynn_gemm_args) FN(gemm_args);

/* Rows handled together by the portable kernel so each B row is loaded once
 * per group; output columns per pass so the group's rows stay in L1. */
#define ROWS 4
#define COLS 512

/* The portable kernel: separate multiply and add (no FMA contraction). */
static void FN(gemm_generic)(const FN(gemm_args) *g)
{
    const size_t m = g->m, n = g->n, k = g->k;
    const size_t groups = (m + ROWS - 1) / ROWS;
    int nt = g->n_threads < 1 ? 1 : g->n_threads;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (ptrdiff_t gi = 0; gi < (ptrdiff_t)groups; gi++) {
        size_t i0 = (size_t)gi * ROWS;
        size_t rows = m - i0 < ROWS ? m - i0 : ROWS;
        for (size_t j0 = 0; j0 < n; j0 += COLS) {
            size_t jn = n - j0 < COLS ? n - j0 : COLS;
            for (size_t r = 0; r < rows; r++)
                memset(g->c + (i0 + r) * g->ldc + j0, 0, jn * sizeof(T));
            if (g->b_trans) {
                /* B(p, j) = b[j * ldb + p]: each output is a dot product, still
                 * summed in ascending p from zero */
                for (size_t r = 0; r < rows; r++) {
                    T *restrict c = g->c + (i0 + r) * g->ldc + j0;
                    const T *restrict a = g->a + (i0 + r) * g->a_rs;
                    for (size_t j = 0; j < jn; j++) {
                        const T *restrict b = g->b + (j0 + j) * g->ldb;
                        T acc = 0;
                        for (size_t p = 0; p < k; p++)
                            acc += a[p * g->a_cs] * b[p];
                        c[j] = acc;
                    }
                }
            } else {
                for (size_t p = 0; p < k; p++) {
                    const T *restrict b = g->b + p * g->ldb + j0;
                    for (size_t r = 0; r < rows; r++) {
                        T *restrict c = g->c + (i0 + r) * g->ldc + j0;
                        const T a = g->a[(i0 + r) * g->a_rs + p * g->a_cs];
                        for (size_t j = 0; j < jn; j++)
                            c[j] += a * b[j];
                    }
                }
            }
            for (size_t r = 0; r < rows; r++) {
                size_t i = i0 + r;
                T *restrict c = g->c + i * g->ldc + j0;
                switch (g->epi) {
                case PYNN_EPI_BIAS:
                    for (size_t j = 0; j < jn; j++)
                        c[j] += g->bias[j0 + j];
                    if (g->act == PYNN_ACT_RELU)
                        for (size_t j = 0; j < jn; j++)
                            c[j] = c[j] > 0 ? c[j] : (T)0;
                    break;
                case PYNN_EPI_SCALE_W: {
                    const T *w = g->w + i * g->ldw + j0;
                    if (g->wscale != 0)
                        for (size_t j = 0; j < jn; j++)
                            c[j] = c[j] * g->scale + w[j] * g->wscale;
                    else
                        for (size_t j = 0; j < jn; j++)
                            c[j] = c[j] * g->scale;
                    break;
                }
                case PYNN_EPI_DACT: {
                    const T *a = g->da + i * g->ldda + j0;
                    if (g->act == PYNN_ACT_RELU)
                        for (size_t j = 0; j < jn; j++)
                            c[j] = a[j] > 0 ? c[j] : (T)0;
                    else if (g->act == PYNN_ACT_LOGISTIC)
                        for (size_t j = 0; j < jn; j++)
                            c[j] = c[j] * (a[j] * ((T)1 - a[j]));
                    else if (g->act == PYNN_ACT_TANH)
                        for (size_t j = 0; j < jn; j++)
                            c[j] = c[j] * ((T)1 - a[j] * a[j]);
                    break;
                }
                default:
                    break;
                }
            }
        }
    }
}

/* Runs the product on the instruction set chosen at run time. */
static void FN(gemm)(const FN(gemm_args) *g)
{
    switch (pynn__isa()) {
#ifdef PYNN_X86_SIMD
    case PYNN_ISA_AVX512:
        FN(pynn_gemm_avx512)(g);
        return;
    case PYNN_ISA_AVX2:
        FN(pynn_gemm_avx2)(g);
        return;
#endif
    default:
        FN(gemm_generic)(g);
        return;
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
#if defined(PYNN_X86_SIMD) && defined(T_IS_FLOAT)
        if (pynn__isa() != PYNN_ISA_GENERIC) {
            pynn_logistic_avx2_f32(a, nm);
            break;
        }
#endif
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
#if defined(PYNN_X86_SIMD) && defined(T_IS_FLOAT)
        if (pynn__isa() != PYNN_ISA_GENERIC) {
            pynn_softmax_avx2_f32(a, n, m);
            break;
        }
#endif
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

/* out = act(x W + b);  x (n, n_in), W (n_in, n_out), b (n_out), out (n, n_out).
 * The bias and relu are fused into the product's epilogue; logistic, tanh,
 * softmax and step follow in one pass over the (cache-hot) output. */
static void FN(dense_fwd)(T *out, const T *x, const T *W, const T *b, size_t n, size_t n_in,
                          size_t n_out, pynn_activation act, T *apack, size_t apack_len,
                          int n_threads)
{
    FN(gemm_args) g = {0};
    g.m = n; g.n = n_out; g.k = n_in;
    g.a = x; g.a_rs = (ptrdiff_t)n_in; g.a_cs = 1;
    g.apack = apack; g.apack_len = apack_len;
    g.b = W; g.ldb = (ptrdiff_t)n_out;
    g.c = out; g.ldc = (ptrdiff_t)n_out;
    g.epi = PYNN_EPI_BIAS; g.act = act; g.bias = b;
    g.n_threads = FN(threads_for)(n_threads, n * n_in * n_out, n * n_out / 64 + 1);
    FN(gemm)(&g);
    if (act != PYNN_ACT_IDENTITY && act != PYNN_ACT_RELU)
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
    FN(dense_fwd)(out, x, W, b, n, n_in, n_out, act, NULL, 0, n_threads);
    return PYNN_OK;
}

/* Inverts  z = x W + b  (mean over n rows):
 *   dW = x^T delta / n + alpha W / n        (x^T read through strides, no copy)
 *   db = sum_k delta_k / n
 *   dx = (delta W^T) * act'(da)             (W^T read through the packing, no copy;
 *                                            da: cached output of the layer below,
 *                                            NULL da gives plain delta W^T) */
static void FN(dense_bwd)(T *dx, T *dW, T *db, const T *delta, const T *x, const T *W,
                          size_t n, size_t n_in, size_t n_out, double alpha,
                          const T *da, pynn_activation dact, T *apack, size_t apack_len,
                          int n_threads)
{
    size_t work = n * n_in * n_out;
    T inv_n = (T)(1.0 / (double)n);
    FN(gemm_args) g = {0};
    g.m = n_in; g.n = n_out; g.k = n;
    g.a = x; g.a_rs = 1; g.a_cs = (ptrdiff_t)n_in;
    g.b = delta; g.ldb = (ptrdiff_t)n_out;
    g.c = dW; g.ldc = (ptrdiff_t)n_out;
    g.epi = PYNN_EPI_SCALE_W; g.scale = inv_n; g.wscale = (T)(alpha / (double)n);
    g.w = W; g.ldw = (ptrdiff_t)n_out;
    g.apack = apack; g.apack_len = apack_len;
    g.n_threads = FN(threads_for)(n_threads, work, n_in * n_out / 64 + 1);
    FN(gemm)(&g);

    memset(db, 0, n_out * sizeof(T));
    for (size_t k = 0; k < n; k++) {
        const T *d = delta + k * n_out;
        for (size_t j = 0; j < n_out; j++)
            db[j] += d[j];
    }
    for (size_t j = 0; j < n_out; j++)
        db[j] *= inv_n;

    if (dx) {
        FN(gemm_args) h = {0};
        h.m = n; h.n = n_in; h.k = n_out;
        h.a = delta; h.a_rs = (ptrdiff_t)n_out; h.a_cs = 1;
        h.b = W; h.ldb = (ptrdiff_t)n_out; h.b_trans = 1;
        h.c = dx; h.ldc = (ptrdiff_t)n_in;
        h.epi = da ? PYNN_EPI_DACT : PYNN_EPI_NONE; h.act = dact;
        h.da = da; h.ldda = (ptrdiff_t)n_in;
        h.apack = apack; h.apack_len = apack_len;
        h.n_threads = FN(threads_for)(n_threads, work, n * n_in / 64 + 1);
        FN(gemm)(&h);
    }
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
    FN(dense_bwd)(dx, dW, db, delta, x, W, n, n_in, n_out, alpha, NULL, PYNN_ACT_IDENTITY, NULL,
                  0, n_threads);
    return PYNN_OK;
}

/* ======================================================================== */
/* Optimizers: one flat loop over the arena.                                 */
/* ======================================================================== */

/* The optimizers walk the arena in blocks of 8; when sq is given they also add
 * each updated value's square to sq[0..7] (position i+u into sq[u], the tail
 * into sq[0]), the order FN(weight_sq) uses, so the L2 term of the next step
 * costs no extra pass over the weights. */
#define BLOCKED_LOOP(size, BODY)                                                 \
    do {                                                                         \
        size_t i_ = 0;                                                           \
        for (; i_ + 8 <= (size); i_ += 8)                                        \
            for (int u_ = 0; u_ < 8; u_++) {                                     \
                const size_t i = i_ + u_, slot = (size_t)u_;                     \
                BODY;                                                            \
            }                                                                    \
        for (; i_ < (size); i_++) {                                              \
            const size_t i = i_, slot = 0;                                       \
            BODY;                                                                \
        }                                                                        \
    } while (0)

#define SQ_ADD(x) do { if (want_sq) sq[slot] += (double)(x) * (double)(x); } while (0)

/* v <- momentum v - lr g;  p <- p + v  (Nesterov: p <- p + momentum v - lr g).
 * With momentum 0, v = -lr g exactly, so the old v is not read. */
static inline __attribute__((always_inline)) void
FN(sgd_seg)(T *restrict p, T *v, const T *restrict g, size_t size, T lr, T mom,
            int nesterov, double *restrict sq, const int want_sq)
{
    if (mom == 0 && v == NULL)
        /* plain gradient descent inside the step loop: the velocity, -lr g of the
         * last step, is written once when the loop returns (see pynn_train) */
        BLOCKED_LOOP(size, { p[i] += -(lr * g[i]); SQ_ADD(p[i]); });
    else if (mom == 0)
        BLOCKED_LOOP(size, { v[i] = -(lr * g[i]); p[i] += v[i]; SQ_ADD(p[i]); });
    else if (nesterov)
        BLOCKED_LOOP(size, {
            v[i] = mom * v[i] - lr * g[i];
            p[i] += mom * v[i] - lr * g[i];
            SQ_ADD(p[i]);
        });
    else
        BLOCKED_LOOP(size, { v[i] = mom * v[i] - lr * g[i]; p[i] += v[i]; SQ_ADD(p[i]); });
}

static void FN(sgd)(T *p, T *v, const T *g, size_t size, T lr, T mom, int nesterov, double *sq)
{
    if (sq)
        FN(sgd_seg)(p, v, g, size, lr, mom, nesterov, sq, 1);
    else
        FN(sgd_seg)(p, v, g, size, lr, mom, nesterov, NULL, 0);
}

/* Adam's step size with the bias correction folded in, as scikit-learn does. */
static double FN(adam_lr)(double lr, double b1, double b2, uint64_t t)
{
    return lr * sqrt(1.0 - pow(b2, (double)t)) / (1.0 - pow(b1, (double)t));
}

static inline __attribute__((always_inline)) void
FN(adam_seg)(T *restrict p, T *restrict m, T *restrict v, const T *restrict g, size_t size,
             T lt, T c1, T c2, T d1, T d2, T e, double *restrict sq, const int want_sq)
{
    BLOCKED_LOOP(size, {
        m[i] = c1 * m[i] + d1 * g[i];
        v[i] = c2 * v[i] + d2 * g[i] * g[i];
        p[i] -= lt * m[i] / (T_SQRT(v[i]) + e);
        SQ_ADD(p[i]);
    });
}

static void FN(adam)(T *p, T *m, T *v, const T *g, size_t size, double lr, double b1,
                     double b2, double eps, uint64_t t, double *sq)
{
    T lt = (T)FN(adam_lr)(lr, b1, b2, t), c1 = (T)b1, c2 = (T)b2, e = (T)eps;
    T d1 = (T)(1.0 - b1), d2 = (T)(1.0 - b2);
    if (sq)
        FN(adam_seg)(p, m, v, g, size, lt, c1, c2, d1, d2, e, sq, 1);
    else
        FN(adam_seg)(p, m, v, g, size, lt, c1, c2, d1, d2, e, NULL, 0);
}

#undef SQ_ADD
#undef BLOCKED_LOOP

pynn_status FN(pynn_sgd_update)(T *params, T *velocity, const T *grads, size_t size,
                                double lr, double momentum, int nesterov)
{
    if (params == NULL || velocity == NULL || grads == NULL || size == 0 || !(lr > 0) ||
        !(momentum >= 0 && momentum <= 1))
        return PYNN_ERR_ARG;
    FN(sgd)(params, velocity, grads, size, (T)lr, (T)momentum, nesterov, NULL);
    return PYNN_OK;
}

pynn_status FN(pynn_adam_update)(T *params, T *m, T *v, const T *grads, size_t size, double lr,
                                 double beta1, double beta2, double eps, uint64_t t)
{
    if (params == NULL || m == NULL || v == NULL || grads == NULL || size == 0 || t == 0 ||
        !(lr > 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0))
        return PYNN_ERR_ARG;
    FN(adam)(params, m, v, grads, size, lr, beta1, beta2, eps, t, NULL);
    return PYNN_OK;
}

/* ======================================================================== */
/* Whole network                                                             */
/* ======================================================================== */

/* Forward n rows (n <= the workspace's batch) into acts (layer l at acts_off). */
static void FN(net_forward)(const pynn_net *net, const T *params, const size_t *w_off,
                            const size_t *b_off, const T *x, size_t n, T *acts, T *apack,
                            size_t apack_len, int nt)
{
    const T *in = x;
    T *out = acts;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        pynn_activation act = l + 1 == net->n_layers ? net->output : net->hidden;
        FN(dense_fwd)(out, in, params + w_off[l], params + b_off[l], n, nin, nout, act, apack,
                      apack_len, nt);
        in = out;
        out += n * nout;
    }
}

/* The arena is updated (and its squares summed) in chunks of a size that
 * depends only on the segment's length: threads take whole chunks, and the
 * partial sums combine in chunk order, so nothing depends on the thread count. */
static size_t FN(chunk_size)(size_t size)
{
    size_t c = (size + 255) / 256;
    return c < ((size_t)1 << 14) ? ((size_t)1 << 14) : c;
}

static double FN(lanes8)(const double *sq)
{
    return ((sq[0] + sq[1]) + (sq[2] + sq[3])) + ((sq[4] + sq[5]) + (sq[6] + sq[7]));
}

/* Sum of squares of one chunk: eight independent partial sums in a fixed order
 * (position i + u into lane u, the tail into lane 0), as the optimizers' loop. */
static double FN(chunk_sq)(const T *w, size_t cnt)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= cnt; i += 8)
        for (int u = 0; u < 8; u++)
            acc[u] += (double)w[i + u] * (double)w[i + u];
    for (; i < cnt; i++)
        acc[0] += (double)w[i] * (double)w[i];
    return FN(lanes8)(acc);
}

/* Sum of squared weights (not biases), for the L2 term. */
static double FN(weight_sq)(const pynn_net *net, const T *params, const size_t *w_off)
{
    double total = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        const T *w = params + w_off[l];
        size_t cnt = (size_t)net->units[l] * (size_t)net->units[l + 1];
        size_t cs = FN(chunk_size)(cnt);
        double seg = 0;
        for (size_t c0 = 0; c0 < cnt; c0 += cs)
            seg += FN(chunk_sq)(w + c0, cnt - c0 < cs ? cnt - c0 : cs);
        total += seg;
    }
    return total;
}

/* Loss and gradients of n rows whose forward pass is already in acts.
 *
 * Sample weights (sw != NULL; row r's weight is sw[sw_idx[r]], or sw[r] when
 * sw_idx is NULL) follow scikit-learn: with S the batch's total weight, the
 * loss is sum_r w_r l_r / S + alpha/2 |W|^2 / S and the gradient is its exact
 * derivative.  The output deltas are scaled by w_r n / S, so the products' 1/n
 * becomes 1/S; alpha is scaled by n / S likewise.  A batch of total weight 0
 * carries no data: its loss and data gradient are 0 (the L2 term keeps 1/n). */
static double FN(net_backward)(const pynn_net *net, const T *params, T *grads,
                               const size_t *w_off, const size_t *b_off, const T *x,
                               const T *y, const T *sw, const int64_t *sw_idx, size_t n,
                               double alpha, double wsq, T *acts, T *d0, T *d1, T *apack,
                               size_t apack_len, int nt)
{
    size_t L = net->n_layers;
    size_t m = (size_t)net->units[L];
    /* the start of each layer's cached output inside acts */
    T *a_last = acts;
    for (size_t l = 1; l < L; l++)
        a_last += n * (size_t)net->units[l];
    double loss;
    FN(output_delta_rows)(d0, a_last, y, n, m, net->output, net->loss);
    if (sw == NULL) {
        loss = FN(loss_sum)(a_last, y, n * m, net->loss) / (double)n;
        if (alpha > 0)
            loss += 0.5 * alpha * wsq / (double)n;
    } else {
        double total = 0, wloss = 0;
        for (size_t r = 0; r < n; r++) {
            double w = (double)sw[sw_idx ? (size_t)sw_idx[r] : r];
            total += w;
            if (w != 0)
                wloss += w * FN(loss_sum)(a_last + r * m, y + r * m, m, net->loss);
        }
        double scale = total > 0 ? (double)n / total : 0;
        for (size_t r = 0; r < n; r++) {
            T f = (T)((double)sw[sw_idx ? (size_t)sw_idx[r] : r] * scale);
            T *d = d0 + r * m;
            for (size_t k = 0; k < m; k++)
                d[k] *= f;
        }
        loss = total > 0 ? wloss / total : 0;
        if (total > 0) {
            if (alpha > 0)
                loss += 0.5 * alpha * wsq / total;
            alpha *= scale;
        } else if (alpha > 0) {
            loss += 0.5 * alpha * wsq / (double)n;
        }
    }
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
        /* no dx for the first layer: nothing upstream needs it; below it, the
         * hidden activation's derivative is fused into the dx product */
        FN(dense_bwd)(l ? d1 : NULL, grads + w_off[l], grads + b_off[l], d0, in,
                      params + w_off[l], n, nin, nout, alpha, l ? in : NULL, net->hidden,
                      apack, apack_len, nt);
        if (l) {
            T *t = d0; d0 = d1; d1 = t;
        }
    }
    return loss;
}

/* One optimizer step over the arena, layer segment by layer segment; returns
 * the new sum of squared weights when the L2 term needs it (else 0). */
/* One chunk of an optimizer step; returns the chunk's sum of squares if asked. */
static double FN(update_chunk)(const pynn_optim *opt, uint64_t t, T *p, T *a, T *b,
                               const T *g, size_t cnt, int want_sq)
{
    double sq[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    double *s = want_sq ? sq : NULL;
    if (opt->solver == PYNN_SOLVER_SGD)
        FN(sgd)(p, a, g, cnt, (T)opt->learning_rate, (T)opt->momentum, opt->nesterov, s);
    else
        FN(adam)(p, a, b, g, cnt, opt->learning_rate, opt->beta1, opt->beta2, opt->epsilon,
                 t, s);
    return FN(lanes8)(sq);
}

/* The step over one segment (a W or a b) of the arena, chunk by chunk. */
static double FN(update_seg)(const pynn_optim *opt, uint64_t t, T *p, T *a, T *b, const T *g,
                             size_t size, int want_sq, int n_threads)
{
    size_t cs = FN(chunk_size)(size), nch = (size + cs - 1) / cs;
    double part[256];
#define CHUNK_ARGS(c) opt, t, p + (c) * cs, a ? a + (c) * cs : NULL, b ? b + (c) * cs : NULL, \
                      g + (c) * cs, size - (c) * cs < cs ? size - (c) * cs : cs, want_sq
    int nt = FN(threads_for)(n_threads, size * 4, nch);
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (ptrdiff_t c = 0; c < (ptrdiff_t)nch; c++)
            part[c] = FN(update_chunk)(CHUNK_ARGS((size_t)c));
    } else
#endif
    {
        for (size_t c = 0; c < nch; c++)
            part[c] = FN(update_chunk)(CHUNK_ARGS(c));
    }
#undef CHUNK_ARGS
    double seg = 0;
    for (size_t c = 0; c < nch; c++)
        seg += part[c];
    return seg;
}

/* One optimizer step over the arena, layer segment by layer segment; returns
 * the new sum of squared weights when the L2 term needs it (else 0), summed in
 * the order FN(weight_sq) uses. */
static double FN(update)(const pynn_net *net, const pynn_optim *opt, uint64_t t, T *params,
                         T *grads, T *opt_a, T *opt_b, const size_t *w_off,
                         const size_t *b_off, int n_threads)
{
    int want_sq = opt->alpha > 0;
    /* plain gradient descent keeps no velocity inside the loop (see FN(sgd_seg)) */
    T *a = opt->solver == PYNN_SOLVER_SGD && opt->momentum == 0 ? NULL : opt_a;
    T *b = opt->solver == PYNN_SOLVER_ADAM ? opt_b : NULL;
    double total = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nw = (size_t)net->units[l] * (size_t)net->units[l + 1];
        size_t nb = (size_t)net->units[l + 1];
        size_t wo = w_off[l], bo = b_off[l];
        total += FN(update_seg)(opt, t, params + wo, a ? a + wo : NULL, b ? b + wo : NULL,
                                grads + wo, nw, want_sq, n_threads);
        FN(update_seg)(opt, t, params + bo, a ? a + bo : NULL, b ? b + bo : NULL, grads + bo,
                       nb, 0, n_threads);
    }
    return want_sq ? total : 0;
}

/* The checks every whole-network entry point makes; fills the parameter
 * offsets and the workspace layout for batches of `batch` rows. */
static pynn_status FN(net_prologue)(const pynn_net *net, size_t batch, size_t ws_len,
                                    size_t *w_off, size_t *b_off, pynn__ws_layout *lay)
{
    pynn_status st = pynn__workspace_layout(lay, net, batch);
    if (st != PYNN_OK)
        return st;
    if (net->n_layers > PYNN_MAX_LAYERS)
        return PYNN_ERR_UNSUPPORTED;
    if (ws_len < lay->total)
        return PYNN_ERR_WORKSPACE;
    return pynn_param_offsets(w_off, b_off, net);
}

/* 1 if any of the count values is NaN or infinite: all exponent bits set.  An
 * integer OR over the bits vectorises, unlike a test-and-branch per value. */
static int FN(any_nonfinite)(const T *x, size_t count)
{
    T_UINT bad = 0;
    for (size_t i = 0; i < count; i++) {
        T_UINT u;
        memcpy(&u, x + i, sizeof u);
        bad |= (T_UINT)((u & T_EXP_BITS) == T_EXP_BITS);
    }
    return bad != 0;
}

/* Forward the rows [r0, r0 + rows) into out, using ws (one block's workspace).
 * Returns 1 if those input rows hold a NaN or infinity (checked while they are
 * about to be read anyway, instead of in a separate pass over X). */
static int FN(predict_block)(T *out, const pynn_net *net, const T *params,
                             const size_t *w_off, const size_t *b_off, const T *x,
                             size_t r0, size_t rows, T *acts, T *apack, size_t apack_len,
                             int nt)
{
    size_t L = net->n_layers, nin = (size_t)net->units[0], m = (size_t)net->units[L];
    if (FN(any_nonfinite)(x + r0 * nin, rows * nin))
        return 1;
    FN(net_forward)(net, params, w_off, b_off, x + r0 * nin, rows, acts, apack, apack_len, nt);
    T *a_last = acts;
    for (size_t l = 1; l < L; l++)
        a_last += rows * (size_t)net->units[l];
    memcpy(out + r0 * m, a_last, rows * m * sizeof(T));
    return 0;
}

pynn_status FN(pynn_net_predict)(T *out, const pynn_net *net, const T *params, const T *x,
                                 size_t n, T *ws, size_t ws_len, size_t batch, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    if (out == NULL || params == NULL || x == NULL || ws == NULL || n == 0)
        return PYNN_ERR_ARG;
    pynn_status st = FN(net_prologue)(net, batch, ws_len, w_off, b_off, &lay);
    if (st != PYNN_OK)
        return st;
    size_t blocks = (n + batch - 1) / batch;
    /* Several blocks and room for several workspaces: the blocks go to threads
     * whole (each runs its products on one thread).  Every row is computed the
     * same way in any block, so the bits do not depend on this choice. */
    size_t slots = ws_len / lay.total;
    int nt = n_threads > 0 ? n_threads : pynn_max_threads();
    if ((size_t)nt > blocks)
        nt = (int)blocks;
    if ((size_t)nt > slots)
        nt = (int)slots;
    int bad = 0;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt) reduction(| : bad)
        {
            T *slot = ws + (size_t)omp_get_thread_num() * lay.total;
#pragma omp for schedule(static)
            for (ptrdiff_t b = 0; b < (ptrdiff_t)blocks; b++) {
                size_t r0 = (size_t)b * batch;
                bad |= FN(predict_block)(out, net, params, w_off, b_off, x, r0,
                                         n - r0 < batch ? n - r0 : batch, slot + lay.acts,
                                         slot + lay.apack, lay.total - lay.apack, 1);
            }
        }
        return bad ? PYNN_ERR_NONFINITE : PYNN_OK;
    }
#endif
    for (size_t r0 = 0; r0 < n && !bad; r0 += batch)
        bad = FN(predict_block)(out, net, params, w_off, b_off, x, r0,
                                n - r0 < batch ? n - r0 : batch, ws + lay.acts, ws + lay.apack,
                                lay.total - lay.apack, n_threads);
    return bad ? PYNN_ERR_NONFINITE : PYNN_OK;
}

pynn_status FN(pynn_net_loss_grad)(double *loss, T *grads, const pynn_net *net, const T *params,
                                   const T *x, const T *y, const T *sw, size_t n, double alpha,
                                   T *ws, size_t ws_len, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    if (loss == NULL || grads == NULL || params == NULL || x == NULL || y == NULL ||
        ws == NULL || n == 0 || !(alpha >= 0) || alpha == INFINITY)
        return PYNN_ERR_ARG;
    pynn_status st = FN(net_prologue)(net, n, ws_len, w_off, b_off, &lay);
    if (st != PYNN_OK)
        return st;
    T *acts = ws + lay.acts;
    FN(net_forward)(net, params, w_off, b_off, x, n, acts, ws + lay.apack,
                    lay.total - lay.apack, n_threads);
    double wsq = alpha > 0 ? FN(weight_sq)(net, params, w_off) : 0;
    *loss = FN(net_backward)(net, params, grads, w_off, b_off, x, y, sw, NULL, n, alpha, wsq,
                             acts, ws + lay.delta0, ws + lay.delta1, ws + lay.apack,
                             lay.total - lay.apack, n_threads);
    return PYNN_OK;
}

pynn_status FN(pynn_train)(const pynn_net *net, const pynn_optim *opt, pynn_train_state *state,
                           T *params, T *grads, T *opt_a, T *opt_b, const T *x, const T *y,
                           const T *sw, size_t n, int64_t *order, int shuffle, size_t batch_size,
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
    pynn_status st = FN(net_prologue)(net, batch_size, ws_len, w_off, b_off, &lay);
    if (st != PYNN_OK || (st = pynn_param_count(&n_params, net)) != PYNN_OK)
        return st;

    size_t nin = (size_t)net->units[0], m = (size_t)net->units[net->n_layers];
    T *acts = ws + lay.acts, *xb = ws + lay.xb, *yb = ws + lay.yb;
    size_t steps = 0;
    /* the L2 term's sum of squares, kept current by the optimizer's loop */
    double wsq = opt->alpha > 0 ? FN(weight_sq)(net, params, w_off) : 0;
    while (steps < max_steps) {
        if (state->pos == 0 && shuffle)
            pynn_shuffle(order, n, state->rng);
        size_t rows = n - state->pos < batch_size ? n - state->pos : batch_size;
        const T *xs, *ys, *sws = sw;
        const int64_t *sw_idx = NULL;
        if (shuffle) {
            /* gather this batch's rows; the only copy of X a fit makes */
            const int64_t *idx = order + state->pos;
            for (size_t r = 0; r < rows; r++) {
                memcpy(xb + r * nin, x + (size_t)idx[r] * nin, nin * sizeof(T));
                memcpy(yb + r * m, y + (size_t)idx[r] * m, m * sizeof(T));
            }
            xs = xb;
            ys = yb;
            sw_idx = idx;
        } else {
            xs = x + state->pos * nin;
            ys = y + state->pos * m;
            if (sw)
                sws = sw + state->pos;
        }
        FN(net_forward)(net, params, w_off, b_off, xs, rows, acts, ws + lay.apack,
                        lay.total - lay.apack, n_threads);
        double loss = FN(net_backward)(net, params, grads, w_off, b_off, xs, ys, sws, sw_idx,
                                       rows, opt->alpha, wsq, acts, ws + lay.delta0,
                                       ws + lay.delta1, ws + lay.apack,
                                       lay.total - lay.apack, n_threads);
        if (!isfinite(loss))
            return PYNN_ERR_NONFINITE; /* before the update: weights stay as they were */
        if (opt->solver == PYNN_SOLVER_ADAM)
            state->t += 1;
        wsq = FN(update)(net, opt, state->t, params, grads, opt_a, opt_b, w_off, b_off,
                         n_threads);
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
    if (steps > 0 && opt->solver == PYNN_SOLVER_SGD && opt->momentum == 0) {
        /* the velocity plain gradient descent leaves: -lr g of the last step */
        T lr = (T)opt->learning_rate;
        for (size_t i = 0; i < n_params; i++)
            opt_a[i] = -(lr * grads[i]);
    }
    return PYNN_OK;
}

#undef ROWS
#undef COLS

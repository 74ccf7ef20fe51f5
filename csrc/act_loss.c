/*
 * act_loss.c -- activations, their derivatives and the losses, including the
 * fused output deltas.  Typed: compiled once per element type (typed.h).
 *
 * Derivatives are written through the cached forward outputs a = act(z) and
 * act in place on the delta.  Nothing here allocates.
 */
#include <math.h>
#include "typed.h"

/* ---- activations ------------------------------------------------------------- */

/* Logistic without overflow: exp only ever sees a non-positive argument. */
static inline T sigmoid(T z)
{
    if (z >= 0)
        return (T)1 / ((T)1 + T_EXP(-z));
    T e = T_EXP(z);
    return e / ((T)1 + e);
}

/* a = act(z) in place on n rows of m; softmax is row-wise. */
void pynn__activate_rows(T *a, size_t n, size_t m, pynn_activation act)
{
    size_t nm = n * m;
    switch (act) {
    case PYNN_ACT_IDENTITY:
        break;
    case PYNN_ACT_LOGISTIC:
#ifdef PYNN_X86_SIMD
        if (pynn__isa() != PYNN_ISA_GENERIC) {
            PYNN_TYPED(pynn_logistic_avx2)(a, nm);
            break;
        }
#endif
        for (size_t i = 0; i < nm; i++)
            a[i] = sigmoid(a[i]);
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
    case PYNN_ACT_EXP:
        for (size_t i = 0; i < nm; i++)
            a[i] = T_EXP(a[i]);
        break;
    case PYNN_ACT_SOFTMAX:
#ifdef PYNN_X86_SIMD
        if (pynn__isa() != PYNN_ISA_GENERIC) {
            PYNN_TYPED(pynn_softmax_avx2)(a, n, m);
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

/* delta *= act'(z) in place on n rows of m, with act' written through the
 * cached output a = act(z). */
void pynn__backward_rows(T *delta, const T *a, size_t n, size_t m, pynn_activation act)
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
    case PYNN_ACT_EXP: /* exp' = exp = a */
        for (size_t i = 0; i < nm; i++)
            delta[i] *= a[i];
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

/* a = act(z), in place on an (n, m) block. */
pynn_status pynn_activate(T *a, size_t n, size_t m, pynn_activation act)
{
    size_t nm;
    if (a == NULL || n == 0 || m == 0 || !pynn__act_ok(act))
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, m, &nm))
        return PYNN_ERR_OVERFLOW;
    pynn__activate_rows(a, n, m, act);
    return PYNN_OK;
}

/* delta *= act'(z) in place on an (n, m) block, act' from the cached a. */
pynn_status pynn_activation_backward(T *delta, const T *a, size_t n, size_t m,
                                     pynn_activation act)
{
    size_t nm;
    if (delta == NULL || a == NULL || n == 0 || m == 0 || !pynn__act_ok(act))
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, m, &nm))
        return PYNN_ERR_OVERFLOW;
    pynn__backward_rows(delta, a, n, m, act);
    return PYNN_OK;
}

/* ---- losses -------------------------------------------------------------------
 * Logs see p clipped to [eps, 1 - eps] (eps of the dtype), as scikit-learn
 * does, so a confident wrong answer costs a large finite loss. */

static inline T clip_p(T p)
{
    const T lo = T_EPS, hi = (T)1 - T_EPS;
    return p < lo ? lo : (p > hi ? hi : p);
}

/* The index of the lowest set bit of x != 0. */
static inline size_t lowest_bit(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return (size_t)__builtin_ctzll(x);
#else
    size_t i = 0;
    while (!(x & 1)) {
        x >>= 1;
        i++;
    }
    return i;
#endif
}

/* Sum over nm predictions y_hat against targets y of the per-element loss
 * (not divided by the row count), accumulated in double. */
double pynn__loss_sum(const T *yh, const T *y, size_t nm, pynn_loss kind)
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
            double p = (double)clip_p(yh[i]), t = (double)y[i];
            /* x log y with 0 log 0 = 0, as scipy's xlogy */
            if (t != 0)
                s -= t * log(p);
            if (t != 1)
                s -= (1 - t) * log1p(-p);
        }
        return s;
    case PYNN_LOSS_CATEGORICAL_CE:
        /* the nonzero targets (one per one-hot row) found 64 values at a time
         * without a branch per value, which mispredicted about once a row; the
         * terms in index order, as a branch per value takes them */
        for (size_t i0 = 0; i0 < nm; i0 += 64) {
            size_t len = nm - i0 < 64 ? nm - i0 : 64;
            uint64_t nz = 0;
            for (size_t j = 0; j < len; j++)
                nz |= (uint64_t)(y[i0 + j] != 0) << j;
            while (nz) {
                size_t i = i0 + lowest_bit(nz);
                nz &= nz - 1;
                s -= (double)y[i] * log((double)clip_p(yh[i]));
            }
        }
        return s;
    case PYNN_LOSS_HALF_POISSON:
        for (size_t i = 0; i < nm; i++) {
            double p = (double)yh[i], t = (double)y[i];
            /* y log(y / yhat) with 0 log 0 = 0, as scipy's xlogy */
            s += (t != 0 ? t * log(t / p) : 0.0) - t + p;
        }
        return s;
    }
    return NAN;
}

/* Mean loss over the n rows of (n, m) predictions y_hat against targets y. */
pynn_status pynn_loss(double *loss, const T *y_hat, const T *y, size_t n, size_t m,
                      pynn_loss kind)
{
    size_t nm;
    if (loss == NULL || y_hat == NULL || y == NULL || n == 0 || m == 0 || !pynn__loss_ok(kind))
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, m, &nm))
        return PYNN_ERR_OVERFLOW;
    *loss = pynn__loss_sum(y_hat, y, nm, kind) / (double)n;
    return PYNN_OK;
}

/* delta_k = d loss_k / d z_k for each of the n rows of m (not divided by n). */
void pynn__output_delta_rows(T *delta, const T *yh, const T *y, size_t n, size_t m,
                             pynn_activation act, pynn_loss kind)
{
    size_t nm = n * m;
    int fused = (act == PYNN_ACT_SOFTMAX && kind == PYNN_LOSS_CATEGORICAL_CE) ||
                (act == PYNN_ACT_LOGISTIC && kind == PYNN_LOSS_BINARY_CE) ||
                (act == PYNN_ACT_IDENTITY && kind == PYNN_LOSS_HALF_SQUARED) ||
                (act == PYNN_ACT_EXP && kind == PYNN_LOSS_HALF_POISSON) ||
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
            T p = clip_p(yh[i]);
            delta[i] = (p - y[i]) / (p * ((T)1 - p));
        }
        break;
    case PYNN_LOSS_CATEGORICAL_CE:
        for (size_t i = 0; i < nm; i++)
            delta[i] = -y[i] / clip_p(yh[i]);
        break;
    case PYNN_LOSS_HALF_POISSON: /* d/dyhat [y log(y/yhat) - y + yhat] = 1 - y / yhat */
        for (size_t i = 0; i < nm; i++)
            delta[i] = (T)1 - y[i] / yh[i];
        break;
    }
    pynn__backward_rows(delta, yh, n, m, act);
}

/* delta = d loss_k / d z_k for every row k of (n, m) predictions y_hat. */
pynn_status pynn_output_delta(T *delta, const T *y_hat, const T *y, size_t n, size_t m,
                              pynn_activation act, pynn_loss kind)
{
    size_t nm;
    if (delta == NULL || y_hat == NULL || y == NULL || n == 0 || m == 0 ||
        !pynn__act_ok(act) || !pynn__loss_ok(kind))
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, m, &nm))
        return PYNN_ERR_OVERFLOW;
    pynn__output_delta_rows(delta, y_hat, y, n, m, act, kind);
    return PYNN_OK;
}

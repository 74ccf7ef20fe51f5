/*
 * adam_rows.h -- Adam's update of one chunk of the parameter arena, written
 * once and compiled per instruction set: optim.c (baseline x86-64, or any
 * platform), optim_avx2.c and optim_avx512.c (their files' target flags), where
 * the compiler vectorises the same loop wider.  Each element's arithmetic is a
 * correctly rounded multiply, add, square root and divide, never contracted
 * (-ffp-contract=off), so every build gives the same bits; the sums of squares
 * keep SQ_LANES lanes in a fixed order (below), which vectorises without
 * reordering any lane's additions.
 *
 * The includer defines T (float or double), T_SQRT (its square root) and
 * ADAM_NAME(x), the name of the one function defined here:
 *   void ADAM_NAME(adam_chunk)(T *p, T *m, T *v, const T *g, size_t cnt, T lt,
 *                              T c1, T c2, T d1, T d2, T e, double *sq)
 *     m <- c1 m + d1 g;  v <- c2 v + d2 g^2;  p <- p - lt m / (sqrt(v) + e)
 *     (c = beta, d = 1 - beta, lt the bias-corrected step size); sq (NULL: not
 *     wanted): SQ_LANES partial sums of the new p's squares, added to.
 * It may be included more than once (float, then double).
 */
#ifndef PYNN_ADAM_ROWS_ONCE
#define PYNN_ADAM_ROWS_ONCE
/* Partial sums of squares kept per lane: position i + u of a block of
 * SQ_LANES goes into lane u, the tail into lane 0 (optim.c adds the lanes
 * in a fixed tree). */
#define SQ_LANES 8

/* The optimizers' loops walk a chunk in blocks of SQ_LANES, BODY seeing i
 * (the position) and slot (its lane). */
#define BLOCKED_LOOP(size, BODY)                                                 \
    do {                                                                         \
        size_t i_ = 0;                                                           \
        for (; i_ + SQ_LANES <= (size); i_ += SQ_LANES)                          \
            for (int u_ = 0; u_ < SQ_LANES; u_++) {                              \
                const size_t i = i_ + u_, slot = (size_t)u_;                     \
                BODY;                                                            \
            }                                                                    \
        for (; i_ < (size); i_++) {                                              \
            const size_t i = i_, slot = 0;                                       \
            BODY;                                                                \
        }                                                                        \
    } while (0)

/* ... adding each updated value's square to sq[lane] when want_sq */
#define SQ_ADD(x) do { if (want_sq) sq[slot] += (double)(x) * (double)(x); } while (0)
#endif

static PYNN_ALWAYS_INLINE void
ADAM_NAME(adam_body)(T *restrict p, T *restrict m, T *restrict v, const T *restrict g,
                     size_t size, T lt, T c1, T c2, T d1, T d2, T e, double *restrict sq,
                     const int want_sq)
{
    BLOCKED_LOOP(size, {
        m[i] = c1 * m[i] + d1 * g[i];
        v[i] = c2 * v[i] + d2 * g[i] * g[i];
        p[i] -= lt * m[i] / (T_SQRT(v[i]) + e);
        SQ_ADD(p[i]);
    });
}

void ADAM_NAME(adam_chunk)(T *restrict p, T *restrict m, T *restrict v, const T *restrict g,
                           size_t cnt, T lt, T c1, T c2, T d1, T d2, T e, double *restrict sq)
{
    if (sq)
        ADAM_NAME(adam_body)(p, m, v, g, cnt, lt, c1, c2, d1, d2, e, sq, 1);
    else
        ADAM_NAME(adam_body)(p, m, v, g, cnt, lt, c1, c2, d1, d2, e, NULL, 0);
}

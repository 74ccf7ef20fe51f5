/*
 * optim.c -- the optimizers (SGD, momentum, Nesterov, Adam): one flat loop over
 * the parameter arena, in fixed chunks, with the L2 term's sum of squared
 * weights kept current on the way.  Typed: compiled once per element type
 * (typed.h).
 *
 * Determinism: a segment (one W or one b of the arena) is cut into chunks
 * whose size depends only on the segment's length; threads take whole chunks
 * and the chunks' partial sums combine in chunk order, so no bit depends on
 * the thread count.
 */
#include <math.h>
#include "typed.h"

/* Segments are cut into chunks of pynn__chunk_size scalars (internal.h).
 * SQ_LANES, BLOCKED_LOOP, SQ_ADD and Adam's update of a chunk: adam_rows.h,
 * which optim_avx2.c and optim_avx512.c compile wider (the same bits). */
#define ADAM_NAME(x) PYNN_TYPED(pynn_##x##_generic)
#include "adam_rows.h"

/* ---- the update rules ----------------------------------------------------------
 * The loops walk the arena in blocks of SQ_LANES; when want_sq, they also add
 * each updated value's square to sq[lane] (see SQ_LANES), the order chunk_sq
 * uses, so the L2 term of the next step costs no extra pass over the weights. */

/* v <- momentum v - lr g;  p <- p + v  (Nesterov: p <- p + momentum v - lr g).
 * With momentum 0, v = -lr g exactly, so the old v is not read. */
static PYNN_ALWAYS_INLINE void
sgd_seg(T *restrict p, T *v, const T *restrict g, size_t size, T lr, T mom, int nesterov,
        double *restrict sq, const int want_sq)
{
    if (mom == 0 && v == NULL)
        /* plain gradient descent inside the step loop: the velocity, -lr g,
         * is written by the call's last step only (pynn__optim_step's vel) */
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

/* One SGD step over size scalars; sq (NULL: not wanted) gets the squares. */
static void sgd(T *p, T *v, const T *g, size_t size, T lr, T mom, int nesterov, double *sq)
{
    if (sq)
        sgd_seg(p, v, g, size, lr, mom, nesterov, sq, 1);
    else
        sgd_seg(p, v, g, size, lr, mom, nesterov, NULL, 0);
}

/* Adam's step size with the bias correction folded in, as scikit-learn does. */
static double adam_lr(double lr, double b1, double b2, uint64_t t)
{
    return lr * sqrt(1.0 - pow(b2, (double)t)) / (1.0 - pow(b1, (double)t));
}

/* One Adam step (t >= 1 counts this step); sq (NULL: not wanted) gets the squares. */
static void adam(T *p, T *m, T *v, const T *g, size_t size, double lr, double b1, double b2,
                 double eps, uint64_t t, double *sq)
{
    T lt = (T)adam_lr(lr, b1, b2, t), c1 = (T)b1, c2 = (T)b2, e = (T)eps;
    T d1 = (T)(1.0 - b1), d2 = (T)(1.0 - b2);
    switch (PYNN_ISA_FLOAT(pynn__isa())) {
#ifdef PYNN_X86_SIMD
    case PYNN_ISA_AVX512:
        PYNN_TYPED(pynn_adam_chunk_avx512)(p, m, v, g, size, lt, c1, c2, d1, d2, e, sq);
        return;
    case PYNN_ISA_AVX2:
        PYNN_TYPED(pynn_adam_chunk_avx2)(p, m, v, g, size, lt, c1, c2, d1, d2, e, sq);
        return;
#endif
    default:
        PYNN_TYPED(pynn_adam_chunk_generic)(p, m, v, g, size, lt, c1, c2, d1, d2, e, sq);
        return;
    }
}

#undef SQ_ADD
#undef BLOCKED_LOOP

/* One SGD step over size scalars:
 *   v <- momentum v - lr g;  p <- p + v   (Nesterov: p <- p + momentum v - lr g) */
pynn_status pynn_sgd_update(T *params, T *velocity, const T *grads, size_t size, double lr,
                            double momentum, int nesterov)
{
    if (params == NULL || velocity == NULL || grads == NULL || size == 0 || !(lr > 0) ||
        !(momentum >= 0 && momentum <= 1))
        return PYNN_ERR_ARG;
    sgd(params, velocity, grads, size, (T)lr, (T)momentum, nesterov, NULL);
    return PYNN_OK;
}

/* One Adam step over size scalars (t >= 1 counts this step):
 *   m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
 *   p <- p - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps) */
pynn_status pynn_adam_update(T *params, T *m, T *v, const T *grads, size_t size, double lr,
                             double beta1, double beta2, double eps, uint64_t t)
{
    if (params == NULL || m == NULL || v == NULL || grads == NULL || size == 0 || t == 0 ||
        !(lr > 0) || !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) || !(eps > 0))
        return PYNN_ERR_ARG;
    adam(params, m, v, grads, size, lr, beta1, beta2, eps, t, NULL);
    return PYNN_OK;
}

/* ---- chunks and sums of squares ------------------------------------------------ */

static size_t chunk_size(size_t size) { return pynn__chunk_size(size); }

static size_t chunk_count(size_t size, size_t cs) { return size / cs + (size % cs != 0); }

_Static_assert(SQ_LANES == 8, "lanes_sum adds exactly eight partial sums");

/* The lanes' partial sums combined in a fixed tree. */
static double lanes_sum(const double *sq)
{
    return ((sq[0] + sq[1]) + (sq[2] + sq[3])) + ((sq[4] + sq[5]) + (sq[6] + sq[7]));
}

/* Sum of squares of one chunk, lane by lane as the optimizers' loop adds them. */
static double chunk_sq(const T *w, size_t cnt)
{
    double acc[SQ_LANES] = {0};
    size_t i = 0;
    for (; i + SQ_LANES <= cnt; i += SQ_LANES)
        for (int u = 0; u < SQ_LANES; u++)
            acc[u] += (double)w[i + u] * (double)w[i + u];
    for (; i < cnt; i++)
        acc[0] += (double)w[i] * (double)w[i];
    return lanes_sum(acc);
}

/* Sum of squared weights (not biases), for the L2 term: chunk sums added in
 * chunk order within a layer, layers in order -- the order pynn__optim_step
 * uses, so both give the same bits. */
double pynn__weight_sq(const pynn_net *net, const T *params, const size_t *w_off)
{
    double total = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        const T *w = params + w_off[l];
        size_t cnt = (size_t)net->units[l] * (size_t)net->units[l + 1];
        size_t cs = chunk_size(cnt);
        double seg = 0;
        for (size_t c0 = 0; c0 < cnt; c0 += cs)
            seg += chunk_sq(w + c0, cnt - c0 < cs ? cnt - c0 : cs);
        total += seg;
    }
    return total;
}

/* ---- one step over the arena ------------------------------------------------- */

/* One chunk of an optimizer step; returns the chunk's sum of squares if asked. */
static double update_chunk(const pynn_optim *opt, uint64_t t, T *p, T *a, T *b, const T *g,
                           size_t cnt, int want_sq)
{
    double sq[SQ_LANES] = {0};
    double *s = want_sq ? sq : NULL;
    if (opt->solver == PYNN_SOLVER_SGD)
        sgd(p, a, g, cnt, (T)opt->learning_rate, (T)opt->momentum, opt->nesterov, s);
    else
        adam(p, a, b, g, cnt, opt->learning_rate, opt->beta1, opt->beta2, opt->epsilon, t, s);
    return lanes_sum(sq);
}

/* This thread's share of the chunks of one segment (a W or a b) of the arena;
 * chunk c's new sum of squares goes to part[c] (part NULL: not wanted). */
static void update_seg(double *part, T *p, T *a, T *b, const T *g, const pynn_optim *opt,
                       uint64_t t, size_t size, const pynn_team *tm)
{
    size_t cs = chunk_size(size), nch = chunk_count(size, cs), c0, c1;
    pynn__share(nch, tm, &c0, &c1);
    for (size_t c = c0; c < c1; c++) {
        double sq = update_chunk(opt, t, p + c * cs, a ? a + c * cs : NULL,
                                 b ? b + c * cs : NULL, g + c * cs,
                                 size - c * cs < cs ? size - c * cs : cs, part != NULL);
        if (part)
            part[c] = sq;
    }
}

/* One optimizer step over the arena, segment by segment, each thread of the
 * team its share of every segment's chunks (no sync between segments):
 *   SGD:  v <- momentum v - lr g;  p <- p + v   (Nesterov: p <- p + momentum v - lr g)
 *   Adam: m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
 *         p <- p - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)
 * opt_a is v (SGD) or m (Adam), opt_b Adam's v (unused by SGD).  When the L2
 * term needs it (opt->alpha > 0), each chunk of every W leaves its new sum of
 * squares in sq_parts (layout.c: the workspace's sq); after a sync,
 * pynn__optim_wsq adds them up.  Layers from fused_from on whose update fuses
 * (pynn__sgd_fuses) were updated by the backward pass already (plain gradient
 * descent, pynn__net_backward's upd): only their sums of squares are taken,
 * chunk by chunk as the update would; so are those of the layers whose W it
 * updated in slices (pynn__sgd_hidden, where fused_from < n_layers: 1 for
 * sparse input), whose b is updated here.
 * vel: plain gradient descent keeps no velocity inside the step loop (see
 * sgd_seg) but in its last step, where vel = opt_a gets -lr g.
 * Returns whether it wrote anything (0: every layer fused and no alpha). */
int pynn__optim_step(T *params, T *opt_a, T *opt_b, const T *grads, const pynn_net *net,
                      const pynn_optim *opt, uint64_t t, const size_t *w_off,
                      const size_t *b_off, double *sq_parts, size_t fused_from, T *vel,
                      const pynn_team *tm)
{
    int want_sq = opt->alpha > 0;
    T *a = opt->solver == PYNN_SOLVER_SGD && opt->momentum == 0 ? vel : opt_a;
    T *b = opt->solver == PYNN_SOLVER_ADAM ? opt_b : NULL;
    int wrote = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nw = (size_t)net->units[l] * (size_t)net->units[l + 1];
        size_t nb = (size_t)net->units[l + 1];
        size_t wo = w_off[l], bo = b_off[l];
        /* (W updated in slices during the backward pass: pynn__sgd_hidden) */
        int hidden = fused_from < net->n_layers &&
                     pynn__sgd_hidden(net, l, fused_from == 1, sizeof(T));
        if ((l >= fused_from && pynn__sgd_fuses(net, l, sizeof(T))) || hidden) {
            wrote |= want_sq;
            if (want_sq) {
                size_t cs = chunk_size(nw), c0, c1;
                pynn__share(chunk_count(nw, cs), tm, &c0, &c1);
                for (size_t c = c0; c < c1; c++)
                    sq_parts[c] = chunk_sq(params + wo + c * cs, nw - c * cs < cs ? nw - c * cs : cs);
            }
            sq_parts += pynn__chunk_count(nw);
            if (hidden) {
                update_seg(NULL, params + bo, a ? a + bo : NULL, NULL, grads + bo, opt, t, nb,
                           tm);
                wrote = 1;
            }
            continue;
        }
        update_seg(want_sq ? sq_parts : NULL, params + wo, a ? a + wo : NULL,
                   b ? b + wo : NULL, grads + wo, opt, t, nw, tm);
        update_seg(NULL, params + bo, a ? a + bo : NULL, b ? b + bo : NULL, grads + bo, opt, t,
                   nb, tm);
        sq_parts += pynn__chunk_count(nw);
        wrote = 1;
    }
    return wrote;
}

/* The sum of squared weights a step left in sq_parts: chunk sums added in chunk
 * order within a layer, layers in order (as pynn__weight_sq adds them). */
double pynn__optim_wsq(const pynn_net *net, const double *sq_parts)
{
    double total = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nch = pynn__chunk_count((size_t)net->units[l] * (size_t)net->units[l + 1]);
        double seg = 0;
        for (size_t c = 0; c < nch; c++)
            seg += sq_parts[c];
        total += seg;
        sq_parts += nch;
    }
    return total;
}

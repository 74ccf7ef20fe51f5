/*
 * net.c -- whole-network passes: forward, backward (loss and gradient of every
 * parameter), predict and loss-and-gradient of a data set.  Typed: compiled
 * once per element type (typed.h).
 *
 * Layer l's cached output sits in the workspace's acts block at offset
 * n * (u_1 + ... + u_l) for a pass over n rows; the arena's offset table
 * (w_off, b_off) serves parameters and gradients alike.
 */
#include <math.h>
#include <string.h>
#if defined(PYNN_X86_SIMD) && defined(__SSE2__)
#include <emmintrin.h>
#endif
#include "typed.h"

/* Layer l's cached output (l = 0: the first hidden layer) inside acts, for a
 * pass over n rows. */
static const T *layer_output(const T *acts, const pynn_net *net, size_t n, size_t l)
{
    for (size_t i = 1; i <= l; i++)
        acts += n * (size_t)net->units[i];
    return acts;
}

/* The output layer's cached activations inside acts, for a pass over n rows. */
static const T *last_output(const T *acts, const pynn_net *net, size_t n)
{
    return layer_output(acts, net, n, net->n_layers - 1);
}

/* Layer l's input: x for the first layer, else the output cached below it. */
static const T *layer_input(const T *acts, const pynn_net *net, size_t n, const T *x, size_t l)
{
    return l == 0 ? x : layer_output(acts, net, n, l - 1);
}

/* The packing room of the workspace ws (layout.c). */
pynn_apack pynn__apack_of(T *ws, const pynn__ws_layout *lay)
{
    pynn_apack ap;
    ap.t_len = (lay->apack_r - lay->apack_t) / 2;
    ap.t[0] = ws + lay->apack_t;
    ap.t[1] = ap.t[0] + ap.t_len;
    ap.r = ws + lay->apack_r;
    ap.r_len = lay->sq - lay->apack_r;
    ap.bw = ws + lay->bw;
    ap.bw_len = lay->bw2 - lay->bw;
    ap.bw2 = ws + lay->bw2;
    ap.bw2_len = lay->total - lay->bw2;
    ap.bf16 = lay->bf16;
    ap.wpack = NULL;
    ap.wpack_w = NULL;
    ap.wpack_off = NULL;
    ap.wpack_nr = 0;
    ap.z0 = NULL;
    ap.x_next = NULL;
    ap.x_next_idx = NULL;
    ap.xt0_mode = -1;
    return ap;
}

/* Forward n rows (n <= the workspace's batch):
 *   a_0 = x (or the CSR rows sx);  a_{l+1} = act_l(a_l W_l + b_l)  into acts,
 * layer after layer, the team syncing after each (and so at the end).
 * defer_out: the output layer's activation, unless the product fuses it (relu),
 * is left to pynn__net_backward, which applies it with the output delta. */
void pynn__net_forward(T *acts, const pynn_net *net, const T *params, const size_t *w_off,
                       const size_t *b_off, const T *x, const pynn_csr *sx, size_t n,
                       int defer_out, const pynn_apack *ap, const pynn_team *tm)
{
    const T *in = x;
    T *out = acts;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        pynn_activation act = l + 1 == net->n_layers ? net->output : net->hidden;
        /* an output activation the product cannot fuse waits for pynn__net_backward */
        if (l + 1 == net->n_layers && defer_out && act != PYNN_ACT_RELU)
            act = PYNN_ACT_IDENTITY;
        if (l == 0 && sx)
            pynn__sparse_fwd(out, sx, params + w_off[0], params + b_off[0], n, nout, act, tm);
        else
            pynn__dense_fwd(out, in, params + w_off[l], params + b_off[l], n, nin, nout, act, ap,
                            ap && ap->wpack && ap->wpack_off[l] != SIZE_MAX
                                ? ap->wpack + ap->wpack_off[l] : NULL,
                            ap && l == 0 ? ap->z0 : NULL, ap && l == 0 ? ap->x_next : NULL,
                            ap && l == 0 ? ap->x_next_idx : NULL, tm);
        pynn__sync(tm);
        in = out;
        out += n * nout;
    }
}

/* Sample weights, following scikit-learn (row r's weight is sw[sw_idx[r]], or
 * sw[r] when sw_idx is NULL): with S the rows' total weight,
 *   loss = sum_r w_r l_r / S + alpha/2 |W|^2 / S.
 * Its exact derivative: the output deltas are scaled by w_r n / S, so the
 * products' 1/n becomes 1/S, and alpha by n / S likewise.  Rows of total
 * weight 0 carry no data: loss and data gradient 0 (the L2 term keeps 1/n). */
static double sw_of(const T *sw, const int64_t *sw_idx, size_t r)
{
    return (double)sw[sw_idx ? (size_t)sw_idx[r] : r];
}

/* S, added in row order (every thread of a team computes it alike). */
static double sw_total(const T *sw, const int64_t *sw_idx, size_t n)
{
    double total = 0;
    for (size_t r = 0; r < n; r++)
        total += sw_of(sw, sw_idx, r);
    return total;
}

/* The weighted loss of n rows (see above) from the sum of their weighted
 * losses w_r l_r and of their weights. */
static double weighted_loss(double wloss, double total, size_t n, double alpha, double wsq)
{
    double loss = total > 0 ? wloss / total : 0;
    if (total > 0) {
        if (alpha > 0)
            loss += 0.5 * alpha * wsq / total;
    } else if (alpha > 0) {
        loss += 0.5 * alpha * wsq / (double)n;
    }
    return loss;
}

/* Plain gradient descent for layer l fused into its backward pass (none
 * without upd): its W and b in upd, its velocity in vel (NULL: none). */
static pynn_sgd_fused sgd_of(T *upd, T *vel, T lr, const size_t *w_off, const size_t *b_off,
                             size_t l, const pynn_apack *ap)
{
    pynn_sgd_fused sgd = {0};
    if (upd) {
        sgd.w = upd + w_off[l];
        sgd.b = upd + b_off[l];
        sgd.vw = vel ? vel + w_off[l] : NULL;
        sgd.vb = vel ? vel + b_off[l] : NULL;
        sgd.lr = lr;
        /* (and W's packed copy, where train.c keeps one current) */
        if (ap && ap->wpack_w && ap->wpack_off[l] != SIZE_MAX)
            sgd.wpack = ap->wpack_w + ap->wpack_off[l];
    }
    return sgd;
}

/* Layer j's W, where plain gradient descent updates it in slices between the
 * tiles of layer j - 1's weight gradient (pynn__sgd_hidden): this thread's
 * share of it, in the optimizer's chunks, in *bg; else NULL. */
static pynn_sgd_bg *bg_of(pynn_sgd_bg *bg, T *upd, const T *grads, T *vel, T lr,
                          const pynn_net *net, const size_t *w_off, size_t j, int sparse,
                          const pynn_team *tm)
{
    if (!upd || !pynn__sgd_hidden(net, j, sparse, sizeof(T)))
        return NULL;
    size_t nw = (size_t)net->units[j] * (size_t)net->units[j + 1];
    size_t cs = pynn__chunk_size(nw), c0, c1;
    pynn__share(pynn__chunk_count(nw), tm, &c0, &c1);
    bg->w = upd + w_off[j];
    bg->g = grads + w_off[j];
    bg->v = vel ? vel + w_off[j] : NULL;
    bg->lr = lr;
    bg->pos = c0 * cs < nw ? c0 * cs : nw;
    bg->end = c1 * cs < nw ? c1 * cs : nw;
    if (bg->pos > bg->end)
        bg->pos = bg->end;
    return bg;
}

/* Loss and gradients of n rows whose forward pass (defer_out) is in acts; returns
 *   L = 1/n sum_r l(a_L[r], y[r]) + alpha/2 |W|^2 / n   (sample weights: see
 *   weighted_loss), and fills grads with dL/dparams by the chain rule, from the
 *   output delta (fused where loss and output activation match) down to layer 0.
 * wsq is the current sum of squared weights (used when alpha > 0); d0 and d1
 * are the delta ping-pong buffers of the workspace (d2 a third, or NULL).  The
 * team: first each thread its share of the rows (the output activation, the
 * output delta, its sample-weight scaling) while all pack the top layer's
 * x^T; then each layer is one phase, a sync after each (and so at the end).
 * Thread 0 adds up the loss during the first of them and hands it to the team
 * in *shared.
 * upd (not NULL, = params): plain gradient descent with step size lr applied
 * to the dense layers' W and b as their gradients come out (pynn__dense_bwd;
 * grads then holds scratch for them; vel: NULL, or where their velocity
 * -(lr g) goes, laid out as params), if the loss is finite: every thread
 * adds it up itself first (the same bits), so none updates a weight of a step
 * whose loss is not.  The first layer on sparse input, and a layer whose W
 * is too large to gain (pynn__sgd_fuses), are left to the optimizer
 * (pynn__optim_step), but for the W of such a layer above the first, which
 * the weight gradient of the layer below updates in slices between its tiles
 * (pynn__sgd_hidden, bg_of; its b stays with the optimizer).  A team then
 * runs each layer's weight gradient one phase later than its input gradient,
 * which reads W:
 * phase l holds layer l's input gradient and layer l + 1's weight gradient
 * (and update), so no thread changes a W another may still read, with no sync
 * more than above; the top layer's input gradient joins the first phase, each
 * thread on its own rows of the output delta.  Three deltas are then live at
 * once, in d0, d1, d2 (the workspace has d2 for three layers or more and
 * batches up to PYNN_GEMM_PACK_ROWS rows). */
double pynn__net_backward(T *grads, T *d0, T *d1, T *d2, const pynn_apack *ap, T *acts,
                          const pynn_net *net, const T *params, const size_t *w_off,
                          const size_t *b_off, const T *x, const pynn_csr *sx,
                          unsigned char *marks, const T *y, const T *sw,
                          const int64_t *sw_idx, size_t n, double alpha, double wsq,
                          double *rowloss, double *shared, T *upd, T *vel, T lr,
                          const pynn_team *tm)
{
    size_t L = net->n_layers;
    size_t m = (size_t)net->units[L];
    T *a_last = (T *)last_output(acts, net, n);
    double alpha_loss = alpha;
    /* a team with the update fused: weight gradients a phase late (above);
     * without d2 (three layers or more), a sync between each layer's input
     * gradient and its update instead (pynn__dense_bwd) */
    int late = upd != NULL && tm->size > 1 && (L < 3 || d2 != NULL);
    size_t r0, r1;
    pynn__share(n, tm, &r0, &r1);
    if (r0 < r1) {
        if (net->output != PYNN_ACT_IDENTITY && net->output != PYNN_ACT_RELU)
            pynn__activate_rows(a_last + r0 * m, r1 - r0, m, net->output);
        pynn__output_delta_rows(d0 + r0 * m, a_last + r0 * m, y + r0 * m, r1 - r0, m,
                                net->output, net->loss);
        /* each row's loss (weighted: w_r l_r, 0 for a row of weight 0), added
         * up in row order after the sync below whatever the team */
        for (size_t r = r0; r < r1; r++) {
            double w = sw ? sw_of(sw, sw_idx, r) : 1;
            rowloss[r] = w == 0 ? 0.0
                         : w * pynn__loss_sum(a_last + r * m, y + r * m, m, net->loss);
        }
    }
    double sw_sum = sw ? sw_total(sw, sw_idx, n) : 0; /* the rows' total weight */
    if (sw) {
        double total = sw_sum;
        double scale = total > 0 ? (double)n / total : 0;
        for (size_t r = r0; r < r1; r++) {
            T f = (T)(sw_of(sw, sw_idx, r) * scale);
            T *d = d0 + r * m;
            for (size_t k = 0; k < m; k++)
                d[k] *= f;
        }
        if (total > 0)
            alpha *= scale;
    }
    if (late && L > 1) {
        /* the top layer's input gradient on this thread's rows of its delta */
        size_t nin = (size_t)net->units[L - 1];
        const T *in = layer_input(acts, net, n, x, L - 1);
        pynn__dense_igrad_rows(d1, d0, params + w_off[L - 1], in, r0, r1, nin, m, net->hidden,
                               ap ? ap->bf16 : net->bf16);
    }
    /* Packs layer l's x^T into room t[slot] for the team (-1: not ahead: no team,
     * or no GEMM there). */
#define WGRAD_GEMM(l) (!((l) == 0 && sx))
#define PREPACK(l, slot) (ap && tm->size > 1 && WGRAD_GEMM(l) ?                             \
        pynn__dense_wgrad_pack(layer_input(acts, net, n, x, (l)), n,                          \
                               (size_t)net->units[l], (size_t)net->units[(l) + 1],           \
                               ap->t[slot], ap->t_len, ap->bf16, tm) : -1)
    int wmode = PREPACK(L - 1, 0);
    pynn__sync(tm);
    /* thread 0 adds up the rows' losses during the first layer's phase (in row
     * order: the same bits whatever the team); with upd, every thread does */
    if (tm->id == 0 || upd) {
        double sum = 0, loss;
        for (size_t r = 0; r < n; r++)
            sum += rowloss[r];
        if (sw == NULL) {
            loss = sum / (double)n;
            if (alpha_loss > 0)
                loss += 0.5 * alpha_loss * wsq / (double)n;
        } else {
            loss = weighted_loss(sum, sw_sum, n, alpha_loss, wsq);
        }
        if (tm->id == 0)
            *shared = loss;
        if (!isfinite(loss))
            upd = NULL; /* the caller stops before any update */
    }
    if (late) {
        /* layer l's delta in d[(L - 1 - l) % 3], its x^T in room (L - 1 - l) & 1;
         * the phase of layer top's weight gradient also runs layer top - 1's
         * input gradient (none for top 1: layer 0 has none) and packs layer
         * top - 1's x^T (the top layer's input gradient ran above) */
        T *d[3] = {d0, d1, d2};
        int wm[PYNN_MAX_LAYERS];
        wm[L - 1] = wmode;
        for (size_t top = L; top-- > 0;) {
            size_t nin = (size_t)net->units[top], nout = (size_t)net->units[top + 1];
            size_t slot = (L - 1 - top) & 1;
            T *delta = d[(L - 1 - top) % 3];
            if (top >= 2)
                pynn__dense_igrad(d[(L + 1 - top) % 3], d[(L - top) % 3],
                                  params + w_off[top - 1], layer_input(acts, net, n, x, top - 1),
                                  n, (size_t)net->units[top - 1], nin, net->hidden, ap, tm);
            if (top == 0 && sx) {
                pynn__sparse_wgrad(grads + w_off[0], grads + b_off[0], delta, sx,
                                   params + w_off[0], n, nin, nout, alpha, marks, tm);
                pynn__sync(tm);
                if (marks && tm->id == 0)
                    pynn__sparse_marks_done(marks, nin, n, alpha);
                break;
            }
            pynn_sgd_fused sgd = sgd_of(upd, vel, lr, w_off, b_off, top, ap);
            pynn_sgd_bg bg;
            pynn__dense_bwd(NULL, grads + w_off[top], grads + b_off[top], delta,
                            layer_input(acts, net, n, x, top), params + w_off[top], NULL, n, nin,
                            nout, alpha, net->hidden, ap, ap ? ap->t[slot] : NULL, wm[top],
                            upd && pynn__sgd_fuses(net, top, sizeof(T)) ? &sgd : NULL,
                            bg_of(&bg, upd, grads, vel, lr, net, w_off, top + 1, sx != NULL, tm),
                            tm);
            if (top > 0)
                wm[top - 1] = PREPACK(top - 1, slot ^ 1);
            pynn__sync(tm);
        }
        return *shared;
    }
    for (size_t l = L; l-- > 0;) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        int slot = (int)((L - 1 - l) & 1);
        const T *in = layer_input(acts, net, n, x, l);
        /* no dx for the first layer: nothing upstream needs it; below it, the
         * hidden activation's derivative is fused into the dx product */
        if (l == 0 && sx) {
            pynn__sparse_wgrad(grads + w_off[0], grads + b_off[0], d0, sx, params + w_off[0],
                               n, nin, nout, alpha, marks, tm);
            pynn__sync(tm);
            if (marks && tm->id == 0)
                pynn__sparse_marks_done(marks, nin, n, alpha);
            continue;
        }
        pynn_sgd_fused sgd = sgd_of(upd, vel, lr, w_off, b_off, l, ap);
        pynn_sgd_bg bg;
        if (l == 0 && ap && ap->xt0_mode >= 0)
            wmode = ap->xt0_mode; /* (packed after the forward pass: train.c) */
        pynn__dense_bwd(l ? d1 : NULL, grads + w_off[l], grads + b_off[l], d0, in,
                        params + w_off[l], l ? in : NULL, n, nin, nout, alpha, net->hidden,
                        ap, ap ? ap->t[slot] : NULL, wmode,
                        upd && pynn__sgd_fuses(net, l, sizeof(T)) ? &sgd : NULL,
                        bg_of(&bg, upd, grads, vel, lr, net, w_off, l + 1, sx != NULL, tm), tm);
        /* the layer below's x^T, packed in this phase into the other room */
        if (l > 0)
            wmode = PREPACK(l - 1, slot ^ 1);
        pynn__sync(tm);
        if (l) {
            T *t = d0; d0 = d1; d1 = t;
        }
    }
#undef PREPACK
#undef WGRAD_GEMM
    return *shared; /* after the last layer's sync */
}

/* 1 if any of the count values is NaN or infinite: all exponent bits set.  An
 * integer OR over the bits vectorises, unlike a test-and-branch per value
 * (also pynn's check of the data it is given to fit, and of the parameters
 * after each epoch, from Python).  The exponent field plus its lowest bit
 * reaches the sign bit exactly when the field is all ones, and never carries
 * past it: an AND and an ADD per value, which the baseline's SSE2 has at 64
 * bits too (a compare of 64-bit integers it has not: a float64 test by
 * compare ran at a quarter of the float32 one's speed). */
int pynn_any_nonfinite(const T *x, size_t count)
{
    const T_UINT exp_lsb = T_EXP_BITS & (T_UINT)(~T_EXP_BITS + 1u);
    T_UINT bad = 0;
    for (size_t i = 0; i < count; i++) {
        T_UINT u;
        memcpy(&u, x + i, sizeof u);
        bad |= (u & T_EXP_BITS) + exp_lsb;
    }
    return (int)(bad >> (sizeof(T_UINT) * 8 - 1));
}

static double max_abs(const T *x, size_t count);

/* The passes at memory speed over a large array that a team shares, each
 * thread a contiguous share: a NaN or infinity check (1 if any), a copy into
 * dst, the largest magnitude (max_abs).  The parts combine by their maximum,
 * which does not depend on the order: the same answer for any team. */
enum { PASS_NONFINITE, PASS_COPY, PASS_MAX_ABS };

static double pass_part(int kind, T *dst, const T *x, size_t count)
{
    switch (kind) {
    case PASS_COPY:
        if (count)
            memcpy(dst, x, count * sizeof(T));
        return 0;
    case PASS_MAX_ABS:
        return max_abs(x, count);
    default:
        return pynn_any_nonfinite(x, count);
    }
}

/* kind's pass over count values on nt threads (pynn__threads_over's count). */
static double pass_threads(int kind, T *dst, const T *x, size_t count, int nt)
{
#ifdef _OPENMP
    if (nt > 1) {
        double top = 0;
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt) reduction(max : top)
        {
            pynn_team tm = pynn__team_me(&bar);
            size_t i0, i1;
            pynn__share(count, &tm, &i0, &i1);
            double part = pass_part(kind, dst ? dst + i0 : NULL, x + i0, i1 - i0);
            top = part > top ? part : top;
        }
        return top;
    }
#else
    (void)nt;
#endif
    return pass_part(kind, dst, x, count);
}

/* Scanning 2^20 values (4-8 MB) or more, a second thread pays. */
int pynn_any_nonfinite_threads(const T *x, size_t count, int n_threads)
{
    if (x == NULL)
        return 0;
    return pass_threads(PASS_NONFINITE, NULL, x, count,
                        pynn__threads_for(n_threads, count, count >> 16)) > 0;
}

/* The copy and the max-abs pass over a model's weights take a team from this
 * many values on: one core's loads and stores run at a fraction of the memory
 * system's bandwidth, and a second thread pays sooner than for a product
 * (PYNN_PAR_MIN_WORK). */
#define PYNN_PASS_MIN_WORK ((size_t)1 << 18)
#define PASS_TEAM(n_threads, count)                                               \
    pynn__threads_over(n_threads, count, PYNN_PASS_MIN_WORK, (count) >> 16)

/* dst = src (count values, not overlapping), in contiguous shares on up to
 * n_threads threads where the copy is large (the snapshots of a model's
 * weights: 0.5-0.9 ms for the wide network's 7 MB on one core). */
void pynn_copy_threads(T *dst, const T *src, size_t count, int n_threads)
{
    if (dst == NULL || src == NULL || count == 0)
        return;
    pass_threads(PASS_COPY, dst, src, count, PASS_TEAM(n_threads, count));
}

/* Forward the rows [r0, r0 + rows) of x (or of the CSR sx) into out, using
 * acts and apack (one block's workspace).  Returns 1 if those input rows hold
 * a NaN or infinity.  A CSR's values are checked before.  Dense rows are
 * checked through the first layer's z0 (ap->z0, float products): a NaN or
 * infinity in a row of x makes every pre-activation of its row NaN or
 * infinite, whatever W and b hold (inf * 0 is NaN, and a sum that takes a NaN
 * or an infinity stays NaN or infinite), so only a block whose z0 is not all
 * finite -- such input, or an overflow -- has its rows of x read a second
 * time, to tell which.  (Before, x was read once more from memory for the
 * check: 4-8% of a prediction's time.)  Without z0 (bf16 products, whose
 * rounding is not relied on here) the rows are checked first. */
static int predict_block(T *out, T *acts, const pynn_apack *ap, const pynn_net *net,
                         const T *params, const size_t *w_off, const size_t *b_off,
                         const T *x, const pynn_csr *sx, size_t r0, size_t rows,
                         const pynn_team *tm)
{
    size_t nin = (size_t)net->units[0], m = (size_t)net->units[net->n_layers];
    if (sx) {
        /* the block's rows as a CSR of their own: indptr from row r0 on */
        pynn_csr blk = {sx->indptr + r0, sx->indices, sx->data, NULL};
        size_t p0 = (size_t)blk.indptr[0], p1 = (size_t)blk.indptr[rows];
        if (pynn_any_nonfinite(sx->data + p0, p1 - p0))
            return 1;
        pynn__net_forward(acts, net, params, w_off, b_off, NULL, &blk, rows, 0, ap, tm);
    } else {
        const T *xb = x + r0 * nin;
        if (!ap->z0 && pynn_any_nonfinite(xb, rows * nin))
            return 1;
        pynn__net_forward(acts, net, params, w_off, b_off, xb, NULL, rows, 0, ap, tm);
        if (ap->z0 && pynn_any_nonfinite(ap->z0, rows) && pynn_any_nonfinite(xb, rows * nin))
            return 1;
    }
    /* the team's share of the block's rows */
    size_t q0, q1;
    pynn__share(rows, tm, &q0, &q1);
    if (q0 < q1)
        memcpy(out + (r0 + q0) * m, last_output(acts, net, rows) + q0 * m,
               (q1 - q0) * m * sizeof(T));
    return 0;
}

/* A block's packing room for predict: the weights packed once (or NULL), and
 * room for the first layer's z0 (dense float input; see predict_block). */
static pynn_apack predict_apack(T *slot, const pynn__ws_layout *lay, const pynn_net *net,
                                const pynn_csr *sx, const T *wpack, const size_t *wpack_off,
                                size_t wpack_nr)
{
    pynn_apack ap = pynn__apack_of(slot, lay);
    ap.wpack = wpack;
    ap.wpack_off = wpack_off;
    ap.wpack_nr = wpack_nr;
    ap.z0 = sx || net->bf16 ? NULL : slot + lay->z0;
    return ap;
}

/* The forward product of layer l, as far as packing its W goes. */
pynn_gemm_args pynn__forward_product(const pynn_net *net, const T *params,
                                     const size_t *w_off, size_t l)
{
    pynn_gemm_args g = {0};
    g.k = (size_t)net->units[l];
    g.n = (size_t)net->units[l + 1];
    g.b = params + w_off[l];
    g.ldb = (ptrdiff_t)g.n;
    g.bf16 = net->bf16;
    return g;
}

/* With more than one block to predict and room enough in tail (tail_len
 * scalars of ws past the blocks' workspaces), every dense layer's W packed
 * once for the forward products, instead of once per block: plan_weights
 * places them, *wpack (NULL: none), layer l's from wpack_off[l] on (SIZE_MAX:
 * not packed), in panels *nr wide; pack_weights packs them, a team's share of
 * each W's rows per thread (the team syncs before any block reads them). */
static void plan_weights(T **wpack, size_t *nr, size_t *wpack_off, const pynn_net *net,
                         const T *params, const size_t *w_off, int csr, size_t blocks, T *tail,
                         size_t tail_len)
{
    size_t total = 0, room[PYNN_MAX_LAYERS];
    *wpack = NULL;
    *nr = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        pynn_gemm_args g = pynn__forward_product(net, params, w_off, l);
        size_t len = l == 0 && csr ? 0 : pynn__gemm_bpack_len(&g);
        room[l] = (len + PYNN_BPACK_ALIGN - 1) / PYNN_BPACK_ALIGN * PYNN_BPACK_ALIGN;
        wpack_off[l] = len ? total : SIZE_MAX;
        total += room[l];
    }
    total += PYNN_BPACK_ALIGN; /* room to align the start */
    if (blocks < 2 || total == PYNN_BPACK_ALIGN || tail_len < total)
        return;
    T *wp = (T *)(((uintptr_t)tail + 63) & ~(uintptr_t)63);
    for (size_t l = 0; l < net->n_layers; l++)
        if (wpack_off[l] != SIZE_MAX) {
            pynn_gemm_args g = pynn__forward_product(net, params, w_off, l);
            /* (no rows: the width alone; every layer in the panels of the
             * first: one path) */
            size_t got = pynn__gemm_prepack_b(&g, wp + wpack_off[l], room[l], 0, 0);
            if (*nr == 0)
                *nr = got;
            if (got == 0 || got != *nr)
                wpack_off[l] = SIZE_MAX;
        }
    *wpack = wp;
}

static void pack_weights(T *wpack, const size_t *wpack_off, const pynn_net *net,
                         const T *params, const size_t *w_off, const pynn_team *tm)
{
    if (wpack == NULL)
        return;
    for (size_t l = 0; l < net->n_layers; l++)
        if (wpack_off[l] != SIZE_MAX) {
            pynn_gemm_args g = pynn__forward_product(net, params, w_off, l);
            size_t p0, p1;
            pynn__share(g.k, tm, &p0, &p1);
            if (p0 < p1)
                pynn__gemm_prepack_b(&g, wpack + wpack_off[l], pynn__gemm_bpack_len(&g), p0, p1);
        }
}

/* Rows go to a team's threads in runs of this many (a multiple of every float
 * path's tile height but AVX2's 6): the shares differ by 16 rows at most. */
#define PREDICT_ROW_GRAIN 16

/* out = network(x) for n rows of x or of the CSR sx, in blocks of `batch` rows. */
static pynn_status predict_rows(T *out, const pynn_net *net, const T *params, const T *x,
                                const pynn_csr *sx, size_t n, T *ws, size_t ws_len,
                                size_t batch, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS], wpack_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    if (out == NULL || params == NULL || (x == NULL && sx == NULL) || ws == NULL || n == 0)
        return PYNN_ERR_ARG;
    pynn_status st = pynn__net_prologue(w_off, b_off, &lay, net, batch, ws_len,
                                        PYNN__WS_PREDICT | (sx != NULL ? PYNN__WS_CSR : 0));
    if (st == PYNN_OK)
        st = pynn__precision_ok(net);
    if (st != PYNN_OK)
        return st;
    int bad = 0;
    (void)n_threads;
    size_t blocks = (n + batch - 1) / batch;
    /* the blocks' workspaces first (as many as threads will use them), then
     * the packed weights in what room is left */
    size_t slots = ws_len / lay.total; /* >= 1: the prologue checked */
#ifdef _OPENMP
    size_t want = (size_t)pynn_threads(n_threads);
    if (want > blocks)
        want = blocks;
    if (want >= 1 && want < slots)
        slots = want;
#else
    slots = 1;
#endif
    T *wpack;
    size_t wpack_nr;
    plan_weights(&wpack, &wpack_nr, wpack_off, net, params, w_off, sx != NULL, blocks,
                 ws + slots * lay.total, ws_len - slots * lay.total);
#define APACK_OF(slot) predict_apack((slot), &lay, net, sx, wpack, wpack_off, wpack_nr)
#ifdef _OPENMP
    int nt = pynn_threads(n_threads);
    if ((size_t)nt > blocks)
        nt = (int)blocks;
    if ((size_t)nt > slots)
        nt = (int)slots;
    if (nt > 1) {
        /* Several blocks and room for several workspaces: each thread takes
         * a contiguous share of the rows, in runs of PREDICT_ROW_GRAIN (whole
         * blocks would leave one thread a block more: 5,120 rows against
         * 4,880 for 10,000 rows in blocks of 256), in blocks of at most
         * `batch` rows, each block on one thread.  Every row is computed the
         * same way in any block, so the bits do not depend on this choice. */
        pynn__team(nt);
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt) reduction(| : bad)
        {
            pynn_team tm = pynn__team_me(&bar), solo = pynn__solo();
            T *slot = ws + (size_t)tm.id * lay.total;
            pynn_apack ap = APACK_OF(slot);
            pack_weights(wpack, wpack_off, net, params, w_off, &tm);
            if (wpack)
                pynn__sync(&tm);
            size_t u0, u1;
            pynn__share((n + PREDICT_ROW_GRAIN - 1) / PREDICT_ROW_GRAIN, &tm, &u0, &u1);
            size_t e = u1 * PREDICT_ROW_GRAIN < n ? u1 * PREDICT_ROW_GRAIN : n;
            for (size_t r0 = u0 * PREDICT_ROW_GRAIN; r0 < e && !bad; r0 += batch)
                bad |= predict_block(out, slot + lay.acts, &ap, net, params, w_off, b_off, x,
                                     sx, r0, e - r0 < batch ? e - r0 : batch, &solo);
        }
        return bad ? PYNN_ERR_NONFINITE : PYNN_OK;
    }
    /* one workspace (or one block): the team shares each block's products */
    nt = pynn__net_threads(net, n < batch ? n : batch, n_threads);
    if (nt > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt)
        {
            pynn_team tm = pynn__team_me(&bar);
            pynn_apack ap = APACK_OF(ws);
            int mine = 0;
            pack_weights(wpack, wpack_off, net, params, w_off, &tm);
            if (wpack)
                pynn__sync(&tm);
            for (size_t r0 = 0; r0 < n && !mine; r0 += batch) {
                mine = predict_block(out, ws + lay.acts, &ap, net, params, w_off, b_off, x, sx,
                                     r0, n - r0 < batch ? n - r0 : batch, &tm);
                /* the next block overwrites acts: everyone's copy must be done */
                if (!mine && r0 + batch < n)
                    pynn__sync(&tm);
            }
            if (tm.id == 0)
                bad = mine;
        }
        return bad ? PYNN_ERR_NONFINITE : PYNN_OK;
    }
#endif
    pynn_team solo = pynn__solo();
    pynn_apack ap = APACK_OF(ws);
    pack_weights(wpack, wpack_off, net, params, w_off, &solo);
    for (size_t r0 = 0; r0 < n && !bad; r0 += batch)
        bad = predict_block(out, ws + lay.acts, &ap, net, params, w_off, b_off, x, sx, r0,
                            n - r0 < batch ? n - r0 : batch, &solo);
#undef APACK_OF
    return bad ? PYNN_ERR_NONFINITE : PYNN_OK;
}

/* out = network(x) for n rows, in blocks of `batch` rows (see pynn.h). */
pynn_status pynn_net_predict(T *out, const pynn_net *net, const T *params, const T *x,
                             size_t n, T *ws, size_t ws_len, size_t batch, int n_threads)
{
    if (x == NULL)
        return PYNN_ERR_ARG;
    return predict_rows(out, net, params, x, NULL, n, ws, ws_len, batch, n_threads);
}

/* The same for n CSR rows (see pynn.h). */
pynn_status pynn_net_predict_csr(T *out, const pynn_net *net, const T *params,
                                 const int64_t *indptr, const int64_t *indices, const T *data,
                                 size_t n, T *ws, size_t ws_len, size_t batch, int n_threads)
{
    if (indptr == NULL || indices == NULL || data == NULL)
        return PYNN_ERR_ARG;
    pynn_csr sx = {indptr, indices, data, NULL};
    return predict_rows(out, net, params, NULL, &sx, n, ws, ws_len, batch, n_threads);
}

/* Loss and gradients on n rows of x or of the CSR sx (see pynn.h). */
static pynn_status loss_grad_rows(double *loss, T *grads, const pynn_net *net, const T *params,
                                  const T *x, const pynn_csr *sx, const T *y, const T *sw,
                                  size_t n, double alpha, T *ws, size_t ws_len, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    if (loss == NULL || grads == NULL || params == NULL || (x == NULL && sx == NULL) ||
        y == NULL || ws == NULL || n == 0 || !(alpha >= 0) || alpha == INFINITY)
        return PYNN_ERR_ARG;
    pynn_status st = pynn__net_prologue(w_off, b_off, &lay, net, n, ws_len,
                                        sx != NULL ? PYNN__WS_CSR : 0);
    if (st == PYNN_OK)
        st = pynn__precision_ok(net);
    if (st != PYNN_OK)
        return st;
    T *acts = ws + lay.acts;
    double wsq = alpha > 0 ? pynn__weight_sq(net, params, w_off) : 0;
    double shared;
    /* one pass: the stateless sparse gradient (marks NULL) writes every row */
#define LOSS_GRAD(tm)                                                                       \
    do {                                                                                    \
        pynn_apack ap = pynn__apack_of(ws, &lay);                                           \
        pynn__net_forward(acts, net, params, w_off, b_off, x, sx, n, 1, &ap, (tm));         \
        double l_ = pynn__net_backward(grads, ws + lay.delta0, ws + lay.delta1, NULL, &ap, acts, \
                                       net, params, w_off, b_off, x, sx, NULL, y, sw, NULL, \
                                       n, alpha, wsq, pynn__row_loss(ws, &lay), &shared,    \
                                       NULL, NULL, 0, (tm));                                \
        if ((tm)->id == 0)                                                                  \
            *loss = l_;                                                                     \
    } while (0)
    int nt = pynn__net_threads(net, n, n_threads);
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt)
        {
            pynn_team tm = pynn__team_me(&bar);
            LOSS_GRAD(&tm);
        }
        return PYNN_OK;
    }
#endif
    pynn_team solo = pynn__solo();
    LOSS_GRAD(&solo);
#undef LOSS_GRAD
    return PYNN_OK;
}

/* Loss (data term + alpha/2 ||W||^2 / n) and gradient of every parameter on
 * the n rows (x, y), sample-weighted by sw (NULL: all 1); see pynn.h. */
pynn_status pynn_net_loss_grad(double *loss, T *grads, const pynn_net *net, const T *params,
                               const T *x, const T *y, const T *sw, size_t n, double alpha,
                               T *ws, size_t ws_len, int n_threads)
{
    if (x == NULL)
        return PYNN_ERR_ARG;
    return loss_grad_rows(loss, grads, net, params, x, NULL, y, sw, n, alpha, ws, ws_len,
                          n_threads);
}

/* The same on n CSR rows (see pynn.h). */
pynn_status pynn_net_loss_grad_csr(double *loss, T *grads, const pynn_net *net,
                                   const T *params, const int64_t *indptr,
                                   const int64_t *indices, const T *data, const T *y,
                                   const T *sw, size_t n, double alpha, T *ws, size_t ws_len,
                                   int n_threads)
{
    if (indptr == NULL || indices == NULL || data == NULL)
        return PYNN_ERR_ARG;
    pynn_csr sx = {indptr, indices, data, NULL};
    return loss_grad_rows(loss, grads, net, params, NULL, &sx, y, sw, n, alpha, ws, ws_len,
                          n_threads);
}

/* ---- finiteness proven by bounds ------------------------------------------------
 * (the largest finite T; the largest pre-activation whose exp and exp of its
 * negation are finite normal numbers) */
#ifdef T_IS_FLOAT
#define BOUND_T_MAX FLT_MAX
#define BOUND_EXP_Z_MAX 80.0
#else
#define BOUND_T_MAX DBL_MAX
#define BOUND_EXP_Z_MAX 700.0
#endif
/* (max_abs's SSE2 vocabulary, T's four floats or two doubles to a register) */
#if defined(PYNN_X86_SIMD) && defined(__SSE2__)
#ifdef T_IS_FLOAT
#define MAXV __m128
#define MAXV_LANES 4
#define MAXV_SET1(v) _mm_set1_ps((float)(v))
#define MAXV_MAX _mm_max_ps
#define MAXV_ANDNOT _mm_andnot_ps
#define MAXV_LOAD _mm_loadu_ps
#define MAXV_STORE _mm_storeu_ps
#else
#define MAXV __m128d
#define MAXV_LANES 2
#define MAXV_SET1(v) _mm_set1_pd(v)
#define MAXV_MAX _mm_max_pd
#define MAXV_ANDNOT _mm_andnot_pd
#define MAXV_LOAD _mm_loadu_pd
#define MAXV_STORE _mm_storeu_pd
#endif
#endif

/*
 * The largest |x_i| of count values (as a double), +inf if any is NaN or
 * infinite: the magnitudes' bit patterns (sign cleared) order as the values do,
 * and NaN's and infinity's lie above every finite one's. */
static double max_abs(const T *x, size_t count)
{
    /* (blocks that stay in L1 between the check for NaN and infinity and the
     * maximum; SSE2's max instructions in x86-64 builds with SIMD kernels (the
     * portable-only build takes no intrinsics) -- the compiler keeps
     * "v > top ? v : top" scalar -- in two registers' lanes) */
    T top = 0;
    for (size_t i0 = 0; i0 < count; i0 += 4096) {
        size_t len = count - i0 < 4096 ? count - i0 : 4096, i = 0;
        const T *b = x + i0;
        if (pynn_any_nonfinite(b, len))
            return INFINITY;
#ifdef MAXV_LANES
        const MAXV sign = MAXV_SET1(-0.0);
        MAXV m[8];
        for (int j = 0; j < 8; j++)
            m[j] = MAXV_SET1(0.0);
        for (; i + 8 * MAXV_LANES <= len; i += 8 * MAXV_LANES)
            for (int j = 0; j < 8; j++)
                m[j] = MAXV_MAX(m[j], MAXV_ANDNOT(sign, MAXV_LOAD(b + i + j * MAXV_LANES)));
        for (int j = 1; j < 8; j++)
            m[0] = MAXV_MAX(m[0], m[j]);
        T lanes[MAXV_LANES];
        MAXV_STORE(lanes, m[0]);
        for (int j = 0; j < MAXV_LANES; j++)
            top = lanes[j] > top ? lanes[j] : top;
#endif
        for (; i < len; i++) {
            T v = b[i] < 0 ? -b[i] : b[i];
            top = v > top ? v : top;
        }
    }
    return (double)top;
}

/* Where an activation's outputs lie, given that its inputs lie within +-z: the
 * bound on |act(z)| (act_bound) and on |act'| (act_slope; -1: not an
 * activation the bounds cover). */
static double act_bound(pynn_activation act, double z)
{
    switch (act) {
    case PYNN_ACT_IDENTITY:
    case PYNN_ACT_RELU:
        return z;
    case PYNN_ACT_LOGISTIC:
    case PYNN_ACT_TANH:
    case PYNN_ACT_SOFTMAX:
    case PYNN_ACT_STEP:
        return 1;
    case PYNN_ACT_EXP:
        return exp(z);
    }
    return -1;
}

static double act_slope(pynn_activation act)
{
    switch (act) {
    case PYNN_ACT_IDENTITY:
    case PYNN_ACT_RELU:
    case PYNN_ACT_TANH:
        return 1;
    case PYNN_ACT_LOGISTIC:
        return 0.25;
    default:
        return -1;
    }
}

/* Whether pynn_net_loss_grad at params, without sample weights, gives a finite
 * loss and finite gradients on every set of n rows whose inputs lie within
 * +-xmax and targets within +-ymax: 1 if bounds on every value the pass
 * computes (pre-activations, activations, deltas, the weight gradients' sums
 * before their 1/n, the loss) prove it, 0 if they do not (the pass must be run
 * to tell), -1 if params itself holds a NaN or infinity.  One pass over params
 * (a large layer's W on up to n_threads threads).
 * The bounds hold for exact arithmetic; each layer's carries a 1/64 margin
 * and each must stay 2^16 below the largest finite T, far more than the
 * rounding of any sum of the pass could add. */
int pynn_finite_bound(const pynn_net *net, const T *params, double xmax, double ymax,
                      double alpha, size_t n, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    if (net == NULL || params == NULL || n == 0 || pynn_param_offsets(w_off, b_off, net) != PYNN_OK)
        return 0;
    size_t L = net->n_layers;
    double wmax[PYNN_MAX_LAYERS], bmax[PYNN_MAX_LAYERS];
    int bad = 0;
    for (size_t l = 0; l < L; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        size_t nw = nin * nout;
        wmax[l] = pass_threads(PASS_MAX_ABS, NULL, params + w_off[l], nw,
                               PASS_TEAM(n_threads, nw));
        bmax[l] = max_abs(params + b_off[l], nout);
        bad |= isinf(wmax[l]) || isinf(bmax[l]);
    }
    if (bad)
        return -1;
    const double lim = (double)BOUND_T_MAX / 65536.0, slack = 1 + 1.0 / 64;
    if (!(xmax >= 0 && xmax <= lim && ymax >= 0 && ymax <= lim && alpha >= 0 && alpha <= lim))
        return 0;
    /* forward: a[l] bounds layer l's inputs, z its pre-activations */
    double a[PYNN_MAX_LAYERS + 1], z = 0;
    a[0] = xmax;
    for (size_t l = 0; l < L; l++) {
        z = (a[l] * wmax[l] * (double)net->units[l] + bmax[l]) * slack;
        if (!(z <= lim))
            return 0;
        pynn_activation act = l + 1 < L ? net->hidden : net->output;
        if (l + 1 < L && act_slope(act) < 0)
            return 0; /* (not a hidden activation) */
        a[l + 1] = act_bound(act, z) * slack;
        if (!(a[l + 1] >= 0 && a[l + 1] <= lim))
            return 0;
    }
    /* the loss and the output delta: the pairs whose delta is yhat - y, and the
     * squared losses after any output the bounds cover */
    double yh = a[L], d;
    pynn_activation out = net->output;
    int fused = (out == PYNN_ACT_SOFTMAX && net->loss == PYNN_LOSS_CATEGORICAL_CE) ||
                (out == PYNN_ACT_LOGISTIC && net->loss == PYNN_LOSS_BINARY_CE) ||
                (out == PYNN_ACT_IDENTITY && net->loss == PYNN_LOSS_HALF_SQUARED) ||
                (out == PYNN_ACT_EXP && net->loss == PYNN_LOSS_HALF_POISSON) ||
                out == PYNN_ACT_STEP;
    double m = (double)net->units[L];
    if (net->loss == PYNN_LOSS_HALF_SQUARED || net->loss == PYNN_LOSS_SQUARED) {
        double e = yh + ymax;
        /* (summed in double over every output of every row) */
        if (!(e * e * m * (double)n <= 1e300))
            return 0;
        if (fused)
            d = e;
        else if (act_slope(out) >= 0)
            d = 2 * e * act_slope(out); /* dl/dyhat times act' */
        else
            return 0;
    } else if (net->loss == PYNN_LOSS_HALF_POISSON && out == PYNN_ACT_EXP) {
        /* yhat = exp(z) >= exp(-z) stays a normal number, so y log(y / yhat)
         * is finite */
        if (!(z <= BOUND_EXP_Z_MAX))
            return 0;
        d = yh + ymax;
    } else if (fused && (net->loss == PYNN_LOSS_BINARY_CE ||
                         net->loss == PYNN_LOSS_CATEGORICAL_CE)) {
        d = yh + ymax; /* the cross-entropies: logs of p clipped to [eps, 1 - eps] */
    } else {
        return 0;
    }
    /* backward: d bounds the deltas of layer l's outputs; the weight gradient's
     * sum over n rows comes before its 1/n, and the L2 term's alpha W / n */
    double pen = 0;
    for (size_t l = L; l-- > 0;) {
        d *= slack;
        if (!(d * (double)n <= lim && a[l] * d * (double)n <= lim && alpha * wmax[l] <= lim))
            return 0;
        pen += alpha * wmax[l] * wmax[l] * (double)net->units[l] * (double)net->units[l + 1];
        if (l > 0) {
            /* (the input gradient's sums come before their act') */
            d *= wmax[l] * (double)net->units[l + 1];
            if (!(d <= lim))
                return 0;
            d *= act_slope(net->hidden);
        }
    }
    return pen / (double)n <= 1e300;
}

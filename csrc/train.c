/*
 * train.c -- the step loop of a fit: epochs of shuffled minibatches, each a
 * forward pass, a backward pass and one optimizer step, run in C from one call
 * until the epoch ends or a step budget is spent.  Typed: compiled once per
 * element type (typed.h).
 */
#include <math.h>
#include <string.h>
#include "typed.h"

/* Every argument pynn_train needs, checked before anything is touched. */
static pynn_status check_train(const pynn_train_state *state, const pynn_optim *opt,
                               const pynn_train_data *d)
{
    if (opt == NULL || state == NULL || d == NULL || d->params == NULL || d->grads == NULL ||
        d->opt_a == NULL || (d->y == NULL) == (d->labels == NULL) ||
        (d->shuffle && d->order == NULL) ||
        (d->x == NULL && (d->x_indptr == NULL || d->x_indices == NULL || d->x_data == NULL)) ||
        d->ws == NULL || d->n == 0 || state->pos >= d->n)
        return PYNN_ERR_ARG;
    /* one place clamps the batch to the data (the Python layer, with a warning) */
    if (d->batch_size == 0 || d->batch_size > d->n)
        return PYNN_ERR_ARG;
    if ((unsigned)opt->solver > PYNN_SOLVER_ADAM || !(opt->learning_rate > 0) ||
        !(opt->alpha >= 0) || opt->alpha == INFINITY)
        return PYNN_ERR_ARG;
    if (opt->solver == PYNN_SOLVER_ADAM &&
        (d->opt_b == NULL || !(opt->beta1 >= 0 && opt->beta1 < 1) ||
         !(opt->beta2 >= 0 && opt->beta2 < 1) || !(opt->epsilon > 0)))
        return PYNN_ERR_ARG;
    if (opt->solver == PYNN_SOLVER_SGD && !(opt->momentum >= 0 && opt->momentum <= 1))
        return PYNN_ERR_ARG;
    return PYNN_OK;
}

/* The rows of one step: pointers into the data, or into the workspace's xb,
 * yb where a shuffled batch was gathered; for CSR input, sx lists the rows
 * (read in place, never gathered) and x is NULL. */
typedef struct {
    const T *x, *y, *sw;
    pynn_csr sx;
    const int64_t *sw_idx;      /* row r's weight is sw[sw_idx[r]]; NULL: sw[r] */
    size_t rows;
} batch_view;

/* Row r of yb (m outputs) from the class label lab (see pynn.h: labels). */
static void label_row(T *yb, size_t r, size_t m, int64_t lab)
{
    T *row = yb + r * m;
    if (m == 1) {
        row[0] = lab == 1 ? (T)1 : (T)0;
        return;
    }
    memset(row, 0, m * sizeof(T));
    if (lab >= 0 && (uint64_t)lab < m)
        row[lab] = 1;
}

/* The batch starting at position pos of the epoch.  Shuffled: its rows are
 * gathered into xb, yb (the only copy of X a fit makes), each thread of the
 * team its share of the rows; else they are read in place.  Targets given as
 * labels become rows of yb either way (each thread its share). */
static batch_view next_batch(T *xb, T *yb, const pynn_train_data *d, size_t pos, size_t nin,
                             size_t m, const pynn_team *tm)
{
    batch_view b;
    b.rows = d->n - pos < d->batch_size ? d->n - pos : d->batch_size;
    b.sx.indices = d->x_indices;
    b.sx.data = d->x_data;
    size_t r0, r1;
    pynn__share(b.rows, tm, &r0, &r1);
    if (d->labels) {
        const int64_t *idx = d->shuffle ? d->order + pos : NULL;
        for (size_t r = r0; r < r1; r++)
            label_row(yb, r, m, d->labels[idx ? (size_t)idx[r] : pos + r]);
    }
    if (d->shuffle) {
        const int64_t *idx = d->order + pos;
        for (size_t r = r0; r < r1; r++) {
            if (d->x)
                memcpy(xb + r * nin, d->x + (size_t)idx[r] * nin, nin * sizeof(T));
            if (d->y)
                memcpy(yb + r * m, d->y + (size_t)idx[r] * m, m * sizeof(T));
        }
        b.x = d->x ? xb : NULL;
        b.sx.indptr = d->x_indptr;
        b.sx.rows = idx;
        b.y = yb;
        b.sw = d->sw;
        b.sw_idx = idx;
    } else {
        b.x = d->x ? d->x + pos * nin : NULL;
        b.sx.indptr = d->x_indptr ? d->x_indptr + pos : NULL;
        b.sx.rows = NULL;
        b.y = d->y ? d->y + pos * m : yb;
        b.sw = d->sw ? d->sw + pos : NULL;
        b.sw_idx = NULL;
    }
    return b;
}

/* Hints for the shuffled next batch's targets and sample weights (label or y
 * rows, at random places: each a miss of its own as the batch is gathered),
 * fetched while this step's backward pass runs (each thread its share); its
 * rows of X are fetched by the first product (pynn_apack.x_next). */
static PYNN_ALWAYS_INLINE void prefetch_targets(const pynn_train_data *d, const int64_t *idx,
                                                size_t rows, size_t m, const pynn_team *tm)
{
    size_t r0, r1;
    pynn__share(rows, tm, &r0, &r1);
    for (size_t r = r0; r < r1; r++) {
        size_t i = (size_t)idx[r];
        if (d->labels)
            PYNN_PREFETCH_L2(d->labels + i);
        if (d->y) {
            PYNN_PREFETCH_L2(d->y + i * m);
            PYNN_PREFETCH_L2(d->y + i * m + m - 1);
        }
        if (d->sw)
            PYNN_PREFETCH_L2(d->sw + i);
    }
}

/* What every thread of the team shares: the run's fixed inputs and the loop
 * state, which thread 0 alone writes (each thread keeps its own copy of the
 * loop counters, updated alike, so no sync is needed to read them). */
typedef struct {
    const pynn_net *net;
    const pynn_optim *opt;
    const pynn_train_data *data;
    pynn_train_state *state;
    pynn_train_result *result;
    const size_t *w_off, *b_off;
    const pynn__ws_layout *lay;
    unsigned char *marks;
    size_t max_steps;
    double wsq;          /* the L2 term's sum of squares, kept by thread 0 */
    double shared;       /* net_backward's hand-over of the loss */
    pynn_status status;
} step_loop;

/* The weights packed for the forward products (pynn__gemm_prepack_b), once
 * per call, in the workspace's room for them (layout.c), for the layers
 * whose plain gradient descent fuses into the weight gradient, whose W is
 * small enough (pynn__wpack_fits) and whose
 * forward product and weight gradient on batches of `rows` rows both run on
 * the tiles: the weight gradient's epilogue then writes each updated weight
 * into the copy as well (pynn_gemm_args.wpack), and no step's forward packs W
 * again (the copy holds W's values: the same bits).  Layer l's copy from
 * wp + off[l] (SIZE_MAX: none), in panels *nr wide; the team shares the
 * packing by rows and syncs.  NULL: no layer has one. */
static T *train_wpack(size_t *off, size_t *nr, const pynn_net *net, const T *params,
                      const size_t *w_off, T *room, int csr, size_t rows, int fuse,
                      const pynn_team *tm)
{
    size_t total = 0;
    T *wp = (T *)(((uintptr_t)room + 63) & ~(uintptr_t)63);
    int any = 0;
    *nr = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        off[l] = SIZE_MAX;
        /* (the layers the room was laid out for, in its order) */
        if ((l == 0 && csr) || net->bf16 || !pynn__wpack_fits(net, l, sizeof(float)))
            continue;
        pynn_gemm_args g = pynn__forward_product(net, params, w_off, l);
        size_t len = pynn__gemm_bpack_len(&g), at = total;
        total += (len + PYNN_BPACK_ALIGN - 1) / PYNN_BPACK_ALIGN * PYNN_BPACK_ALIGN;
        if (!fuse || len == 0 || !pynn__sgd_fuses(net, l, sizeof(T)) ||
            !pynn__wpack_fits(net, l, sizeof(T)) ||
            !pynn__dense_fwd_packs_w(rows, nin, nout) || !pynn__dense_wgrad_tiled(rows, nin, nout))
            continue;
        /* (no rows: the panels' width alone) */
        size_t got = pynn__gemm_prepack_b(&g, wp + at, len, 0, 0);
        if (got == 0 || (*nr && got != *nr))
            continue;
        *nr = got;
        off[l] = at;
        size_t p0, p1;
        pynn__share(nin, tm, &p0, &p1);
        if (p0 < p1)
            pynn__gemm_prepack_b(&g, wp + at, len, p0, p1);
        any = 1;
    }
    if (!any)
        return NULL;
    pynn__sync(tm);
    return wp;
}

/* Whether a thread alone packs the first layer's x^T (a batch of `rows` rows)
 * right after the forward pass, while the batch's rows are still in cache, for
 * the weight gradient that ends the backward pass (which otherwise packs it
 * itself, reading the rows again from memory): where x^T's block and the W of
 * the layers above (what the backward pass reads before it) take at most
 * PYNN_XT_AHEAD_BYTES, so the packed block is still in L2 when it is read, and
 * no weight gradient in between packs into the same room (layers 2, 4, ...:
 * net.c's rooms alternate).  On an Intel Xeon (amx path, one core, in-process
 * A/B, both orders) the mnist-like fit (784-256-128-10, batch 128, 280 steps)
 * ran 2-3% faster in float32; in float64 (an 800 KiB block) and for the wide
 * net (4 MiB of W above) the packed block no longer waited in cache: within
 * noise or slower.  Float products only (not bfloat16's); the same bits. */
static int xt0_ahead(const pynn_net *net, size_t rows, const pynn_apack *ap)
{
    size_t L = net->n_layers, bytes = rows * (size_t)net->units[0] * sizeof(T);
    if (net->bf16 || L < 2)
        return 0;
    for (size_t l = 1; l < L; l++)
        bytes += pynn__w_bytes(net, l, sizeof(T));
    if (bytes > PYNN_XT_AHEAD_BYTES)
        return 0;
    for (size_t l = 2; l < L; l += 2)
        if (pynn__dense_wgrad_packs_x(rows, (size_t)net->units[l], (size_t)net->units[l + 1],
                                      ap->t_len))
            return 0;
    return 1;
}

/* The step loop, run by every thread of the team (or by one thread alone).
 * A step on the batch's rows xb, yb:
 *   gather:    the shuffled batch's rows (each thread its share; sync) --
 *              for every step but a call's first, done during the last update
 *   forward:   a_{l+1} = act_l(a_l W_l + b_l), a sync after each layer
 *   backward:  output delta, then loss and grads = dL/dparams (net.c), a sync
 *              after each
 *   update:    params, opt_a, opt_b by the optimizer (optim.c); sync -- plain
 *              gradient descent is applied by the backward pass instead, each
 *              layer in its weight gradient's epilogue
 * A NaN or infinite loss stops the loop before its update (every thread reads
 * the same loss, so all stop at the same point). */
static void run_steps(step_loop *sl, const pynn_team *tm)
{
    const pynn_net *net = sl->net;
    const pynn_optim *opt = sl->opt;
    const pynn_train_data *data = sl->data;
    const pynn__ws_layout *lay = sl->lay;
    size_t nin = (size_t)net->units[0], m = (size_t)net->units[net->n_layers];
    T *params = data->params, *grads = data->grads, *ws = data->ws;
    T *acts = ws + lay->acts;
    pynn_apack ap = pynn__apack_of(ws, lay);
    /* check_x: dense rows are checked through the first layer's z0 (as
     * predict_block's in net.c: a NaN or infinity in a row makes its z0 NaN
     * or infinite whatever the weights, so only a batch whose z0 is not all
     * finite has its rows read again); the bf16 products' rounding is not
     * relied on for that, so their batches' rows are checked before the step */
    int check_x = data->check_x && data->x != NULL;
    if (check_x && !net->bf16)
        ap.z0 = ws + lay->z0;
    double *sq_parts = pynn__sq_parts(ws, lay);
    int lead = tm->id == 0;
    /* this thread's copies of the loop counters */
    size_t pos = sl->state->pos, steps = 0;
    uint64_t t = sl->state->t;
    /* W packed for the forward products, kept current by the fused SGD */
    size_t wpk_off[PYNN_MAX_LAYERS], full = data->batch_size;
    ap.wpack = ap.wpack_w = train_wpack(
        wpk_off, &ap.wpack_nr, net, params, sl->w_off, ws + lay->wpk, data->x == NULL, full,
        opt->solver == PYNN_SOLVER_SGD && opt->momentum == 0, tm);
    ap.wpack_off = wpk_off;
    batch_view b;
    int gathered = 0; /* b's rows were gathered during the previous step's update */
    while (steps < sl->max_steps) {
        if (!gathered) {
            if (pos == 0 && data->shuffle) {
                if (lead)
                    pynn_shuffle(data->order, data->n, sl->state->rng);
                pynn__sync(tm);
            }
            b = next_batch(ws + lay->xb, ws + lay->yb, data, pos, nin, m, tm);
            /* (y rows, gathered or built from labels, are read after the forward's syncs) */
            if (data->shuffle && data->x)
                pynn__sync(tm);
        }
        const pynn_csr *sx = data->x == NULL ? &b.sx : NULL;
        /* Plain gradient descent keeps no velocity in the loop: the call's
         * last step (with velocity_at_epoch_end, the epoch's last step)
         * writes the one it leaves, -lr g, so opt_a ends as the
         * momentum form v <- 0 v - lr g would have left it.  It is applied by
         * the backward pass as the gradients come out where it fuses
         * (pynn__sgd_fuses; the same bits either way; no pass
         * over the gradients after); a team runs each layer's weight gradient
         * a phase after its input gradient, which reads W (net.c). */
        int plain = opt->solver == PYNN_SOLVER_SGD && opt->momentum == 0;
        /* a layer whose weight gradient on this batch's rows does not run on
         * the tiles would leave its packed copy behind W: none from here on */
        for (size_t l = 0; ap.wpack && l < net->n_layers; l++)
            if (wpk_off[l] != SIZE_MAX &&
                !pynn__dense_wgrad_tiled(b.rows, (size_t)net->units[l],
                                         (size_t)net->units[l + 1]))
                wpk_off[l] = SIZE_MAX;
        int last = (!data->velocity_at_epoch_end && steps + 1 >= sl->max_steps) ||
                   pos + b.rows >= data->n;
        T *vel = plain && last ? data->opt_a : NULL;
        int fuse = plain;
        if (check_x && !ap.z0 && pynn_any_nonfinite(b.x, b.rows * nin)) {
            if (lead)
                sl->status = PYNN_ERR_NONFINITE_INPUT; /* before any of the step */
            break;
        }
        /* The next batch of this epoch, if as long as this one and not large
         * (PYNN_NEXT_BATCH_MAX_BYTES): the first product fetches its rows of X
         * into cache as it runs (a hint).  Read in place, it would otherwise
         * come from memory as the next step's first product reads it (the
         * streams of a tile's rows are too short for the hardware prefetcher);
         * gathered, as the update copies it. */
        int more = data->x && data->n - pos - b.rows >= b.rows &&
                   b.rows * nin * sizeof(T) <= PYNN_NEXT_BATCH_MAX_BYTES;
        ap.x_next = !more ? NULL : data->shuffle ? data->x : data->x + (pos + b.rows) * nin;
        ap.x_next_idx = more && data->shuffle ? data->order + pos + b.rows : NULL;
        pynn__net_forward(acts, net, params, sl->w_off, sl->b_off, b.x, sx, b.rows, 1, &ap, tm);
        if (ap.x_next_idx)
            prefetch_targets(data, ap.x_next_idx, b.rows, m, tm);
        if (ap.z0 && pynn_any_nonfinite(ap.z0, b.rows) &&
            pynn_any_nonfinite(b.x, b.rows * nin)) {
            if (lead)
                sl->status = PYNN_ERR_NONFINITE_INPUT; /* before the update: weights stay */
            break;
        }
        ap.xt0_mode = -1;
        if (tm->size == 1 && !sx && xt0_ahead(net, b.rows, &ap))
            ap.xt0_mode = pynn__dense_wgrad_pack_ahead(b.x, b.rows, nin, (size_t)net->units[1],
                                                       ap.t[(net->n_layers - 1) & 1], ap.t_len);
        double loss = pynn__net_backward(grads, ws + lay->delta0, ws + lay->delta1,
                                         lay->delta2 ? ws + lay->delta2 : NULL, &ap, acts,
                                         net, params, sl->w_off, sl->b_off, b.x, sx,
                                         sl->marks, b.y, b.sw, b.sw_idx, b.rows, opt->alpha,
                                         lead ? sl->wsq : 0, pynn__row_loss(ws, lay),
                                         &sl->shared,
                                         fuse ? params : NULL, fuse ? vel : NULL,
                                         (T)opt->learning_rate, tm);
        if (!isfinite(loss)) {
            if (lead)
                sl->status = PYNN_ERR_NONFINITE; /* before the update: weights stay */
            break;
        }
        if (opt->solver == PYNN_SOLVER_ADAM)
            t += 1;
        int wrote = pynn__optim_step(params, data->opt_a, data->opt_b, grads, net, opt, t,
                                     sl->w_off, sl->b_off, sq_parts,
                                     fuse ? (sx ? 1 : 0) : net->n_layers, vel, tm);
        steps++;
        size_t rows = b.rows;
        pos += rows;
        /* The next batch of this epoch, if this call goes on, is gathered in the
         * same phase as the update (its rows are free: the backward pass is
         * done with them), so that phase's sync serves both. */
        gathered = steps < sl->max_steps && pos != data->n && data->shuffle;
        if (gathered)
            b = next_batch(ws + lay->xb, ws + lay->yb, data, pos, nin, m, tm);
        /* The step's last sync, unless its last phase wrote nothing: the
         * backward pass ends with one, after which no thread reads what the
         * next step writes before its own first sync (the forward's) */
        if (gathered || wrote)
            pynn__sync(tm);
        if (lead) {
            if (opt->alpha > 0)
                sl->wsq = pynn__optim_wsq(net, sq_parts);
            sl->state->t = t;
            sl->result->steps_done = steps;
            sl->state->loss_acc += loss * (double)rows;
            sl->state->pos = pos;
        }
        if (pos == data->n) {
            if (lead) {
                sl->result->epoch_done = 1;
                sl->result->epoch_loss = sl->state->loss_acc / (double)data->n;
                sl->state->pos = 0;
                sl->state->loss_acc = 0;
            }
            break;
        }
    }
}

/* Steps until the epoch ends or max_steps were taken (see pynn.h), on one
 * team for the whole call: one parallel region, not one per product. */
pynn_status pynn_train(pynn_train_result *result, pynn_train_state *state,
                       const pynn_net *net, const pynn_optim *opt,
                       const pynn_train_data *data, size_t max_steps, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    size_t n_params;
    if (result == NULL)
        return PYNN_ERR_ARG;
    result->steps_done = 0;
    result->epoch_done = 0;
    result->epoch_loss = 0;
    pynn_status st = check_train(state, opt, data);
    if (st != PYNN_OK)
        return st;
    int csr = data->x == NULL;
    st = pynn__net_prologue(w_off, b_off, &lay, net, data->batch_size, data->ws_len,
                            csr ? PYNN__WS_CSR : 0);
    if (st != PYNN_OK || (st = pynn__precision_ok(net)) != PYNN_OK ||
        (st = pynn_param_count(&n_params, net)) != PYNN_OK)
        return st;

    step_loop sl;
    memset(&sl, 0, sizeof sl);
    sl.net = net;
    sl.opt = opt;
    sl.data = data;
    sl.state = state;
    sl.result = result;
    sl.w_off = w_off;
    sl.b_off = b_off;
    sl.lay = &lay;
    sl.max_steps = max_steps;
    sl.status = PYNN_OK;
    /* CSR input: which rows of the first layer's weight gradient the steps
     * must clear (sparse.c); on entry, grads may hold anything, so all */
    sl.marks = csr ? (unsigned char *)(data->ws + lay.marks) : NULL;
    if (sl.marks)
        memset(sl.marks, 2, (size_t)net->units[0]);
    /* the L2 term's sum of squares, kept current by the optimizer's loop */
    sl.wsq = opt->alpha > 0 ? pynn__weight_sq(net, data->params, w_off) : 0;
    int nt = max_steps > 0 ? pynn__train_threads(net, data->batch_size, n_threads) : 1;
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt)
        {
            pynn_team tm = pynn__team_me(&bar);
            run_steps(&sl, &tm);
        }
    } else
#endif
    {
        pynn_team solo = pynn__solo();
        run_steps(&sl, &solo);
    }
    if (sl.status != PYNN_OK)
        return sl.status;
    return PYNN_OK;
}

/*
 * layout.c -- where things live: the network description's checks, the
 * parameter arena's offsets and size, and the workspace layout for a batch.
 * Untyped.
 */
#include "pynn.h"
#include "internal.h"

/* Validates a network description; every count must be >= 1. */
pynn_status pynn__check_net(const pynn_net *net)
{
    if (net == NULL || net->units == NULL || net->n_layers == 0)
        return PYNN_ERR_ARG;
    for (size_t l = 0; l <= net->n_layers; l++)
        if (net->units[l] <= 0)
            return PYNN_ERR_ARG;
    if (!pynn__act_ok(net->hidden) || !pynn__act_ok(net->output) || !pynn__loss_ok(net->loss) ||
        (net->bf16 != 0 && net->bf16 != 1))
        return PYNN_ERR_ARG;
    /* A hidden step unit has a zero derivative everywhere: nothing can learn. */
    /* exp is the output link of Poisson regression, not a hidden unit (it grows
     * without bound through the layers) */
    if (net->n_layers > 1 && (net->hidden == PYNN_ACT_STEP || net->hidden == PYNN_ACT_SOFTMAX ||
                              net->hidden == PYNN_ACT_EXP))
        return PYNN_ERR_UNSUPPORTED;
    return PYNN_OK;
}

pynn_status pynn_param_offsets(size_t *w_off, size_t *b_off, const pynn_net *net)
{
    pynn_status st = pynn__check_net(net);
    if (st != PYNN_OK)
        return st;
    size_t off = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1], w;
        if (!pynn__mul(nin, nout, &w))
            return PYNN_ERR_OVERFLOW;
        if (w_off)
            w_off[l] = off;
        if (!pynn__add(off, w, &off))
            return PYNN_ERR_OVERFLOW;
        if (b_off)
            b_off[l] = off;
        if (!pynn__add(off, nout, &off))
            return PYNN_ERR_OVERFLOW;
    }
    return PYNN_OK;
}

pynn_status pynn_param_count(size_t *count, const pynn_net *net)
{
    if (count == NULL)
        return PYNN_ERR_ARG;
    *count = 0;
    pynn_status st = pynn__check_net(net);
    if (st != PYNN_OK)
        return st;
    size_t off = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t w;
        if (!pynn__mul((size_t)net->units[l], (size_t)net->units[l + 1], &w) ||
            !pynn__add(off, w, &off) || !pynn__add(off, (size_t)net->units[l + 1], &off))
            return PYNN_ERR_OVERFLOW;
    }
    *count = off;
    return PYNN_OK;
}

/*
 * Workspace layout for batches of B rows (all in scalars):
 *   acts   B * (u_1 + ... + u_L)   cached outputs of every layer
 *   delta  2 * B * max(u_1..u_L)   ping-pong buffers for the backward pass, and a
 *          third for networks of 3 layers or more and B <= PYNN_GEMM_PACK_ROWS
 *          (a team's backward pass with gradient descent fused: net.c)
 *   xb     B * u_0                 gathered input rows of a shuffled batch
 *   yb     B * u_L                 gathered target rows
 *   z0     B                       each row's first pre-activation of the first
 *                                  layer: the check of dense input (net.c, train.c)
 *   apack_t, apack_r  room for the products to pack A (gemm_tile.h), see below
 *   sq     the optimizer's partial sums of squares, one double per chunk of a W
 *   rowloss, wpk  (below)
 *   bw     room to pack a weight gradient's delta whole (below)
 *   bw2    room to pack W (or W^T) whole for products of many rows (below)
 * and for CSR input (csr != 0) no xb and no z0 (rows are read in place; sparse.c) but
 *   marks  u_0 bytes, in u_0 / 4 + 1 scalars (a scalar has at least 4 bytes):
 *          which rows of the first layer's weight gradient hold something
 * and no packing room for the first layer's products, which are not GEMMs.
 */
/* Room (scalars) to pack a k x n matrix whole for the products on any SIMD
 * path, 64-byte aligned: panels of at most PYNN_BPACK_NR_MAX columns over its
 * k rows, and PYNN_BPACK_ALIGN to align it; 0 on overflow. */
static size_t panels_room(size_t k, size_t n)
{
    size_t cols = (n + PYNN_BPACK_NR_MAX - 1) / PYNN_BPACK_NR_MAX * PYNN_BPACK_NR_MAX, w;
    if (!pynn__mul(k, cols, &w) || !pynn__add(w, PYNN_BPACK_ALIGN, &w))
        return 0;
    return w;
}

/* ... layer l's W, for its forward products. */
static size_t wpack_room(const pynn_net *net, size_t l)
{
    return panels_room((size_t)net->units[l], (size_t)net->units[l + 1]);
}

pynn_status pynn__workspace_layout(pynn__ws_layout *lay, const pynn_net *net, size_t batch,
                                   int flags)
{
    /* predict's layout (PYNN__WS_PREDICT) holds what a forward pass uses: acts,
     * z0 and apack_r, every other part empty (0 scalars, at its place) */
    int csr = (flags & PYNN__WS_CSR) != 0, fwd = (flags & PYNN__WS_PREDICT) != 0;
    pynn_status st = pynn__check_net(net);
    if (st != PYNN_OK)
        return st;
    if (batch == 0)
        return PYNN_ERR_ARG;
    size_t sum = 0, maxu = 0;
    for (size_t l = 1; l <= net->n_layers; l++) {
        size_t u = (size_t)net->units[l];
        if (!pynn__add(sum, u, &sum))
            return PYNN_ERR_OVERFLOW;
        if (u > maxu)
            maxu = u;
    }
    size_t acts, delta, xb, yb, total;
    size_t u0 = (size_t)net->units[0];
    int three = !fwd && net->n_layers >= 3 && batch <= PYNN_GEMM_PACK_ROWS;
    size_t one; /* a delta buffer (none for a forward pass) */
    if (!pynn__mul(batch, sum, &acts) || !pynn__mul(batch, fwd ? 0 : maxu, &one) ||
        !pynn__mul(one, three ? 3 : 2, &delta) ||
        !pynn__mul(batch, csr || fwd ? 0 : u0, &xb) ||
        !pynn__mul(batch, fwd ? 0 : (size_t)net->units[net->n_layers], &yb))
        return PYNN_ERR_OVERFLOW;
    lay->bf16 = net->bf16;
    lay->acts = 0;
    lay->delta0 = acts;
    lay->delta1 = acts + one;
    lay->delta2 = three ? acts + 2 * one : 0;
    lay->xb = acts + delta;
    if (!pynn__add(acts, delta, &total) || !pynn__add(total, xb, &total))
        return PYNN_ERR_OVERFLOW;
    lay->yb = total;
    if (!pynn__add(total, yb, &total))
        return PYNN_ERR_OVERFLOW;
    lay->z0 = total;
    if (!pynn__add(total, csr ? 0 : batch, &total))
        return PYNN_ERR_OVERFLOW;
    /* A packed for the weight-gradient products x^T delta (m = a layer's input
     * width, K = batch rows), every K block at once (a team packs ahead; a
     * thread alone needs one block): m rounded up to whole tiles times the
     * blocks' total depth, which is under K + blocks.  Beyond PYNN_GEMM_PACK_ROWS
     * rows (full-batch gradients), room for one block only: a team then packs
     * block by block (gemm_tile.h). */
    size_t maxin = 0;
    for (size_t l = csr ? 1 : 0; l < net->n_layers; l++)
        if ((size_t)net->units[l] > maxin)
            maxin = (size_t)net->units[l];
    size_t apack_t, apack_r = 0, depth;
    maxin = (maxin + PYNN_GEMM_MR_PAD - 1) / PYNN_GEMM_MR_PAD * PYNN_GEMM_MR_PAD;
    depth = batch <= PYNN_GEMM_PACK_ROWS
                ? batch + (batch + PYNN_GEMM_KC_MIN - 1) / PYNN_GEMM_KC_MIN
                : PYNN_GEMM_KC;
    /* twice: a phase packs the next layer's while its own is read (net.c) */
    if (!pynn__mul(maxin, depth, &apack_t) || !pynn__mul(apack_t, fwd ? 0 : 2, &apack_t))
        return PYNN_ERR_OVERFLOW;
    /* ... and products whose A is a batch of rows (m <= batch, K a layer's
     * width), packed only for some widths and batches (gemm_tile.h); with
     * bf16, every product packs (and rounds) A: room for every width, and for
     * one K block of a batch of more than PYNN_GEMM_PACK_ROWS rows */
    size_t widest = 0;
    for (size_t l = csr ? 1 : 0; l <= net->n_layers; l++) {
        size_t u = (size_t)net->units[l];
        if ((net->bf16 || u % PYNN_GEMM_PACK_WIDTH == 0) && u > widest)
            widest = u;
    }
    size_t rdepth = widest + (widest + PYNN_GEMM_KC_MIN - 1) / PYNN_GEMM_KC_MIN;
    if (batch > PYNN_GEMM_PACK_ROWS)
        rdepth = net->bf16 ? (widest < PYNN_GEMM_KC ? widest : PYNN_GEMM_KC) : 0;
    if (widest && !pynn__mul(batch + PYNN_GEMM_MR_PAD, rdepth, &apack_r))
        return PYNN_ERR_OVERFLOW;
    lay->apack_t = total;
    if (!pynn__add(total, apack_t, &total))
        return PYNN_ERR_OVERFLOW;
    lay->apack_r = total;
    if (!pynn__add(total, apack_r, &total))
        return PYNN_ERR_OVERFLOW;
    /* one double per optimizer chunk of every W: two scalars each, and two more
     * to align the first to 8 bytes in a workspace of floats (typed.h:
     * pynn__sq_parts) */
    size_t chunks = 0;
    for (size_t l = 0; l < net->n_layers && !fwd; l++) {
        size_t w;
        if (!pynn__mul((size_t)net->units[l], (size_t)net->units[l + 1], &w))
            return PYNN_ERR_OVERFLOW;
        chunks += pynn__chunk_count(w);
    }
    lay->sq = total;
    if (!pynn__add(total, fwd ? 0 : 2 * chunks + 2, &total))
        return PYNN_ERR_OVERFLOW;
    lay->marks = total;
    if (csr && !fwd && !pynn__add(total, u0 / 4 + 1, &total))
        return PYNN_ERR_OVERFLOW;
    /* one double per row of a batch, its loss (two scalars each, and two more
     * to align them: typed.h, pynn__row_loss) */
    size_t rl;
    if (!pynn__mul(batch, fwd ? 0 : 2, &rl) || !pynn__add(rl, fwd ? 0 : 2, &rl))
        return PYNN_ERR_OVERFLOW;
    lay->rowloss = total;
    if (!pynn__add(total, rl, &total))
        return PYNN_ERR_OVERFLOW;
    /* room for a copy of each W small enough (pynn__wpack_fits, for the
     * smaller float elements: fewer float64 ones fit) that plain gradient
     * descent may update in its weight gradient's epilogue, packed for the
     * forward products: train.c keeps the copy current, so that no step packs
     * W again.  wpack_room per layer, as pynn_predict_pack_size; none for
     * bf16 products (they round as they pack) nor for the first layer of CSR
     * input. */
    size_t wpk = 0;
    for (size_t l = csr ? 1 : 0; l < net->n_layers && !fwd && !net->bf16; l++) {
        if (!pynn__wpack_fits(net, l, sizeof(float)))
            continue;
        size_t w = wpack_room(net, l);
        if (w == 0 || !pynn__add(wpk, w, &wpk))
            return PYNN_ERR_OVERFLOW;
    }
    if (wpk && !pynn__add(wpk, PYNN_BPACK_ALIGN, &wpk))
        return PYNN_ERR_OVERFLOW;
    lay->wpk = total;
    if (!pynn__add(total, wpk, &total))
        return PYNN_ERR_OVERFLOW;
    /* room to pack B = delta whole (batch x n_out, panels_room) for the
     * weight gradients of more input rows than a chunk (gemm_tile.h: they run
     * in chunks of rows, and every chunk reads every panel): the widest such
     * layer's.  None for bf16 products (they round as they pack) nor beyond
     * PYNN_GEMM_PACK_ROWS rows (a full-batch gradient). */
    size_t bw = 0;
    for (size_t l = csr ? 1 : 0; l < net->n_layers && !fwd && !net->bf16 &&
                                 batch <= PYNN_GEMM_PACK_ROWS; l++) {
        if ((size_t)net->units[l] <= PYNN_GEMM_MC_ROWS)
            continue;
        size_t w = panels_room(batch, (size_t)net->units[l + 1]);
        if (w == 0)
            return PYNN_ERR_OVERFLOW;
        if (w > bw)
            bw = w;
    }
    lay->bw = total;
    if (!pynn__add(total, bw, &total))
        return PYNN_ERR_OVERFLOW;
    /* ... and room to pack B whole for the forward products (B = W: n_in x n_out)
     * and input gradients (B = W^T: n_out x n_in) of batches of more rows than
     * a chunk, which run in chunks the same way: the largest W, its columns
     * rounded up either way.  Apart from bw: a phase of the backward pass runs
     * one layer's weight gradient and another's (or the same's) input gradient
     * at once. */
    size_t bw2 = 0;
    for (size_t l = csr ? 1 : 0; l < net->n_layers && !fwd && !net->bf16 &&
                                 batch > PYNN_GEMM_MC_ROWS; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        size_t a = panels_room(nin, nout), b = panels_room(nout, nin);
        if (a == 0 || b == 0)
            return PYNN_ERR_OVERFLOW;
        if (b > a)
            a = b;
        if (a > bw2)
            bw2 = a;
    }
    lay->bw2 = total;
    if (!pynn__add(total, bw2, &total))
        return PYNN_ERR_OVERFLOW;
    lay->total = total;
    return PYNN_OK;
}

/* The total of the workspace layout of `flags` (PYNN__WS_*: CSR input, predict). */
static pynn_status workspace_total(size_t *count, const pynn_net *net, size_t batch, int flags)
{
    if (count == NULL)
        return PYNN_ERR_ARG;
    *count = 0;
    pynn__ws_layout lay;
    pynn_status st = pynn__workspace_layout(&lay, net, batch, flags);
    if (st == PYNN_OK)
        *count = lay.total;
    return st;
}

pynn_status pynn_workspace_size(size_t *count, const pynn_net *net, size_t batch)
{
    return workspace_total(count, net, batch, 0);
}

pynn_status pynn_workspace_size_csr(size_t *count, const pynn_net *net, size_t batch)
{
    return workspace_total(count, net, batch, PYNN__WS_CSR);
}

pynn_status pynn_predict_workspace_size(size_t *count, const pynn_net *net, size_t batch)
{
    return workspace_total(count, net, batch, PYNN__WS_PREDICT);
}

pynn_status pynn_predict_workspace_size_csr(size_t *count, const pynn_net *net, size_t batch)
{
    return workspace_total(count, net, batch, PYNN__WS_CSR | PYNN__WS_PREDICT);
}

/* A bound on the room every SIMD path's packing of the forward products'
 * weights takes (net.c: predict_rows): panels of at most PYNN_BPACK_NR_MAX
 * columns over the layer's inputs, each layer from a 64-byte boundary. */
pynn_status pynn_predict_pack_size(size_t *count, const pynn_net *net)
{
    if (count == NULL || net == NULL || net->units == NULL)
        return PYNN_ERR_ARG;
    *count = 0;
    size_t total = PYNN_BPACK_ALIGN;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t w = wpack_room(net, l);
        if (w == 0 || !pynn__add(total, w, &total))
            return PYNN_ERR_OVERFLOW;
    }
    *count = total;
    return PYNN_OK;
}

pynn_status pynn__net_prologue(size_t *w_off, size_t *b_off, pynn__ws_layout *lay,
                               const pynn_net *net, size_t batch, size_t ws_len, int flags)
{
    pynn_status st = pynn__workspace_layout(lay, net, batch, flags);
    if (st != PYNN_OK)
        return st;
    if (net->n_layers > PYNN_MAX_LAYERS)
        return PYNN_ERR_UNSUPPORTED;
    if (ws_len < lay->total)
        return PYNN_ERR_WORKSPACE;
    return pynn_param_offsets(w_off, b_off, net);
}

/* The team a whole-network job on batches of `rows` rows is worth: its largest
 * layer decides (pynn__threads_over, with the bar min_work); 1 for a small
 * network, whose every product is cheaper than waking threads. */
static int net_threads(const pynn_net *net, size_t rows, int n_threads, size_t min_work)
{
    size_t widest = 0, outs = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t w = (size_t)net->units[l] * (size_t)net->units[l + 1];
        if (w > widest)
            widest = w;
        if ((size_t)net->units[l + 1] > outs)
            outs = (size_t)net->units[l + 1];
    }
    size_t work;
    if (!pynn__mul(rows, widest, &work))
        work = (size_t)-1;
    return pynn__threads_over(n_threads, work, min_work, rows * outs / 64 + 1);
}

int pynn__net_threads(const pynn_net *net, size_t rows, int n_threads)
{
    return net_threads(net, rows, n_threads, PYNN_PAR_MIN_WORK);
}

int pynn__train_threads(const pynn_net *net, size_t rows, int n_threads)
{
    return net_threads(net, rows, n_threads, PYNN_TRAIN_PAR_MIN_WORK);
}

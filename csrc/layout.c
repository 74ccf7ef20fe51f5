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
    if (!pynn__act_ok(net->hidden) || !pynn__act_ok(net->output) || !pynn__loss_ok(net->loss))
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
 *   delta  2 * B * max(u_1..u_L)   ping-pong buffers for the backward pass
 *   xb     B * u_0                 gathered input rows of a shuffled batch
 *   yb     B * u_L                 gathered target rows
 *   apack  room for the product to pack blocks of A (gemm_tile.h), see below
 * and for CSR input (csr != 0) no xb (rows are read in place; sparse.c) but
 *   marks  u_0 bytes, in u_0 / 4 + 1 scalars (a scalar has at least 4 bytes):
 *          which rows of the first layer's weight gradient hold something
 * and no packing room for the first layer's products, which are not GEMMs.
 */
pynn_status pynn__workspace_layout(pynn__ws_layout *lay, const pynn_net *net, size_t batch,
                                   int csr)
{
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
    if (!pynn__mul(batch, sum, &acts) || !pynn__mul(batch, maxu, &delta) ||
        !pynn__mul(delta, 2, &delta) || !pynn__mul(batch, csr ? 0 : u0, &xb) ||
        !pynn__mul(batch, (size_t)net->units[net->n_layers], &yb))
        return PYNN_ERR_OVERFLOW;
    lay->acts = 0;
    lay->delta0 = acts;
    lay->delta1 = acts + delta / 2;
    lay->xb = acts + delta;
    if (!pynn__add(acts, delta, &total) || !pynn__add(total, xb, &total))
        return PYNN_ERR_OVERFLOW;
    lay->yb = total;
    if (!pynn__add(total, yb, &total))
        return PYNN_ERR_OVERFLOW;
    /* A packed for the weight-gradient products x^T delta (K = batch rows) */
    size_t maxin = 0;
    for (size_t l = csr ? 1 : 0; l < net->n_layers; l++)
        if ((size_t)net->units[l] > maxin)
            maxin = (size_t)net->units[l];
    /* ... and for products whose A is a batch of rows (m <= batch, K blocks <= KC),
     * which are packed only for some widths and batches (gemm_tile.h) */
    int aliasing = 0;
    for (size_t l = csr ? 1 : 0; l <= net->n_layers; l++)
        if ((size_t)net->units[l] % PYNN_GEMM_PACK_WIDTH == 0)
            aliasing = 1;
    size_t apack, apack_rows = 0, kc = batch < PYNN_GEMM_KC ? batch : PYNN_GEMM_KC;
    maxin = (maxin + PYNN_GEMM_MR_PAD - 1) / PYNN_GEMM_MR_PAD * PYNN_GEMM_MR_PAD;
    if (aliasing && batch <= PYNN_GEMM_PACK_ROWS)
        apack_rows = (batch + PYNN_GEMM_MR_PAD) * PYNN_GEMM_KC;
    if (!pynn__mul(maxin, kc, &apack))
        return PYNN_ERR_OVERFLOW;
    if (apack_rows > apack)
        apack = apack_rows;
    lay->apack = total;
    if (!pynn__add(total, apack, &total))
        return PYNN_ERR_OVERFLOW;
    lay->marks = total;
    if (csr && !pynn__add(total, u0 / 4 + 1, &total))
        return PYNN_ERR_OVERFLOW;
    lay->total = total;
    return PYNN_OK;
}

/* The total of the workspace layout for a dense (csr = 0) or CSR (csr = 1) input. */
static pynn_status workspace_total(size_t *count, const pynn_net *net, size_t batch, int csr)
{
    if (count == NULL)
        return PYNN_ERR_ARG;
    *count = 0;
    pynn__ws_layout lay;
    pynn_status st = pynn__workspace_layout(&lay, net, batch, csr);
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
    return workspace_total(count, net, batch, 1);
}

pynn_status pynn__net_prologue(size_t *w_off, size_t *b_off, pynn__ws_layout *lay,
                               const pynn_net *net, size_t batch, size_t ws_len, int csr)
{
    pynn_status st = pynn__workspace_layout(lay, net, batch, csr);
    if (st != PYNN_OK)
        return st;
    if (net->n_layers > PYNN_MAX_LAYERS)
        return PYNN_ERR_UNSUPPORTED;
    if (ws_len < lay->total)
        return PYNN_ERR_WORKSPACE;
    return pynn_param_offsets(w_off, b_off, net);
}

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
#include "typed.h"

/* The output layer's cached activations inside acts, for a pass over n rows. */
static const T *last_output(const T *acts, const pynn_net *net, size_t n)
{
    for (size_t l = 1; l < net->n_layers; l++)
        acts += n * (size_t)net->units[l];
    return acts;
}

/* Forward n rows (n <= the workspace's batch):
 *   a_0 = x (or the CSR rows sx);  a_{l+1} = act_l(a_l W_l + b_l)  into acts,
 * layer after layer. */
void pynn__net_forward(T *acts, const pynn_net *net, const T *params, const size_t *w_off,
                       const size_t *b_off, const T *x, const pynn_csr *sx, size_t n,
                       T *apack, size_t apack_len, int n_threads)
{
    const T *in = x;
    T *out = acts;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1];
        pynn_activation act = l + 1 == net->n_layers ? net->output : net->hidden;
        if (l == 0 && sx)
            pynn__sparse_fwd(out, sx, params + w_off[0], params + b_off[0], n, nout, act,
                             n_threads);
        else
            pynn__dense_fwd(out, in, params + w_off[l], params + b_off[l], n, nin, nout, act,
                            apack, apack_len, n_threads);
        in = out;
        out += n * nout;
    }
}

/* The sample-weighted loss of n rows of m outputs (row r's weight is
 * sw[sw_idx[r]], or sw[r] when sw_idx is NULL), following scikit-learn: with S
 * the rows' total weight, loss = sum_r w_r l_r / S + alpha/2 |W|^2 / S.  Its
 * exact derivative: the output deltas d0 are scaled by w_r n / S, so the
 * products' 1/n becomes 1/S, and *alpha by n / S likewise.  Rows of total
 * weight 0 carry no data: loss and data gradient 0 (the L2 term keeps 1/n). */
static double weighted_loss(T *d0, double *alpha, const T *yh, const T *y, const T *sw,
                            const int64_t *sw_idx, size_t n, size_t m, pynn_loss kind,
                            double wsq)
{
    double total = 0, wloss = 0;
    for (size_t r = 0; r < n; r++) {
        double w = (double)sw[sw_idx ? (size_t)sw_idx[r] : r];
        total += w;
        if (w != 0)
            wloss += w * pynn__loss_sum(yh + r * m, y + r * m, m, kind);
    }
    double scale = total > 0 ? (double)n / total : 0;
    for (size_t r = 0; r < n; r++) {
        T f = (T)((double)sw[sw_idx ? (size_t)sw_idx[r] : r] * scale);
        T *d = d0 + r * m;
        for (size_t k = 0; k < m; k++)
            d[k] *= f;
    }
    double loss = total > 0 ? wloss / total : 0;
    if (total > 0) {
        if (*alpha > 0)
            loss += 0.5 * *alpha * wsq / total;
        *alpha *= scale;
    } else if (*alpha > 0) {
        loss += 0.5 * *alpha * wsq / (double)n;
    }
    return loss;
}

/* Loss and gradients of n rows whose forward pass is already in acts; returns
 *   L = 1/n sum_r l(a_L[r], y[r]) + alpha/2 |W|^2 / n   (sample weights: see
 *   weighted_loss), and fills grads with dL/dparams by the chain rule, from the
 *   output delta (fused where loss and output activation match) down to layer 0.
 * wsq is the current sum of squared weights (used when alpha > 0); d0 and d1
 * are the delta ping-pong buffers of the workspace. */
double pynn__net_backward(T *grads, T *d0, T *d1, T *apack, size_t apack_len, const T *acts,
                          const pynn_net *net, const T *params, const size_t *w_off,
                          const size_t *b_off, const T *x, const pynn_csr *sx,
                          unsigned char *marks, const T *y, const T *sw,
                          const int64_t *sw_idx, size_t n, double alpha, double wsq,
                          int n_threads)
{
    size_t L = net->n_layers;
    size_t m = (size_t)net->units[L];
    const T *a_last = last_output(acts, net, n);
    double loss;
    pynn__output_delta_rows(d0, a_last, y, n, m, net->output, net->loss);
    if (sw == NULL) {
        loss = pynn__loss_sum(a_last, y, n * m, net->loss) / (double)n;
        if (alpha > 0)
            loss += 0.5 * alpha * wsq / (double)n;
    } else {
        loss = weighted_loss(d0, &alpha, a_last, y, sw, sw_idx, n, m, net->loss, wsq);
    }
    const T *a_in = a_last;
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
        if (l == 0 && sx) {
            pynn__sparse_wgrad(grads + w_off[0], grads + b_off[0], d0, sx, params + w_off[0],
                               n, nin, nout, alpha, marks, n_threads);
            continue;
        }
        pynn__dense_bwd(l ? d1 : NULL, grads + w_off[l], grads + b_off[l], d0, in,
                        params + w_off[l], l ? in : NULL, n, nin, nout, alpha, net->hidden,
                        apack, apack_len, n_threads);
        if (l) {
            T *t = d0; d0 = d1; d1 = t;
        }
    }
    return loss;
}

/* 1 if any of the count values is NaN or infinite: all exponent bits set.  An
 * integer OR over the bits vectorises, unlike a test-and-branch per value. */
static int any_nonfinite(const T *x, size_t count)
{
    T_UINT bad = 0;
    for (size_t i = 0; i < count; i++) {
        T_UINT u;
        memcpy(&u, x + i, sizeof u);
        bad |= (T_UINT)((u & T_EXP_BITS) == T_EXP_BITS);
    }
    return bad != 0;
}

/* Forward the rows [r0, r0 + rows) of x (or of the CSR sx) into out, using
 * acts and apack (one block's workspace).  Returns 1 if those input rows hold
 * a NaN or infinity (checked while they are about to be read anyway, instead
 * of in a separate pass over X). */
static int predict_block(T *out, T *acts, T *apack, size_t apack_len, const pynn_net *net,
                         const T *params, const size_t *w_off, const size_t *b_off,
                         const T *x, const pynn_csr *sx, size_t r0, size_t rows,
                         int n_threads)
{
    size_t nin = (size_t)net->units[0], m = (size_t)net->units[net->n_layers];
    if (sx) {
        /* the block's rows as a CSR of their own: indptr from row r0 on */
        pynn_csr blk = {sx->indptr + r0, sx->indices, sx->data, NULL};
        size_t p0 = (size_t)blk.indptr[0], p1 = (size_t)blk.indptr[rows];
        if (any_nonfinite(sx->data + p0, p1 - p0))
            return 1;
        pynn__net_forward(acts, net, params, w_off, b_off, NULL, &blk, rows, apack, apack_len,
                          n_threads);
        memcpy(out + r0 * m, last_output(acts, net, rows), rows * m * sizeof(T));
        return 0;
    }
    if (any_nonfinite(x + r0 * nin, rows * nin))
        return 1;
    pynn__net_forward(acts, net, params, w_off, b_off, x + r0 * nin, NULL, rows, apack,
                      apack_len, n_threads);
    memcpy(out + r0 * m, last_output(acts, net, rows), rows * m * sizeof(T));
    return 0;
}

/* out = network(x) for n rows of x or of the CSR sx, in blocks of `batch` rows. */
static pynn_status predict_rows(T *out, const pynn_net *net, const T *params, const T *x,
                                const pynn_csr *sx, size_t n, T *ws, size_t ws_len,
                                size_t batch, int n_threads)
{
    size_t w_off[PYNN_MAX_LAYERS], b_off[PYNN_MAX_LAYERS];
    pynn__ws_layout lay;
    if (out == NULL || params == NULL || (x == NULL && sx == NULL) || ws == NULL || n == 0)
        return PYNN_ERR_ARG;
    pynn_status st = pynn__net_prologue(w_off, b_off, &lay, net, batch, ws_len, sx != NULL);
    if (st != PYNN_OK)
        return st;
    size_t blocks = (n + batch - 1) / batch;
    size_t apack_len = lay.marks - lay.apack; /* (lay.total for dense input) */
    /* Several blocks and room for several workspaces: the blocks go to threads
     * whole (each runs its products on one thread).  Every row is computed the
     * same way in any block, so the bits do not depend on this choice. */
    size_t slots = ws_len / lay.total;
    int nt = pynn_threads(n_threads);
    if ((size_t)nt > blocks)
        nt = (int)blocks;
    if ((size_t)nt > slots)
        nt = (int)slots;
    pynn__team(nt);
    int bad = 0;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel num_threads(nt) reduction(| : bad)
        {
            T *slot = ws + (size_t)omp_get_thread_num() * lay.total;
#pragma omp for schedule(static)
            for (ptrdiff_t b = 0; b < (ptrdiff_t)blocks; b++) {
                size_t r0 = (size_t)b * batch;
                bad |= predict_block(out, slot + lay.acts, slot + lay.apack, apack_len, net,
                                     params, w_off, b_off, x, sx, r0,
                                     n - r0 < batch ? n - r0 : batch, 1);
            }
        }
        return bad ? PYNN_ERR_NONFINITE : PYNN_OK;
    }
#endif
    for (size_t r0 = 0; r0 < n && !bad; r0 += batch)
        bad = predict_block(out, ws + lay.acts, ws + lay.apack, apack_len, net, params, w_off,
                            b_off, x, sx, r0, n - r0 < batch ? n - r0 : batch, n_threads);
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
    pynn_status st = pynn__net_prologue(w_off, b_off, &lay, net, n, ws_len, sx != NULL);
    if (st != PYNN_OK)
        return st;
    /* apack ends where the marks begin (lay.total for dense input) */
    T *acts = ws + lay.acts, *apack = ws + lay.apack;
    size_t apack_len = lay.marks - lay.apack;
    pynn__net_forward(acts, net, params, w_off, b_off, x, sx, n, apack, apack_len, n_threads);
    double wsq = alpha > 0 ? pynn__weight_sq(net, params, w_off) : 0;
    /* one pass: the stateless sparse gradient (marks NULL) writes every row */
    *loss = pynn__net_backward(grads, ws + lay.delta0, ws + lay.delta1, apack, apack_len, acts,
                               net, params, w_off, b_off, x, sx, NULL, y, sw, NULL, n, alpha,
                               wsq, n_threads);
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

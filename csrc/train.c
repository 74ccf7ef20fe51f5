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
        d->opt_a == NULL || d->y == NULL || d->order == NULL ||
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

/* The batch starting at position pos of the epoch.  Shuffled: its rows are
 * gathered into xb, yb (the only copy of X a fit makes); else they are read in
 * place. */
static batch_view next_batch(T *xb, T *yb, const pynn_train_data *d, size_t pos, size_t nin,
                             size_t m)
{
    batch_view b;
    b.rows = d->n - pos < d->batch_size ? d->n - pos : d->batch_size;
    b.sx.indices = d->x_indices;
    b.sx.data = d->x_data;
    if (d->shuffle) {
        const int64_t *idx = d->order + pos;
        for (size_t r = 0; r < b.rows; r++) {
            if (d->x)
                memcpy(xb + r * nin, d->x + (size_t)idx[r] * nin, nin * sizeof(T));
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
        b.y = d->y + pos * m;
        b.sw = d->sw ? d->sw + pos : NULL;
        b.sw_idx = NULL;
    }
    return b;
}

/* Steps until the epoch ends or max_steps were taken (see pynn.h).  A step on
 * the batch's rows xb, yb:
 *   forward:   a_{l+1} = act_l(a_l W_l + b_l)
 *   backward:  loss and grads = dL/dparams (net.c)
 *   update:    params, opt_a, opt_b by the optimizer (optim.c)
 * A NaN or infinite loss stops the loop before its update. */
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
    st = pynn__net_prologue(w_off, b_off, &lay, net, data->batch_size, data->ws_len, csr);
    if (st != PYNN_OK || (st = pynn_param_count(&n_params, net)) != PYNN_OK)
        return st;

    size_t nin = (size_t)net->units[0], m = (size_t)net->units[net->n_layers];
    T *params = data->params, *grads = data->grads, *ws = data->ws;
    T *acts = ws + lay.acts, *apack = ws + lay.apack;
    size_t apack_len = lay.marks - lay.apack;
    /* CSR input: which rows of the first layer's weight gradient the steps
     * must clear (sparse.c); on entry, grads may hold anything, so all */
    unsigned char *marks = csr ? (unsigned char *)(ws + lay.marks) : NULL;
    if (marks)
        memset(marks, 2, nin);
    /* the L2 term's sum of squares, kept current by the optimizer's loop */
    double wsq = opt->alpha > 0 ? pynn__weight_sq(net, params, w_off) : 0;
    while (result->steps_done < max_steps) {
        if (state->pos == 0 && data->shuffle)
            pynn_shuffle(data->order, data->n, state->rng);
        batch_view b = next_batch(ws + lay.xb, ws + lay.yb, data, state->pos, nin, m);
        const pynn_csr *sx = csr ? &b.sx : NULL;
        pynn__net_forward(acts, net, params, w_off, b_off, b.x, sx, b.rows, apack, apack_len,
                          n_threads);
        double loss = pynn__net_backward(grads, ws + lay.delta0, ws + lay.delta1, apack,
                                         apack_len, acts, net, params, w_off, b_off, b.x, sx,
                                         marks, b.y, b.sw, b.sw_idx, b.rows, opt->alpha, wsq,
                                         n_threads);
        if (!isfinite(loss))
            return PYNN_ERR_NONFINITE; /* before the update: weights stay as they were */
        if (opt->solver == PYNN_SOLVER_ADAM)
            state->t += 1;
        st = pynn__optim_step(&wsq, params, data->opt_a, data->opt_b, grads, net, opt, state->t,
                              w_off, b_off, n_threads);
        if (st != PYNN_OK)
            return st;
        result->steps_done++;
        state->loss_acc += loss * (double)b.rows;
        state->pos += b.rows;
        if (state->pos == data->n) {
            result->epoch_loss = state->loss_acc / (double)data->n;
            result->epoch_done = 1;
            state->pos = 0;
            state->loss_acc = 0;
            break;
        }
    }
    if (result->steps_done > 0)
        pynn__optim_finish(data->opt_a, grads, opt, n_params);
    return PYNN_OK;
}

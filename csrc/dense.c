/*
 * dense.c -- one fully connected layer, forward and backward, through the
 * matrix product (gemm.c) with its fused epilogues.  Typed: compiled once per
 * element type (typed.h).
 */
#include <math.h>
#include <string.h>
#include "typed.h"

/* The products parallelise over their output tiles; count one parallel piece
 * per this many outputs (the order of one register tile of the SIMD kernels,
 * 6 x 8 to 8 x 32), so a small output never gets more threads than it has
 * tiles.  (+ 1: at least one piece.) */
#define OUTPUTS_PER_PIECE 64

static size_t pieces(size_t outputs) { return outputs / OUTPUTS_PER_PIECE + 1; }

/* n, n_in, n_out >= 1 and every product of them (work n * n_in * n_out
 * included) fits in size_t. */
static pynn_status check_dense(size_t n, size_t n_in, size_t n_out)
{
    size_t a, b, c;
    if (n == 0 || n_in == 0 || n_out == 0)
        return PYNN_ERR_ARG;
    if (!pynn__mul(n, n_in, &a) || !pynn__mul(n_in, n_out, &b) || !pynn__mul(n, n_out, &c) ||
        !pynn__mul(a, n_out, &c))
        return PYNN_ERR_OVERFLOW;
    return PYNN_OK;
}

/* The products' arguments start as a copy of this (all zero) rather than as
 * {0}: GCC zeroes a struct of this size with `rep stos`, whose start-up takes
 * tens of cycles on AMD CPUs (several percent of a one-row training step, which
 * builds four of them); the copy is a few vector moves. */
static const pynn_gemm_args no_args = {0};

/* out = act(x W + b);  x (n, n_in), W (n_in, n_out), b (n_out), out (n, n_out).
 * The bias and relu are fused into the product's epilogue; logistic, tanh,
 * softmax and step follow in one pass over the (cache-hot) output, each thread
 * its share of the rows once the product is whole.  ap (NULL: none) is room
 * for the product to pack x; wpack (NULL: none) W packed whole by
 * pynn__gemm_prepack_b for this product; z0 (NULL: none) where each row's
 * first pre-activation goes; x_next (NULL: none) the next product's x, its
 * rows at x_next_idx if not NULL, fetched into cache as this one runs (the
 * product's a_next: a hint). */
void pynn__dense_fwd(T *out, const T *x, const T *W, const T *b, size_t n, size_t n_in,
                     size_t n_out, pynn_activation act, const pynn_apack *ap,
                     const T *wpack, T *z0, const T *x_next, const int64_t *x_next_idx,
                     const pynn_team *tm)
{
    pynn_gemm_args g = no_args;
    g.m = n; g.n = n_out; g.k = n_in;
    g.a = x; g.a_rs = (ptrdiff_t)n_in; g.a_cs = 1;
    g.a_next = x_next; g.a_next_idx = x_next_idx;
    if (ap) {
        g.apack = ap->r; g.apack_len = ap->r_len; g.bf16 = ap->bf16;
        g.bwhole = ap->bw2; g.bwhole_len = ap->bw2_len;
    }
    g.b = W; g.ldb = (ptrdiff_t)n_out; g.bpack = wpack; g.bpack_nr = ap ? ap->wpack_nr : 0;
    g.c = out; g.ldc = (ptrdiff_t)n_out;
    g.epi = PYNN_EPI_BIAS; g.act = act; g.bias = b; g.z0 = z0;
    pynn__gemm_team(&g, tm);
    if (act != PYNN_ACT_IDENTITY && act != PYNN_ACT_RELU) {
        size_t r0, r1;
        pynn__sync(tm);
        pynn__share(n, tm, &r0, &r1);
        if (r0 < r1)
            pynn__activate_rows(out + r0 * n_out, r1 - r0, n_out, act);
    }
}

/* out = act(x W + b), with its argument checks (see pynn__dense_fwd). */
pynn_status pynn_dense_forward(T *out, const T *x, const T *W, const T *b, size_t n,
                               size_t n_in, size_t n_out, pynn_activation act, int n_threads)
{
    if (out == NULL || x == NULL || W == NULL || b == NULL || !pynn__act_ok(act))
        return PYNN_ERR_ARG;
    pynn_status st = check_dense(n, n_in, n_out);
    if (st != PYNN_OK)
        return st;
    int nt = pynn__threads_for(n_threads, n * n_in * n_out, pieces(n * n_out));
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt)
        {
            pynn_team tm = pynn__team_me(&bar);
            pynn__dense_fwd(out, x, W, b, n, n_in, n_out, act, NULL, NULL, NULL, NULL, NULL, &tm);
        }
        return PYNN_OK;
    }
#endif
    pynn_team solo = pynn__solo();
    pynn__dense_fwd(out, x, W, b, n, n_in, n_out, act, NULL, NULL, NULL, NULL, NULL, &solo);
    return PYNN_OK;
}

/* db[j] = scale * sum_k delta[k, j] for the columns [j0, j1), each summed over
 * the n rows in order (so the same bits whichever thread has the column).
 * BIAS_COLS columns at a time, their sums in registers (summed in db itself,
 * which may alias delta for all the compiler knows, every add went through
 * memory: ~4% of a small network's step). */
#define BIAS_COLS 16
static PYNN_ALWAYS_INLINE void bias_cols(T *db, const T *delta, size_t n, size_t n_out,
                                         size_t j, size_t w, T scale)
{
    T acc[BIAS_COLS] = {0};
    for (size_t k = 0; k < n; k++) {
        const T *d = delta + k * n_out + j;
        for (size_t c = 0; c < w; c++)
            acc[c] += d[c];
    }
    for (size_t c = 0; c < w; c++)
        db[j + c] = acc[c] * scale;
}

/* Many columns: BIAS_BLOCK at a time, the rows in order and each row's piece
 * read sequentially, the sums in an array in L1.  (Strips of BIAS_COLS walk
 * down the rows a whole row apart, each visit a new cache line that rows of
 * 4 KiB multiples put in one cache set: a wide layer's 256 x 1024 float64
 * delta was summed at ~3.5 GB/s, ~1% of its step.)  Each column is summed
 * over the rows in the same order, from zero: the same bits. */
#define BIAS_BLOCK 512
static void bias_block(T *db, const T *delta, size_t n, size_t n_out, size_t j, size_t w,
                       T scale)
{
    T acc[BIAS_BLOCK];
    for (size_t c = 0; c < w; c++)
        acc[c] = 0;
    for (size_t k = 0; k < n; k++) {
        const T *d = delta + k * n_out + j;
        for (size_t c = 0; c < w; c++)
            acc[c] += d[c];
    }
    for (size_t c = 0; c < w; c++)
        db[j + c] = acc[c] * scale;
}

void pynn__bias_grad(T *db, const T *delta, size_t n, size_t n_out, size_t j0, size_t j1,
                     T scale)
{
    size_t j = j0;
    if (j1 - j0 > 4 * BIAS_COLS) {
        for (; j < j1; j += BIAS_BLOCK)
            bias_block(db, delta, n, n_out, j, j1 - j < BIAS_BLOCK ? j1 - j : BIAS_BLOCK, scale);
        return;
    }
    for (; j + BIAS_COLS <= j1; j += BIAS_COLS)
        bias_cols(db, delta, n, n_out, j, BIAS_COLS, scale); /* (w known: in registers) */
    if (j < j1)
        bias_cols(db, delta, n, n_out, j, j1 - j, scale);
}
#undef BIAS_COLS
#undef BIAS_BLOCK

/* The weight-gradient product dW = x^T delta / n + alpha W / n, packing A = x^T
 * into room (NULL: none); bf16: its operands rounded to bfloat16. */
static void wgrad_args(pynn_gemm_args *g, T *dW, const T *delta, const T *x, const T *W,
                       size_t n, size_t n_in, size_t n_out, double alpha, T *room,
                       size_t room_len, int bf16)
{
    *g = no_args;
    g->m = n_in; g->n = n_out; g->k = n;
    g->a = x; g->a_rs = 1; g->a_cs = (ptrdiff_t)n_in;
    g->b = delta; g->ldb = (ptrdiff_t)n_out;
    g->c = dW; g->ldc = (ptrdiff_t)n_out;
    g->epi = PYNN_EPI_SCALE_W; g->scale = (T)(1.0 / (double)n);
    g->wscale = (T)(alpha / (double)n);
    g->w = W; g->ldw = (ptrdiff_t)n_out;
    g->apack = room; g->apack_len = room_len;
    g->bf16 = bf16;
}

/* The input-gradient product dx = (delta W^T) * act'(da) (NULL da: plain
 * delta W^T), packing A = delta into ap's room r (NULL ap: none). */
static void igrad_args(pynn_gemm_args *h, T *dx, const T *delta, const T *W, const T *da,
                       size_t n, size_t n_in, size_t n_out, pynn_activation dact,
                       const pynn_apack *ap)
{
    *h = no_args;
    h->m = n; h->n = n_in; h->k = n_out;
    h->a = delta; h->a_rs = (ptrdiff_t)n_out; h->a_cs = 1;
    h->b = W; h->ldb = (ptrdiff_t)n_out; h->b_trans = 1;
    h->c = dx; h->ldc = (ptrdiff_t)n_in;
    h->epi = da ? PYNN_EPI_DACT : PYNN_EPI_NONE; h->act = dact;
    h->da = da; h->ldda = (ptrdiff_t)n_in;
    if (ap) {
        h->apack = ap->r; h->apack_len = ap->r_len; h->bf16 = ap->bf16;
        h->bwhole = ap->bw2; h->bwhole_len = ap->bw2_len;
    }
}

/* The input gradient alone (see pynn__dense_bwd), by the team: one phase, with
 * a sync inside only if the team packed A. */
void pynn__dense_igrad(T *dx, const T *delta, const T *W, const T *da, size_t n, size_t n_in,
                       size_t n_out, pynn_activation dact, const pynn_apack *ap,
                       const pynn_team *tm)
{
    pynn_gemm_args h;
    igrad_args(&h, dx, delta, W, da, n, n_in, n_out, dact, ap);
    int mode = pynn__gemm_pack(&h, tm);
    if (mode == PYNN_APACK_TEAM)
        pynn__sync(tm);
    pynn__gemm_run(&h, tm, mode);
}

/* ... of the rows [r0, r1) alone, by this thread of a team on its own, with
 * no room (the team's is not its alone); rows are independent, so the bits
 * are those of the whole product. */
void pynn__dense_igrad_rows(T *dx, const T *delta, const T *W, const T *da, size_t r0,
                            size_t r1, size_t n_in, size_t n_out, pynn_activation dact,
                            int bf16)
{
    if (r0 >= r1)
        return;
    pynn_apack none = {0};
    none.bf16 = bf16;
    pynn_gemm_args h;
    igrad_args(&h, dx + r0 * n_in, delta + r0 * n_out, W, da ? da + r0 * n_in : NULL, r1 - r0,
               n_in, n_out, dact, &none);
    pynn_team solo = pynn__solo();
    pynn__gemm_run(&h, &solo, pynn__gemm_pack(&h, &solo));
}

/* Packs, for the team, x^T of a layer's weight gradient into room ahead of the
 * phase that runs it (pynn__dense_bwd with the mode returned here), so that
 * phase needs no sync of its own for packing.  Only shapes matter (delta, dW
 * and W are not read). */
int pynn__dense_wgrad_pack(const T *x, size_t n, size_t n_in, size_t n_out, T *room,
                           size_t room_len, int bf16, const pynn_team *tm)
{
    pynn_gemm_args g;
    wgrad_args(&g, NULL, NULL, x, NULL, n, n_in, n_out, 0, room, room_len, bf16);
    return pynn__gemm_pack(&g, tm);
}

/* The same for a thread alone, ahead of the step's backward pass
 * (pack_ahead): PYNN_APACK_TEAM, the mode for pynn__dense_bwd, where it packed
 * x^T into room; else -1 (the product packs x^T itself, or not at all; never
 * for bfloat16 products). */
int pynn__dense_wgrad_pack_ahead(const T *x, size_t n, size_t n_in, size_t n_out, T *room,
                                 size_t room_len)
{
    pynn_gemm_args g;
    wgrad_args(&g, NULL, NULL, x, NULL, n, n_in, n_out, 0, room, room_len, 0);
    g.pack_ahead = 1;
    pynn_team solo = pynn__solo();
    int mode = pynn__gemm_pack(&g, &solo);
    return mode == PYNN_APACK_TEAM ? mode : -1;
}

int pynn__dense_wgrad_packs_x(size_t n, size_t n_in, size_t n_out, size_t room_len)
{
    pynn_gemm_args g;
    T room = 0; /* (a room's address: a thread alone packs nothing here) */
    wgrad_args(&g, NULL, NULL, NULL, NULL, n, n_in, n_out, 0, &room, room_len, 0);
    pynn_team solo = pynn__solo();
    return pynn__gemm_pack(&g, &solo) != PYNN_APACK_NONE;
}

int pynn__dense_wgrad_tiled(size_t n, size_t n_in, size_t n_out)
{
    /* (pynn__gemm_tiled reads the shape, strides, epilogue and bf16 only: the
     * operands, the L2 term and the packing room do not change the kernel) */
    pynn_gemm_args g;
    wgrad_args(&g, NULL, NULL, NULL, NULL, n, n_in, n_out, 0, NULL, 0, 0);
    g.epi = PYNN_EPI_SGD_W;
    return pynn__gemm_tiled(&g) != 0;
}

int pynn__dense_fwd_packs_w(size_t n, size_t n_in, size_t n_out)
{
    pynn_gemm_args g = no_args;
    g.m = n; g.n = n_out; g.k = n_in;
    g.a_rs = (ptrdiff_t)n_in; g.a_cs = 1;
    g.ldb = (ptrdiff_t)n_out; g.ldc = (ptrdiff_t)n_out;
    g.epi = PYNN_EPI_BIAS;
    return pynn__gemm_tiled(&g) == 2;
}

/* Inverts  z = x W + b  (mean over n rows):
 *   dW = x^T delta / n + alpha W / n        (x^T read through strides, no copy)
 *   db = sum_k delta_k / n
 *   dx = (delta W^T) * act'(da)             (W^T read through the packing, no copy;
 *                                            da: cached output of the layer below,
 *                                            NULL da gives plain delta W^T)
 * delta (n, n_out), x (n, n_in), W (n_in, n_out); NULL dx: not computed.
 * One phase for the team: the three are independent (both products' A packed
 * first, one sync between if either was packed by the team).  wmode >= 0: x^T
 * is already packed into wroom (pynn__dense_wgrad_pack, an earlier phase).
 * sgd (not NULL): plain gradient descent applied on the way: sgd->w (W's
 * storage) gets W + v, v = -(lr dW), in the weight gradient's epilogue and
 * sgd->b b + -(lr db) -- the bits of the gradients and then the SGD step --
 * and sgd->vw, vb (unless NULL) the velocity v; dW is then scratch (partial
 * sums between K blocks), and dx is computed first (with a sync in a team),
 * since it reads W. */
void pynn__dense_bwd(T *dx, T *dW, T *db, const T *delta, const T *x, const T *W,
                     const T *da, size_t n, size_t n_in, size_t n_out, double alpha,
                     pynn_activation dact, const pynn_apack *ap, T *wroom, int wmode,
                     const pynn_sgd_fused *sgd, pynn_sgd_bg *bg, const pynn_team *tm)
{
    T inv_n = (T)(1.0 / (double)n);
    pynn_gemm_args g;
    wgrad_args(&g, dW, delta, x, W, n, n_in, n_out, alpha, ap ? wroom : NULL,
               ap ? ap->t_len : 0, ap ? ap->bf16 : 0);
    if (ap) {
        g.bwhole = ap->bw;
        g.bwhole_len = ap->bw_len;
    }
    pynn_gemm_args h;
    if (dx)
        igrad_args(&h, dx, delta, W, da, n, n_in, n_out, dact, ap);
    else
        h = no_args;
    if (sgd) {
        g.epi = PYNN_EPI_SGD_W;
        g.lr = sgd->lr;
        g.wnew = sgd->w;
        g.vnew = sgd->vw;
        /* (the caller asks for it only where the tiles run the product: train.c
         * drops a layer's copy for any step where pynn__dense_wgrad_tiled,
         * which builds these same arguments, says otherwise.  Checked here too,
         * so that another kernel is never handed a copy it would not write;
         * were the two ever to disagree, later forwards would read stale
         * weights: test_fused_sgd's bit-for-bit cases would fail.) */
        g.wpack = sgd->wpack && pynn__gemm_tiled(&g) ? sgd->wpack : NULL;
    }
    int gmode = wmode >= 0 ? wmode : pynn__gemm_pack(&g, tm);
    int hmode = dx ? pynn__gemm_pack(&h, tm) : PYNN_APACK_NONE;
    if ((gmode == PYNN_APACK_TEAM && wmode < 0) || hmode == PYNN_APACK_TEAM)
        pynn__sync(tm);
    if (sgd && dx) {
        /* dx reads W: all of it before any of W changes */
        pynn__gemm_run(&h, tm, hmode);
        if (tm->size > 1)
            pynn__sync(tm);
    }
    g.bg = bg;
    pynn__gemm_run(&g, tm, gmode);
    if (bg)
        pynn__sgd_bg_finish(bg);

    /* db by columns, each summed over the rows in order */
    size_t j0, j1;
    pynn__share(n_out, tm, &j0, &j1);
    pynn__bias_grad(db, delta, n, n_out, j0, j1, inv_n);
    if (sgd) {
        for (size_t j = j0; j < j1; j++) {
            T v = -(sgd->lr * db[j]);
            sgd->b[j] += v;
            if (sgd->vb)
                sgd->vb[j] = v;
        }
    }

    if (dx && !sgd)
        pynn__gemm_run(&h, tm, hmode);
}

/* What a product left of an update in slices (pynn_gemm_args.bg), element by
 * element as the optimizer's pass (optim.c: sgd_seg) does it. */
void pynn__sgd_bg_finish(pynn_sgd_bg *bg)
{
    T *w = bg->w, *v = bg->v, lr = bg->lr;
    const T *g = bg->g;
    for (size_t i = bg->pos; i < bg->end; i++) {
        T x = -(lr * g[i]);
        w[i] += x;
        if (v)
            v[i] = x;
    }
    bg->pos = bg->end;
}

/* dW = x^T delta / n + alpha W / n,  db = sum_k delta_k / n,  dx = delta W^T
 * (NULL dx: not computed), with its argument checks (see pynn__dense_bwd). */
pynn_status pynn_dense_backward(T *dx, T *dW, T *db, const T *delta, const T *x, const T *W,
                                size_t n, size_t n_in, size_t n_out, double alpha,
                                int n_threads)
{
    if (dW == NULL || db == NULL || delta == NULL || x == NULL || W == NULL ||
        !(alpha >= 0) || alpha == INFINITY)
        return PYNN_ERR_ARG;
    pynn_status st = check_dense(n, n_in, n_out);
    if (st != PYNN_OK)
        return st;
    int nt = pynn__threads_for(n_threads, n * n_in * n_out, pieces(n_in * n_out));
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt)
        {
            pynn_team tm = pynn__team_me(&bar);
            pynn__dense_bwd(dx, dW, db, delta, x, W, NULL, n, n_in, n_out, alpha,
                            PYNN_ACT_IDENTITY, NULL, NULL, -1, NULL, NULL, &tm);
        }
        return PYNN_OK;
    }
#endif
    pynn_team solo = pynn__solo();
    pynn__dense_bwd(dx, dW, db, delta, x, W, NULL, n, n_in, n_out, alpha, PYNN_ACT_IDENTITY,
                    NULL, NULL, -1, NULL, NULL, &solo);
    return PYNN_OK;
}

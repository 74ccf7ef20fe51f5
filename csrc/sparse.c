/*
 * sparse.c -- the first layer on sparse input: X in CSR form (indptr, indices,
 * data) times a dense W, and the weight gradient X^T delta, without ever
 * forming X densely.  Typed: compiled once per element type (typed.h).
 *
 * A batch is a list of CSR rows (pynn_csr: row r of the batch is CSR row
 * rows[r], or r when rows is NULL), so a shuffled batch is read in place.
 *
 * Summation orders follow the dense product's (the zeros left out), so the
 * results equal it to rounding:
 *   forward:  out[r, j] = (sum over the row's non-zeros, in stored order, of
 *             x_rp W[p, j], from zero) + b_j;
 *   gradient: dW[p, j] = (sum over batch rows r, in batch order, of
 *             x_rp delta[r, j], from zero) * (1/n) + W[p, j] * (alpha/n).
 * Threads split the forward by rows and the gradient by ranges of output
 * columns, so no element's sum depends on the thread count.
 */
#include <math.h>
#include <string.h>
#include "typed.h"

/* Columns per parallel piece of the gradient: one 64-byte cache line, so two
 * threads never write the same line of dW. */
#define COLS_PER_PIECE (64 / sizeof(T))

/* Rows of W (dW) are fetched this many non-zeros ahead of their use: the
 * rows are random, so the hardware prefetcher cannot guess them, and one row
 * at a time would leave the step waiting on memory latency per row. */
#define PREFETCH_AHEAD 8

/* Ask for the n_out values at w (one row of W or dW) to be brought to cache
 * (a hint: no result depends on it; internal.h's PYNN_PREFETCH_*). */
static inline void prefetch_row(const T *w, size_t n_out, int for_write)
{
    const char *c = (const char *)w;
    for (size_t k = 0; k < n_out * sizeof(T); k += 64) {
        if (for_write)
            PYNN_PREFETCH_W(c + k);
        else
            PYNN_PREFETCH_R(c + k);
    }
}

/* The CSR row of batch row r. */
static inline size_t csr_row(const pynn_csr *x, size_t r)
{
    return x->rows ? (size_t)x->rows[r] : r;
}

/* o = sum_p v_p W[ind_p, :] over one CSR row, from zero, in stored order;
 * then o += b and relu when asked (the dense product's epilogue). */
static void forward_row(T *restrict o, const T *restrict W, const T *restrict b,
                        const int64_t *ind, const T *val, size_t cnt, size_t n_out,
                        pynn_activation act)
{
    memset(o, 0, n_out * sizeof(T));
    for (size_t p = 0; p < cnt && p < PREFETCH_AHEAD; p++)
        prefetch_row(W + (size_t)ind[p] * n_out, n_out, 0);
    for (size_t p = 0; p < cnt; p++) {
        if (p + PREFETCH_AHEAD < cnt)
            prefetch_row(W + (size_t)ind[p + PREFETCH_AHEAD] * n_out, n_out, 0);
        const T v = val[p];
        const T *restrict w = W + (size_t)ind[p] * n_out;
        for (size_t j = 0; j < n_out; j++)
            o[j] += v * w[j];
    }
    for (size_t j = 0; j < n_out; j++)
        o[j] += b[j];
    if (act == PYNN_ACT_RELU)
        for (size_t j = 0; j < n_out; j++)
            o[j] = o[j] > 0 ? o[j] : (T)0;
}

/* out = act(x W + b) for the n batch rows of the CSR x;
 * W (n_in, n_out), b (n_out), out (n, n_out).  Each thread of the team takes
 * its share of the rows, activation included (rows are independent). */
void pynn__sparse_fwd(T *out, const pynn_csr *x, const T *W, const T *b, size_t n,
                      size_t n_out, pynn_activation act, const pynn_team *tm)
{
    size_t r0, r1;
    pynn__share(n, tm, &r0, &r1);
    for (size_t r = r0; r < r1; r++) {
        size_t i = csr_row(x, r);
        size_t p0 = (size_t)x->indptr[i], p1 = (size_t)x->indptr[i + 1];
        forward_row(out + r * n_out, W, b, x->indices + p0, x->data + p0, p1 - p0, n_out, act);
    }
    if (r0 < r1 && act != PYNN_ACT_IDENTITY && act != PYNN_ACT_RELU)
        pynn__activate_rows(out + r0 * n_out, r1 - r0, n_out, act);
}

/* The threads the first layer on CSR rows is worth: its multiply-adds are the
 * rows' non-zeros times n_out. */
static int sparse_threads(const pynn_csr *x, size_t n, size_t n_out, int n_threads)
{
    size_t nnz = 0;
    for (size_t r = 0; r < n; r++) {
        size_t i = csr_row(x, r);
        nnz += (size_t)(x->indptr[i + 1] - x->indptr[i]);
    }
    return pynn__threads_for(n_threads, nnz * n_out, n);
}

/* The gradient on the columns [c0, c1) of dW (one thread's share).
 * marks == NULL: every row of dW is written (zero, scatter, epilogue).
 * marks != NULL: bit 0 of marks[p] says row p of x^T delta is non-zero in this
 * batch; bit 1 that dW's row p may hold something from an earlier call.  Only
 * the batch's rows are zeroed and scattered into; with alpha == 0 the other
 * rows need no work unless bit 1 says they must be cleared -- the step then
 * costs O(non-zeros x n_out), not O(n_in x n_out). */
static void wgrad_cols(T *dW, const T *delta, const pynn_csr *x, const T *W, size_t n,
                       size_t n_in, size_t n_out, size_t c0, size_t c1, T scale, T wscale,
                       const unsigned char *marks)
{
    const size_t w = c1 - c0;
    if (marks == NULL) {
        for (size_t p = 0; p < n_in; p++)
            memset(dW + p * n_out + c0, 0, w * sizeof(T));
    } else {
        for (size_t r = 0; r < n; r++) {
            size_t i = csr_row(x, r);
            for (int64_t q = x->indptr[i]; q < x->indptr[i + 1]; q++) {
                if (q + PREFETCH_AHEAD < x->indptr[i + 1])
                    prefetch_row(dW + (size_t)x->indices[q + PREFETCH_AHEAD] * n_out + c0, w, 1);
                memset(dW + (size_t)x->indices[q] * n_out + c0, 0, w * sizeof(T));
            }
        }
    }
    /* dW[p, :] += x_rp delta[r, :], batch rows in order */
    for (size_t r = 0; r < n; r++) {
        size_t i = csr_row(x, r);
        const T *restrict d = delta + r * n_out + c0;
        for (int64_t q = x->indptr[i]; q < x->indptr[i + 1]; q++) {
            if (q + PREFETCH_AHEAD < x->indptr[i + 1])
                prefetch_row(dW + (size_t)x->indices[q + PREFETCH_AHEAD] * n_out + c0, w, 1);
            const T v = x->data[q];
            T *restrict g = dW + (size_t)x->indices[q] * n_out + c0;
            for (size_t j = 0; j < w; j++)
                g[j] += v * d[j];
        }
    }
    /* the epilogue, as the dense product's: acc * scale (+ W * wscale) */
    for (size_t p = 0; p < n_in; p++) {
        T *restrict g = dW + p * n_out + c0;
        const T *restrict wp = W + p * n_out + c0;
        int touched = marks == NULL || (marks[p] & 1);
        if (touched && wscale != 0) {
            for (size_t j = 0; j < w; j++)
                g[j] = g[j] * scale + wp[j] * wscale;
        } else if (touched) {
            for (size_t j = 0; j < w; j++)
                g[j] = g[j] * scale;
        } else if (wscale != 0) {
            /* the dense product's 0 * scale + W * wscale, exactly */
            for (size_t j = 0; j < w; j++)
                g[j] = wp[j] * wscale;
        } else if (marks[p] & 2) {
            memset(g, 0, w * sizeof(T));
        }
    }
}

/* Inverts  z = x W + b  for the first layer on CSR input (mean over n rows):
 *   dW = x^T delta / n + alpha W / n,   db = sum_k delta_k / n
 * (no dx: nothing upstream of the input needs it).  delta (n, n_out),
 * W and dW (n_in, n_out).  marks: NULL, or n_in bytes kept between the steps
 * of a loop (see wgrad_cols): thread 0 marks the batch's rows, the team syncs,
 * each thread takes its share of the columns (of dW and db); the caller syncs
 * and then has thread 0 call pynn__sparse_marks_done. */
void pynn__sparse_wgrad(T *dW, T *db, const T *delta, const pynn_csr *x, const T *W, size_t n,
                        size_t n_in, size_t n_out, double alpha, unsigned char *marks,
                        const pynn_team *tm)
{
    T scale = (T)(1.0 / (double)n), wscale = (T)(alpha / (double)n);
    if (marks) {
        if (tm->id == 0)
            for (size_t r = 0; r < n; r++) {
                size_t i = csr_row(x, r);
                for (int64_t q = x->indptr[i]; q < x->indptr[i + 1]; q++)
                    marks[x->indices[q]] |= 1;
            }
        pynn__sync(tm);
    }
    size_t pieces = (n_out + COLS_PER_PIECE - 1) / COLS_PER_PIECE, q0, q1;
    pynn__share(pieces, tm, &q0, &q1);
    size_t c0 = q0 * COLS_PER_PIECE, c1 = q1 * COLS_PER_PIECE;
    if (c1 > n_out)
        c1 = n_out;
    if (c0 >= c1)
        return;
    wgrad_cols(dW, delta, x, W, n, n_in, n_out, c0, c1, scale, wscale, marks);
    pynn__bias_grad(db, delta, n, n_out, c0, c1, scale);
}

/* The threads a stateless weight gradient (every row of dW written) is worth. */
static int wgrad_threads(const pynn_csr *x, size_t n, size_t n_in, size_t n_out,
                         int n_threads)
{
    size_t nnz = 0;
    for (size_t r = 0; r < n; r++) {
        size_t i = csr_row(x, r);
        nnz += (size_t)(x->indptr[i + 1] - x->indptr[i]);
    }
    return pynn__threads_for(n_threads, (n_in + nnz) * n_out,
                             (n_out + COLS_PER_PIECE - 1) / COLS_PER_PIECE);
}

/* After a team's pynn__sparse_wgrad and a sync (thread 0 alone): rows the batch
 * touched hold its gradient; with alpha > 0 every row holds W * wscale (either
 * may be non-zero). */
void pynn__sparse_marks_done(unsigned char *marks, size_t n_in, size_t n, double alpha)
{
    T wscale = (T)(alpha / (double)n);
    for (size_t p = 0; p < n_in; p++)
        marks[p] = (unsigned char)((marks[p] & 1) || wscale != 0 ? 2 : 0);
}

/* n, n_in, n_out >= 1 and n_in * n_out fits in size_t. */
static pynn_status check_sizes(size_t n, size_t n_in, size_t n_out)
{
    size_t a;
    if (n == 0 || n_in == 0 || n_out == 0)
        return PYNN_ERR_ARG;
    if (!pynn__mul(n_in, n_out, &a) || !pynn__mul(n, n_out, &a))
        return PYNN_ERR_OVERFLOW;
    return PYNN_OK;
}

/* out = act(x W + b) for n CSR rows (see pynn.h). */
pynn_status pynn_sparse_forward(T *out, const int64_t *indptr, const int64_t *indices,
                                const T *data, const int64_t *rows, const T *W, const T *b,
                                size_t n, size_t n_in, size_t n_out, pynn_activation act,
                                int n_threads)
{
    if (out == NULL || indptr == NULL || indices == NULL || data == NULL || W == NULL ||
        b == NULL || !pynn__act_ok(act))
        return PYNN_ERR_ARG;
    pynn_status st = check_sizes(n, n_in, n_out);
    if (st != PYNN_OK)
        return st;
    pynn_csr x = {indptr, indices, data, rows};
    int nt = sparse_threads(&x, n, n_out, n_threads);
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt)
        {
            pynn_team tm = pynn__team_me(&bar);
            pynn__sparse_fwd(out, &x, W, b, n, n_out, act, &tm);
        }
        return PYNN_OK;
    }
#endif
    pynn_team solo = pynn__solo();
    pynn__sparse_fwd(out, &x, W, b, n, n_out, act, &solo);
    return PYNN_OK;
}

/* dW = x^T delta / n + alpha W / n, db = sum_k delta_k / n for n CSR rows (see pynn.h). */
pynn_status pynn_sparse_backward(T *dW, T *db, const T *delta, const int64_t *indptr,
                                 const int64_t *indices, const T *data, const int64_t *rows,
                                 const T *W, size_t n, size_t n_in, size_t n_out,
                                 double alpha, int n_threads)
{
    if (dW == NULL || db == NULL || delta == NULL || indptr == NULL || indices == NULL ||
        data == NULL || W == NULL || !(alpha >= 0) || alpha == INFINITY)
        return PYNN_ERR_ARG;
    pynn_status st = check_sizes(n, n_in, n_out);
    if (st != PYNN_OK)
        return st;
    pynn_csr x = {indptr, indices, data, rows};
    int nt = wgrad_threads(&x, n, n_in, n_out, n_threads);
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt)
        {
            pynn_team tm = pynn__team_me(&bar);
            pynn__sparse_wgrad(dW, db, delta, &x, W, n, n_in, n_out, alpha, NULL, &tm);
        }
        return PYNN_OK;
    }
#endif
    pynn_team solo = pynn__solo();
    pynn__sparse_wgrad(dW, db, delta, &x, W, n, n_in, n_out, alpha, NULL, &solo);
    return PYNN_OK;
}

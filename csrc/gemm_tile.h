/*
 * gemm_tile.h -- the register-blocked matrix product with fused epilogues,
 * written once over a small vector vocabulary and compiled once per
 * instruction set (gemm_avx2.c, gemm_avx512.c) and element type.
 *
 *   C (m x n) = epilogue( A (m x k) . B (k x n) )
 *   A(i, p) = a[i * a_rs + p * a_cs]     any strides: A or A^T of a row-major matrix
 *   B(p, j) = b[p * ldb + j]             row-major, contiguous along j
 *          or b[j * ldb + p]             (b_trans: B^T row-major; packed, but for
 *                                         one row and a shallow B^T: rowt_run)
 *
 * Each output element is one chain of fused multiply-adds along p = 0..k-1,
 * in that order, started from zero, followed by its epilogue.  Tiles are
 * independent, so the bits of a result depend neither on the thread count nor
 * on the number of rows: a row predicts the same alone or inside a batch.
 *
 * The includer defines: T, V, VL (lanes), MR (rows per tile), GEMM_NAME,
 * MASK_T, V_ZERO, V_LOAD, V_STORE, V_BCAST, V_SET1, V_FMA(a,b,c)=a*b+c,
 * V_ADD, V_SUB, V_MUL, V_MAX, V_GT0_SELECT(a, x) = (a > 0 ? x : 0),
 * M_MAKE(count), V_MLOAD(p, m), V_MSTORE(p, m, v); optionally, for the outer
 * products (outer_run), V_DIV, V_TRUNC (toward zero), V_IOTA() (0, 1, ...),
 * V_IDX_T and V_IDX_OF (whole-number lanes to permute indices), V_PERM1(idx,
 * v) and V_PERM2(a, idx, b) (lane permutes of one and two vectors).
 */
#include <math.h>
#include <stddef.h>
#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define NR (2 * VL)

/* The mixed-precision mode in bfloat16 pairs (below): the includer has a
 * pair instruction. */
#if defined(V_DP2) || defined(AMX_TILES)
#define GEMM_PAIRS 1
#endif

/* A tile covers k-range [p0, p1): the first range starts from zero, later ones
 * continue the same chain from the partial sums parked in C (bit-exact: the
 * store and reload are exact), and only the last applies the epilogue. */
#ifdef GEMM_KC
#define KC GEMM_KC /* the includer's K block */
#else
#define KC PYNN_GEMM_KC
#endif
/* A B^T this shallow (K at most a quarter of the smallest K block: an output
 * layer's few units) runs its tiles in groups of panels (plan()).  A fixed
 * bound, not KC's quarter: with AVX2's 512-deep blocks that took in a
 * 128-unit layer's input gradient, which ran 8-14% slower grouped (mnist-like
 * 128x128x256 against OpenBLAS's Haswell kernels, on a Zen 4). */
#define GROUP_K_MAX ((size_t)PYNN_GEMM_KC_MIN / 4)
#define TILE_ARGS const GEMM_ARGS *g, size_t i0, size_t j0, size_t cols, size_t p0, \
                  size_t p1, int first, int last, const T *bp, const T *ap, size_t cr0, \
                  size_t cr1

/* 1 if the product runs in that grouped order: a shallow B^T (one K block, as
 * 0 < K <= GROUP_K_MAX is) of more than one row tile and column panel.  The
 * one rule plan() and prefetch_next() both follow. */
static inline int GEMM_NAME(grouped)(const GEMM_ARGS *g)
{
    return g->b_trans && !g->bf16 && g->k > 0 && g->k <= GROUP_K_MAX && g->m > MR &&
           g->n > NR;
}

/* Stores columns [0, cols) of a row from x0, x1: a vector whose lanes are all
 * valid is stored whole, one with none is skipped, and only the one straddling
 * the edge is masked (masked stores cost about ten cycles on AMD CPUs). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(store_row)(T *c, V x0, V x1, size_t cols, MASK_T m0, MASK_T m1)
{
    if (cols >= VL)
        V_STORE(c, x0);
    else
        V_MSTORE(c, m0, x0);
    if (cols >= NR)
        V_STORE(c + VL, x1);
    else if (cols > VL)
        V_MSTORE(c + VL, m1, x1);
}

/* Loads columns [0, cols) of a row into x0, x1 (masked lanes read as zero). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(load_row)(const T *c, V *x0, V *x1, size_t cols, MASK_T m0, MASK_T m1)
{
    *x0 = cols == NR ? V_LOAD(c) : V_MLOAD(c, m0);
    *x1 = cols == NR ? V_LOAD(c + VL) : V_MLOAD(c + VL, m1);
}

/* PYNN_EPI_SGD_W's epilogue of one row's NR columns: the gradient as SCALE_W
 * forms it from the sums x0, x1 (s: scale, ws: wscale, used if l2), then
 * v = -(lr g) (nlr = -lr: the same bits) and w + v into wnew, and into wpk
 * (unless NULL: the row's place in the packed copy, g->wpack), v into vnew
 * (unless NULL), as the SGD step does; C is not written.  w0, w1: W's values,
 * loaded by the caller. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(sgd_row)(T *wnew, T *vnew, T *wpk, V w0, V w1, V x0, V x1, V s, V nlr, V ws, int l2,
                   size_t cols, MASK_T m0, MASK_T m1)
{
    x0 = V_MUL(x0, s);
    x1 = V_MUL(x1, s);
    if (l2) {
        x0 = V_ADD(x0, V_MUL(w0, ws));
        x1 = V_ADD(x1, V_MUL(w1, ws));
    }
    x0 = V_MUL(nlr, x0);
    x1 = V_MUL(nlr, x1);
    w0 = V_ADD(w0, x0);
    w1 = V_ADD(w1, x1);
    GEMM_NAME(store_row)(wnew, w0, w1, cols, m0, m1);
    if (wpk)
        GEMM_NAME(store_row)(wpk, w0, w1, cols, m0, m1);
    if (vnew)
        GEMM_NAME(store_row)(vnew, x0, x1, cols, m0, m1);
}

/* The SGD epilogue of a tile's R rows from i0 (their sums in acc0, acc1), every
 * W row read before any is written.  Row by row, a row's load would wait for
 * the previous row's masked store to complete wherever rows lie closer than a
 * vector apart (an output layer of 10 units): the load overlaps the store's
 * whole extent, masked-off lanes included, and a masked store forwards
 * nothing.  Called out of line (the two functions below): inlined into every
 * tile, its extra live vectors made the compiler spill inside the K loops. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(epilogue_sgd_body)(const GEMM_ARGS *g, size_t i0, const int R, size_t j0,
                             const V *acc0, const V *acc1, size_t cols, MASK_T m0, MASK_T m1)
{
    /* (g's fields in locals: the stores through T pointers could alias them) */
    const size_t ldw = (size_t)g->ldw, off = i0 * ldw + j0;
    const T *w = g->w + off;
    T *wnew = g->wnew + off, *vnew = g->vnew ? g->vnew + off : NULL;
    /* (the packed copy: panel j0 / NR over the m rows, NR scalars a row) */
    T *wpk = g->wpack ? g->wpack + j0 * g->m + i0 * NR : NULL;
    const V s = V_SET1(g->scale), nlr = V_SET1(-g->lr), ws = V_SET1(g->wscale);
    const int l2 = g->wscale != 0;
    V w0[MR], w1[MR];
PYNN_UNROLL16
    for (int r = 0; r < R; r++)
        GEMM_NAME(load_row)(w + (size_t)r * ldw, &w0[r], &w1[r], cols, m0, m1);
PYNN_UNROLL16
    for (int r = 0; r < R; r++) {
        size_t o = (size_t)r * ldw;
        GEMM_NAME(sgd_row)(wnew + o, vnew ? vnew + o : NULL, wpk ? wpk + (size_t)r * NR : NULL,
                           w0[r], w1[r], acc0[r], acc1[r], s, nlr, ws, l2, cols, m0, m1);
    }
}

/* ... out of line, a tile of MR full rows (the common one: unrolled, no masks)
 * apart from the others */
static PYNN_NOINLINE void
GEMM_NAME(epilogue_sgd_full)(const GEMM_ARGS *g, size_t i0, size_t j0, const V *acc0,
                             const V *acc1)
{
    GEMM_NAME(epilogue_sgd_body)(g, i0, MR, j0, acc0, acc1, NR, M_MAKE(VL), M_MAKE(VL));
}

static PYNN_NOINLINE void
GEMM_NAME(epilogue_sgd_rows)(const GEMM_ARGS *g, size_t i0, int R, size_t j0, const V *acc0,
                             const V *acc1, size_t cols, MASK_T m0, MASK_T m1)
{
    if (R == MR && cols == NR)
        GEMM_NAME(epilogue_sgd_full)(g, i0, j0, acc0, acc1);
    else
        GEMM_NAME(epilogue_sgd_body)(g, i0, R, j0, acc0, acc1, cols, m0, m1);
}

/* ... of one row, its sums by value (a caller's sums whose address was taken
 * would be kept in memory). */
static PYNN_NOINLINE void
GEMM_NAME(epilogue_sgd)(const GEMM_ARGS *g, size_t i, size_t j0, V x0, V x1, size_t cols,
                        MASK_T m0, MASK_T m1)
{
    GEMM_NAME(epilogue_sgd_rows)(g, i, 1, j0, &x0, &x1, cols, m0, m1);
}

/* One output row of the epilogue on the vectors x0, x1 (columns j0..j0+NR). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(epilogue)(const GEMM_ARGS *g, size_t i, size_t j0, V x0, V x1, size_t cols,
                    MASK_T m0, MASK_T m1)
{
    const int full = cols == NR;
    T *c = g->c + i * g->ldc + j0;
#define LD(p, k) (full ? V_LOAD((p) + (k) * VL) : ((k) ? V_MLOAD((p) + VL, m1) : V_MLOAD((p), m0)))
    switch (g->epi) {
    case PYNN_EPI_BIAS: {
        const T *bias = g->bias + j0;
        x0 = V_ADD(x0, LD(bias, 0));
        x1 = V_ADD(x1, LD(bias, 1));
        if (g->z0 && j0 == 0)
            V_MSTORE(g->z0 + i, M_MAKE(1), x0);
        if (g->act == PYNN_ACT_RELU) {
            x0 = V_MAX(x0, V_ZERO());
            x1 = V_MAX(x1, V_ZERO());
        }
        break;
    }
    case PYNN_EPI_SCALE_W: {
        V s = V_SET1(g->scale);
        x0 = V_MUL(x0, s);
        x1 = V_MUL(x1, s);
        if (g->wscale != 0) {
            const T *w = g->w + i * g->ldw + j0;
            V ws = V_SET1(g->wscale);
            x0 = V_ADD(x0, V_MUL(LD(w, 0), ws));
            x1 = V_ADD(x1, V_MUL(LD(w, 1), ws));
        }
        break;
    }
    case PYNN_EPI_SGD_W:
        GEMM_NAME(epilogue_sgd)(g, i, j0, x0, x1, cols, m0, m1);
        return;
    case PYNN_EPI_DACT: {
        const T *a = g->da + i * g->ldda + j0;
        V a0 = LD(a, 0), a1 = LD(a, 1), one = V_SET1((T)1);
        switch (g->act) {
        case PYNN_ACT_RELU:
            x0 = V_GT0_SELECT(a0, x0);
            x1 = V_GT0_SELECT(a1, x1);
            break;
        case PYNN_ACT_LOGISTIC:
            x0 = V_MUL(x0, V_MUL(a0, V_SUB(one, a0)));
            x1 = V_MUL(x1, V_MUL(a1, V_SUB(one, a1)));
            break;
        case PYNN_ACT_TANH:
            x0 = V_MUL(x0, V_SUB(one, V_MUL(a0, a0)));
            x1 = V_MUL(x1, V_SUB(one, V_MUL(a1, a1)));
            break;
        default:
            break;
        }
        break;
    }
    default:
        break;
    }
#undef LD
    GEMM_NAME(store_row)(c, x0, x1, cols, m0, m1);
}

#ifndef PYNN_GEMM_PREFETCH
/* A hint: fetch the cache line holding *p into every cache level (no fault). */
#define PYNN_GEMM_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define PYNN_GEMM_LINE 64
#endif

/* Prefetches the elements [p, p + count) of one row: each of its cache lines. */
static PYNN_ALWAYS_INLINE void GEMM_NAME(prefetch_row)(const T *p, size_t count)
{
    const char *s = (const char *)p, *e = (const char *)(p + count - 1);
    for (; s < e; s += PYNN_GEMM_LINE)
        PYNN_GEMM_PREFETCH(s);
    PYNN_GEMM_PREFETCH(e);
}

/* Whether a tile's epilogue reads rows of its own of another matrix (w or
 * da), after its last K block. */
static PYNN_ALWAYS_INLINE int GEMM_NAME(epi_reads_rows)(const GEMM_ARGS *g)
{
    return g->epi == PYNN_EPI_DACT || g->epi == PYNN_EPI_SGD_W ||
           (g->epi == PYNN_EPI_SCALE_W && g->wscale != 0);
}

/* Those rows' element (i0, j0), and *ld, their stride. */
static PYNN_ALWAYS_INLINE const T *GEMM_NAME(epi_rows)(const GEMM_ARGS *g, size_t i0, size_t j0,
                                                        ptrdiff_t *ld)
{
    const int dact = g->epi == PYNN_EPI_DACT;
    *ld = dact ? g->ldda : g->ldw;
    return (dact ? g->da : g->w) + i0 * (size_t)*ld + j0;
}

/* Prefetches those rows: [i0, i0 + rows), columns [j0, j0 + w). */
static PYNN_ALWAYS_INLINE void GEMM_NAME(prefetch_epi_rows)(const GEMM_ARGS *g, size_t i0,
                                                            size_t rows, size_t j0, size_t w)
{
    ptrdiff_t ld;
    const T *e = GEMM_NAME(epi_rows)(g, i0, j0, &ld);
    for (size_t r = 0; r < rows; r++)
        GEMM_NAME(prefetch_row)(e + r * ld, w);
}

/* Prefetches the C rows of the tile at (ni, nj), at most width columns: none
 * past C's last column, nor where C's rows lie closer than a page (the
 * hardware follows those). */
static PYNN_ALWAYS_INLINE void GEMM_NAME(prefetch_c_rows)(const GEMM_ARGS *g, size_t ni,
                                                          size_t nj, size_t width)
{
    if (nj >= g->n || (size_t)g->ldc < PYNN_GEMM_ALIAS_BYTES / sizeof(T))
        return;
    size_t rows = g->m - ni < MR ? g->m - ni : MR;
    size_t w = g->n - nj < width ? g->n - nj : width;
    for (size_t r = 0; r < rows; r++)
        GEMM_NAME(prefetch_row)(g->c + (ni + r) * g->ldc + nj, w);
}

/* Fetches, while this tile computes, what the next tiles will read from rows
 * lying a page or more apart, which no hardware prefetcher follows (they do
 * follow rows closer together, and then the hints would only cost time):
 * (1) the C rows of the tile that follows in gemm_run's order (its chunk of
 * rows [cr0, cr1) column panel by column panel) -- the next row tile, or the
 * chunk's first of the next column panel; (2) this row tile's share (among
 * the chunk's) of the rows of B's next column panel, which pack_b copies
 * once this panel's last row tile is done (B^T: its rows
 * are contiguous, but short).  Also (0) below.  Only for K blocks deep enough
 * to hide the fetches behind, except (0) and (1) where C's rows lie a page
 * apart.  Hints only: no result changes. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(prefetch_next)(const GEMM_ARGS *g, size_t i0, size_t j0, size_t p0, size_t p1,
                         int packed, size_t cr0, size_t cr1)
{
    const size_t far = PYNN_GEMM_ALIAS_BYTES / sizeof(T);
    /* rows a page apart are worth it even behind a short K loop: each of them
     * would otherwise be a miss of its own, in a page of its own */
    const int deep = p1 - p0 >= PYNN_GEMM_PREFETCH_MIN_K;
    if (!deep && (size_t)g->ldc < far)
        return;
    /* (0) this tile's own epilogue operand rows (w or da: one line or two per
     * row, rows apart, which the hardware fetches too late), read right after
     * the K loop */
    if (p1 == g->k && GEMM_NAME(epi_reads_rows)(g)) {
        size_t rows = g->m - i0 < MR ? g->m - i0 : MR;
        GEMM_NAME(prefetch_epi_rows)(g, i0, rows, j0, g->n - j0 < NR ? g->n - j0 : NR);
        /* ... and the rows of W's packed copy it writes (one run of them) */
        if (g->epi == PYNN_EPI_SGD_W && g->wpack)
            GEMM_NAME(prefetch_row)(g->wpack + j0 * g->m + i0 * NR, rows * NR);
    }
    size_t ni = i0 + MR, nj = j0;
    if (ni >= cr1) {
        ni = cr0;
        nj = j0 + NR;
    }
    /* (the grouped order of a shallow B^T, plan(): the next tile is this
     * one's right neighbour, on the lines that follow these) */
    if (!GEMM_NAME(grouped)(g))
        GEMM_NAME(prefetch_c_rows)(g, ni, nj, NR);
    /* (not where B comes packed whole, g->bpack: nothing packs the next panel) */
    if (deep && packed && !(g->bpack && g->bpack_nr == NR && !g->bf16) && j0 + NR < g->n &&
        (g->b_trans || (size_t)g->ldb >= far)) {
        size_t mt = (cr1 - cr0 + MR - 1) / MR, it = (i0 - cr0) / MR, kc = p1 - p0;
        size_t jn = g->n - (j0 + NR) < NR ? g->n - (j0 + NR) : NR;
        if (!g->b_trans) {
            /* kc rows of jn elements */
            size_t share = (kc + mt - 1) / mt, q0 = it * share, q1 = q0 + share;
            if (q1 > kc)
                q1 = kc;
            for (size_t q = q0; q < q1; q++)
                GEMM_NAME(prefetch_row)(g->b + (p0 + q) * g->ldb + j0 + NR, jn);
        } else {
            /* jn rows of B^T, kc elements each: this tile's share of the rows */
            size_t share = (jn + mt - 1) / mt, q0 = it * share, q1 = q0 + share;
            if (q1 > jn)
                q1 = jn;
            for (size_t q = q0; q < q1; q++)
                GEMM_NAME(prefetch_row)(g->b + (j0 + NR + q) * g->ldb + p0, kc);
        }
    }
}

/* A tile's partial sums at the start of its K block: zero for the first
 * block, else those parked in C by the previous one. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(acc_start)(const int R, const GEMM_ARGS *g, size_t i0, size_t j0, size_t cols,
                     int first, V *acc0, V *acc1, MASK_T m0, MASK_T m1)
{
PYNN_UNROLL16
    for (int r = 0; r < R; r++) {
        if (first) {
            acc0[r] = V_ZERO();
            acc1[r] = V_ZERO();
        } else {
            const T *c = g->c + (i0 + r) * g->ldc + j0;
            acc0[r] = cols == NR ? V_LOAD(c) : V_MLOAD(c, m0);
            acc1[r] = cols == NR ? V_LOAD(c + VL) : V_MLOAD(c + VL, m1);
        }
    }
}

/* ... and at its end: the epilogue after the last block, else parked in C. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(acc_finish)(const int R, const GEMM_ARGS *g, size_t i0, size_t j0, size_t cols,
                      int last, const V *acc0, const V *acc1, MASK_T m0, MASK_T m1)
{
    if (last && g->epi == PYNN_EPI_SGD_W) {
        /* (copies: the sums' own arrays must not escape, or the compiler keeps
         * them in memory through the K loop) */
        V t0[MR], t1[MR];
PYNN_UNROLL16
        for (int r = 0; r < R; r++) {
            t0[r] = acc0[r];
            t1[r] = acc1[r];
        }
        GEMM_NAME(epilogue_sgd_rows)(g, i0, R, j0, t0, t1, cols, m0, m1);
    } else if (last) {
PYNN_UNROLL16
        for (int r = 0; r < R; r++)
            GEMM_NAME(epilogue)(g, i0 + r, j0, acc0[r], acc1[r], cols, m0, m1);
    } else {
PYNN_UNROLL16
        for (int r = 0; r < R; r++)
            GEMM_NAME(store_row)(g->c + (i0 + r) * g->ldc + j0, acc0[r], acc1[r], cols, m0, m1);
    }
}

/* How a tile's K loop reads A and B (constants the compiler folds). */
enum {
    GEMM_NAME(A_STRIDED), /* A at run-time strides, B at a run-time ldb */
    GEMM_NAME(A_PACKED),  /* A packed: ars 1, acs MR */
    GEMM_NAME(A_ROWS_BP), /* A row-major in place (acs 1), B packed (ldb NR) */
    GEMM_NAME(A_ROWS),    /* A row-major in place (acs 1), B in place, all NR columns */
    GEMM_NAME(A_COLS)     /* A = X^T in place (ars 1: a tile's rows side by side) */
};

/* The K loops of full-panel tiles unrolled PYNN_GEMM_K_UNROLL times (internal.h) */
#if defined(__GNUC__) || defined(__clang__)
#define KUNROLL_PRAGMA_(x) _Pragma(#x)
#define KUNROLL_PRAGMA_N(n) KUNROLL_PRAGMA_(GCC unroll n)
#define KUNROLL_PRAGMA(n) KUNROLL_PRAGMA_N(n)
#else
#define KUNROLL_PRAGMA(n)
#endif
/* Row r's value of a K step whose A rows lie s bytes apart in place: rows
 * 0..3 at a0 + 0, s, 2 s, s3 and rows 4..7 at a4 the same way (tile_k's
 * A_ROWS modes, tri_k's). */
static PYNN_ALWAYS_INLINE const T *GEMM_NAME(row_at)(const char *a0, const char *a4,
                                                     ptrdiff_t s, ptrdiff_t s3, int r)
{
    const char *q = r < 4 ? a0 : a4;
    const int rr = r & 3;
    return (const T *)(rr == 0 ? q : rr == 1 ? q + s : rr == 2 ? q + 2 * s : q + s3);
}

/* The K loop of an R x NR tile: A's values of step p at a + p acs + r ars,
 * B's at b + p ldb (full_b: every column there).  The strides the mode fixes
 * are constants: with all of them known only at run time the loop needs R - 1
 * row offsets, the strides and its pointers in general registers, more than
 * there are, and the compiler kept some in memory, an add to a stack slot in
 * every step. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tile_k)(const int R, const int mode, const int two, V *acc0, V *acc1, const T *a,
                  ptrdiff_t ars, ptrdiff_t acs, const T *b, ptrdiff_t ldb, size_t k, int full_b,
                  MASK_T m0, MASK_T m1)
{
    if (mode == GEMM_NAME(A_PACKED)) {
        ars = 1;
        acs = MR;
    } else if (mode == GEMM_NAME(A_ROWS_BP)) {
        acs = 1;
        ldb = NR;
        full_b = 1;
    } else if (mode == GEMM_NAME(A_ROWS)) {
        acs = 1;
        full_b = 1;
    } else if (mode == GEMM_NAME(A_COLS)) {
        ars = 1;
    }
    /* two: both vectors of the panel; else the first alone (a panel at most VL
     * wide -- an output layer of 10 units -- whose second vector would only
     * multiply zeros: acc1 stays as it started) */
    if (mode == GEMM_NAME(A_ROWS_BP) || mode == GEMM_NAME(A_ROWS)) {
        /* rows 0..3 at a0 + 0, s, 2 s, s3 bytes and rows 4..7 at a4 = a0 + 4 s
         * the same way: two pointers and two byte strides, all in address
         * modes (scales 1 and 2), where R - 1 row offsets would not fit.  At
         * most 8 rows: the float tiles' R (TILE_CASE, one_tile: an #error says
         * so for every instance but AMX's, whose float tiles take 8 rows too) */
        const ptrdiff_t s = ars * (ptrdiff_t)sizeof(T), s3 = 3 * s;
        /* (a4 only for R > 4: a row past a short tile may lie past A) */
        const char *a0 = (const char *)a, *a4 = R > 4 ? a0 + 4 * s : a0;
        KUNROLL_PRAGMA(PYNN_GEMM_K_UNROLL)
        for (size_t p = 0; p < k; p++) {
            V b0 = V_LOAD(b), b1 = two ? V_LOAD(b + VL) : b0;
PYNN_UNROLL16
            for (int r = 0; r < R; r++) {
                V av = V_BCAST(GEMM_NAME(row_at)(a0, a4, s, s3, r));
                acc0[r] = V_FMA(av, b0, acc0[r]);
                if (two)
                    acc1[r] = V_FMA(av, b1, acc1[r]);
            }
            a0 += sizeof(T);
            a4 += sizeof(T);
            b += ldb;
        }
    } else if (full_b) {
        KUNROLL_PRAGMA(PYNN_GEMM_K_UNROLL)
        for (size_t p = 0; p < k; p++) {
            V b0 = V_LOAD(b), b1 = two ? V_LOAD(b + VL) : b0;
PYNN_UNROLL16
            for (int r = 0; r < R; r++) {
                V av = V_BCAST(a + r * ars);
                acc0[r] = V_FMA(av, b0, acc0[r]);
                if (two)
                    acc1[r] = V_FMA(av, b1, acc1[r]);
            }
            a += acs;
            b += ldb;
        }
    } else {
        for (size_t p = 0; p < k; p++) {
            V b0 = V_MLOAD(b, m0), b1 = two ? V_MLOAD(b + VL, m1) : b0;
PYNN_UNROLL16
            for (int r = 0; r < R; r++) {
                V av = V_BCAST(a + r * ars);
                acc0[r] = V_FMA(av, b0, acc0[r]);
                if (two)
                    acc1[r] = V_FMA(av, b1, acc1[r]);
            }
            a += acs;
            b += ldb;
        }
    }
}

/* tile_k with the mode known at compile time in each instance (two: as for
 * tile_k, a constant of the caller's). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tile_k_mode)(const int R, int mode, const int two, V *acc0, V *acc1, const T *a,
                       ptrdiff_t ars, ptrdiff_t acs, const T *b, ptrdiff_t ldb, size_t k,
                       int full_b, MASK_T m0, MASK_T m1)
{
#define TILE_K_IF(M)                                                                      \
    if (mode == GEMM_NAME(M))                                                             \
        GEMM_NAME(tile_k)(R, GEMM_NAME(M), two, acc0, acc1, a, ars, acs, b, ldb, k, full_b,  \
                          m0, m1);                                                        \
    else
    TILE_K_IF(A_PACKED)
    TILE_K_IF(A_ROWS_BP)
    TILE_K_IF(A_COLS)
    TILE_K_IF(A_ROWS)
    GEMM_NAME(tile_k)(R, GEMM_NAME(A_STRIDED), two, acc0, acc1, a, ars, acs, b, ldb, k, full_b,
                      m0, m1);
#undef TILE_K_IF
}

/* An R x NR tile (R <= MR); cols < NR uses masked loads and stores. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tile)(const int R, TILE_ARGS)
{
    V acc0[MR], acc1[MR];
    MASK_T m0 = M_MAKE(cols < VL ? cols : VL);
    MASK_T m1 = M_MAKE(cols > VL ? cols - VL : 0);
    GEMM_NAME(acc_start)(R, g, i0, j0, cols, first, acc0, acc1, m0, m1);
    /* A from its packed panel (MR values per step, contiguous) or from memory */
    const ptrdiff_t ars = ap ? 1 : g->a_rs, acs = ap ? MR : g->a_cs;
    const T *a = ap ? ap : g->a + i0 * ars + p0 * acs;
    /* B from the packed panel (NR wide, zero-padded) or straight from memory */
    const ptrdiff_t ldb = bp ? NR : g->ldb;
    const T *b = bp ? bp : g->b + p0 * ldb + j0;
    const size_t k = p1 - p0;
    const int full_b = cols == NR || bp;
    GEMM_NAME(prefetch_next)(g, i0, j0, p0, p1, bp != NULL, cr0, cr1);
    const int mode = ap ? GEMM_NAME(A_PACKED)
                     : bp && acs == 1 ? GEMM_NAME(A_ROWS_BP)
                     : acs == 1 && full_b ? GEMM_NAME(A_ROWS)
                     : ars == 1       ? GEMM_NAME(A_COLS)
                                      : GEMM_NAME(A_STRIDED);
    if (cols > VL)
        GEMM_NAME(tile_k_mode)(R, mode, 1, acc0, acc1, a, ars, acs, b, ldb, k, full_b, m0, m1);
    else
        GEMM_NAME(tile_k_mode)(R, mode, 0, acc0, acc1, a, ars, acs, b, ldb, k, full_b, m0, m1);
    GEMM_NAME(acc_finish)(R, g, i0, j0, cols, last, acc0, acc1, m0, m1);
}

#define TILE_CASE(R)                                                                      \
    case R:                                                                               \
        GEMM_NAME(tile)(R, g, i0, j0, cols, p0, p1, first, last, bp, ap, cr0, cr1);       \
        break;

/* Rows [i0, i0 + rows) of C over G column panels from j0 (the last one
 * `last_cols` wide, NR when full), each row the whole K at once with B read in
 * place: 2 G independent FMA chains along p, each started from zero, then each
 * panel's epilogue -- the chain and the epilogue of a tile, so the same bits.
 * g's fields are read once, into locals, ahead of the rows (the stores through
 * T pointers could alias them, so the compiler would read them again for every
 * row). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(row_panels)(const int G, const int full, const GEMM_ARGS *g, size_t i0, size_t rows,
                      size_t j0, size_t last_cols)
{
    MASK_T m0 = M_MAKE(last_cols < VL ? last_cols : VL);
    MASK_T m1 = M_MAKE(last_cols > VL ? last_cols - VL : 0);
    const T *const abase = g->a, *const bbase = g->b + j0;
    const ptrdiff_t a_rs = g->a_rs, a_cs = g->a_cs, ldb = g->ldb;
    const size_t k = g->k;
    const int sgd = g->epi == PYNN_EPI_SGD_W;
    const size_t ldw = sgd ? (size_t)g->ldw : 0;
    const T *const wbase = sgd ? g->w + j0 : NULL;
    T *const wnbase = sgd ? g->wnew + j0 : NULL;
    T *const vnbase = sgd && g->vnew ? g->vnew + j0 : NULL;
    const V s = V_SET1(sgd ? g->scale : 0), nlr = V_SET1(sgd ? -g->lr : 0),
            ws = V_SET1(sgd ? g->wscale : 0);
    const int l2 = sgd && g->wscale != 0;
    /* K = 1 (a one-row step's weight gradient, an outer product): B's row in
     * registers for all the rows (where they fit beside the accumulators: not
     * four panels in AVX2's 16 registers) */
    const int hoist = k == 1 && (G <= 3 || VL * sizeof(T) >= 64);
    V bh0[4], bh1[4];
PYNN_UNROLL16
    for (int q = 0; q < G; q++) {
        const T *bq = bbase + (size_t)q * NR;
        /* (zero, unread, unless hoisted: GCC cannot tell) */
        bh0[q] = !hoist ? V_ZERO() : full || q < G - 1 ? V_LOAD(bq) : V_MLOAD(bq, m0);
        bh1[q] = !hoist ? V_ZERO() : full || q < G - 1 ? V_LOAD(bq + VL) : V_MLOAD(bq + VL, m1);
    }
    for (size_t i = i0; i < i0 + rows; i++) {
        V acc0[4], acc1[4];
PYNN_UNROLL16
        for (int q = 0; q < G; q++) {
            acc0[q] = V_ZERO();
            acc1[q] = V_ZERO();
        }
        const T *a = abase + i * a_rs;
        const T *b = bbase;
        if (hoist) {
            V av = V_BCAST(a);
PYNN_UNROLL16
            for (int q = 0; q < G; q++) {
                acc0[q] = V_FMA(av, bh0[q], acc0[q]);
                acc1[q] = V_FMA(av, bh1[q], acc1[q]);
            }
        } else
        for (size_t p = 0; p < k; p++, a += a_cs, b += ldb) {
            V av = V_BCAST(a);
PYNN_UNROLL16
            for (int q = 0; q < G; q++) {
                const T *bq = b + (size_t)q * NR;
                if (full || q < G - 1) {
                    acc0[q] = V_FMA(av, V_LOAD(bq), acc0[q]);
                    acc1[q] = V_FMA(av, V_LOAD(bq + VL), acc1[q]);
                } else {
                    acc0[q] = V_FMA(av, V_MLOAD(bq, m0), acc0[q]);
                    acc1[q] = V_FMA(av, V_MLOAD(bq + VL, m1), acc1[q]);
                }
            }
        }
        if (sgd) {
            const size_t off = i * ldw;
PYNN_UNROLL16
            for (int q = 0; q < G; q++) {
                const size_t jq = off + (size_t)q * NR, c = full || q < G - 1 ? NR : last_cols;
                V w0, w1;
                GEMM_NAME(load_row)(wbase + jq, &w0, &w1, c, m0, m1);
                GEMM_NAME(sgd_row)(wnbase + jq, vnbase ? vnbase + jq : NULL, NULL, w0, w1, acc0[q],
                                   acc1[q], s, nlr, ws, l2, c, m0, m1);
            }
            continue;
        }
        MASK_T f0 = M_MAKE(VL), f1 = M_MAKE(VL);
PYNN_UNROLL16
        for (int q = 0; q < G; q++) {
            if (full || q < G - 1)
                GEMM_NAME(epilogue)(g, i, j0 + (size_t)q * NR, acc0[q], acc1[q], NR, f0, f1);
            else
                GEMM_NAME(epilogue)(g, i, j0 + (size_t)q * NR, acc0[q], acc1[q], last_cols,
                                    m0, m1);
        }
    }
}

/* Whether the product runs row by row (see PYNN_GEMM_ROWS_MAX_M): not for
 * B^T (whose columns are read through the packing) nor in the bf16 mode
 * (whose operands are rounded in the packing); with many rows, only when a
 * pass covers one full panel or more (a narrow one, an output layer of 10
 * units, would have each row's masked W store stall the next row's load: the
 * tiles' epilogue reads all their W rows first). */
static int GEMM_NAME(by_rows)(const GEMM_ARGS *g)
{
    return !g->bf16 && !g->b_trans &&
           (g->m <= PYNN_GEMM_ROWS_MAX_M || (g->k <= PYNN_GEMM_ROWS_MAX_K && g->n >= NR));
}

/* This thread's share of a product run row by row: pieces of up to four
 * column panels of one row, in the order row by row, and within a row panel
 * group by panel group.  Where one group covers every column, the share's
 * rows run in one call (no division nor dispatch per row). */
static void GEMM_NAME(row_run)(const GEMM_ARGS *g, const pynn_team *tm)
{
    size_t nt = (g->n + NR - 1) / NR, groups = (nt + 3) / 4, t0, t1;
    pynn__share(g->m * groups, tm, &t0, &t1);
    if (t0 >= t1)
        return;
    size_t i = groups == 1 ? t0 : t0 / groups, qg = groups == 1 ? 0 : t0 % groups;
    for (size_t t = t0; t < t1;) {
        size_t q0 = qg * 4, G = nt - q0 < 4 ? nt - q0 : 4, j0 = q0 * NR;
        size_t last = g->n - (j0 + (G - 1) * NR); /* the last panel's width */
        if (last > NR)
            last = NR;
        int full = last == NR;
        size_t rows = groups == 1 ? t1 - t : 1;
        switch (G * 2 + (size_t)full) {
        case 2: GEMM_NAME(row_panels)(1, 0, g, i, rows, j0, last); break;
        case 3: GEMM_NAME(row_panels)(1, 1, g, i, rows, j0, last); break;
        case 4: GEMM_NAME(row_panels)(2, 0, g, i, rows, j0, last); break;
        case 5: GEMM_NAME(row_panels)(2, 1, g, i, rows, j0, last); break;
        case 6: GEMM_NAME(row_panels)(3, 0, g, i, rows, j0, last); break;
        case 7: GEMM_NAME(row_panels)(3, 1, g, i, rows, j0, last); break;
        case 8: GEMM_NAME(row_panels)(4, 0, g, i, rows, j0, last); break;
        default: GEMM_NAME(row_panels)(4, 1, g, i, rows, j0, last); break;
        }
        t += rows;
        if (groups == 1)
            i += rows;
        else if (++qg == groups) {
            qg = 0;
            i++;
        }
    }
}

/* One row of A times a shallow B^T (a one-row step's input gradient through
 * an output layer of a few units): each value of C its chain in scalar
 * fused multiply-adds, in the tile's order from zero (a lane of V_FMA and a
 * scalar fma round alike), then each panel's epilogue on those values as
 * vectors -- the tile's bits, without transposing B^T into a panel first
 * (the packing and the tile's setup cost more than the arithmetic: a 1 x 10
 * x 32 product with the relu' epilogue, ~15% of a one-row step, took 170-220
 * ns on a Zen 4, now 100-120 ns, float32 and float64). */
static int GEMM_NAME(rowt_ok)(const GEMM_ARGS *g)
{
    return g->b_trans && !g->bf16 && g->m == 1 && g->k > 0 && g->k <= PYNN_GEMM_ROWT_MAX_K;
}

#define ROWT_FMA(x, y, z) _Generic((z), float: fmaf, default: fma)((x), (y), (z))
static void GEMM_NAME(rowt_run)(const GEMM_ARGS *g, const pynn_team *tm)
{
    size_t nt = (g->n + NR - 1) / NR, q0 = 0, q1 = nt;
    if (tm->size > 1)
        pynn__share(nt, tm, &q0, &q1);
    const size_t k = g->k;
    const ptrdiff_t ldb = g->ldb;
    T a[PYNN_GEMM_ROWT_MAX_K];
    for (size_t p = 0; p < k; p++)
        a[p] = g->a[(ptrdiff_t)p * g->a_cs];
    for (size_t jt = q0; jt < q1; jt++) {
        size_t j0 = jt * NR, cols = g->n - j0 < NR ? g->n - j0 : NR;
        _Alignas(64) T c[NR];
        size_t j = 0;
        /* four chains at a time: each waits on the FMA's latency */
        for (; j + 4 <= cols; j += 4) {
            const T *w = g->b + (ptrdiff_t)(j0 + j) * ldb;
            T c0 = 0, c1 = 0, c2 = 0, c3 = 0;
            for (size_t p = 0; p < k; p++) {
                c0 = ROWT_FMA(a[p], w[p], c0);
                c1 = ROWT_FMA(a[p], w[ldb + p], c1);
                c2 = ROWT_FMA(a[p], w[2 * ldb + p], c2);
                c3 = ROWT_FMA(a[p], w[3 * ldb + p], c3);
            }
            c[j] = c0;
            c[j + 1] = c1;
            c[j + 2] = c2;
            c[j + 3] = c3;
        }
        for (; j < cols; j++) {
            const T *w = g->b + (ptrdiff_t)(j0 + j) * ldb;
            T acc = 0;
            for (size_t p = 0; p < k; p++)
                acc = ROWT_FMA(a[p], w[p], acc);
            c[j] = acc;
        }
        MASK_T m0 = M_MAKE(cols < VL ? cols : VL);
        MASK_T m1 = M_MAKE(cols > VL ? cols - VL : 0);
        GEMM_NAME(epilogue)(g, 0, j0, V_MLOAD(c, m0), V_MLOAD(c + VL, m1), cols, m0, m1);
    }
}
#undef ROWT_FMA

#ifdef V_PERM2
/* A product of one step (K = 1: an outer product, a one-row step's weight
 * gradient) into a narrow W stored whole (n < NR, rows contiguous: an output
 * layer of 10 units), applied by SGD: row by row, each row's masked W store
 * stalled the next row's load, and tiles cost a call each.  W as one flat
 * array instead: element f = i n + j in whole vectors, each from A and B
 * vectors laid out by a permute (a group of G = VL / gcd(n, VL) rows fills P
 * = n / gcd(n, VL) vectors exactly, in the same pattern in every group).  Each
 * element is the tile's chain of one step, fma(a_i, b_j, 0), and sgd_row's
 * epilogue: the same bits. */
static int GEMM_NAME(outer_ok)(const GEMM_ARGS *g)
{
    /* (a_rs 1: A = x^T of a dense x, the weight gradients' A) */
    return g->k == 1 && !g->bf16 && !g->b_trans && g->n > 0 && g->n < NR && g->a_rs == 1 &&
           g->epi == PYNN_EPI_SGD_W && (size_t)g->ldw == g->n;
}

static void GEMM_NAME(outer_run)(const GEMM_ARGS *g, const pynn_team *tm)
{
    const size_t n = g->n, m = g->m;
    /* gcd(n, VL) = 2^sh, VL a power of two; shifts, not integer divisions
     * (tens of cycles each, in a product of a few hundred cycles) */
    const unsigned lgv = VL == 16 ? 4 : VL == 8 ? 3 : VL == 4 ? 2 : 1;
    unsigned sh = 0;
    while (sh < lgv && ((n >> sh) & 1) == 0)
        sh++;
    const size_t G = (size_t)VL >> sh, P = n >> sh;
    size_t q0 = 0, q1 = (m + G - 1) >> (lgv - sh);
    if (tm->size > 1)
        pynn__share(q1, tm, &q0, &q1);
    if (q0 >= q1)
        return;
    /* lane l of pattern vector v, element e = v VL + l of a group: row e / n,
     * column e - n (e / n), in vector arithmetic (e / n + 1 / 2n is at least
     * 1 / 2n from an integer, far beyond the rounding of the division) */
    V_IDX_T ri[NR - 1];
    V bp[NR - 1];
    {
        /* B's row as two vectors (zeros past n), and each pattern of it */
        const V nv = V_SET1((T)n), half = V_SET1((T)0.5), iota = V_IOTA();
        const V blo = V_MLOAD(g->b, M_MAKE(n < VL ? n : VL));
        const V bhi = V_MLOAD(g->b + (n > VL ? VL : 0), M_MAKE(n > VL ? n - VL : 0));
        for (size_t v = 0; v < P; v++) {
            V e = V_ADD(V_SET1((T)(v * VL)), iota);
            V r = V_TRUNC(V_DIV(V_ADD(e, half), nv));
            ri[v] = V_IDX_OF(r);
            bp[v] = V_PERM2(blo, V_IDX_OF(V_SUB(e, V_MUL(r, nv))), bhi);
        }
    }
    const V s = V_SET1(g->scale), nlr = V_SET1(-g->lr), ws = V_SET1(g->wscale), z = V_ZERO();
    const int l2 = g->wscale != 0;
    const T *a = g->a;
    const T *w = g->w;
    T *wnew = g->wnew, *vnew = g->vnew;
    for (size_t q = q0; q < q1; q++) {
        size_t i0 = q * G, rows = m - i0 < G ? m - i0 : G, f0 = i0 * n, left = rows * n;
        /* the group's values of A (a_rs 1), in one masked load: stored one by
         * one and read back as a vector, they would wait for the stores */
        V av = V_MLOAD(a + i0, M_MAKE(rows));
        for (size_t v = 0; v < P && left > 0; v++) {
            size_t f = f0 + v * VL, c = left < VL ? left : VL;
            V x = V_FMA(V_PERM1(ri[v], av), bp[v], z);
            MASK_T mk = M_MAKE(c);
            V w0 = c == VL ? V_LOAD(w + f) : V_MLOAD(w + f, mk);
            x = V_MUL(x, s);
            if (l2)
                x = V_ADD(x, V_MUL(w0, ws));
            x = V_MUL(nlr, x);
            if (c == VL) {
                V_STORE(wnew + f, V_ADD(w0, x));
                if (vnew)
                    V_STORE(vnew + f, x);
            } else {
                V_MSTORE(wnew + f, mk, V_ADD(w0, x));
                if (vnew)
                    V_MSTORE(vnew + f, mk, x);
            }
            left -= c;
        }
    }
}
#endif

/* ---- narrow products: an output layer of a few units ----
 * C of n <= 12 columns (an output layer of 10 classes, 1 for a regression or
 * a binary logistic output) as tiles laid across: each tile is NV vectors of
 * rows by all n columns, so every lane works, where the panels above, NR
 * columns of a row per tile, left most lanes idle (10 of 16 doubles working,
 * 10 of 32 floats, one in 16 for n = 1): the output layer's forward and
 * weight gradient (128 x 128 x 10, float64) ran at 0.67-0.70x OpenBLAS's
 * speed.  Accumulator (j, v) holds, for rows v VL..v VL + VL - 1 of the tile,
 * column j's chain: fma(A(i, p), B(p, j), acc) for p = 0..k-1 from zero, the
 * panels' chain with the factors swapped (a product rounds the same either
 * way), so the same bits as a tile, whatever the rows and threads.  A(i, p)
 * is read down columns: in place where A's rows are side by side (a_rs 1:
 * the weight gradient's x^T), else from a transposed copy of the tile's rows,
 * NARROW_KC steps at a time (the sums stay in registers across those
 * blocks).  The sums then go, transposed, to the tile's rows side by side,
 * and the epilogue runs along that flat run of C (and W), element by element
 * the tiles' operations.  Only where a panel would leave a quarter of its
 * lanes idle or more (3/8 when A has to be transposed), and C's rows lie side
 * by side (narrow_flat). */
#define NARROW_N_MAX 12
#define NARROW_REGS ((size_t)VL * sizeof(T) >= 64 ? 24 : 12)
#define NARROW_NV(N) ((N) * 4 <= (int)NARROW_REGS ? 4 : (N) * 2 <= (int)NARROW_REGS ? 2 : 1)
#define NARROW_KC 128

static PYNN_NOINLINE_HINT void GEMM_NAME(prefetch_a_next)(const GEMM_ARGS *g, size_t i0,
                                                          size_t rows, size_t jt, size_t p0,
                                                          size_t p1);

/* Whether C's rows (and W's, for the weight-gradient epilogues) lie side by
 * side, n values each, as one flat run: a narrow tile's epilogue then runs
 * along it in whole vectors, not a masked store per row (about ten cycles
 * each on AMD CPUs).  (Every product of the networks has them so.) */
static int GEMM_NAME(narrow_flat)(const GEMM_ARGS *g)
{
    size_t n = g->n;
    switch (g->epi) {
    case PYNN_EPI_NONE:
    case PYNN_EPI_BIAS:
        return (size_t)g->ldc == n;
    case PYNN_EPI_SCALE_W:
        return (size_t)g->ldc == n && (g->wscale == 0 || (size_t)g->ldw == n);
    case PYNN_EPI_SGD_W:
        return (size_t)g->ldw == n;
    default:
        return 0;
    }
}

static int GEMM_NAME(narrow_ok)(const GEMM_ARGS *g)
{
    size_t n = g->n;
    if (g->bf16 || g->b_trans || n == 0 || n > NARROW_N_MAX || n > NR || g->k == 0)
        return 0;
    if (g->a_rs != 1 && g->a_cs != 1)
        return 0;
    /* lanes a row of the panel tiles would use: n rounded up to vectors; a
     * row-major A has to be transposed first, which pays only where more of
     * them idle (float64 on AVX-512, 128 x 128 x n: n = 10 0.90x the panels'
     * time, n = 1 0.92x, but n = 6 1.43x, n = 12 1.04x) */
    size_t lanes = (n + VL - 1) / VL * VL;
    if (g->a_rs == 1 ? 4 * n > 3 * lanes : 8 * n > 5 * lanes)
        return 0;
    size_t rm = (size_t)NARROW_NV((int)n) * VL;
    return g->m >= rm && GEMM_NAME(narrow_flat)(g);
}

/* buf[p rm + r] = A(i0 + r, p0 + p) for the tile's rows (zero past `rows`),
 * A row-major (a_cs 1): square blocks transposed in registers, edges one by
 * one. */
static void GEMM_NAME(narrow_pack)(T *restrict buf, size_t rm, const T *a, ptrdiff_t ars,
                                   size_t rows, size_t kc)
{
    size_t r0 = 0;
#ifdef PACK_BT
    size_t rb = rows / PACK_BT * PACK_BT, pb = kc / PACK_BT * PACK_BT;
    for (size_t r = 0; r < rb; r += PACK_BT)
        for (size_t p = 0; p < pb; p += PACK_BT)
            PACK_BT_BLOCK(buf + p * rm + r, rm, a + (ptrdiff_t)r * ars + p, ars);
    for (size_t r = 0; r < rb; r++)
        for (size_t p = pb; p < kc; p++)
            buf[p * rm + r] = a[(ptrdiff_t)r * ars + p];
    r0 = rb;
#endif
    for (size_t r = r0; r < rm; r++) {
        if (r < rows)
            for (size_t p = 0; p < kc; p++)
                buf[p * rm + r] = a[(ptrdiff_t)r * ars + p];
        else
            for (size_t p = 0; p < kc; p++)
                buf[p * rm + r] = 0;
    }
}

/* The K loop of one narrow tile: N columns, NVV vectors of rows; A's vectors
 * at a + p acs (+ v VL), masked where the tile runs past the last row; B's
 * row p at b + p ldb. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(narrow_k)(const int N, const int NVV, V (*acc)[4], const T *a, ptrdiff_t acs,
                    const T *b, ptrdiff_t ldb, size_t k, int full, const MASK_T *am)
{
    for (size_t p = 0; p < k; p++) {
        V av[4];
PYNN_UNROLL16
        for (int v = 0; v < NVV; v++)
            av[v] = full ? V_LOAD(a + v * VL) : V_MLOAD(a + v * VL, am[v]);
PYNN_UNROLL16
        for (int j = 0; j < N; j++) {
            V bj = V_BCAST(b + j);
PYNN_UNROLL16
            for (int v = 0; v < NVV; v++)
                acc[j][v] = V_FMA(av[v], bj, acc[j][v]);
        }
        a += acs;
        b += ldb;
    }
}

/* The flat epilogue of `cnt` values of a narrow tile from row i0 (fb: its
 * rows side by side, n values each): element by element what the tiles'
 * epilogue does (same operations, same order), the bias by its pattern along
 * the run (bpat: bias[e % n] for one period of VL / gcd(n, VL) vectors, P of
 * them). */
static void GEMM_NAME(narrow_flat_epi)(const GEMM_ARGS *g, const T *fb, size_t i0,
                                       size_t rows, const T *bpat, size_t P)
{
    const size_t n = g->n, cnt = rows * n, e0 = i0 * n;
    const int epi = g->epi;
    const V s = V_SET1(g->scale), ws = V_SET1(g->wscale), nlr = V_SET1(-g->lr);
    const int l2 = g->wscale != 0, relu = g->act == PYNN_ACT_RELU;
    const T *w = g->w ? g->w + e0 : NULL;
    T *c = epi == PYNN_EPI_SGD_W ? NULL : g->c + e0;
    T *wnew = epi == PYNN_EPI_SGD_W ? g->wnew + e0 : NULL;
    T *vnew = epi == PYNN_EPI_SGD_W && g->vnew ? g->vnew + e0 : NULL;
    if (epi == PYNN_EPI_BIAS && g->z0)
        for (size_t r = 0; r < rows; r++)
            g->z0[i0 + r] = fb[r * n] + g->bias[0];
    size_t pv = 0;
    for (size_t q = 0; q < cnt; q += VL) {
        const size_t left = cnt - q;
        const int whole = left >= VL;
        const MASK_T mk = M_MAKE(whole ? VL : left);
#define NLOAD(p) (whole ? V_LOAD(p) : V_MLOAD((p), mk))
#define NSTORE(p, v)                                                                     \
    do {                                                                                 \
        if (whole)                                                                       \
            V_STORE((p), (v));                                                           \
        else                                                                             \
            V_MSTORE((p), mk, (v));                                                      \
    } while (0)
        V x = NLOAD(fb + q);
        switch (epi) {
        case PYNN_EPI_BIAS:
            x = V_ADD(x, V_LOAD(bpat + pv * VL));
            if (++pv == P)
                pv = 0;
            if (relu)
                x = V_MAX(x, V_ZERO());
            NSTORE(c + q, x);
            break;
        case PYNN_EPI_SCALE_W:
            x = V_MUL(x, s);
            if (l2)
                x = V_ADD(x, V_MUL(NLOAD(w + q), ws));
            NSTORE(c + q, x);
            break;
        case PYNN_EPI_SGD_W:
            /* (the tiles' SGD row on one vector: the second stays unstored) */
            GEMM_NAME(sgd_row)(wnew + q, vnew ? vnew + q : NULL, NULL, NLOAD(w + q), V_ZERO(), x,
                               V_ZERO(), s, nlr, ws, l2, whole ? VL : left, mk, mk);
            break;
        default:
            NSTORE(c + q, x);
            break;
        }
#undef NLOAD
#undef NSTORE
    }
}

/* Tiles t0..t1-1 of N columns (N = g->n). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(narrow_tiles)(const int N, const GEMM_ARGS *g, size_t t0, size_t t1)
{
    const int NVV = NARROW_NV(N);
    const size_t rm = (size_t)NVV * VL, m = g->m, k = g->k;
    const ptrdiff_t ars = g->a_rs, acs = g->a_cs, ldb = g->ldb;
    const int in_place = ars == 1;
    _Alignas(64) T buf[NARROW_KC * 4 * VL];
    _Alignas(64) T sums[NARROW_N_MAX * 4 * VL];
    _Alignas(64) T flat[NARROW_N_MAX * 4 * VL];
    /* the bias along a flat run: a period of P vectors */
    size_t P = 1;
    _Alignas(64) T bpat[NARROW_N_MAX * VL];
    if (g->epi == PYNN_EPI_BIAS) {
        size_t gcd = (size_t)N, b = VL;
        while (b) {
            size_t r = gcd % b;
            gcd = b;
            b = r;
        }
        P = (size_t)N / gcd;
        for (size_t e = 0, j = 0; e < P * VL; e++) {
            bpat[e] = g->bias[j];
            if (++j == (size_t)N)
                j = 0;
        }
    }
    for (size_t t = t0; t < t1; t++) {
        const size_t i0 = t * rm, rows = m - i0 < rm ? m - i0 : rm;
        const int full = rows == rm;
        MASK_T am[4];
        for (int v = 0; v < NVV; v++) {
            size_t lo = (size_t)v * VL, c = rows > lo ? rows - lo : 0;
            am[v] = M_MAKE(c < VL ? c : VL);
        }
        V acc[NARROW_N_MAX][4];
PYNN_UNROLL16
        for (int j = 0; j < N; j++)
PYNN_UNROLL16
            for (int v = 0; v < NVV; v++)
                acc[j][v] = V_ZERO();
        if (in_place) {
            GEMM_NAME(narrow_k)(N, NVV, acc, g->a + i0, acs, g->b, ldb, k, full, am);
        } else {
            for (size_t p0 = 0; p0 < k; p0 += NARROW_KC) {
                size_t kc = k - p0 < NARROW_KC ? k - p0 : NARROW_KC;
                /* (a training step's first product: the next batch's rows, a
                 * hint spread over the tiles and blocks, as tile_at does) */
                if (g->a_next)
                    GEMM_NAME(prefetch_a_next)(g, i0, rows, 0, p0, p0 + kc);
                GEMM_NAME(narrow_pack)(buf, rm, g->a + (ptrdiff_t)i0 * ars + p0, ars, rows, kc);
                /* (the packed rows are all there, zeros past the last) */
                GEMM_NAME(narrow_k)(N, NVV, acc, buf, (ptrdiff_t)rm, g->b + (ptrdiff_t)p0 * ldb,
                                    ldb, kc, 1, am);
            }
        }
        /* the sums to the tile's flat run: column j of row r at flat[r N + j],
         * square blocks transposed in registers, the edges one by one */
PYNN_UNROLL16
        for (int j = 0; j < N; j++)
PYNN_UNROLL16
            for (int v = 0; v < NVV; v++)
                V_STORE(sums + (size_t)j * rm + (size_t)v * VL, acc[j][v]);
        size_t jb = 0, rb = 0;
#ifdef PACK_BT
        jb = (size_t)N / PACK_BT * PACK_BT;
        rb = rows / PACK_BT * PACK_BT;
        for (size_t j = 0; j < jb; j += PACK_BT)
            for (size_t r = 0; r < rb; r += PACK_BT)
                PACK_BT_BLOCK(flat + r * N + j, (size_t)N, sums + j * rm + r, rm);
#endif
        for (size_t r = 0; r < rows; r++)
            for (size_t j = r < rb ? jb : 0; j < (size_t)N; j++)
                flat[r * N + j] = sums[j * rm + r];
        GEMM_NAME(narrow_flat_epi)(g, flat, i0, rows, bpat, P);
    }
}

#define NARROW_CASE(N)                                                                   \
    case N:                                                                              \
        GEMM_NAME(narrow_tiles)(N, g, t0, t1);                                           \
        break;

/* This thread's share of a narrow product's tiles. */
static void GEMM_NAME(narrow_run)(const GEMM_ARGS *g, const pynn_team *tm)
{
    const size_t rm = (size_t)NARROW_NV((int)g->n) * VL;
    size_t t0, t1;
    pynn__share((g->m + rm - 1) / rm, tm, &t0, &t1);
    if (t0 >= t1)
        return;
    switch (g->n) {
        NARROW_CASE(1)
        NARROW_CASE(2)
        NARROW_CASE(3)
        NARROW_CASE(4)
        NARROW_CASE(5)
        NARROW_CASE(6)
        NARROW_CASE(7)
        NARROW_CASE(8)
        NARROW_CASE(9)
        NARROW_CASE(10)
        NARROW_CASE(11)
        NARROW_CASE(12)
    default:
        break;
    }
}
#undef NARROW_CASE

/* Rounds count packed values to bfloat16 in place (g->bf16: the products of
 * the mixed-precision mode then multiply bfloat16 values exactly and
 * accumulate in float; only the float kernels ever get the flag). */
static void GEMM_NAME(round_bf16)(T *p, size_t count)
{
    for (size_t i = 0; i < count; i++)
        p[i] = (T)pynn__bf16_round((float)p[i]);
}

static void GEMM_NAME(pack_b_copy)(T *restrict bp, const GEMM_ARGS *g, size_t j0, size_t p0,
                                   size_t p1);

#ifdef GEMM_PAIRS
/* ---- bfloat16 pairs: the products of the mixed-precision mode on a dot-of-
 * pairs instruction: AVX512_BF16's vdpbf16ps (the includer defines V_DP2) or
 * AMX's tdpbf16ps (AMX_TILES), or their emulations (gemm_avx2.c) ----
 * In the mode the packed operands hold bfloat16 pairs, one 32-bit word per two
 * consecutive steps p, p + 1 (of a row of A, of a column of B): step p in the
 * low half (the pair's element 0, as both instructions read it), p + 1 in the
 * high half, zero for the missing step of an odd K block.  B's panel: for each
 * pair step q, NR words (its columns, zeros past the last); A's tile: for each
 * pair step q, MR words (its rows, zeros past the last) -- with AMX, each of
 * its MR rows' words in a row instead (a tile register's rows), and the pair
 * steps padded with zeros to a multiple of 16 (a tile's depth).  The operands
 * are rounded (pynn__bf16_round) as they are packed, so they are the portable
 * path's.  V_DP2(acc, a, b) adds to each float lane a's high half times b's,
 * then the low halves' product, each a fused multiply-add (vdpbf16ps: denormal
 * inputs read as zero, denormal results flushed, round to nearest even); the
 * pairs' order and the flushing make its bits differ from the portable chain's
 * by rounding, not by what is summed.  V_DP2 needs a pair vector type PV,
 * P_LOAD(p) (VL words) and P_BCAST(p) (one word to every lane). */
#ifdef AMX_TILES
#define PAIR_KQ_ALIGN 16
#define PAIR_ROWS(g) 1
#else
#define PAIR_KQ_ALIGN 1
/* A read along its rows (x @ W, d @ W^T): its tiles' pairs are packed row by
 * row as well (each row read and written in order, vectorised), and the tile
 * broadcasts from MR rows of pairs; X^T (x^T @ d) and other strides: step by
 * step, MR words per pair step */
#define PAIR_ROWS(g) ((g)->a_cs == 1 && (g)->a_rs != 1)
#endif
#define PAIR_A(dst, rows, r, q, kq) \
    (*((rows) ? &(dst)[(size_t)(r) * (kq) + (q)] : &(dst)[(q) * MR + (size_t)(r)]))
/* Pair steps a K block of kc steps is packed in. */
#define PAIR_KQ(kc) ((((kc) + 1) / 2 + PAIR_KQ_ALIGN - 1) / PAIR_KQ_ALIGN * PAIR_KQ_ALIGN)

static PYNN_ALWAYS_INLINE uint32_t GEMM_NAME(bf16_pair)(float lo, float hi)
{
    float l = pynn__bf16_round(lo), h = pynn__bf16_round(hi);
    uint32_t ul, uh;
    memcpy(&ul, &l, sizeof ul);
    memcpy(&uh, &h, sizeof uh);
    return (uh & 0xffff0000u) | (ul >> 16);
}

static void GEMM_NAME(pack_b_pairs)(uint32_t *restrict bp, const GEMM_ARGS *g, size_t j0,
                                    size_t p0, size_t p1)
{
    size_t cols = g->n - j0 < NR ? g->n - j0 : NR, kc = p1 - p0, kh = (kc + 1) / 2;
    size_t kq = PAIR_KQ(kc);
#ifdef PACK_BT
    if (g->b_trans) {
        /* the float panel first (transposed in registers, zero columns past
         * the edge), then its rows paired like B's below: both vectorised */
        _Alignas(64) T fp[KC * NR];
        GEMM_NAME(pack_b_copy)(fp, g, j0, p0, p1);
        for (size_t q = 0; q < kc / 2; q++) {
            const T *r0 = fp + 2 * q * NR, *r1 = r0 + NR;
            for (size_t j = 0; j < NR; j++)
                bp[q * NR + j] = GEMM_NAME(bf16_pair)((float)r0[j], (float)r1[j]);
        }
        if (kc % 2)
            for (size_t j = 0; j < NR; j++)
                bp[(kh - 1) * NR + j] = GEMM_NAME(bf16_pair)((float)fp[(kc - 1) * NR + j], 0.0f);
    } else
#endif
    if (g->b_trans) {
        /* column j of the panel is row j0 + j of the stored B^T: read in order */
        for (size_t j = 0; j < NR; j++) {
            if (j >= cols) {
                for (size_t q = 0; q < kh; q++)
                    bp[q * NR + j] = 0u;
                continue;
            }
            const T *src = g->b + (j0 + j) * g->ldb + p0;
            for (size_t q = 0; q < kh; q++)
                bp[q * NR + j] = GEMM_NAME(bf16_pair)(
                    (float)src[2 * q], 2 * q + 1 < kc ? (float)src[2 * q + 1] : 0.0f);
        }
    } else {
        for (size_t q = 0; q < kh; q++) {
            const T *r0 = g->b + (p0 + 2 * q) * g->ldb + j0;
            const T *r1 = 2 * q + 1 < kc ? r0 + g->ldb : NULL;
            uint32_t *dst = bp + q * NR;
            if (r1 && cols == NR) {
                /* the common case, branch-free: the compiler vectorises it */
                for (size_t j = 0; j < NR; j++)
                    dst[j] = GEMM_NAME(bf16_pair)((float)r0[j], (float)r1[j]);
                continue;
            }
            for (size_t j = 0; j < NR; j++)
                dst[j] = j < cols ? GEMM_NAME(bf16_pair)((float)r0[j], r1 ? (float)r1[j] : 0.0f) : 0u;
        }
    }
    for (size_t q = kh; q < kq; q++)
        for (size_t j = 0; j < NR; j++)
            bp[q * NR + j] = 0u;
}

/* Row tile it of A (any strides) over [p0, p1) into dst as pairs. */
static void GEMM_NAME(pack_a_pairs)(uint32_t *restrict dst, const GEMM_ARGS *g, size_t it,
                                    size_t p0, size_t p1)
{
    size_t kc = p1 - p0, kh = (kc + 1) / 2, kq = PAIR_KQ(kc);
    int rows = PAIR_ROWS(g);
    if (!rows && g->a_rs == 1 && (it + 1) * MR <= g->m) {
        /* A = X^T, a whole tile: a pair step's MR values of each of two rows
         * of X side by side, written side by side (vectorised) */
        const T *x = g->a + it * MR + p0 * g->a_cs;
        for (size_t q = 0; q < kc / 2; q++, x += 2 * g->a_cs)
            for (int r = 0; r < MR; r++)
                dst[q * MR + (size_t)r] = GEMM_NAME(bf16_pair)((float)x[r], (float)x[g->a_cs + r]);
        if (kc % 2)
            for (int r = 0; r < MR; r++)
                dst[(kh - 1) * MR + (size_t)r] = GEMM_NAME(bf16_pair)((float)x[r], 0.0f);
        return;
    }
    if (rows && g->a_cs == 1) {
        /* rows of A, each read in order and written in order (a tile row) */
        for (int r = 0; r < MR; r++) {
            size_t i = it * MR + (size_t)r, q = 0;
            uint32_t *d = dst + (size_t)r * kq;
            if (i < g->m) {
                const T *src = g->a + i * g->a_rs + p0;
                for (; q < kc / 2; q++)
                    d[q] = GEMM_NAME(bf16_pair)((float)src[2 * q], (float)src[2 * q + 1]);
                if (kc % 2)
                    d[q++] = GEMM_NAME(bf16_pair)((float)src[kc - 1], 0.0f);
            }
            for (; q < kq; q++)
                d[q] = 0u;
        }
        return;
    }
    for (int r = 0; r < MR; r++) {
        size_t i = it * MR + (size_t)r;
        size_t q = 0;
        if (i < g->m) {
            const T *src = g->a + i * g->a_rs + p0 * g->a_cs;
            for (; q < kh; q++) {
                float lo = (float)src[2 * q * g->a_cs];
                float hi = 2 * q + 1 < kc ? (float)src[(2 * q + 1) * g->a_cs] : 0.0f;
                PAIR_A(dst, rows, r, q, kq) = GEMM_NAME(bf16_pair)(lo, hi);
            }
        }
        for (; q < kq; q++)
            PAIR_A(dst, rows, r, q, kq) = 0u;
    }
}

#ifndef AMX_TILES
/* An R x NR tile over kq pair steps of packed A (ap; rows: packed row by
 * row) and B (bp). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(pair_tile)(const int R, const int rows, const GEMM_ARGS *g, size_t i0, size_t j0,
                     size_t cols, size_t kq, int first, int last, const uint32_t *bp,
                     const uint32_t *ap)
{
    const size_t a_r = rows ? kq : 1, a_q = rows ? 1 : MR;
    V acc0[MR], acc1[MR];
    MASK_T m0 = M_MAKE(cols < VL ? cols : VL);
    MASK_T m1 = M_MAKE(cols > VL ? cols - VL : 0);
    GEMM_NAME(acc_start)(R, g, i0, j0, cols, first, acc0, acc1, m0, m1);
    for (size_t q = 0; q < kq; q++, bp += NR, ap += a_q) {
        PV b0 = P_LOAD(bp), b1 = P_LOAD(bp + VL);
PYNN_UNROLL16
        for (int r = 0; r < R; r++) {
            PV av = P_BCAST(ap + (size_t)r * a_r);
            acc0[r] = V_DP2(acc0[r], av, b0);
            acc1[r] = V_DP2(acc1[r], av, b1);
        }
    }
    GEMM_NAME(acc_finish)(R, g, i0, j0, cols, last, acc0, acc1, m0, m1);
}

#define PAIR_CASE(R)                                                                     \
    case R:                                                                              \
        if (PAIR_ROWS(g))                                                                \
            GEMM_NAME(pair_tile)(R, 1, g, i0, j0, cols, kq, first, last, bq, aq);        \
        else                                                                             \
            GEMM_NAME(pair_tile)(R, 0, g, i0, j0, cols, kq, first, last, bq, aq);        \
        break;
#else
/* AMX: an MR (16) x NR tile, NR / 16 accumulator tile registers (C0 and C1:
 * 16 rows x 16 floats), A's 16 rows x 16 pairs in TA, B's 16 pairs x 16
 * columns in TB0, TB1; each tdpbf16ps does 16 pair steps.  The includer
 * defines AMX_CONFIG() (configure the tile registers: the five as 16 rows of
 * 64 bytes), AMX_ZERO(t), AMX_LOAD(t, base, stride), AMX_STORE(t, base,
 * stride), AMX_DP(c, a, b) and AMX_RELEASE() over the register numbers below.  C's partial sums pass through cb, from which the
 * epilogue reads its rows as vectors. */
#if NR != 16 && NR != 32
#error "AMX tiles need 16 or 32 columns per panel"
#endif
/* the tile registers (bare numbers: GCC's intrinsics paste them into names) */
#define AMX_C0 0
#define AMX_C1 1
#define AMX_TA 2
#define AMX_TB0 3
#define AMX_TB1 4
static void GEMM_NAME(amx_tile)(const GEMM_ARGS *g, size_t i0, size_t j0, size_t rows,
                                size_t cols, size_t kq, int first, int last,
                                const uint32_t *bp, const uint32_t *ap)
{
    _Alignas(64) T cb[MR * NR];
    MASK_T m0 = M_MAKE(cols < VL ? cols : VL);
    MASK_T m1 = M_MAKE(cols > VL ? cols - VL : 0);
    const size_t cs = NR * sizeof(float);
    if (first) {
        AMX_ZERO(AMX_C0);
#if NR == 32
        AMX_ZERO(AMX_C1);
#endif
    } else {
        for (size_t r = 0; r < MR; r++) {
            V x0 = V_ZERO(), x1 = V_ZERO();
            if (r < rows) {
                const T *c = g->c + (i0 + r) * g->ldc + j0;
                x0 = cols == NR ? V_LOAD(c) : V_MLOAD(c, m0);
                x1 = cols == NR ? V_LOAD(c + VL) : V_MLOAD(c + VL, m1);
            }
            V_STORE(cb + r * NR, x0);
            V_STORE(cb + r * NR + VL, x1);
        }
        AMX_LOAD(AMX_C0, cb, cs);
#if NR == 32
        AMX_LOAD(AMX_C1, cb + 16, cs);
#endif
    }
    for (size_t q = 0; q < kq; q += 16) {
        AMX_LOAD(AMX_TA, ap + q, kq * sizeof(uint32_t));
        AMX_LOAD(AMX_TB0, bp + q * NR, cs);
        AMX_DP(AMX_C0, AMX_TA, AMX_TB0);
#if NR == 32
        AMX_LOAD(AMX_TB1, bp + q * NR + 16, cs);
        AMX_DP(AMX_C1, AMX_TA, AMX_TB1);
#endif
    }
    AMX_STORE(AMX_C0, cb, cs);
#if NR == 32
    AMX_STORE(AMX_C1, cb + 16, cs);
#endif
    for (size_t r = 0; r < rows; r++) {
        V x0 = V_LOAD(cb + r * NR), x1 = V_LOAD(cb + r * NR + VL);
        if (last)
            GEMM_NAME(epilogue)(g, i0 + r, j0, x0, x1, cols, m0, m1);
        else
            GEMM_NAME(store_row)(g->c + (i0 + r) * g->ldc + j0, x0, x1, cols, m0, m1);
    }
}
#endif /* AMX_TILES */
#endif /* GEMM_PAIRS */

/* Copies B's panel (rows p0..p1, columns j0..j0+NR) into bp, contiguous and
 * zero-padded: sequential loads in the tile loop and no cache-set conflicts
 * from a power-of-two row stride; rounded to bfloat16 with g->bf16. */
static void GEMM_NAME(pack_b)(T *restrict bp, const GEMM_ARGS *g, size_t j0, size_t p0, size_t p1)
{
#ifdef GEMM_PAIRS
    if (g->bf16) {
        GEMM_NAME(pack_b_pairs)((uint32_t *)bp, g, j0, p0, p1);
        return;
    }
#endif
    GEMM_NAME(pack_b_copy)(bp, g, j0, p0, p1);
    if (g->bf16)
        GEMM_NAME(round_bf16)(bp, (p1 - p0) * NR);
}

/* A B whose rows lie a page or more apart is packed with each row's lines
 * fetched this many rows ahead (no hardware prefetcher follows such rows; the
 * weights packed for a forward product come from L3): on an Intel Xeon, the
 * wide fit 0.5% faster in both dtypes, a change within the A/B's noise but
 * the same in both.  Hints only. */
#ifndef PACKB_PF_ROWS
#define PACKB_PF_ROWS 16
#endif
static void GEMM_NAME(pack_b_copy)(T *restrict bp, const GEMM_ARGS *g, size_t j0, size_t p0,
                                   size_t p1)
{
    size_t cols = g->n - j0 < NR ? g->n - j0 : NR;
    if (g->b_trans) {
        size_t jb = 0;
#ifdef PACK_BT
        /* square blocks transposed in registers; the edges below, one by one */
        size_t kc = p1 - p0, pb = kc / PACK_BT * PACK_BT;
        jb = cols / PACK_BT * PACK_BT;
        for (size_t j = 0; j < jb; j += PACK_BT)
            for (size_t p = 0; p < pb; p += PACK_BT)
                PACK_BT_BLOCK(bp + p * NR + j, NR, g->b + (j0 + j) * g->ldb + p0 + p, g->ldb);
        for (size_t j = 0; j < jb; j++) {
            const T *src = g->b + (j0 + j) * g->ldb + p0;
            for (size_t p = pb; p < kc; p++)
                bp[p * NR + j] = src[p];
        }
#endif
        /* read each of the panel's columns (rows of the stored B^T) sequentially */
        for (size_t j = jb; j < NR; j++) {
            const T *src = g->b + (j0 + j) * g->ldb + p0;
            if (j < cols)
                for (size_t p = 0; p < p1 - p0; p++)
                    bp[p * NR + j] = src[p];
            else
                for (size_t p = 0; p < p1 - p0; p++)
                    bp[p * NR + j] = 0;
        }
        return;
    }
    /* vector moves (a plain copy loop would become a memmove call per row);
     * masked loads read zeros past the last column */
    const T *b = g->b + p0 * g->ldb + j0;
    if (cols == NR) {
        /* rows [p0, pe) fetch row p + PACKB_PF_ROWS's lines (rows a page apart) */
        const ptrdiff_t d = PACKB_PF_ROWS * g->ldb;
        const size_t pe = (size_t)g->ldb * sizeof(T) >= PYNN_GEMM_ALIAS_BYTES &&
                                  p1 - p0 > PACKB_PF_ROWS
                              ? p1 - PACKB_PF_ROWS
                              : p0;
        for (size_t p = p0; p < p1; p++, b += g->ldb, bp += NR) {
            if (p < pe) {
                PYNN_GEMM_PREFETCH(b + d);
                PYNN_GEMM_PREFETCH((const char *)(b + d) + NR * sizeof(T) - 1);
            }
            V_STORE(bp, V_LOAD(b));
            V_STORE(bp + VL, V_LOAD(b + VL));
        }
    } else {
        MASK_T m0 = M_MAKE(cols < VL ? cols : VL);
        MASK_T m1 = M_MAKE(cols > VL ? cols - VL : 0);
        for (size_t p = p0; p < p1; p++, b += g->ldb, bp += NR) {
            V_STORE(bp, V_MLOAD(b, m0));
            V_STORE(bp + VL, V_MLOAD(b + VL, m1));
        }
    }
}

/* Packs A's row tiles it0..it1-1 for the K block [p0, p1) into g->apack: tile
 * it holds, for each step p, its MR values A(i0 + r, p) side by side (zeros past
 * the last row).  Used when A = X^T (a_rs == 1): each step's values then come
 * from one far row of X, a new cache line per step, which the tile would
 * otherwise fetch again for every column panel.  Rows of X are read in order. */
static void GEMM_NAME(pack_a_copy)(const GEMM_ARGS *g, size_t it0, size_t it1, size_t p0,
                                   size_t p1);

static void GEMM_NAME(pack_a)(const GEMM_ARGS *g, size_t it0, size_t it1, size_t p0, size_t p1)
{
#ifdef GEMM_PAIRS
    if (g->bf16) {
        size_t kq = PAIR_KQ(p1 - p0);
        for (size_t it = it0; it < it1; it++)
            GEMM_NAME(pack_a_pairs)((uint32_t *)g->apack + it * kq * MR, g, it, p0, p1);
        return;
    }
#endif
    GEMM_NAME(pack_a_copy)(g, it0, it1, p0, p1);
    if (g->bf16)
        GEMM_NAME(round_bf16)(g->apack + it0 * (p1 - p0) * MR, (it1 - it0) * (p1 - p0) * MR);
}

/* One row tile it of A (any strides) over [p0, p1) into dst, rounded to
 * bfloat16: the mixed-precision product where no room was given to pack A
 * for all tiles at once (PYNN_APACK_TILE). */
static void GEMM_NAME(pack_a_tile)(T *restrict dst, const GEMM_ARGS *g, size_t it, size_t p0,
                                   size_t p1)
{
    for (size_t p = p0; p < p1; p++, dst += MR)
        for (int r = 0; r < MR; r++) {
            size_t i = it * MR + (size_t)r;
            dst[r] = i < g->m ? (T)pynn__bf16_round((float)g->a[i * g->a_rs + p * g->a_cs]) : 0;
        }
}

/* X^T's row tiles packed this many at a time (below) */
#define PACKA_GROUP 4
static void GEMM_NAME(pack_a_copy)(const GEMM_ARGS *g, size_t it0, size_t it1, size_t p0,
                                   size_t p1)
{
    size_t kc = p1 - p0;
    if (g->a_cs == 1) {
        /* A row-major: a tile's rows read in order, square blocks of them
         * transposed in registers (narrow_pack); value by value, this pack
         * was 1.5% of a wide float32 fit's step on an Intel Xeon */
        for (size_t it = it0; it < it1; it++) {
            const size_t i0 = it * MR, rows = g->m - i0 < MR ? g->m - i0 : MR;
            GEMM_NAME(narrow_pack)(g->apack + it * kc * MR, MR, g->a + i0 * g->a_rs + p0,
                                   g->a_rs, rows, kc);
        }
        return;
    }
    /* A = X^T: PACKA_GROUP tiles at a time, their MR values each from each
     * step's row of X (a line or two: one tile at a time, each line was
     * fetched by two or four tiles, each time a miss, as the hardware does
     * not follow rows this far apart), the next group's lines fetched ahead;
     * then the rest tile by tile.  (Step by step across all tiles would write
     * as many streams as tiles, a K block apart: 4 KiB for 128 steps of 8
     * floats, all in one L1 set.)  Measured on a Zen 4: the mnist-like float64
     * step 2,534-2,551 -> 2,523-2,532 us, float32 within its noise. */
    size_t it = it0;
    for (; it + PACKA_GROUP <= it1 && (it + PACKA_GROUP) * MR <= g->m; it += PACKA_GROUP) {
        T *dst = g->apack + it * kc * MR;
        const T *src = g->a + p0 * g->a_cs + it * MR;
        for (size_t p = 0; p < kc; p++, src += g->a_cs, dst += MR) {
            if (it + 2 * PACKA_GROUP <= it1)
                for (size_t q = 0; q < PACKA_GROUP * MR * sizeof(T); q += PYNN_GEMM_LINE)
                    PYNN_GEMM_PREFETCH((const char *)(src + PACKA_GROUP * MR) + q);
PYNN_UNROLL16
            for (int u = 0; u < PACKA_GROUP; u++)
                memcpy(dst + (size_t)u * kc * MR, src + u * MR, MR * sizeof(T));
        }
    }
    for (; it < it1; it++) {
        T *dst = g->apack + it * kc * MR;
        size_t i0 = it * MR;
        const T *src = g->a + p0 * g->a_cs + i0;
        if (i0 + MR <= g->m) {
            /* (memcpy: a loop would be copied value by value, the compiler
             * not knowing the room from A) */
            for (size_t p = 0; p < kc; p++, src += g->a_cs, dst += MR)
                memcpy(dst, src, MR * sizeof(T));
        } else {
            for (size_t p = 0; p < kc; p++, src += g->a_cs, dst += MR)
                for (int r = 0; r < MR; r++)
                    dst[r] = i0 + (size_t)r < g->m ? src[r] : 0;
        }
    }
}

/* The next product's A (g->a_next, the same strides; its rows at a_next_idx
 * if given): the lines of rows [i0, i0 + rows) in the K block [p0, p1), this
 * tile's share of them, the jt-th of the block's column panels' (every tile
 * fetches a piece, so the fetches are spread over the whole product: issued
 * in bursts between the products, they hid a third to a half of the wait at
 * most).  Into L2: into L1 they cost this product's own operands.  A hint: no
 * result depends on it.  Out of line (inlined into every tile loop, it cost
 * the one-row steps 3%). */
static PYNN_NOINLINE_HINT void GEMM_NAME(prefetch_a_next)(const GEMM_ARGS *g, size_t i0,
                                                          size_t rows, size_t jt, size_t p0,
                                                          size_t p1)
{
    size_t nt = (g->n + NR - 1) / NR;
    for (size_t r = 0; r < rows; r++) {
        size_t row = g->a_next_idx ? (size_t)g->a_next_idx[i0 + r] : i0 + r;
        const char *p = (const char *)(g->a_next + row * (size_t)g->a_rs + p0);
        uintptr_t s = (uintptr_t)p & ~(uintptr_t)(PYNN_GEMM_LINE - 1),
                  e = (uintptr_t)(p + (p1 - p0) * sizeof(T) - 1);
        size_t lines = (size_t)(e - s) / PYNN_GEMM_LINE + 1;
        for (size_t l = lines * jt / nt; l < lines * (jt + 1) / nt; l++)
            PYNN_PREFETCH_L2((const char *)(s + l * PYNN_GEMM_LINE));
    }
}

/* Tile (it, jt) over the K block [p0, p1): bp, B's panel packed (NULL: read
 * in place); abase, the block's packed A (NULL: A in place, or own_a, room to
 * pack the tile's own); [cr0, cr1), the rows of its chunk (gemm_run's order,
 * for the prefetch hints). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tile_at)(const GEMM_ARGS *g, size_t it, size_t jt, size_t p0, size_t p1,
                   const T *bp, const T *abase, T *own_a, size_t cr0, size_t cr1)
{
    int first = p0 == 0, last = p1 == g->k;
    size_t i0 = it * MR, j0 = jt * NR;
    const T *ap = abase ? abase + it * (p1 - p0) * MR : NULL;
#ifdef GEMM_PAIRS
    if (own_a && !g->bf16) {
#else
    if (own_a) {
#endif
        GEMM_NAME(pack_a_tile)(own_a, g, it, p0, p1);
        ap = own_a;
    }
    size_t rows = g->m - i0 < MR ? g->m - i0 : MR;
    size_t cols = g->n - j0 < NR ? g->n - j0 : NR;
    if (g->a_next && g->a_cs == 1)
        GEMM_NAME(prefetch_a_next)(g, i0, rows, jt, p0, p1);
#ifdef GEMM_PAIRS
    if (g->bf16) {
        /* pairs: B always packed (the mode sets packb), A packed in the
         * block's room or by the tile itself */
        size_t kq = PAIR_KQ(p1 - p0);
        const uint32_t *bq = (const uint32_t *)bp, *aq;
        if (own_a) {
            GEMM_NAME(pack_a_pairs)((uint32_t *)own_a, g, it, p0, p1);
            aq = (const uint32_t *)own_a;
        } else {
            aq = (const uint32_t *)abase + it * kq * MR;
        }
#ifdef AMX_TILES
        GEMM_NAME(amx_tile)(g, i0, j0, rows, cols, kq, first, last, bq, aq);
#else
        switch (rows) {
            PAIR_CASE(1)
            PAIR_CASE(2)
            PAIR_CASE(3)
            PAIR_CASE(4)
#if MR > 4
            PAIR_CASE(5)
            PAIR_CASE(6)
#endif
#if MR > 6
            PAIR_CASE(7)
            PAIR_CASE(8)
#endif
        default:
            break;
        }
#endif
        return;
    }
#endif
#if MR > 8 && !defined(AMX_TILES)
#error "the float tiles (TILE_CASE below) cover at most 8 rows"
#endif
    /* (an AMX instance, MR 16, gets only bf16 products: gemm.c) */
    switch (rows) {
        TILE_CASE(1)
        TILE_CASE(2)
        TILE_CASE(3)
        TILE_CASE(4)
#if MR > 4
        TILE_CASE(5)
        TILE_CASE(6)
#endif
#if MR > 6
        TILE_CASE(7)
        TILE_CASE(8)
#endif
    default:
        break;
    }
}

/* Row tiles per chunk when mt row tiles run in chunks of at most about
 * PYNN_GEMM_MC_ROWS rows, of equal row tiles but the last (4100 rows: 17
 * chunks of 31 tiles of 8 and one of 9, not 16 x 32 and 1). */
static inline size_t GEMM_NAME(chunk_tiles)(size_t mt)
{
    size_t chunks = (mt * MR + PYNN_GEMM_MC_ROWS - 1) / PYNN_GEMM_MC_ROWS;
    return (mt + chunks - 1) / chunks;
}

/* The blocking, a function of the shape alone (never of m's split or the team):
 * K in nkb equal blocks of kc <= KC (KC 512: 784 -> 2 x 392, not 512 + 272; KC 256:
 * 784 -> 4 x 196, not 3 x 256 + 16), so a tile's A rows and B panel stay close (L1, L2). */
typedef struct {
    size_t mt, nt, tiles, nkb, kc;
    size_t mc; /* row tiles per chunk (gemm_run's order) */
    int packb;
    size_t gp; /* panels per group, shallow B^T (0: column-panel-major) */
} GEMM_NAME(plan_t);

static PYNN_ALWAYS_INLINE GEMM_NAME(plan_t) GEMM_NAME(plan)(const GEMM_ARGS *g)
{
    GEMM_NAME(plan_t) pl;
    pl.mt = (g->m + MR - 1) / MR;
    pl.nt = (g->n + NR - 1) / NR;
    pl.tiles = pl.mt * pl.nt;
#ifdef GEMM_KC
    pl.nkb = (g->k + KC - 1) / KC;
#else
    /* (KC, PYNN_GEMM_KC, or less on a CPU with a large L1: internal.h; never
     * below PYNN_GEMM_KC_MIN) */
    size_t kmax = g->k <= PYNN_GEMM_KC_MIN ? g->k
                                          : pynn_gemm_kc_max(NR * sizeof(T), MR * sizeof(T));
    pl.nkb = g->k <= kmax ? 1 : (g->k + kmax - 1) / kmax;
#endif
    /* (a division by a variable costs tens of cycles: skipped for one block,
     * the small products of an online step) */
    pl.kc = pl.nkb == 1 ? g->k : (g->k + pl.nkb - 1) / pl.nkb;
    /* A K block of A over PYNN_GEMM_CHUNK_BYTES: the row tiles in chunks
     * (chunk_tiles); else one chunk */
    pl.mc = pl.mt;
    if (pl.mt * MR * pl.kc * sizeof(T) > PYNN_GEMM_CHUNK_BYTES &&
        pl.mt > ((size_t)PYNN_GEMM_MC_ROWS + MR - 1) / MR)
        pl.mc = GEMM_NAME(chunk_tiles)(pl.mt);
    /* packing B pays once a panel serves several row tiles; the arithmetic,
     * and so every result bit, is the same either way */
    pl.packb = g->b_trans || g->bf16 || pl.mt >= PYNN_GEMM_PACKB_SMALL_MIN_ROW_TILES ||
               (pl.mt >= PYNN_GEMM_PACKB_MIN_ROW_TILES &&
                g->k * (size_t)g->ldb * sizeof(T) > PYNN_GEMM_INPLACE_B_BYTES);
    /* A shallow B^T (the output layer's input gradient, K = its few units):
     * column-panel-major, each tile's C and da rows are a step down a column,
     * rows apart (a new line per row, in one cache set when rows lie 4 KiB
     * multiples apart), and the product ran at half numpy's speed on a wide
     * layer.  Instead groups of gp panels, packed together into the panel
     * buffer, each run row tile by row tile across the group: C's rows are
     * written along. */
    pl.gp = 0;
    if (GEMM_NAME(grouped)(g)) {
        pl.gp = (size_t)KC / g->k;
        if (pl.gp > pl.nt)
            pl.gp = pl.nt;
    }
    return pl;
}

/* How A is packed (PYNN_APACK_*, internal.h).  Worth it when the caller gave
 * room, several column panels read it, and it is X^T or a row-major matrix
 * whose rows lie a multiple of 4 KiB apart (a tile's rows would then share
 * cache sets).  A thread alone packs one K block at a time, right before the
 * block (it stays in L2); a team packs every block ahead, each thread its share
 * of the row tiles, so that its threads never wait for each other between K
 * blocks (one sync between packing and the product, none per K block). */
static int GEMM_NAME(apack_mode)(const GEMM_ARGS *g, const GEMM_NAME(plan_t) *pl,
                                 const pynn_team *tm)
{
    size_t block = pl->mt * MR * pl->kc;
    if (GEMM_NAME(by_rows)(g) || GEMM_NAME(rowt_ok)(g) || GEMM_NAME(narrow_ok)(g))
        return PYNN_APACK_NONE;
#ifdef V_PERM2
    if (GEMM_NAME(outer_ok)(g))
        return PYNN_APACK_NONE;
#endif
    if (g->bf16) {
        /* A is always packed, to be rounded: in the room if it holds a block
         * and the layout is one pack_a reads, else tile by tile */
        if (g->apack == NULL || block > g->apack_len || (g->a_cs != 1 && g->a_rs != 1))
            return PYNN_APACK_TILE;
#ifdef GEMM_PAIRS
        /* AMX pads a shallow block's pairs past its room: tile by tile */
        if (PAIR_KQ(pl->kc) > pl->kc)
            return PYNN_APACK_TILE;
#endif
    } else {
        if (g->apack == NULL || pl->nt < PYNN_GEMM_PACKA_MIN_COL_PANELS ||
            g->k < PYNN_GEMM_PACKA_MIN_K)
            return PYNN_APACK_NONE;
        if (!((g->a_rs == 1 && g->a_cs != 1) ||
              (g->a_cs == 1 && ((size_t)g->a_rs * sizeof(T)) % PYNN_GEMM_ALIAS_BYTES == 0 &&
               (size_t)g->a_rs % PYNN_GEMM_PACK_WIDTH == 0 && g->m <= PYNN_GEMM_PACK_ROWS)))
            return PYNN_APACK_NONE;
        if (block > g->apack_len)
            return PYNN_APACK_NONE;
    }
    if (tm->size == 1)
        return g->pack_ahead && !g->bf16 && pl->nkb * block <= g->apack_len ? PYNN_APACK_TEAM
                                                                            : PYNN_APACK_SOLO;
    /* room for one block only (a batch of more than PYNN_GEMM_PACK_ROWS rows,
     * layout.c): the team packs and syncs block by block */
    return pl->nkb * block <= g->apack_len ? PYNN_APACK_TEAM : PYNN_APACK_TEAM_BLOCKS;
}

/* Tiles t0..t1-1 of the K block [p0, p1) in the chunk-major order: the row
 * tiles in chunks of pl->mc (the last may be shorter), each chunk's tiles
 * column panel by column panel.  A chunk's rows of A (a K block of them) stay
 * in L2 while every panel reads them; without chunks, a product of thousands
 * of rows (a full-batch gradient) read all of A from memory once per column
 * panel, at 0.4-0.5x OpenBLAS's speed.  One chunk (A's K block within
 * PYNN_GEMM_CHUNK_BYTES: a training batch, a weight gradient's 1024 rows) is
 * the column-panel-major order.  B's panel is
 * packed (bbuf; NULL: read in place, or g->bpack's) once per panel and chunk;
 * solo: A packed into g->apack chunk by chunk (one thread alone); own_a: each
 * tile packs its own. */
static void GEMM_NAME(chunk_run)(const GEMM_ARGS *g, const GEMM_NAME(plan_t) *pl, size_t t0,
                                 size_t t1, size_t p0, size_t p1, T *bbuf, const T *abase,
                                 T *own_a, int solo)
{
    if (t0 >= t1)
        return;
    const size_t mc = pl->mc, nt = pl->nt, span = mc * nt;
    size_t c = t0 / span, r = t0 - c * span;
    size_t ib = c * mc, w = pl->mt - ib < mc ? pl->mt - ib : mc;
    size_t jt = r / w, it = ib + (r - jt * w);
    const int pre = g->bpack && g->bpack_nr == NR && !g->bf16;
    const T *bp = bbuf;
    int fresh = 1; /* a new chunk, or the first tile; then a new panel */
    for (size_t t = t0; t < t1; t++) {
        if (fresh) {
            if (solo && fresh == 1)
                GEMM_NAME(pack_a)(g, ib, ib + w, p0, p1);
            if (pre)
                bp = g->bpack + jt * g->k * NR + p0 * NR;
            else if (bbuf)
                GEMM_NAME(pack_b)(bbuf, g, jt * NR, p0, p1);
            fresh = 0;
        }
        GEMM_NAME(tile_at)(g, it, jt, p0, p1, bp, abase, own_a, ib * MR,
                           ib + w == pl->mt ? g->m : (ib + w) * MR);
        if (++it == ib + w) {
            fresh = 2;
            if (++jt == nt) {
                jt = 0;
                ib += mc;
                w = pl->mt - ib < mc ? pl->mt - ib : mc;
                fresh = 1;
            }
            it = ib;
        }
    }
}

#ifdef GEMM_TRI
/* ---- tiles three vectors wide ----
 * A tile of MR rows x TRI_W = 3 VL columns, across a packed panel of B and
 * half the next: 3 MR sums (24 of AVX-512's 32 registers), and per step of K
 * three vectors of B and MR broadcasts of A for 3 MR FMAs, where an NR-wide
 * tile loads two vectors and MR broadcasts for 2 MR FMAs (0.46 loads per FMA
 * instead of 0.63).  Two such tiles cover a group of three panels: read from
 * B packed whole where it is (W prepacked, bwhole_run), else packed group by
 * group (tri_run).  On an Intel Xeon (AVX-512, 48 KiB L1, one core) the wide
 * step's five float64 products ran 4-9% faster (a model of the forward
 * product, B prepacked: 87 -> 97 GFLOP/s, where 12-row and 6 x 4-vector tiles
 * gained nothing), the wide fit 5-9% (8% on two threads), prediction 6-8%;
 * float32 (8 x 48 tiles), the five products 1-4%, the wide fit 4% on one
 * core, 1% on two threads (tri_groups: how a team shares them).
 * Where the includer defines GEMM_TRI (AVX-512's float and double; AVX2's 16
 * registers have no room for 24 sums).  Only with K blocks of at
 * most PYNN_GEMM_KC_MIN (a large L1: tri_ok); not measured on a 32 KiB L1,
 * where the groups' 512-deep blocks would not fit.  Columns past the last
 * whole group and a last row tile of fewer than MR rows run as NR-wide tiles.
 * Every element is the same chain of FMAs over the same K blocks, parked in C
 * the same way, with the same epilogue: the same bits. */
#if MR != 8
#error "the three-vector tiles (GEMM_TRI) take 8 rows"
#endif
#define TRI_W (3 * VL)

#if defined(TRI_ASM_FMA) && defined(__GNUC__)
/* Under GCC and Clang the step's broadcasts and FMAs are written out (two asm
 * statements of four rows each: an asm takes at most 30 operands, and each
 * in-out sum counts twice), one register (zmm31) for each broadcast in turn.
 * In a K loop of two steps a hint (tri_hints), GCC's own code for the
 * intrinsics loaded the second step's broadcasts early, ran out of registers
 * and moved 4 sums a step from register to register (vfmadd132 into the
 * broadcast's register, then vmovapd back), and the K loop's hint steps
 * cost ~3% of a float64 product's time against the same loop without the
 * hints' instructions (Intel Xeon, amx path).  The same FMAs in the same
 * order, each sum's product a*b the same as b*a: the same bits.  The
 * statements read A through their address operands, which the compiler
 * does not see as reads: the "memory" clobber keeps them after every store
 * (and costs the loops nothing: the same instructions). */
#ifndef TRI_ASM_ROW
#define TRI_ASM_ROW(addr, i)                                                                       \
    TRI_ASM_BCAST " " addr ", %%zmm31\n\t" TRI_ASM_FMA " %[b0], %%zmm31, %[x" #i "]\n\t" TRI_ASM_FMA \
                  " %[b1], %%zmm31, %[y" #i "]\n\t" TRI_ASM_FMA " %[b2], %%zmm31, %[z" #i "]\n\t"
#define TRI_ASM_PACKED(r0) TRI_ASM_ES "*" #r0 "(%[a])"
#define TRI_ASM_SUMS(i, r) [x##i] "+v"(x[r]), [y##i] "+v"(y[r]), [z##i] "+v"(z[r])
#define TRI_ASM_FOUR(r)                                                                            \
    TRI_ASM_SUMS(0, r), TRI_ASM_SUMS(1, r + 1), TRI_ASM_SUMS(2, r + 2), TRI_ASM_SUMS(3, r + 3)
/* The statement for rows r..r+3: their elements of A at the addresses a0..a3
 * (strings naming %[a] and the other operands, given after them) */
#define TRI_ASM_ROWS4(r, a0, a1, a2, a3, ...)                                                      \
    __asm__(TRI_ASM_ROW(a0, 0) TRI_ASM_ROW(a1, 1) TRI_ASM_ROW(a2, 2) TRI_ASM_ROW(a3, 3)           \
            : TRI_ASM_FOUR(r)                                                                      \
            : __VA_ARGS__, [b0] "v"(b0), [b1] "v"(b1), [b2] "v"(b2)                                \
            : "xmm31", "memory")
/* ... of A in place: four rows from the row pointer p, s and s3 bytes apart */
#define TRI_ASM_ROWS4_AT(r, p)                                                                     \
    TRI_ASM_ROWS4(r, "(%[a])", "(%[a],%[s])", "(%[a],%[s],2)", "(%[a],%[s3])", [a] "r"(p),        \
                  [s] "r"(s), [s3] "r"(s3))
#endif
#endif

/* One step of the K loop: B's vectors at *b, *b + o1, *b + o2 (two panels, NR
 * apart each step); A packed at *a (A_PACKED) or its rows in place (A_ROWS_BP,
 * with tile_k's addressing: two row pointers *a0, *a4 and two byte strides). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tri_step)(const int mode, V *x, V *y, V *z, const T **a, const char **a0,
                    const char **a4, ptrdiff_t s, ptrdiff_t s3, const T **b, ptrdiff_t o1,
                    ptrdiff_t o2)
{
    V b0 = V_LOAD(*b), b1 = V_LOAD(*b + o1), b2 = V_LOAD(*b + o2);
#if defined(TRI_ASM_FMA) && defined(__GNUC__)
    if (mode == GEMM_NAME(A_PACKED)) {
        TRI_ASM_ROWS4(0, TRI_ASM_PACKED(0), TRI_ASM_PACKED(1), TRI_ASM_PACKED(2),
                      TRI_ASM_PACKED(3), [a] "r"(*a));
        TRI_ASM_ROWS4(4, TRI_ASM_PACKED(4), TRI_ASM_PACKED(5), TRI_ASM_PACKED(6),
                      TRI_ASM_PACKED(7), [a] "r"(*a));
    } else {
        TRI_ASM_ROWS4_AT(0, *a0);
        TRI_ASM_ROWS4_AT(4, *a4);
    }
#else
PYNN_UNROLL16
    for (int r = 0; r < MR; r++) {
        V av = V_BCAST(mode == GEMM_NAME(A_PACKED) ? *a + r
                                                   : GEMM_NAME(row_at)(*a0, *a4, s, s3, r));
        x[r] = V_FMA(av, b0, x[r]);
        y[r] = V_FMA(av, b1, y[r]);
        z[r] = V_FMA(av, b2, z[r]);
    }
#endif
    if (mode == GEMM_NAME(A_PACKED)) {
        *a += MR;
    } else {
        *a0 += sizeof(T);
        *a4 += sizeof(T);
    }
    *b += NR;
}

/* Rows a page or more apart that a tile's K loop prefetches itself, one
 * cache line every TRI_PF_GAP steps (tri_k): `rows` rows from p, ld bytes
 * apart, `lines` hints a row (its bytes 0, 64, ... and end, its last).  Issued
 * back to back between the tiles, as prefetch_next issues its own, a tile's 32
 * hints waited on one another (for free line fill buffers, it seems): on an
 * Intel Xeon 5.5% of the wide float64 step's samples sat on them; one at a
 * time, they go out while the FMAs run, and the fit ran 4% faster.  (The
 * NR-wide tiles' hints spread the same way gained nothing: the wide and
 * mnist-like fits within +-1%, float32 and float64.)  Hints only. */
#define TRI_PF_GAP 2
typedef struct {
    const char *p; /* NULL: none */
    ptrdiff_t ld;
    size_t rows, lines, end;
} GEMM_NAME(pf_t);

/* Rows of B that the next group of panels packs (tri_run): `rows` rows from
 * p, ld elements apart, w elements each (rows 0: none).  The tiles of a group
 * share them, each fetching its share as it runs (tri_prefetch: the second
 * set of hints, where no slice of an update is due), so the next group's
 * pack reads L2, not L3: the weights of a forward product and W^T of an
 * input gradient, whose rows lie a page apart (B^T's rows are contiguous
 * but short).  On an Intel Xeon (amx path, one core) the forward products
 * of the wide net ran 1.2-2% faster, the wide fit +1.0% float32, +1.5%
 * float64 (in-process A/B, both orders). */
typedef struct {
    const T *p;
    ptrdiff_t ld;
    size_t rows, w;
} GEMM_NAME(nb_t);

/* Sets *pf to rows [0, rows) from m (ld elements apart), w elements each, if
 * a K loop of k steps has room for their hints, and returns 1; else 0. */
static PYNN_ALWAYS_INLINE int GEMM_NAME(pf_set)(GEMM_NAME(pf_t) *pf, const T *m, ptrdiff_t ld,
                                                size_t rows, size_t w, size_t k)
{
    const size_t lines = w * sizeof(T) / PYNN_GEMM_LINE + 1;
    if (rows * lines * TRI_PF_GAP > k)
        return 0;
    pf->p = (const char *)m;
    pf->ld = ld * (ptrdiff_t)sizeof(T);
    pf->rows = rows;
    pf->lines = lines;
    pf->end = w * sizeof(T) - 1;
    return 1;
}

/* The steps of a K loop that carry a set of hints (pf_set): a hint, then
 * TRI_PF_GAP steps, for each line; returns the steps taken. */
static PYNN_ALWAYS_INLINE size_t
GEMM_NAME(tri_hints)(const int mode, V *x, V *y, V *z, const T **a, const char **a0,
                     const char **a4, ptrdiff_t s, ptrdiff_t s3, const T **b, ptrdiff_t o1,
                     ptrdiff_t o2, const GEMM_NAME(pf_t) *pf)
{
    const char *row = pf->p;
    const size_t lines = pf->lines, end = pf->end;
    for (size_t r = 0; r < pf->rows; r++, row += pf->ld) {
        for (size_t l = 0; l < lines; l++) {
            const size_t off = l * PYNN_GEMM_LINE;
            PYNN_GEMM_PREFETCH(row + (off < end && l + 1 < lines ? off : end));
            for (int q = 0; q < TRI_PF_GAP; q++)
                GEMM_NAME(tri_step)(mode, x, y, z, a, a0, a4, s, s3, b, o1, o2);
        }
    }
    return pf->rows * lines * TRI_PF_GAP;
}

/* The K loop of a three-vector tile: the steps that carry pf[0]'s hints,
 * then pf[1]'s, then pf[2]'s (tri_prefetch), then the rest. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tri_k)(const int mode, V *x, V *y, V *z, const T *a, ptrdiff_t ars, const T *b,
                 ptrdiff_t o1, ptrdiff_t o2, size_t k, const GEMM_NAME(pf_t) *pf)
{
    const ptrdiff_t s = ars * (ptrdiff_t)sizeof(T), s3 = 3 * s;
    const char *a0 = (const char *)a, *a4 = a0 + 4 * s;
    size_t p = 0;
    if (pf[0].p)
        p = GEMM_NAME(tri_hints)(mode, x, y, z, &a, &a0, &a4, s, s3, &b, o1, o2, &pf[0]);
    if (pf[1].p)
        p += GEMM_NAME(tri_hints)(mode, x, y, z, &a, &a0, &a4, s, s3, &b, o1, o2, &pf[1]);
    if (pf[2].p)
        p += GEMM_NAME(tri_hints)(mode, x, y, z, &a, &a0, &a4, s, s3, &b, o1, o2, &pf[2]);
    KUNROLL_PRAGMA(PYNN_GEMM_K_UNROLL)
    for (; p < k; p++)
        GEMM_NAME(tri_step)(mode, x, y, z, &a, &a0, &a4, s, s3, &b, o1, o2);
}

/* The K steps a set of hints takes (none: 0). */
static PYNN_ALWAYS_INLINE size_t GEMM_NAME(pf_steps)(const GEMM_NAME(pf_t) *pf)
{
    return pf->p ? pf->rows * pf->lines * TRI_PF_GAP : 0;
}

/* Hints for a tile at (i0, c0): its epilogue's operand rows (as prefetch_next's
 * (0)), in pf[2]; and the C rows of the next tile (ni, nc; nc >= n: none), as
 * prefetch_next's (1), in pf[0].  Rows a page apart for the K loop to spread
 * out are returned there where the block is deep enough (else prefetched
 * here): the epilogue's rows (w or da), and the next tile's C rows or, for
 * the fused SGD's tile alone in its K block (its sums parked on the stack:
 * tri_tile), this tile's W rows.  The epilogue's rows were fetched here in
 * a burst before the K loop (~2% of a float64 input gradient's profile on an
 * Intel Xeon: the burst's hints wait on one another, tri_hints); spread
 * through the loop, the input gradient of the wide net ran ~1% faster
 * (amx path, one core, in-process A/B, both orders).  No result changes. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tri_prefetch_c)(const GEMM_ARGS *g, size_t i0, size_t c0, size_t p0, size_t p1,
                          size_t ni, size_t nc, GEMM_NAME(pf_t) *pf)
{
    pf[0].p = pf[2].p = NULL;
    if (p1 - p0 < PYNN_GEMM_PREFETCH_MIN_K && (size_t)g->ldc < PYNN_GEMM_ALIAS_BYTES / sizeof(T))
        return;
    const T *rows0;
    ptrdiff_t ld;
    size_t rows = MR, w = TRI_W;
    if (g->epi == PYNN_EPI_SGD_W && p0 == 0 && p1 == g->k) {
        rows0 = g->w + i0 * g->ldw + c0;
        ld = g->ldw;
    } else {
        if (p1 == g->k && GEMM_NAME(epi_reads_rows)(g)) {
            ptrdiff_t eld;
            const T *er = GEMM_NAME(epi_rows)(g, i0, c0, &eld);
            if (!GEMM_NAME(pf_set)(&pf[2], er, eld, MR, TRI_W, p1 - p0))
                GEMM_NAME(prefetch_epi_rows)(g, i0, MR, c0, TRI_W);
        }
        if (nc >= g->n || (size_t)g->ldc < PYNN_GEMM_ALIAS_BYTES / sizeof(T))
            return;
        rows0 = g->c + ni * g->ldc + nc;
        ld = g->ldc;
        rows = g->m - ni < MR ? g->m - ni : MR;
        w = g->n - nc < TRI_W ? g->n - nc : TRI_W;
    }
    if (!GEMM_NAME(pf_set)(&pf[0], rows0, ld, rows, w, p1 - p0 - GEMM_NAME(pf_steps)(&pf[2]))) {
        for (size_t r = 0; r < rows; r++)
            GEMM_NAME(prefetch_row)(rows0 + r * ld, w);
    }
}

/* An update in slices (pynn_gemm_args.bg) runs this many bytes of W after
 * each three-vector tile (tri_tile), its W and gradient fetched by the
 * tile's K loop. */
#define TRI_BG_BYTES 2048

/* The length of the update's next slice. */
static PYNN_ALWAYS_INLINE size_t GEMM_NAME(bg_len)(const GEMM_ARGS *g)
{
    const size_t left = g->bg->end - g->bg->pos;
    return left < TRI_BG_BYTES / sizeof(T) ? left : TRI_BG_BYTES / sizeof(T);
}

/* Whether a slice of an update is due after this tile: not where the update
 * writes a velocity too (a call's last step: a third stream, left to the
 * caller's pass after the product, pynn__sgd_bg_finish). */
static PYNN_ALWAYS_INLINE int GEMM_NAME(bg_due)(const GEMM_ARGS *g)
{
    return g->bg && !g->bg->v && g->bg->pos < g->bg->end;
}

/* The hints a tile's K loop carries: pf[0] and pf[2], tri_prefetch_c's; pf[1], the
 * next slice of an update in slices (its W and gradient: two rows), where
 * the loop has room left for them, else fetched here; where no slice is due,
 * the tile's share of the rows the next group packs (nb), where the loop has
 * room left for them (else none: a burst of them between the tiles would
 * wait on one another). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tri_prefetch)(const GEMM_ARGS *g, size_t i0, size_t c0, size_t p0, size_t p1,
                        size_t ni, size_t nc, const GEMM_NAME(nb_t) *nb, GEMM_NAME(pf_t) *pf)
{
    GEMM_NAME(tri_prefetch_c)(g, i0, c0, p0, p1, ni, nc, pf);
    pf[1].p = NULL;
    const size_t used = GEMM_NAME(pf_steps)(&pf[0]) + GEMM_NAME(pf_steps)(&pf[2]);
    if (!GEMM_NAME(bg_due)(g)) {
        if (nb && nb->rows) {
            GEMM_NAME(pf_set)(&pf[1], nb->p, nb->ld, nb->rows, nb->w, p1 - p0 - used);
        }
        return;
    }
    const size_t pos = g->bg->pos, w = GEMM_NAME(bg_len)(g);
    const T *wr = g->bg->w + pos, *gr = g->bg->g + pos;
    const ptrdiff_t ld = ((intptr_t)gr - (intptr_t)wr) / (ptrdiff_t)sizeof(T);
    if (!GEMM_NAME(pf_set)(&pf[1], wr, ld, 2, w, p1 - p0 - used)) {
        GEMM_NAME(prefetch_row)(wr, w);
        GEMM_NAME(prefetch_row)(gr, w);
    }
}

/* The next slice of the update in slices: w += -(lr g), the optimizer's
 * arithmetic (optim.c: sgd_seg) a vector at a time (no velocity: bg_due). */
static PYNN_NOINLINE void GEMM_NAME(bg_slice)(const GEMM_ARGS *ga)
{
    PYNN_SGD_BG_TYPE(T) *bg = ga->bg;
    size_t i = bg->pos;
    const size_t e = i + GEMM_NAME(bg_len)(ga);
    T *w = bg->w;
    const T *g = bg->g;
    const V nlr = V_SET1(-bg->lr);
    for (; i + VL <= e; i += VL)
        V_STORE(w + i, V_ADD(V_LOAD(w + i), V_MUL(nlr, V_LOAD(g + i))));
    for (; i < e; i++)
        w[i] += -(bg->lr * g[i]);
    bg->pos = e;
}

/* The epilogue a tile's kernel applies as it stores its sums after the last
 * K block (tri_fin_of), where it is one of the simplest: the weight
 * gradient's scale (PYNN_EPI_SCALE_W without the L2 term) or the forward
 * product's bias, ReLU and z0 (PYNN_EPI_BIAS).  The arithmetic of
 * tri_epilogue's cases, done on the sums in registers instead of on those
 * stored and read back: the same bits.  On an Intel Xeon (amx path, one
 * core) the wide net's five products ran 1.2-2.6% faster (float64) and
 * 1.1-1.4% (float32) in an in-process A/B.  The ReLU's derivative of an
 * input gradient (it reads the activations) made GCC keep sums on the stack
 * through the K loop: left to tri_epilogue. */
#ifndef PYNN_TRI_FIN_OPS
#define PYNN_TRI_FIN_OPS
enum { TRI_FIN_NONE, TRI_FIN_SCALE, TRI_FIN_BIAS };
#endif
typedef struct {
    int op, relu;
    T s;
    const T *bias; /* (the tile's first column) */
    T *z0;         /* NULL: none (the tile's first row) */
} GEMM_NAME(fin_t);

/* A tile's sums over one K block, parked in C (c, ldc apart): started from
 * zero (first) or from those parked there.  Out of line, one function per
 * mode: inlined into the loops with their epilogues, the compiler kept half
 * of the 24 sums on the stack through the K loop (0.73x the NR-wide tiles). */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tri_kern)(const int mode, const T *a, ptrdiff_t ars, const T *b, ptrdiff_t o1,
                    ptrdiff_t o2, size_t k, T *c, size_t ldc, int first,
                    const GEMM_NAME(pf_t) *pf, const GEMM_NAME(fin_t) *fin)
{
    V x[MR], y[MR], z[MR];
PYNN_UNROLL16
    for (int r = 0; r < MR; r++) {
        if (first) {
            x[r] = V_ZERO();
            y[r] = V_ZERO();
            z[r] = V_ZERO();
        } else {
            x[r] = V_LOAD(c + r * ldc);
            y[r] = V_LOAD(c + r * ldc + VL);
            z[r] = V_LOAD(c + r * ldc + NR);
        }
    }
    GEMM_NAME(tri_k)(mode, x, y, z, a, ars, b, o1, o2, k, pf);
    if (fin->op == TRI_FIN_SCALE) {
        const V s = V_SET1(fin->s);
PYNN_UNROLL16
        for (int r = 0; r < MR; r++) {
            x[r] = V_MUL(x[r], s);
            y[r] = V_MUL(y[r], s);
            z[r] = V_MUL(z[r], s);
        }
    } else if (fin->op == TRI_FIN_BIAS) {
        const V b0 = V_LOAD(fin->bias), b1 = V_LOAD(fin->bias + VL), b2 = V_LOAD(fin->bias + NR);
PYNN_UNROLL16
        for (int r = 0; r < MR; r++) {
            x[r] = V_ADD(x[r], b0);
            y[r] = V_ADD(y[r], b1);
            z[r] = V_ADD(z[r], b2);
            if (fin->z0)
                V_MSTORE(fin->z0 + r, M_MAKE(1), x[r]);
            if (fin->relu) {
                x[r] = V_MAX(x[r], V_ZERO());
                y[r] = V_MAX(y[r], V_ZERO());
                z[r] = V_MAX(z[r], V_ZERO());
            }
        }
    }
PYNN_UNROLL16
    for (int r = 0; r < MR; r++) {
        V_STORE(c + r * ldc, x[r]);
        V_STORE(c + r * ldc + VL, y[r]);
        V_STORE(c + r * ldc + NR, z[r]);
    }
}

static PYNN_NOINLINE void GEMM_NAME(tri_kern_packed)(const T *a, const T *b, ptrdiff_t o1,
                                                     ptrdiff_t o2, size_t k, T *c, size_t ldc,
                                                     int first, const GEMM_NAME(pf_t) *pf,
                                                     const GEMM_NAME(fin_t) *fin)
{
    GEMM_NAME(tri_kern)(GEMM_NAME(A_PACKED), a, 1, b, o1, o2, k, c, ldc, first, pf, fin);
}

static PYNN_NOINLINE void GEMM_NAME(tri_kern_rows)(const T *a, ptrdiff_t ars, const T *b,
                                                   ptrdiff_t o1, ptrdiff_t o2, size_t k, T *c,
                                                   size_t ldc, int first,
                                                   const GEMM_NAME(pf_t) *pf,
                                                   const GEMM_NAME(fin_t) *fin)
{
    GEMM_NAME(tri_kern)(GEMM_NAME(A_ROWS_BP), a, ars, b, o1, o2, k, c, ldc, first, pf, fin);
}

/* PYNN_EPI_SGD_W's epilogue of a three-vector tile (rows from i0, columns
 * from c0), its sums at cs (lds apart): sgd_row's arithmetic a vector at a
 * time, W's packed copy (g->wpack) written vector by vector into its panels
 * (a tile's columns span two). */
static PYNN_NOINLINE void GEMM_NAME(tri_epilogue_sgd)(const GEMM_ARGS *g, size_t i0, size_t c0,
                                                      const T *cs, size_t lds)
{
    const size_t ldw = (size_t)g->ldw, m = g->m;
    const T *w = g->w + i0 * ldw + c0;
    T *wnew = g->wnew + i0 * ldw + c0, *vnew = g->vnew ? g->vnew + i0 * ldw + c0 : NULL;
    const V s = V_SET1(g->scale), nlr = V_SET1(-g->lr), ws = V_SET1(g->wscale);
    const int l2 = g->wscale != 0;
    T *wpk[3] = {NULL, NULL, NULL};
    if (g->wpack) {
        for (int q = 0; q < 3; q++) {
            size_t j = c0 + (size_t)q * VL;
            wpk[q] = g->wpack + (j - j % NR) * m + i0 * NR + j % NR;
        }
    }
PYNN_UNROLL16
    for (int r = 0; r < MR; r++) {
        const size_t o = (size_t)r * ldw;
        for (int q = 0; q < 3; q++) {
            V wv = V_LOAD(w + o + q * VL), x = V_MUL(V_LOAD(cs + r * lds + q * VL), s);
            if (l2)
                x = V_ADD(x, V_MUL(wv, ws));
            x = V_MUL(nlr, x);
            wv = V_ADD(wv, x);
            V_STORE(wnew + o + q * VL, wv);
            if (wpk[q])
                V_STORE(wpk[q] + r * NR, wv);
            if (vnew)
                V_STORE(vnew + o + q * VL, x);
        }
    }
}

/* The epilogue of a three-vector tile that its kernel did not apply
 * (tri_fin_of; nor PYNN_EPI_SGD_W's), rows from i0, columns from c0, its
 * sums parked in C at c (ldc apart), in place: the arithmetic of epilogue()
 * vector by vector, with g's fields read once a tile.  (epilogue() row by row read them again after every store, which
 * could have changed them as far as the compiler knew, and chose its case
 * for every row.)  An epilogue it does not know goes to epilogue(). */
static PYNN_NOINLINE void GEMM_NAME(tri_epilogue)(const GEMM_ARGS *g, size_t i0, size_t c0, T *c,
                                                  size_t ldc)
{
    const int act = g->act;
    switch (g->epi) {
    case PYNN_EPI_SCALE_W: {
        /* (with the L2 term: the scale alone is the kernel's, tri_fin_of) */
        const V s = V_SET1(g->scale), ws = V_SET1(g->wscale);
        const size_t ldw = (size_t)g->ldw;
        const T *w = g->w + i0 * ldw + c0;
PYNN_UNROLL16
        for (int r = 0; r < MR; r++) {
            T *cr = c + (size_t)r * ldc;
            for (int q = 0; q < 3; q++) {
                V x = V_MUL(V_LOAD(cr + q * VL), s);
                x = V_ADD(x, V_MUL(V_LOAD(w + (size_t)r * ldw + q * VL), ws));
                V_STORE(cr + q * VL, x);
            }
        }
        return;
    }
    case PYNN_EPI_DACT: {
        if (act != PYNN_ACT_RELU && act != PYNN_ACT_LOGISTIC && act != PYNN_ACT_TANH)
            break;
        const size_t ldda = (size_t)g->ldda;
        const T *da = g->da + i0 * ldda + c0;
        const V one = V_SET1((T)1);
PYNN_UNROLL16
        for (int r = 0; r < MR; r++) {
            T *cr = c + (size_t)r * ldc;
            for (int q = 0; q < 3; q++) {
                V x = V_LOAD(cr + q * VL), a = V_LOAD(da + (size_t)r * ldda + q * VL);
                if (act == PYNN_ACT_RELU)
                    x = V_GT0_SELECT(a, x);
                else if (act == PYNN_ACT_LOGISTIC)
                    x = V_MUL(x, V_MUL(a, V_SUB(one, a)));
                else
                    x = V_MUL(x, V_SUB(one, V_MUL(a, a)));
                V_STORE(cr + q * VL, x);
            }
        }
        return;
    }
    default:
        break;
    }
    const MASK_T all = M_MAKE(VL), none = M_MAKE(0);
    for (size_t r = 0; r < MR; r++) {
        const T *cr = c + r * ldc;
        V x = V_LOAD(cr), y = V_LOAD(cr + VL), z = V_LOAD(cr + NR);
        GEMM_NAME(epilogue)(g, i0 + r, c0, x, y, NR, all, all);
        GEMM_NAME(epilogue)(g, i0 + r, c0 + NR, z, V_ZERO(), VL, all, none);
    }
}

/* The epilogue a tile's kernel applies as it stores (fin_t) after the
 * block [.., p1): none before the last block, nor for the fused SGD's. */
static PYNN_ALWAYS_INLINE GEMM_NAME(fin_t) GEMM_NAME(tri_fin_of)(const GEMM_ARGS *g, size_t i0,
                                                                size_t c0, size_t p1)
{
    GEMM_NAME(fin_t) f = {TRI_FIN_NONE, 0, (T)0, NULL, NULL};
    if (p1 != g->k)
        return f;
    if (g->epi == PYNN_EPI_SCALE_W && g->wscale == 0) {
        f.op = TRI_FIN_SCALE;
        f.s = g->scale;
    } else if (g->epi == PYNN_EPI_BIAS) {
        f.op = TRI_FIN_BIAS;
        f.bias = g->bias + c0;
        f.relu = g->act == PYNN_ACT_RELU;
        f.z0 = g->z0 && c0 == 0 ? g->z0 + i0 : NULL;
    }
    return f;
}

/* One tile of MR rows from i0, TRI_W columns from c0, over the K block
 * [p0, p1): B's vectors at b, b + o1, b + o2 (tri_k), A's packed rows at ap
 * (NULL: in place, a_cs 1); after the last block, the epilogue: applied by
 * the kernel as it stores (tri_fin_of), or on the sums read back from C
 * (exactly what was parked).  The fused SGD's sums over its
 * only K block are parked on the stack instead of in C (its scratch): no
 * store of them leaves the cache. */
static PYNN_ALWAYS_INLINE void
GEMM_NAME(tri_tile)(const GEMM_ARGS *g, size_t i0, size_t c0, size_t p0, size_t p1,
                    const T *b, ptrdiff_t o1, ptrdiff_t o2, const T *ap, size_t ni, size_t nc,
                    const GEMM_NAME(nb_t) *nb)
{
    _Alignas(64) T own[MR * TRI_W];
    const int sgd = g->epi == PYNN_EPI_SGD_W, alone = sgd && p0 == 0 && p1 == g->k;
    T *c = alone ? own : g->c + i0 * g->ldc + c0;
    const size_t ldc = alone ? TRI_W : (size_t)g->ldc;
    GEMM_NAME(pf_t) pf[3];
    GEMM_NAME(tri_prefetch)(g, i0, c0, p0, p1, ni, nc, nb, pf);
    const GEMM_NAME(fin_t) fin = GEMM_NAME(tri_fin_of)(g, i0, c0, p1);
    if (ap)
        GEMM_NAME(tri_kern_packed)(ap, b, o1, o2, p1 - p0, c, ldc, p0 == 0, pf, &fin);
    else
        GEMM_NAME(tri_kern_rows)(g->a + i0 * g->a_rs + p0, g->a_rs, b, o1, o2, p1 - p0, c, ldc,
                                 p0 == 0, pf, &fin);
    if (GEMM_NAME(bg_due)(g))
        GEMM_NAME(bg_slice)(g);
    if (p1 == g->k && sgd)
        GEMM_NAME(tri_epilogue_sgd)(g, i0, c0, c, ldc);
    else if (p1 == g->k && g->epi != PYNN_EPI_NONE && fin.op == TRI_FIN_NONE)
        GEMM_NAME(tri_epilogue)(g, i0, c0, c, ldc);
}

/* Whether a product whose B is packed runs in three-vector tiles: float
 * products (not bfloat16's), K blocks of at most PYNN_GEMM_KC_MIN, at least
 * one whole group and row tile, A packed or row-major, and four groups or
 * more a thread of a team (which shares the column panels, each thread's
 * forming groups of their own: tri_groups), two for a thread alone (a
 * 256-wide float32 layer's: prediction of mnist-like 3.7% faster, its fit 2%,
 * on an Intel Xeon; float64's 128-wide ones within +-1%). */
static int GEMM_NAME(tri_ok)(const GEMM_ARGS *g, const GEMM_NAME(plan_t) *pl,
                             const pynn_team *tm, int amode)
{
    if (g->bf16 || pl->gp || g->m < MR || g->n / NR < 3 || pl->kc > PYNN_GEMM_KC_MIN)
        return 0;
    if (!(amode == PYNN_APACK_SOLO || amode == PYNN_APACK_TEAM ||
          (amode == PYNN_APACK_NONE && g->a_cs == 1)))
        return 0;
    return (pl->nt + 2) / 3 >= (tm->size == 1 ? 2 : 4 * (size_t)tm->size);
}

/* A thread's run of column panels [j0, j1) (the team shares the panels, as
 * the NR-wide tiles do) forms groups of three from its first panel on: the
 * whole groups among its full panels, and after them the panels left over
 * (NR-wide tiles).  Shared by groups of three panels fixed across the team,
 * two threads over a float32 1024-wide layer's 11 groups took 6 and 5 (a wide
 * fit 9% slower than in NR-wide tiles); by the groups' two columns, 11 and 10
 * of 21 (528 and 496 columns); by panels, 16 each, each thread's five groups
 * and one panel left over.  The whole groups of [j0, j1): */
static inline size_t GEMM_NAME(tri_groups)(const GEMM_ARGS *g, size_t j0, size_t j1)
{
    const size_t nf = g->n / NR, e = j1 < nf ? j1 : nf; /* (full panels) */
    return e > j0 ? (e - j0) / 3 : 0;
}

/* Panels [j0, j1), row tiles [ib, ie), over the K block [p0, p1); panel jt
 * of B packed at bb + (jt - jb) ps (its block).  A group's two columns (t =
 * 0: panel jg and the lower half of jg + 1; t = 1: the upper half of jg + 1
 * and panel jg + 2) run column by column, a column's row tiles of MR rows as
 * three-vector tiles, a short last row tile as NR-wide tiles (panels jg and
 * jg + 1 with the first column, jg + 2 with the second); the panels past the
 * last whole group, as NR-wide tiles. */
static void GEMM_NAME(tri_block)(const GEMM_ARGS *g, size_t j0, size_t j1, size_t jb, size_t ib,
                                 size_t ie, size_t p0, size_t p1, const T *abase, size_t cr0,
                                 size_t cr1, const T *bb, size_t ps, const GEMM_NAME(nb_t) *nb)
{
    const size_t nw = GEMM_NAME(tri_groups)(g, j0, j1), kc = p1 - p0;
#define TRI_B(jt) (bb + ((jt) - jb) * ps)
    const size_t ief = ie * MR > g->m ? ie - 1 : ie; /* the row tiles of MR rows */
    const int pf = g->a_next && g->a_cs == 1;
    for (size_t u = 0; u < 2 * nw; u++) {
        const size_t jg = j0 + 3 * (u / 2), t = u % 2, c0 = jg * NR + t * TRI_W;
        const T *b = t == 0 ? TRI_B(jg) : TRI_B(jg + 1) + VL;
        const ptrdiff_t o1 = t == 0 ? VL : (ptrdiff_t)ps - VL, o2 = (ptrdiff_t)ps;
        for (size_t it = ib; it < ief; it++) {
            const size_t i0 = it * MR;
            if (pf) {
                for (size_t jt = jg + t * 2; jt < jg + 2 + t; jt++)
                    GEMM_NAME(prefetch_a_next)(g, i0, MR, jt, p0, p1);
            }
            size_t ni = i0 + MR, nc = c0;
            if (it + 1 == ief) {
                ni = ib * MR;
                nc = c0 + TRI_W;
            }
            /* (this tile's share of the rows the next group packs) */
            GEMM_NAME(nb_t) own = {NULL, 0, 0, 0};
            if (nb && nb->rows) {
                const size_t tiles = 2 * nw * (ief - ib), tix = u * (ief - ib) + (it - ib);
                const size_t share = (nb->rows + tiles - 1) / tiles, q0 = tix * share;
                if (q0 < nb->rows) {
                    own.p = nb->p + (ptrdiff_t)q0 * nb->ld;
                    own.ld = nb->ld;
                    own.rows = nb->rows - q0 < share ? nb->rows - q0 : share;
                    own.w = nb->w;
                }
            }
            GEMM_NAME(tri_tile)(g, i0, c0, p0, p1, b, o1, o2,
                                abase ? abase + it * kc * MR : NULL, ni, nc, &own);
        }
        for (size_t it = ief; it < ie; it++)
            for (size_t jt = jg + 2 * t; jt < jg + 2 + t; jt++)
                GEMM_NAME(tile_at)(g, it, jt, p0, p1, TRI_B(jt), abase, NULL, cr0, cr1);
    }
    for (size_t jt = j0 + 3 * nw; jt < j1; jt++)
        for (size_t it = ib; it < ie; it++)
            GEMM_NAME(tile_at)(g, it, jt, p0, p1, TRI_B(jt), abase, NULL, cr0, cr1);
#undef TRI_B
}

/* The product in three-vector tiles where B is packed panel by panel (a
 * batch's forward product, an input gradient): each thread takes a run of
 * the panels, and for each chunk of rows and K block packs its groups' three
 * panels together into buf (3 kc NR), group by group, and runs their tiles,
 * then the panels left over, the same way.  On an Intel Xeon (one core,
 * float64) a model of the forward product of a 1024-wide layer ran 88 ->
 * 92-94 GFLOP/s.  The same tiles, K blocks and packed values as gemm_run's
 * order: the same bits. */
static void GEMM_NAME(tri_run)(const GEMM_ARGS *g, const GEMM_NAME(plan_t) *pl,
                               const pynn_team *tm, int amode, T *buf)
{
    size_t j0, j1;
    pynn__share(pl->nt, tm, &j0, &j1);
    if (j0 >= j1)
        return;
    const size_t mt = pl->mt, k = g->k, mc = pl->mc;
    const size_t je = j0 + 3 * GEMM_NAME(tri_groups)(g, j0, j1); /* (the groups' end) */
    for (size_t ib = 0; ib < mt; ib += mc) {
        size_t ie = mt - ib < mc ? mt : ib + mc;
        size_t cr0 = ib * MR, cr1 = ie == mt ? g->m : ie * MR;
        for (size_t kb = 0; kb < pl->nkb; kb++) {
            size_t p0 = kb * pl->kc, p1 = k - p0 < pl->kc ? k : p0 + pl->kc, kc = p1 - p0;
            const T *abase = amode == PYNN_APACK_SOLO   ? g->apack
                             : amode == PYNN_APACK_TEAM ? g->apack + kb * mt * MR * pl->kc
                                                        : NULL;
            if (amode == PYNN_APACK_SOLO)
                GEMM_NAME(pack_a)(g, ib, ie, p0, p1);
            /* (a group, or the panels left over: at most two full ones and a
             * partial last one) */
            for (size_t jg = j0, jn; jg < j1; jg = jn) {
                jn = jg < je ? jg + 3 : j1;
                for (size_t jt = jg; jt < jn; jt++)
                    GEMM_NAME(pack_b)(buf + (jt - jg) * kc * NR, g, jt * NR, p0, p1);
                /* the rows of B the next group packs, fetched by these tiles */
                GEMM_NAME(nb_t) nb = {NULL, 0, 0, 0};
                if (jn < j1 && !g->bf16) {
                    const size_t jn2 = jn < je ? jn + 3 : j1, c0 = jn * NR;
                    const size_t cols = (jn2 * NR < g->n ? jn2 * NR : g->n) - c0;
                    if (!g->b_trans && (size_t)g->ldb * sizeof(T) >= PYNN_GEMM_ALIAS_BYTES) {
                        nb.p = g->b + p0 * g->ldb + c0;
                        nb.ld = g->ldb;
                        nb.rows = kc;
                        nb.w = cols;
                    } else if (g->b_trans) {
                        nb.p = g->b + c0 * g->ldb + p0;
                        nb.ld = g->ldb;
                        nb.rows = cols;
                        nb.w = kc;
                    }
                }
                GEMM_NAME(tri_block)(g, jg, jn, jg, ib, ie, p0, p1, abase, cr0, cr1, buf,
                                     kc * NR, &nb);
            }
        }
    }
}
#else
static inline int GEMM_NAME(tri_ok)(const GEMM_ARGS *g, const GEMM_NAME(plan_t) *pl,
                                    const pynn_team *tm, int amode)
{
    (void)g;
    (void)pl;
    (void)tm;
    (void)amode;
    return 0;
}
#endif

/* Whether the product runs in chunks of rows with B packed whole into
 * g->bwhole, each thread its own column panels (bwhole_run): where B is packed
 * panel by panel and A's K block is over PYNN_GEMM_CHUNK_BYTES_BW (it would
 * not stay in L2 while every panel streams it) and the room holds B.  Not for
 * bf16 products, a B already packed whole, nor the grouped or block-by-block
 * orders. */
static int GEMM_NAME(bwhole_ok)(const GEMM_ARGS *g, const GEMM_NAME(plan_t) *pl,
                                const pynn_team *tm, int amode)
{
    if (g->bwhole == NULL || g->bf16 || !pl->packb || pl->gp ||
        amode == PYNN_APACK_TEAM_BLOCKS || amode == PYNN_APACK_TILE ||
        (g->bpack && g->bpack_nr == NR))
        return 0;
    if (pl->nt < 2 * (size_t)tm->size || pl->mt * MR <= PYNN_GEMM_MC_ROWS ||
        pl->mt * MR * pl->kc * sizeof(T) <= PYNN_GEMM_CHUNK_BYTES_BW)
        return 0;
    const size_t slack = 64 / sizeof(T); /* (to align it) */
    return g->bwhole_len >= slack && pl->nt * NR <= (g->bwhole_len - slack) / g->k;
}

/* The product in chunks of about PYNN_GEMM_MC_ROWS rows, each chunk's K
 * blocks in turn, each block's tiles column panel by column panel, every
 * panel read from B packed whole (g->bwhole, each panel over all of K as
 * gemm_prepack_b lays it out).  A thread takes a run of the panels and packs
 * them itself, so no thread waits for another.  Packed panel by panel, a
 * weight gradient of 1024 rows either streamed all of A (2 MiB of float64 x^T)
 * through L2 once per panel, or in chunks packed every panel once more per
 * chunk: on an Intel Xeon (2 MiB L2) 0.85-0.88x OpenBLAS's speed, in chunks
 * with B packed once 0.99-1.04x; a forward product of a batch of 1024 rows
 * (784 x 1024 W) 0.71-0.74x -> 0.93-0.95x, an input gradient 0.86-0.89x ->
 * 0.95-0.97x.  The tiles, their K blocks and the packed
 * values are those of gemm_run's order: the same bits. */
static void GEMM_NAME(bwhole_run)(const GEMM_ARGS *g, const GEMM_NAME(plan_t) *pl,
                                  const pynn_team *tm, int amode, int tri, int prepacked)
{
    /* j0, j1: the panels this thread packs into bw and runs */
    size_t j0, j1;
#ifndef GEMM_TRI
    (void)tri; /* (no three-vector tiles in this instance) */
#endif
    pynn__share(pl->nt, tm, &j0, &j1);
    if (j0 >= j1)
        return;
    const size_t mt = pl->mt, k = g->k, mc = GEMM_NAME(chunk_tiles)(mt);
    T *bw = prepacked ? (T *)g->bpack : (T *)(((uintptr_t)g->bwhole + 63) & ~(uintptr_t)63);
    GEMM_ARGS h = *g; /* (B packed whole: the tiles fetch no next panel) */
    h.bpack = bw;
    h.bpack_nr = NR;
    for (size_t kb = 0; kb < pl->nkb && !prepacked; kb++) {
        size_t p0 = kb * pl->kc, p1 = k - p0 < pl->kc ? k : p0 + pl->kc;
        for (size_t jt = j0; jt < j1; jt++)
            GEMM_NAME(pack_b)(bw + jt * k * NR + p0 * NR, g, jt * NR, p0, p1);
    }
    for (size_t ib = 0; ib < mt; ib += mc) {
        size_t ie = mt - ib < mc ? mt : ib + mc;
        size_t cr0 = ib * MR, cr1 = ie == mt ? g->m : ie * MR;
        for (size_t kb = 0; kb < pl->nkb; kb++) {
            size_t p0 = kb * pl->kc, p1 = k - p0 < pl->kc ? k : p0 + pl->kc;
            const T *abase = amode == PYNN_APACK_SOLO   ? g->apack
                             : amode == PYNN_APACK_TEAM ? g->apack + kb * mt * MR * pl->kc
                                                        : NULL;
            if (amode == PYNN_APACK_SOLO)
                GEMM_NAME(pack_a)(g, ib, ie, p0, p1);
#ifdef GEMM_TRI
            if (tri) {
                GEMM_NAME(tri_block)(&h, j0, j1, 0, ib, ie, p0, p1, abase, cr0, cr1,
                                     bw + p0 * NR, k * NR, NULL);
                continue;
            }
#endif
            for (size_t jt = j0; jt < j1; jt++) {
                const T *bp = bw + jt * k * NR + p0 * NR;
                for (size_t it = ib; it < ie; it++)
                    GEMM_NAME(tile_at)(&h, it, jt, p0, p1, bp, abase, NULL, cr0, cr1);
            }
        }
    }
}

/* Packs this thread's share of A's row tiles for every K block, when the
 * product packs A as a team; returns the mode for GEMM_NAME(gemm_run).  With
 * PYNN_APACK_TEAM the team syncs between the two. */
int GEMM_NAME(gemm_pack)(const GEMM_ARGS *g, const pynn_team *tm)
{
    GEMM_NAME(plan_t) pl = GEMM_NAME(plan)(g);
    int mode = GEMM_NAME(apack_mode)(g, &pl, tm);
    if (mode == PYNN_APACK_TEAM) {
        size_t it0, it1;
        pynn__share(pl.mt, tm, &it0, &it1);
        GEMM_ARGS h = *g;
        for (size_t kb = 0; kb < pl.nkb && it0 < it1; kb++) {
            size_t p0 = kb * pl.kc, p1 = g->k - p0 < pl.kc ? g->k : p0 + pl.kc;
            h.apack = g->apack + kb * pl.mt * MR * pl.kc;
            GEMM_NAME(pack_a)(&h, it0, it1, p0, p1);
        }
    }
    return mode;
}

/* This thread's share of the output tiles, a contiguous run of the
 * chunk-major grid (chunk_run: consecutive tiles share B's panel), every K
 * block of them in turn: a tile's partial sums are continued by the thread that
 * started them, so nothing is shared between K blocks. */
void GEMM_NAME(gemm_run)(const GEMM_ARGS *g, const pynn_team *tm, int amode)
{
#ifdef V_PERM2
    if (GEMM_NAME(outer_ok)(g)) {
        GEMM_NAME(outer_run)(g, tm);
        return;
    }
#endif
    if (GEMM_NAME(by_rows)(g)) {
        GEMM_NAME(row_run)(g, tm);
        return;
    }
    if (GEMM_NAME(rowt_ok)(g)) {
        GEMM_NAME(rowt_run)(g, tm);
        return;
    }
    if (GEMM_NAME(narrow_ok)(g)) {
        GEMM_NAME(narrow_run)(g, tm);
        return;
    }
    GEMM_NAME(plan_t) pl = GEMM_NAME(plan)(g);
    const int tri = GEMM_NAME(tri_ok)(g, &pl, tm, amode);
#ifdef GEMM_TRI
    /* (room for a group of three panels too, tri_run: K blocks of at
     * most PYNN_GEMM_KC_MIN, tri_ok) */
    _Alignas(64) T bp[KC * NR > 3 * PYNN_GEMM_KC_MIN * NR ? KC * NR : 3 * PYNN_GEMM_KC_MIN * NR];
#else
    _Alignas(64) T bp[KC * NR];
#endif
    if (GEMM_NAME(bwhole_ok)(g, &pl, tm, amode)) {
        GEMM_NAME(bwhole_run)(g, &pl, tm, amode, tri, 0);
        return;
    }
    /* B packed whole already (W for the forward products): the three-vector
     * tiles where they run, in bwhole_run's order */
    if (tri && g->bpack && g->bpack_nr == NR) {
        GEMM_NAME(bwhole_run)(g, &pl, tm, amode, 1, 1);
        return;
    }
#ifdef GEMM_TRI
    if (tri && pl.packb) {
        GEMM_NAME(tri_run)(g, &pl, tm, amode, bp);
        return;
    }
#endif
    size_t t0, t1;
    pynn__share(pl.tiles, tm, &t0, &t1);
    if (t0 >= t1 && amode != PYNN_APACK_TEAM_BLOCKS)
        return;
    _Alignas(64) T own_a[KC * MR]; /* (PYNN_APACK_TILE) */
#ifdef AMX_TILES
    AMX_CONFIG(); /* this thread's tile registers, for the whole product */
#endif
    if (pl.mc < pl.mt && amode != PYNN_APACK_TEAM_BLOCKS) {
        /* chunk by chunk, every K block of a chunk's tiles before the next
         * chunk's: the chunk's C rows stay in cache from block to block (a
         * team packing A block by block has to go block by block, below) */
        const size_t span = pl.mc * pl.nt;
        for (size_t u0 = t0, u1; u0 < t1; u0 = u1) {
            u1 = (u0 / span + 1) * span;
            if (u1 > t1)
                u1 = t1;
            for (size_t kb = 0; kb < pl.nkb; kb++) {
                size_t p0 = kb * pl.kc, p1 = g->k - p0 < pl.kc ? g->k : p0 + pl.kc;
                const T *abase = amode == PYNN_APACK_SOLO   ? g->apack
                                 : amode == PYNN_APACK_TEAM ? g->apack + kb * pl.mt * MR * pl.kc
                                                            : NULL;
                if (amode == PYNN_APACK_TILE)
                    GEMM_NAME(chunk_run)(g, &pl, u0, u1, p0, p1, bp, NULL, own_a, 0);
                else
                    GEMM_NAME(chunk_run)(g, &pl, u0, u1, p0, p1, pl.packb ? bp : NULL, abase,
                                         NULL, amode == PYNN_APACK_SOLO);
            }
        }
#ifdef AMX_TILES
        AMX_RELEASE();
#endif
        return;
    }
    for (size_t kb = 0; kb < pl.nkb; kb++) {
        size_t p0 = kb * pl.kc, p1 = g->k - p0 < pl.kc ? g->k : p0 + pl.kc;
        const T *abase = NULL;
        if (amode == PYNN_APACK_SOLO) {
            abase = g->apack; /* packed chunk by chunk (chunk_run) */
        } else if (amode == PYNN_APACK_TEAM) {
            abase = g->apack + kb * pl.mt * MR * pl.kc;
        } else if (amode == PYNN_APACK_TEAM_BLOCKS) {
            /* every thread of the team passes here, tiles or not: the block's
             * room is free once all are done with the previous block */
            size_t it0, it1;
            pynn__share(pl.mt, tm, &it0, &it1);
            if (kb > 0)
                pynn__sync(tm);
            if (it0 < it1)
                GEMM_NAME(pack_a)(g, it0, it1, p0, p1);
            pynn__sync(tm);
            abase = g->apack;
        }
        size_t packed = (size_t)-1;
        if (pl.gp && amode == PYNN_APACK_NONE && t0 < t1) {
            /* (one K block) tiles t0..t1-1 in the grouped order: group gi of
             * panels jg.. jg + gw - 1, within it row tile it, panel jg + q */
            size_t span = pl.mt * pl.gp, gi = t0 / span, r = t0 - gi * span;
            size_t jg = gi * pl.gp, gw = pl.nt - jg < pl.gp ? pl.nt - jg : pl.gp;
            size_t it = r / gw, q = r - it * gw, kc = p1 - p0;
            for (size_t t = t0; t < t1; t++) {
                if (packed != gi) {
                    packed = gi;
                    for (size_t u = 0; u < gw; u++)
                        GEMM_NAME(pack_b)(bp + u * kc * NR, g, (jg + u) * NR, p0, p1);
                }
                GEMM_NAME(tile_at)(g, it, jg + q, p0, p1, bp + q * kc * NR, NULL, NULL, 0,
                                   g->m);
                if (++q == gw) {
                    q = 0;
                    if (++it == pl.mt) {
                        it = 0;
                        gi++;
                        jg += pl.gp;
                        gw = pl.nt - jg < pl.gp ? pl.nt - jg : pl.gp;
                    }
                }
            }
            continue;
        }
        if (amode == PYNN_APACK_TILE)
            GEMM_NAME(chunk_run)(g, &pl, t0, t1, p0, p1, bp, NULL, own_a, 0);
        else
            GEMM_NAME(chunk_run)(g, &pl, t0, t1, p0, p1, pl.packb ? bp : NULL, abase, NULL,
                                 amode == PYNN_APACK_SOLO);
    }
#ifdef AMX_TILES
    AMX_RELEASE();
#endif
}

#ifndef GEMM_PAIRS
/* How gemm_run runs the product: 0 by another kernel than the tiles (row by
 * row, narrow, outer products...), 1 by the tiles, reading B in place, 2 by
 * the tiles, reading B packed (panel by panel, or g->bpack whole).  Only a
 * product of 2 reads a prepacked B, and only one of 1 or 2 with
 * PYNN_EPI_SGD_W writes g->wpack.  Float products only. */
int GEMM_NAME(gemm_tiled)(const GEMM_ARGS *g)
{
#ifdef V_PERM2
    if (GEMM_NAME(outer_ok)(g))
        return 0;
#endif
    if (GEMM_NAME(by_rows)(g) || GEMM_NAME(rowt_ok)(g) || GEMM_NAME(narrow_ok)(g))
        return 0;
    GEMM_NAME(plan_t) pl = GEMM_NAME(plan)(g);
    return pl.packb ? 2 : 1;
}

/* B packed whole, for a B that many products read (prediction's blocks): each
 * column panel over all of K, panel jt from jt * k * NR on, its K block
 * [p0, p1) from p0 * NR within -- what one_tile packs for a panel and a K
 * block, so the same values and the same bits.  Float products only. */
size_t GEMM_NAME(gemm_bpack_len)(const GEMM_ARGS *g)
{
    return (g->n + NR - 1) / NR * NR * g->k;
}

size_t GEMM_NAME(gemm_prepack_b)(const GEMM_ARGS *g, T *bp, size_t p0, size_t p1)
{
    /* a row-major B only (the forward products' W; gemm.c), its rows [p0, p1)
     * (a thread's share) in order, each spread over the panels: sequential
     * loads (a panel at a time strides through B, which runs at a fraction of
     * the speed) */
    size_t full = g->n / NR, cols = g->n - full * NR, stride = g->k * NR;
    MASK_T m0 = M_MAKE(cols < VL ? cols : VL);
    MASK_T m1 = M_MAKE(cols > VL ? cols - VL : 0);
    for (size_t p = p0; p < p1; p++) {
        const T *b = g->b + p * g->ldb;
        T *d = bp + p * NR;
        for (size_t jt = 0; jt < full; jt++, b += NR, d += stride) {
            V_STORE(d, V_LOAD(b));
            V_STORE(d + VL, V_LOAD(b + VL));
        }
        if (cols) {
            V_STORE(d, V_MLOAD(b, m0));
            V_STORE(d + VL, V_MLOAD(b + VL, m1));
        }
    }
    return NR;
}
#endif

/* The product on g->n_threads threads: a region of its own when that pays (the
 * kernels' entry points); none at all for one thread (it costs microseconds). */
void GEMM_NAME(gemm)(const GEMM_ARGS *g)
{
    GEMM_NAME(plan_t) pl = GEMM_NAME(plan)(g);
    int nth = g->n_threads;
    if ((size_t)nth > pl.tiles)
        nth = (int)pl.tiles;
#ifdef _OPENMP
    if (nth > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nth)
        {
            pynn_team tm = pynn__team_me(&bar);
            int mode = GEMM_NAME(gemm_pack)(g, &tm);
            if (mode == PYNN_APACK_TEAM)
                pynn__sync(&tm);
            GEMM_NAME(gemm_run)(g, &tm, mode);
        }
        return;
    }
#endif
    pynn_team solo = pynn__solo();
    GEMM_NAME(gemm_run)(g, &solo, GEMM_NAME(gemm_pack)(g, &solo));
}

#undef TILE_CASE
#ifdef GEMM_PAIRS
#ifndef AMX_TILES
#undef PAIR_CASE
#endif
#undef PAIR_KQ_ALIGN
#ifdef AMX_TILES
#undef AMX_C0
#undef AMX_C1
#undef AMX_TA
#undef AMX_TB0
#undef AMX_TB1
#endif
#undef PAIR_A
#undef PAIR_ROWS
#undef PAIR_KQ
#undef GEMM_PAIRS
#endif
#undef TILE_ARGS
#undef PACKA_GROUP
#undef NR
#undef KC
#undef NARROW_N_MAX
#undef NARROW_REGS
#undef NARROW_NV
#undef NARROW_KC

/*
 * gemm.c -- the matrix product: the portable kernel, and the dispatch that
 * runs the product on the instruction set chosen at run time.  Typed: compiled
 * once per element type (typed.h).
 *
 *   C (m x n) = epilogue( A (m x k) . B (k x n) )     see gemm_tile.h for the
 *   contract of pynn_gemm_args (strides, b_trans, epilogues, packing room).
 *
 * Every output element is one chain of multiply-adds along K from zero, in
 * order, whatever the tiling and the thread count: bitwise reproducible, and a
 * row gives the same bits alone or inside a batch.
 */
#include <string.h>
#include "typed.h"

/* Rows of C the portable kernel computes together, so each row of B is loaded
 * once per group of rows instead of once per row. */
#define GENERIC_ROWS 4
/* Output columns per pass: GENERIC_ROWS rows of this many partial sums (8 KiB
 * of floats, 16 KiB of doubles) stay in L1 while K streams past. */
#define GENERIC_COLS 512

/* x rounded to bfloat16 (the mixed-precision mode; float only). */
#define BF16(x) ((T)pynn__bf16_round((float)(x)))

/* The epilogue of one row's columns [j0, j0 + jn) of C, in place. */
static void generic_epilogue(const pynn_gemm_args *g, size_t i, size_t j0, size_t jn)
{
    T *restrict c = g->c + i * g->ldc + j0;
    switch (g->epi) {
    case PYNN_EPI_BIAS: /* c = acc + bias_j, then relu if asked */
        for (size_t j = 0; j < jn; j++)
            c[j] += g->bias[j0 + j];
        if (g->z0 && j0 == 0)
            g->z0[i] = c[0];
        if (g->act == PYNN_ACT_RELU)
            for (size_t j = 0; j < jn; j++)
                c[j] = c[j] > 0 ? c[j] : (T)0;
        break;
    case PYNN_EPI_SCALE_W: /* c = acc * scale + w * wscale (weight gradient) */
    case PYNN_EPI_SGD_W: { /* the same, then v = -(lr c), w += v (c: scratch) */
        const T *w = g->w + i * g->ldw + j0;
        if (g->wscale != 0)
            for (size_t j = 0; j < jn; j++)
                c[j] = c[j] * g->scale + w[j] * g->wscale;
        else
            for (size_t j = 0; j < jn; j++)
                c[j] = c[j] * g->scale;
        if (g->epi == PYNN_EPI_SGD_W) {
            T *wn = g->wnew + i * g->ldw + j0;
            for (size_t j = 0; j < jn; j++)
                c[j] = -(g->lr * c[j]);
            for (size_t j = 0; j < jn; j++)
                wn[j] = w[j] + c[j];
            if (g->vnew)
                memcpy(g->vnew + i * g->ldw + j0, c, jn * sizeof(T));
        }
        break;
    }
    case PYNN_EPI_DACT: { /* c = acc * act'(da), act' from the cached output da */
        const T *a = g->da + i * g->ldda + j0;
        if (g->act == PYNN_ACT_RELU)
            for (size_t j = 0; j < jn; j++)
                c[j] = a[j] > 0 ? c[j] : (T)0;
        else if (g->act == PYNN_ACT_LOGISTIC)
            for (size_t j = 0; j < jn; j++)
                c[j] = c[j] * (a[j] * ((T)1 - a[j]));
        else if (g->act == PYNN_ACT_TANH)
            for (size_t j = 0; j < jn; j++)
                c[j] = c[j] * ((T)1 - a[j] * a[j]);
        break;
    }
    default:
        break;
    }
}

/* This thread's share of the portable product: groups of GENERIC_ROWS rows. */
static void generic_run(const pynn_gemm_args *g, const pynn_team *tm)
{
    const size_t n = g->n, k = g->k;
    size_t g0, g1;
    pynn__share((g->m + GENERIC_ROWS - 1) / GENERIC_ROWS, tm, &g0, &g1);
    for (size_t gi = g0; gi < g1; gi++) {
        size_t i0 = gi * GENERIC_ROWS;
        size_t rows = g->m - i0 < GENERIC_ROWS ? g->m - i0 : GENERIC_ROWS;
        for (size_t j0 = 0; j0 < n; j0 += GENERIC_COLS) {
            size_t jn = n - j0 < GENERIC_COLS ? n - j0 : GENERIC_COLS;
            for (size_t r = 0; r < rows; r++)
                memset(g->c + (i0 + r) * g->ldc + j0, 0, jn * sizeof(T));
            if (g->bf16) {
                /* the mixed-precision product: each operand rounded to
                 * bfloat16 as it is read (a product of two is exact in
                 * float, so this multiply and add give the SIMD kernels' FMA
                 * bits), summed in ascending p from zero */
                for (size_t r = 0; r < rows; r++) {
                    T *restrict c = g->c + (i0 + r) * g->ldc + j0;
                    const T *restrict a = g->a + (i0 + r) * g->a_rs;
                    for (size_t p = 0; p < k; p++) {
                        const T av = BF16(a[p * g->a_cs]);
                        for (size_t j = 0; j < jn; j++)
                            c[j] += av * BF16(g->b_trans ? g->b[(j0 + j) * g->ldb + p]
                                                         : g->b[p * g->ldb + j0 + j]);
                    }
                }
            } else if (g->b_trans) {
                /* B(p, j) = b[j * ldb + p]: each output is a dot product, still
                 * summed in ascending p from zero */
                for (size_t r = 0; r < rows; r++) {
                    T *restrict c = g->c + (i0 + r) * g->ldc + j0;
                    const T *restrict a = g->a + (i0 + r) * g->a_rs;
                    for (size_t j = 0; j < jn; j++) {
                        const T *restrict b = g->b + (j0 + j) * g->ldb;
                        T acc = 0;
                        for (size_t p = 0; p < k; p++)
                            acc += a[p * g->a_cs] * b[p];
                        c[j] = acc;
                    }
                }
            } else {
                for (size_t p = 0; p < k; p++) {
                    const T *restrict b = g->b + p * g->ldb + j0;
                    for (size_t r = 0; r < rows; r++) {
                        T *restrict c = g->c + (i0 + r) * g->ldc + j0;
                        const T a = g->a[(i0 + r) * g->a_rs + p * g->a_cs];
                        for (size_t j = 0; j < jn; j++)
                            c[j] += a * b[j];
                    }
                }
            }
            for (size_t r = 0; r < rows; r++)
                generic_epilogue(g, i0 + r, j0, jn);
        }
    }
}

/* The portable kernel: C = epilogue(A B) with a separate multiply and add (the
 * build turns FMA contraction off), groups of GENERIC_ROWS rows to threads. */
void pynn_gemm_generic(const pynn_gemm_args *g)
{
    int nt = g->n_threads < 1 ? 1 : g->n_threads;
    (void)nt;
#ifdef _OPENMP
    if (nt > 1) {
        pynn_tbar bar;
        pynn__tbar_init(&bar);
#pragma omp parallel num_threads(nt)
        {
            pynn_team tm = pynn__team_me(&bar);
            generic_run(g, &tm);
        }
        return;
    }
#endif
    pynn_team solo = pynn__solo();
    generic_run(g, &solo);
}

/* The bfloat16 mode's pair kernels (gemm_tile.h, GEMM_PAIRS), by the number
 * pynn__bf16_pairs gives (dispatch.c); float only, NULL where not built. */
typedef struct {
    void (*gemm)(const pynn_gemm_args *g);
    int (*pack)(const pynn_gemm_args *g, const pynn_team *tm);
    void (*run)(const pynn_gemm_args *g, const pynn_team *tm, int amode);
} pair_kernel;

#ifdef PYNN_TYPE_F32
#define PAIR_KERNEL(name) {pynn_gemm_##name##_f32, pynn_gemm_pack_##name##_f32, pynn_gemm_run_##name##_f32}
static const pair_kernel pair_kernels[5] = {
    {NULL, NULL, NULL},
#if defined(PYNN_X86_SIMD) && defined(PYNN_AVX512BF16_KERNEL)
    PAIR_KERNEL(avx512bf16),
#else
    {NULL, NULL, NULL},
#endif
    PAIR_KERNEL(emupairs),
#if defined(PYNN_X86_SIMD) && defined(PYNN_AMX_KERNEL)
    PAIR_KERNEL(amx),
#else
    {NULL, NULL, NULL},
#endif
    PAIR_KERNEL(emuamx),
};
#undef PAIR_KERNEL
#endif

/* The pair kernel that runs this product, or NULL: the instruction set's own. */
static const pair_kernel *pair_kernel_for(const pynn_gemm_args *g)
{
#ifdef PYNN_TYPE_F32
    if (g->bf16) {
        const pair_kernel *pk = &pair_kernels[pynn__bf16_pairs()];
        return pk->gemm ? pk : NULL;
    }
#else
    (void)g;
#endif
    return NULL;
}

/* Runs the product on the instruction set chosen at run time (dispatch.c). */
void pynn__gemm(const pynn_gemm_args *g)
{
    const pair_kernel *pk = pair_kernel_for(g);
    if (pk) {
        pk->gemm(g);
        return;
    }
    switch (PYNN_ISA_FLOAT(pynn__isa())) {
#ifdef PYNN_X86_SIMD
    case PYNN_ISA_AVX512:
        pynn_gemm_avx512(g);
        return;
    case PYNN_ISA_AVX2:
        pynn_gemm_avx2(g);
        return;
#endif
    default:
        pynn_gemm_generic(g);
        return;
    }
}

/* A team's product, first half: packs this thread's share of A where the
 * kernel packs it as a team; returns the mode pynn__gemm_run takes
 * (PYNN_APACK_TEAM: the team must sync in between).  The portable kernel packs
 * nothing. */
int pynn__gemm_pack(const pynn_gemm_args *g, const pynn_team *tm)
{
    (void)g;
    (void)tm;
    const pair_kernel *pk = pair_kernel_for(g);
    if (pk)
        return pk->pack(g, tm);
    switch (PYNN_ISA_FLOAT(pynn__isa())) {
#ifdef PYNN_X86_SIMD
    case PYNN_ISA_AVX512:
        return pynn_gemm_pack_avx512(g, tm);
    case PYNN_ISA_AVX2:
        return pynn_gemm_pack_avx2(g, tm);
#endif
    default:
        return PYNN_APACK_NONE;
    }
}

/* A team's product, second half: this thread's share of the output tiles. */
void pynn__gemm_run(const pynn_gemm_args *g, const pynn_team *tm, int amode)
{
    (void)amode;
    const pair_kernel *pk = pair_kernel_for(g);
    if (pk) {
        pk->run(g, tm, amode);
        return;
    }
    switch (PYNN_ISA_FLOAT(pynn__isa())) {
#ifdef PYNN_X86_SIMD
    case PYNN_ISA_AVX512:
        pynn_gemm_run_avx512(g, tm, amode);
        return;
    case PYNN_ISA_AVX2:
        pynn_gemm_run_avx2(g, tm, amode);
        return;
#endif
    default:
        generic_run(g, tm);
        return;
    }
}

/* B packed whole (pynn__gemm_prepack_b): its room on this path, 0 where the
 * path reads B in place (the portable kernel) or packs its own (bf16), and for
 * a B stored transposed (never one that many products share). */
size_t pynn__gemm_bpack_len(const pynn_gemm_args *g)
{
    if (g->bf16 || g->b_trans)
        return 0;
    switch (PYNN_ISA_FLOAT(pynn__isa())) {
#ifdef PYNN_X86_SIMD
    case PYNN_ISA_AVX512:
        return pynn_gemm_bpack_len_avx512(g);
    case PYNN_ISA_AVX2:
        return pynn_gemm_bpack_len_avx2(g);
#endif
    default:
        return 0;
    }
}

int pynn__gemm_tiled(const pynn_gemm_args *g)
{
    if (g->bf16)
        return 0;
    switch (PYNN_ISA_FLOAT(pynn__isa())) {
#ifdef PYNN_X86_SIMD
    case PYNN_ISA_AVX512:
        return pynn_gemm_tiled_avx512(g);
    case PYNN_ISA_AVX2:
        return pynn_gemm_tiled_avx2(g);
#endif
    default:
        return 0;
    }
}

size_t pynn__gemm_prepack_b(const pynn_gemm_args *g, T *bp, size_t room, size_t p0, size_t p1)
{
    (void)bp;
    (void)room;
    (void)p0;
    (void)p1;
    if (g->bf16 || g->b_trans)
        return 0;
    /* (the path read again: room was sized by pynn__gemm_bpack_len on the
     * path of that moment) */
    switch (PYNN_ISA_FLOAT(pynn__isa())) {
#ifdef PYNN_X86_SIMD
    case PYNN_ISA_AVX512:
        return pynn_gemm_bpack_len_avx512(g) <= room ? pynn_gemm_prepack_b_avx512(g, bp, p0, p1) : 0;
    case PYNN_ISA_AVX2:
        return pynn_gemm_bpack_len_avx2(g) <= room ? pynn_gemm_prepack_b_avx2(g, bp, p0, p1) : 0;
#endif
    default:
        return 0;
    }
}

/* A team's whole product (pack, sync if needed, run); no sync after it. */
void pynn__gemm_team(const pynn_gemm_args *g, const pynn_team *tm)
{
    int mode = pynn__gemm_pack(g, tm);
    if (mode == PYNN_APACK_TEAM)
        pynn__sync(tm);
    pynn__gemm_run(g, tm, mode);
}

/* internal.h -- declarations and constants shared by the core's translation
 * units, typed and untyped, SIMD kernels included (not installed). */
#ifndef PYNN_INTERNAL_H
#define PYNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "pynn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* PYNN_X86_SIMD (set by CMakeLists.txt) builds the x86-64 kernels and cpuid
 * dispatch; the portable path alone is built everywhere else. */
#if defined(PYNN_X86_SIMD) && (!(defined(__x86_64__) || defined(_M_X64)) || defined(_M_ARM64EC))
#error "PYNN_X86_SIMD is set, but the compiler does not target x86-64"
#endif

/* ---- compilers ----------------------------------------------------------------
 * The core is C11 for GCC, Clang (Apple's included) and MSVC (/std:c11).  The
 * few extensions it uses go through the macros below: GCC/Clang get their
 * builtins, every other compiler (MSVC) plain C.  -DPYNN_NO_GNUC_EXT gives GCC
 * and Clang the plain C too, so what MSVC compiles is tested on Linux
 * (tools/cross_check_aarch64.sh). */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(PYNN_NO_GNUC_EXT)
#define PYNN_GNUC 1
#else
#define PYNN_GNUC 0
#endif

#if defined(_MSC_VER) && !defined(__clang__)
/* No contraction of a * b + c into an FMA (the generic kernels' sums are a
 * separate multiply and add, as -ffp-contract=off makes them on GCC/Clang):
 * MSVC contracts by default before Visual Studio 2022 17.0 (and under
 * /fp:fast or /fp:contract, which the build never sets). */
#pragma fp_contract(off)
/* C99's restrict, in MSVC's spelling that every C mode of it knows (a header
 * included later that says restrict gets the same meaning). */
#define restrict __restrict
#define PYNN_ALWAYS_INLINE __forceinline
#define PYNN_NOINLINE __declspec(noinline)
#elif PYNN_GNUC
#define PYNN_ALWAYS_INLINE inline __attribute__((always_inline))
#define PYNN_NOINLINE __attribute__((noinline))
#else
#define PYNN_ALWAYS_INLINE inline
#define PYNN_NOINLINE
#endif

/* A function out of line that only prefetches (a hint): GCC's interprocedural
 * analysis counts a prefetch as no effect, takes such a function for one
 * without any and drops the calls to it; noipa keeps them. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 8 && !defined(PYNN_NO_GNUC_EXT)
#define PYNN_NOINLINE_HINT __attribute__((noinline, noipa))
#else
#define PYNN_NOINLINE_HINT PYNN_NOINLINE
#endif

/* "Unroll the next loop 16 times" (the SIMD tiles; Clang takes GCC's spelling;
 * those loops have constant counts and are unrolled anyway, the hint insists). */
#if defined(__GNUC__) || defined(__clang__)
#define PYNN_UNROLL16 _Pragma("GCC unroll 16")
#else
#define PYNN_UNROLL16
#endif

/* Hints to fetch the cache line holding *p (no fault; no result depends on
 * them): _R to be read and _W to be written, into every level; _L2 into L2,
 * not L1 (T1), for data read a step later (a training step's next batch),
 * which fetched into L1 would push out what this step reads.  MSVC on x86-64
 * has SSE's intrinsic (no write hint); elsewhere without GCC's builtin, none. */
#if PYNN_GNUC
#define PYNN_PREFETCH_R(p) __builtin_prefetch((const void *)(p), 0, 3)
#define PYNN_PREFETCH_W(p) __builtin_prefetch((const void *)(p), 1, 3)
#define PYNN_PREFETCH_L2(p) __builtin_prefetch((const void *)(p), 0, 2)
#elif defined(_MSC_VER) && !defined(__clang__) && defined(PYNN_X86_SIMD)
#include <xmmintrin.h>
#define PYNN_PREFETCH_R(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define PYNN_PREFETCH_W(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define PYNN_PREFETCH_L2(p) _mm_prefetch((const char *)(p), _MM_HINT_T1)
#else
#define PYNN_PREFETCH_R(p) ((void)(p))
#define PYNN_PREFETCH_W(p) ((void)(p))
#define PYNN_PREFETCH_L2(p) ((void)(p))
#endif

/* Relaxed loads and stores of the int flags shared between threads (dispatch.c,
 * pynn__team): each is set once (0 -> 1) or caches a value every thread
 * computes alike, so atomicity without ordering is all they need.  Without
 * GCC's builtins: a volatile access, which MSVC makes a single untorn load or
 * store of an aligned int (what its own relaxed std::atomic<int> compiles to;
 * C11 <stdatomic.h> needs /experimental:c11atomics there). */
#if PYNN_GNUC
#define PYNN_LOAD_INT(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define PYNN_STORE_INT(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#else
#define PYNN_LOAD_INT(p) (*(volatile int *)(p))
#define PYNN_STORE_INT(p, v) ((void)(*(volatile int *)(p) = (v)))
#endif

/* Overflow-checked size arithmetic: return 1 on success (*r is the wrapped
 * result either way). */
#if PYNN_GNUC
static inline int pynn__mul(size_t a, size_t b, size_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline int pynn__add(size_t a, size_t b, size_t *r) { return !__builtin_add_overflow(a, b, r); }
#else
static inline int pynn__mul(size_t a, size_t b, size_t *r)
{
    *r = a * b;
    return a == 0 || *r / a == b;
}
static inline int pynn__add(size_t a, size_t b, size_t *r)
{
    *r = a + b;
    return *r >= a;
}
#endif

/* ---- teams ---------------------------------------------------------------------
 * A parallel region runs a whole job (a chunk of training steps, a loss and
 * gradient, a product): every thread of the team calls the same functions with
 * its pynn_team, each takes its fixed share of every phase's independent pieces
 * (output tiles, rows, chunks), and pynn__sync separates phases that depend on
 * each other.  A team of one is the same code with no synchronization at all.
 * Functions taking a team never end with a sync: their caller places it. */
/* A team's barrier (dispatch.c): where PYNN_TBAR is 1 (Linux, GCC or Clang), a
 * counter and a generation on lines of their own, which the threads spin on
 * and, after a while, sleep on (futex); about a third of what an orphaned
 * omp barrier costs (2 threads on a Zen 4: 0.17 against 0.52 us), which a
 * training step of a small network pays 5-6 times.  Elsewhere the omp
 * barrier.  One per parallel region, made by the thread that opens it
 * (pynn__tbar_init) and shared by its team. */
#if PYNN_GNUC && defined(__linux__) && defined(_OPENMP)
#define PYNN_TBAR 1
#else
#define PYNN_TBAR 0
#endif
typedef struct {
#if PYNN_TBAR
    /* aligned: no other data on its two lines (the team's threads write them) */
    int arrived __attribute__((aligned(64))); /* threads at this generation's barrier */
    char pad0[60];
    unsigned gen;     /* barriers passed; the futex word */
    int sleepers;     /* threads asleep or about to sleep on gen */
    char pad1[56];
#else
    int unused;
#endif
} pynn_tbar;

static inline void pynn__tbar_init(pynn_tbar *b)
{
    memset(b, 0, sizeof *b);
}

typedef struct {
    int id, size;
    pynn_tbar *bar; /* the team's barrier; NULL: the omp barrier (or none, alone) */
} pynn_team;

/* The team of one (a thread alone, inside a region or not). */
static inline pynn_team pynn__solo(void)
{
    pynn_team t = {0, 1, NULL};
    return t;
}

#ifdef _OPENMP
/* The calling thread's place in the innermost region's team, whose barrier is
 * bar (made before the region by pynn__tbar_init). */
static inline pynn_team pynn__team_me(pynn_tbar *bar)
{
    pynn_team t = {omp_get_thread_num(), omp_get_num_threads(), bar};
    return t;
}
#endif

/* A barrier of the whole team (dispatch.c), which the team's every thread
 * reaches in the same sequence. */
void pynn__barrier(const pynn_team *tm);
static inline void pynn__sync(const pynn_team *tm)
{
    if (tm->size > 1)
        pynn__barrier(tm);
}

/* This thread's share [*lo, *hi) of count pieces: contiguous, in order, sizes
 * differing by at most one.  The shares depend on the team size only; results
 * never do (each piece is computed the same way by whichever thread has it). */
static inline void pynn__share(size_t count, const pynn_team *tm, size_t *lo, size_t *hi)
{
    size_t q = count / (size_t)tm->size, r = count % (size_t)tm->size, id = (size_t)tm->id;
    *lo = id * q + (id < r ? id : r);
    *hi = *lo + q + (id < r);
}

/* ---- optimizer chunks (optim.c; the workspace holds one partial sum of squares
 * per chunk of every weight matrix, layout.c) ---- */
/* A segment of the arena (one W or one b) is cut into at most this many chunks... */
#define PYNN_OPT_MAX_CHUNKS 256
/* ... of at least this many scalars: smaller chunks would cost more in thread
 * scheduling than they save. */
#define PYNN_OPT_MIN_CHUNK ((size_t)1 << 14)

/* Scalars per chunk of a segment of `size`: ceil(size / PYNN_OPT_MAX_CHUNKS),
 * but at least PYNN_OPT_MIN_CHUNK (fewer chunks then).  Written without
 * size + constant, which could wrap. */
static inline size_t pynn__chunk_size(size_t size)
{
    size_t c = size / PYNN_OPT_MAX_CHUNKS + (size % PYNN_OPT_MAX_CHUNKS != 0);
    return c < PYNN_OPT_MIN_CHUNK ? PYNN_OPT_MIN_CHUNK : c;
}

static inline size_t pynn__chunk_count(size_t size)
{
    size_t cs = pynn__chunk_size(size);
    return size / cs + (size % cs != 0);
}

typedef struct {
    size_t acts, delta0, delta1, xb, yb, z0;
    size_t delta2;           /* a third delta buffer (net.c's team form of fused SGD); 0: none */
    size_t apack_t, apack_r; /* room to pack A: A = x^T (weight gradients); A a batch of rows */
    size_t sq;               /* one double per optimizer chunk of every W (in pairs of scalars) */
    size_t marks;
    size_t rowloss;          /* one double per row of a batch: its loss (in pairs of scalars) */
    size_t wpk;              /* room for copies of W packed for the forward products (train.c) */
    size_t bw;               /* room to pack a weight gradient's delta whole (gemm_tile.h) */
    size_t bw2;              /* ... and W or W^T for a forward or input gradient of many rows */
    size_t total;
    int bf16;                /* the net's bf16: the products round their operands */
} pynn__ws_layout;

/* The matrix product splits K into blocks of at most this many (gemm_tile.h;
 * a kernel may use smaller blocks, down to PYNN_GEMM_KC_MIN: the bfloat16 pair
 * kernels, AVX512_BF16's and AMX's, keep 256); a packed block of A,
 * m x PYNN_GEMM_KC, lives in the workspace (apack).  The AVX-512 float kernels
 * take 512 too, though a B panel 512 deep (32 floats or 16 doubles wide: 64 KiB)
 * does not fit L1: on a Zen 4 their forward and input-gradient products of
 * 1024-wide layers ran 2-6% faster than with 256 (half the K blocks: half the
 * round trips of C's partial sums and the tile starts), the wide fit 1.7%
 * (float32) and 3-5% (float64). */
#define PYNN_GEMM_KC 512
#define PYNN_GEMM_KC_MIN 256
/* ... and on a large L1 data cache (48 KiB or more: Intel's cores since Ice
 * Lake, AMD's Zen 5): blocks of PYNN_GEMM_KC_MIN where a B panel PYNN_GEMM_KC
 * deep (panel_row_bytes per step of K) would fill more than two thirds of it,
 * else no deeper than fills PYNN_GEMM_KC_L1_PCT per cent of it with a tile's A
 * rows and its B panel (tile_row_bytes + panel_row_bytes per step), within
 * [PYNN_GEMM_KC_MIN, PYNN_GEMM_KC], so that both stay in L1 through the K loop.
 * The AVX-512 kernels (8 rows, 32 floats or 16 doubles wide: 128 bytes a step)
 * take 256 by the first rule (their three-vector tiles run on blocks that deep
 * at most, gemm_tile.h: tri_ok): on an Intel Xeon (48 KiB L1D, 2 MiB L2) the
 * 1024-wide layers' forward products ran 5-17% faster in float64 and 4-14% in
 * float32 than with 512, the wide step's products from 0.84x to 0.88x
 * OpenBLAS's speed in float64 and from 0.95x to 0.99x in float32.  The AVX2
 * kernels (6 rows, 16 floats or 8 doubles wide: 64 bytes a step) take 418
 * (float32) and 329 (float64) by the second: a 1024-deep product in 3 blocks of
 * 342 or 4 of 256 instead of 2 of 512 (A rows and panel 45 KiB float32, 56 KiB
 * float64, past the L1), a 784-deep one in 2 of 392 (float32) or 3 of 262
 * (float64).  On the same Xeon, PYNN_SIMD=avx2, in-process A/B both orders: the
 * wide net's 256x1024x1024 forward product +2-4% float32 and +11-12% float64,
 * its float64 input gradient +5-6%, the wide float64 fit +3-4% a step;
 * mnist-like's float64 128x784x256 forward (3 blocks) within noise (-2%/+0.3%).
 * The second rule at 90% for AVX-512 too (float32: 276, 784 in 3 blocks) ran
 * that product 3% faster for mnist-like and 3-6% slower for the wide net: not
 * taken.  pynn_gemm_kc_max (pynn.h) returns the largest depth by these rules,
 * the same for every call of a process with the same arguments.  The blocking
 * never changes a result's bits (gemm_tile.h: partial sums are parked in C
 * exactly). */
#define PYNN_GEMM_KC_L1_PCT 75
/* The tiles' K loops (gemm_tile.h: tile_k, full panels) unrolled this many
 * steps: the pointer updates, the count and the branch then come once per 4
 * steps instead of every step.  On an Intel Xeon (AVX-512), where those scalar
 * operations share ports with the vector FMAs, the wide step's products went
 * from 0.88x to 0.93-0.96x OpenBLAS's speed in float64 (the bench's wide case
 * 4-7% faster) and from 0.99x to 1.01x in float32, the AVX2 kernels' float64
 * ones from 0.81x to 0.84-0.86x; 2 gave less, 8 no more (and twice the code).
 * The order of every sum is unchanged: the same bits. */
#ifndef PYNN_GEMM_K_UNROLL
#define PYNN_GEMM_K_UNROLL 4
#endif
/* B packed whole (pynn__gemm_prepack_b): the widest panel of any path (NR =
 * 2 vectors: 32 floats on AVX-512), and the scalars a layer's packing is
 * rounded up to, and room to align its start, (64 bytes and more) */
#define PYNN_BPACK_NR_MAX 32
#define PYNN_BPACK_ALIGN 16
/* Rows of A packed per tile are padded to a multiple of this (every MR divides
 * it: 6, 8, and the AMX kernels' 16). */
#define PYNN_GEMM_MR_PAD 48
/* A row-major A (a batch of rows) is packed only up to this many rows, and only
 * when its rows lie a multiple of PYNN_GEMM_ALIAS_BYTES apart and its width is
 * a multiple of PYNN_GEMM_PACK_WIDTH elements (512 doubles; 1024 floats are a
 * multiple too), the width the workspace reserves room for (layout.c). */
#define PYNN_GEMM_PACK_ROWS 4096
/* A product whose K block of A (rows x the block's depth) is larger than
 * PYNN_GEMM_CHUNK_BYTES runs its tiles in chunks of about PYNN_GEMM_MC_ROWS
 * rows, each chunk over every column panel (gemm_tile.h: chunk_run).  Below
 * it, the block lasts in L2 or L3 while the panels read it, and chunks only
 * pack B's panels once more per chunk (a weight gradient of 784 or 1024 rows
 * ran 3-8% slower in chunks on a Zen 4); from 4096 rows on they paid. */
#ifndef PYNN_GEMM_MC_ROWS
#define PYNN_GEMM_MC_ROWS 256
#endif
#ifndef PYNN_GEMM_CHUNK_BYTES
#define PYNN_GEMM_CHUNK_BYTES ((size_t)2 << 20)
#endif
/* ... and, where B can be packed whole once (pynn_gemm_args.bwhole:
 * gemm_tile.h, bwhole_run; the training steps' weight gradients of layers of
 * many inputs, and their forward products and input gradients of batches of
 * many rows), from this size of A's K block on: chunks then cost no packing, and a chunk's A stays
 * in L2 (256 KiB: half of a Zen 3's) while every panel streams it. */
#ifndef PYNN_GEMM_CHUNK_BYTES_BW
#define PYNN_GEMM_CHUNK_BYTES_BW ((size_t)256 << 10)
#endif
#define PYNN_GEMM_PACK_WIDTH 512
/* Rows this many bytes apart map to the same L1 cache sets on x86 (4 KiB), so
 * a tile reading them unpacked would evict its own rows. */
#define PYNN_GEMM_ALIAS_BYTES 4096
/* Packing B's column panels pays once they serve PYNN_GEMM_PACKB_MIN_ROW_TILES
 * row tiles or more where all of B (k x ldb) is larger than
 * PYNN_GEMM_INPLACE_B_BYTES, and PYNN_GEMM_PACKB_SMALL_MIN_ROW_TILES or more
 * where it is not: a B that small stays in L1 whole, and for a few row tiles
 * (a batch of 32 on 8-row tiles: 4) the copy costs more than it saves.
 * Packing A pays once at least PYNN_GEMM_PACKA_MIN_COL_PANELS column panels
 * read it, over a K block at least PYNN_GEMM_PACKA_MIN_K deep.  Results are
 * bitwise the same either way. */
#define PYNN_GEMM_PACKB_MIN_ROW_TILES 3
#define PYNN_GEMM_PACKB_SMALL_MIN_ROW_TILES 5
#define PYNN_GEMM_INPLACE_B_BYTES 32768
#define PYNN_GEMM_PACKA_MIN_COL_PANELS 4
#define PYNN_GEMM_PACKA_MIN_K 16
/* Products of at most this many rows, or over a K of at most this many steps,
 * run row by row, several column panels at once (gemm_tile.h: row_run): a
 * tile's few chains would wait on the FMA latency, or its setup, packing and
 * epilogue would dwarf its K loop.  Bitwise the same results. */
#define PYNN_GEMM_ROWS_MAX_M 2
#define PYNN_GEMM_ROWS_MAX_K 4
/* A one-row product with B^T of K up to this runs in scalar chains, unpacked
 * (gemm_tile.h: rowt_run). */
#define PYNN_GEMM_ROWT_MAX_K 16

/* A training step's first product fetches the next batch's rows into L2 as it
 * runs (pynn_gemm_args.a_next) only for a batch of at most this many bytes:
 * one of 32-200 rows of 64 values ran 12-14% faster per step on a Zen 4 (its
 * rows, 8 lines each, came from memory as the product read them), 32 rows of
 * 784 values (200 KiB) neither faster nor slower; a larger one would not sit
 * in L2 beside the batch being read (512 KiB L2 on a Zen 3). */
#define PYNN_NEXT_BATCH_MAX_BYTES ((size_t)256 << 10)

/* A tile prefetches what the next tiles need (gemm_tile.h) only for K blocks
 * at least this deep: shallower ones are too short to hide the fetches behind,
 * and the hints would cost more than they save. */
#define PYNN_GEMM_PREFETCH_MIN_K 32

/* Plain gradient descent is fused into a layer's weight-gradient product
 * (PYNN_EPI_SGD_W) where its W is smaller than this (pynn__sgd_fuses; tests
 * set another, pynn_sgd_fuse_max_kib); a larger one is updated by the
 * separate pass, or in slices between the tiles of the layer below
 * (pynn__sgd_hidden).  Fused, no gradient of W is written and read again.
 * The limit was 2 MiB, measured on a Zen 4 (AVX-512, 1 MiB L2) before the
 * tiles fetched their epilogue's W rows during the K loop (gemm_tile.h:
 * prefetch_next, tri_hints): the fused epilogue's W stores, rows a page apart
 * after the K loop had cycled the caches, then cost more than the separate
 * pass (784-1024-1024-10: 3.1 and 4 MiB of float32 W, 1.04-1.06x faster
 * apart; float64 1.04-1.13x; with the epilogue's W stores taken out, fused
 * was 1.04-1.06x faster instead).  On an Intel Xeon (amx path, 2 MiB L2),
 * with the rows fetched ahead, the same net fused (without W's packed copy,
 * PYNN_WPACK_MAX_BYTES): float64 +5.7/+3.0% and +6.7/+3.6% a step on one
 * core (two runs), +4.8/+3.0% on two threads, float32 +0.3/+1.7% and
 * +0.7/+0.9% (in-process A/B, both orders); 784-2048-2048-10 float64 (12 and
 * 32 MiB) +1.9/+0.8%; the wide net in batches of 32 rows (float32) +17/+16%,
 * of one row (float64) 1.53x on one core and 1.41x on two threads, where the
 * separate pass read and wrote all of W and its gradient for each row; on
 * the AVX2 kernels (PYNN_SIMD=avx2) batches of 256 within noise (float64
 * -1.9/+0.7%, float32 -0.1/+2.2%).  At 64 MiB (784-4096-4096-10 float32,
 * one core) fusing was slower: batches of 256 0.977/0.998, of 32
 * 0.974/0.970; the crossover lies between 32 and 64 MiB.  Not measured since
 * on an AMD CPU.  The bits are the same either way. */
#define PYNN_SGD_FUSE_MAX_BYTES ((size_t)64 << 20)

/* W's packed copy for the forward products, which the fused update keeps
 * current (train.c: train_wpack), only for a W smaller than this.  On the
 * Intel Xeon above, the wide net's large layers fused with their copies ran
 * 0.935-0.97x the speed of the plain fused update: a forward product read the
 * copy (3-8 MiB) back from L3 where, packing W group by group, its tiles
 * fetch the next group's rows while they run.  (It was measured to pay for
 * small layers: train.c.) */
#define PYNN_WPACK_MAX_BYTES ((size_t)2 << 20)

/* A thread alone packs the first layer's x^T for its weight gradient right
 * after the forward pass (train.c: xt0_ahead) where x^T's block and the W of
 * every layer above take at most this many bytes. */
#define PYNN_XT_AHEAD_BYTES ((size_t)1 << 20)

/* dispatch.c: the fused update's limit in force (bytes; for tests:
 * pynn_sgd_fuse_max_kib). */
size_t pynn__sgd_fuse_max(void);

/* The bytes of layer l's W (elem: its element size). */
static inline size_t pynn__w_bytes(const pynn_net *net, size_t l, size_t elem)
{
    return (size_t)net->units[l] * (size_t)net->units[l + 1] * elem;
}

/* 1 if layer l's plain gradient descent is fused. */
static inline int pynn__sgd_fuses(const pynn_net *net, size_t l, size_t elem)
{
    return pynn__w_bytes(net, l, elem) < pynn__sgd_fuse_max();
}

/* 1 if layer l's W is small enough for a packed copy (PYNN_WPACK_MAX_BYTES;
 * the room for them: layout.c, train.c) -- kept only where the update fuses. */
static inline int pynn__wpack_fits(const pynn_net *net, size_t l, size_t elem)
{
    return pynn__w_bytes(net, l, elem) < PYNN_WPACK_MAX_BYTES;
}

/* layout.c */
pynn_status pynn__check_net(const pynn_net *net);
/* The workspace layouts' flags: CSR input (no xb; marks instead, see layout.c);
 * a forward pass alone (predict: acts, z0 and apack_r, nothing for training). */
#define PYNN__WS_CSR 1
#define PYNN__WS_PREDICT 2
pynn_status pynn__workspace_layout(pynn__ws_layout *lay, const pynn_net *net, size_t batch,
                                   int flags);
/* The checks every whole-network entry point makes; fills the parameter
 * offsets (PYNN_MAX_LAYERS entries) and the workspace layout (flags PYNN__WS_*)
 * for batches of `batch` rows, and checks that ws_len scalars hold it. */
pynn_status pynn__net_prologue(size_t *w_off, size_t *b_off, pynn__ws_layout *lay,
                               const pynn_net *net, size_t batch, size_t ws_len, int flags);

/* The threads a whole-network job on batches of `rows` rows is worth
 * (pynn__net_threads), and a chunk of training steps (pynn__train_threads:
 * the lower bar PYNN_TRAIN_PAR_MIN_WORK). */
int pynn__net_threads(const pynn_net *net, size_t rows, int n_threads);
int pynn__train_threads(const pynn_net *net, size_t rows, int n_threads);

static inline int pynn__act_ok(pynn_activation act) { return (unsigned)act <= PYNN_ACT_EXP; }
static inline int pynn__loss_ok(pynn_loss l) { return (unsigned)l <= PYNN_LOSS_HALF_POISSON; }

/* Epilogues fused into the matrix product (see gemm_tile.h). */
typedef enum {
    PYNN_EPI_NONE = 0,   /* c = acc */
    PYNN_EPI_BIAS = 1,   /* c = acc + bias_j, then max(c, 0) if act is relu */
    PYNN_EPI_SCALE_W = 2,/* c = acc * scale + w_ij * wscale      (weight gradient) */
    PYNN_EPI_DACT = 3,   /* c = acc * act'(da_ij), from cached outputs da (input delta) */
    PYNN_EPI_SGD_W = 4   /* the weight gradient applied by plain gradient descent:
                          * v = -(lr * (acc * scale + w_ij * wscale)), wnew_ij =
                          * w_ij + v (and vnew_ij = v if vnew), the bits SCALE_W's
                          * gradient and then the SGD step give; C holds only the
                          * partial sums between K blocks */
} pynn_epi;

/* A plain gradient-descent update run in slices between a product's tiles
 * (pynn_gemm_args.bg): w[i] += -(lr g[i]) (and v[i] = -(lr g[i]) where v) for
 * i in [pos, end); the product advances pos, its caller finishes the rest
 * (pynn__sgd_bg_finish).  The bits of the optimizer's pass (optim.c). */
#define PYNN_SGD_BG_OF(T)                                                        \
    struct pynn_sgd_bg_##T {                                                     \
        T *w; const T *g; T *v; T lr; size_t pos, end;                           \
    }
PYNN_SGD_BG_OF(float);
PYNN_SGD_BG_OF(double);
typedef struct pynn_sgd_bg_float pynn_sgd_bg_f32;
typedef struct pynn_sgd_bg_double pynn_sgd_bg_f64;
/* (the type for an element type T that is itself a macro: gemm_tile.h's) */
#define PYNN_SGD_BG_TYPE(T) PYNN_SGD_BG_TYPE_(T)
#define PYNN_SGD_BG_TYPE_(T) struct pynn_sgd_bg_##T

/* Whether layer l's W (plain gradient descent) is updated in slices between
 * the tiles of layer l - 1's weight gradient (net.c: its input gradient, the
 * last read of W in the step, ran a phase before): a W not fused into its own
 * weight gradient (pynn__sgd_fuses), above a first layer whose weight
 * gradient is a product (not sparse input's). */
static inline int pynn__sgd_hidden(const pynn_net *net, size_t l, int sparse, size_t elem)
{
    return l >= 1 && l < net->n_layers && !(l == 1 && sparse) && !pynn__sgd_fuses(net, l, elem);
}

#define PYNN_GEMM_ARGS_OF(T)                                                     \
    struct {                                                                     \
        size_t m, n, k;                                                          \
        const T *a; ptrdiff_t a_rs, a_cs; /* A(i,p) = a[i*a_rs + p*a_cs] */      \
        const T *b; ptrdiff_t ldb;        /* B(p,j) = b[p*ldb + j], or    */      \
        int b_trans;                      /*  b[j*ldb + p] if b_trans     */      \
        const T *bpack; /* NULL, or B packed whole by pynn__gemm_prepack_b    */ \
        size_t bpack_nr; /* ... in panels this wide (read only by a kernel  */ \
                         /* of the same width: NR)                        */ \
        T *c; ptrdiff_t ldc;                                                     \
        int epi, act;                                                            \
        const T *bias;                                                           \
        T *z0; /* PYNN_EPI_BIAS: NULL, or where row i's column 0 goes before  */ \
               /* the activation, at z0[i] (predict's check of its input)     */ \
        T scale, wscale; const T *w; ptrdiff_t ldw;                              \
        T lr; T *wnew, *vnew; /* PYNN_EPI_SGD_W: step size, the weights      */ \
                              /* updated (= w), NULL or the velocity       */ \
        T *wpack; /* PYNN_EPI_SGD_W: NULL, or the updated weights also into   */ \
                  /* this copy of W packed for the forward products (the  */ \
                  /* layout pynn__gemm_prepack_b gives, over m rows); only */ \
                  /* for a product pynn__gemm_tiled runs on the tiles       */ \
        const T *da; ptrdiff_t ldda;                                             \
        T *apack; size_t apack_len; /* NULL, or room to pack A (scalars)      */ \
        T *bwhole; size_t bwhole_len; /* NULL, or room to pack B whole for a  */ \
                         /* product run in chunks of rows (gemm_tile.h)     */ \
        const T *a_next; /* NULL, or the A of the next product of this shape  */ \
                         /* (a training step's next batch): a hint, fetched */ \
                         /* into cache as this one runs (A rows: a_cs 1)     */ \
        const int64_t *a_next_idx; /* NULL, or its row i is a_next's row    */ \
                         /* a_next_idx[i] (a shuffled batch, to be gathered) */ \
        int n_threads;                                                           \
        int pack_ahead; /* 1: pynn__gemm_pack packs A's every K block now even  */ \
                        /* for a thread alone (PYNN_APACK_TEAM), for a later */ \
                        /* run (train.c: the first layer's x^T, while in cache) */ \
        int bf16; /* 1: A and B rounded to bfloat16 as they are packed (both  */ \
                  /* always are; float only, see pynn_net.bf16)              */ \
        struct pynn_sgd_bg_##T *bg; /* NULL, or an update to run in slices   */ \
                         /* between the tiles (a hint's worth of work: the   */ \
                         /* caller finishes what is left)                    */ \
    }
typedef PYNN_GEMM_ARGS_OF(float) pynn_gemm_args_f32;
typedef PYNN_GEMM_ARGS_OF(double) pynn_gemm_args_f64;

/* The instruction sets the core can run. */
typedef enum {
    PYNN_ISA_GENERIC = 0,
    PYNN_ISA_AVX2 = 1,
    PYNN_ISA_AVX512 = 2,
    PYNN_ISA_AVX512_BF16 = 3, /* AVX-512 kernels; bf16 products on vdpbf16ps */
    PYNN_ISA_AMX = 4,         /* AVX-512 kernels; bf16 products on AMX tiles */
    PYNN_ISA_COUNT
} pynn_isa;
/* The float kernels' instruction set of a path (avx512_bf16 runs avx512's). */
#define PYNN_ISA_FLOAT(isa) ((isa) >= PYNN_ISA_AVX512 ? PYNN_ISA_AVX512 : (isa))

void pynn_gemm_generic_f32(const pynn_gemm_args_f32 *g);
void pynn_gemm_generic_f64(const pynn_gemm_args_f64 *g);
void pynn_gemm_avx2_f32(const pynn_gemm_args_f32 *g);
void pynn_gemm_avx2_f64(const pynn_gemm_args_f64 *g);
void pynn_gemm_avx512_f32(const pynn_gemm_args_f32 *g);
void pynn_gemm_avx512_f64(const pynn_gemm_args_f64 *g);
/* The product on the instruction set chosen at run time (gemm.c; typed.h names
 * it pynn__gemm in a typed file). */
void pynn__gemm_f32(const pynn_gemm_args_f32 *g);
void pynn__gemm_f64(const pynn_gemm_args_f64 *g);
/* The same products run by a team (gemm_tile.h): pack returns how A is packed
 * (PYNN_APACK_*); with PYNN_APACK_TEAM the team must sync before run. */
enum { PYNN_APACK_NONE = 0, PYNN_APACK_SOLO = 1, PYNN_APACK_TEAM = 2, PYNN_APACK_TEAM_BLOCKS = 3,
       PYNN_APACK_TILE = 4 /* bf16 without room: each tile packs its own A */ };
int pynn_gemm_pack_avx2_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm);
int pynn_gemm_pack_avx2_f64(const pynn_gemm_args_f64 *g, const pynn_team *tm);
int pynn_gemm_pack_avx512_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm);
int pynn_gemm_pack_avx512_f64(const pynn_gemm_args_f64 *g, const pynn_team *tm);
void pynn_gemm_run_avx2_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm, int amode);
void pynn_gemm_run_avx2_f64(const pynn_gemm_args_f64 *g, const pynn_team *tm, int amode);
void pynn_gemm_run_avx512_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm, int amode);
void pynn_gemm_run_avx512_f64(const pynn_gemm_args_f64 *g, const pynn_team *tm, int amode);
/* Adam's update of one chunk of the arena (adam_rows.h), per instruction set:
 * optim.c's baseline build (_generic), optim_avx2.c, optim_avx512.c. */
#define PYNN_ADAM_CHUNK_ARGS(T)                                                          \
    (T *restrict p, T *restrict m, T *restrict v, const T *restrict g, size_t cnt, T lt, \
     T c1, T c2, T d1, T d2, T e, double *restrict sq)
void pynn_adam_chunk_generic_f32 PYNN_ADAM_CHUNK_ARGS(float);
void pynn_adam_chunk_generic_f64 PYNN_ADAM_CHUNK_ARGS(double);
void pynn_adam_chunk_avx2_f32 PYNN_ADAM_CHUNK_ARGS(float);
void pynn_adam_chunk_avx2_f64 PYNN_ADAM_CHUNK_ARGS(double);
void pynn_adam_chunk_avx512_f32 PYNN_ADAM_CHUNK_ARGS(float);
void pynn_adam_chunk_avx512_f64 PYNN_ADAM_CHUNK_ARGS(double);
/* B packed whole for the float products (gemm_tile.h: bpack_len scalars). */
size_t pynn_gemm_bpack_len_avx2_f32(const pynn_gemm_args_f32 *g);
size_t pynn_gemm_bpack_len_avx2_f64(const pynn_gemm_args_f64 *g);
size_t pynn_gemm_bpack_len_avx512_f32(const pynn_gemm_args_f32 *g);
size_t pynn_gemm_bpack_len_avx512_f64(const pynn_gemm_args_f64 *g);
size_t pynn_gemm_prepack_b_avx2_f32(const pynn_gemm_args_f32 *g, float *bp, size_t p0,
                                     size_t p1);
size_t pynn_gemm_prepack_b_avx2_f64(const pynn_gemm_args_f64 *g, double *bp, size_t p0,
                                     size_t p1);
size_t pynn_gemm_prepack_b_avx512_f32(const pynn_gemm_args_f32 *g, float *bp, size_t p0,
                                     size_t p1);
size_t pynn_gemm_prepack_b_avx512_f64(const pynn_gemm_args_f64 *g, double *bp, size_t p0,
                                     size_t p1);
/* How the float products run (gemm_tile.h: gemm_tiled). */
int pynn_gemm_tiled_avx2_f32(const pynn_gemm_args_f32 *g);
int pynn_gemm_tiled_avx2_f64(const pynn_gemm_args_f64 *g);
int pynn_gemm_tiled_avx512_f32(const pynn_gemm_args_f32 *g);
int pynn_gemm_tiled_avx512_f64(const pynn_gemm_args_f64 *g);
/* The bfloat16 mode's products in pairs (gemm_tile.h, GEMM_PAIRS): on
 * AVX512_BF16 (built where the compiler has it: PYNN_AVX512BF16_KERNEL).
 * Float only; only for args with bf16. */
void pynn_gemm_avx512bf16_f32(const pynn_gemm_args_f32 *g);
int pynn_gemm_pack_avx512bf16_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm);
void pynn_gemm_run_avx512bf16_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm, int amode);
/* ... and on AMX tiles (PYNN_AMX_KERNEL). */
void pynn_gemm_amx_f32(const pynn_gemm_args_f32 *g);
int pynn_gemm_pack_amx_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm);
void pynn_gemm_run_amx_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm, int amode);
/* Both in plain C with the instructions emulated (gemm_emu.c; tests). */
void pynn_gemm_emupairs_f32(const pynn_gemm_args_f32 *g);
int pynn_gemm_pack_emupairs_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm);
void pynn_gemm_run_emupairs_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm, int amode);
void pynn_gemm_emuamx_f32(const pynn_gemm_args_f32 *g);
int pynn_gemm_pack_emuamx_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm);
void pynn_gemm_run_emuamx_f32(const pynn_gemm_args_f32 *g, const pynn_team *tm, int amode);
/* Which pair kernel runs the bfloat16 products now: 0 none (the float
 * kernels round in their packing), 1 AVX512_BF16, 2 its emulation, 3 AMX,
 * 4 its emulation. */
int pynn__bf16_pairs(void);

/* x rounded to the nearest bfloat16 (ties to even), as a float: the top 16
 * bits of its binary32 pattern.  Infinities stay; finite values beyond the
 * largest bfloat16 round to infinity, as IEEE rounding does; a NaN stays a
 * (quiet) NaN.  Branch-free, so a loop over it vectorises. */
static inline float pynn__bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
    u = nan ? (u | 0x00400000u) : u + 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Vectorised activations (vexp_avx2.c); also used on the AVX-512 paths. */
void pynn_softmax_avx2_f32(float *a, size_t n, size_t m);
void pynn_logistic_avx2_f32(float *a, size_t count);
void pynn_softmax_avx2_f64(double *a, size_t n, size_t m);
void pynn_logistic_avx2_f64(double *a, size_t count);

/* The ISA in use (chosen once from cpuid and PYNN_SIMD, or by pynn_simd_set;
 * dispatch.c). */
pynn_isa pynn__isa(void);

/* Below this many multiply-adds a kernel stays on one thread: waking a team
 * costs more than it saves. */
#define PYNN_PAR_MIN_WORK ((size_t)1 << 20)
/* A chunk of training steps runs on one team from its first step to its last
 * (one region: the threads are woken once per call, not per product), so a
 * step pays only its barriers, 5-8 of about 0.2 us each (the core's own,
 * pynn_tbar): a team pays from a smaller largest product.  Measured on a
 * Zen 4 (2 threads against 1, float64, us per step): 64-32-10 networks with
 * batches of 32 rows (65,536 multiply-adds in the first product) 8.3-8.8
 * against 9.5-9.6; 64-64-10, 32 rows, 15.1-15.5 against 17.7-17.9; 64-16-10
 * with 32 rows and 64-32-10 with 16 (32,768) lost, 5.4-6.8 against 5.2-5.8. */
#define PYNN_TRAIN_PAR_MIN_WORK ((size_t)1 << 16)

/* Set once a team of more than one thread has run in this process or an
 * ancestor (dispatch.c: a child forked after that stays on one thread). */
extern int pynn__team_flag;

/* Call before starting a team of nt threads; returns nt. */
static inline int pynn__team(int nt)
{
    if (nt > 1 && !PYNN_LOAD_INT(&pynn__team_flag))
        PYNN_STORE_INT(&pynn__team_flag, 1);
    return nt;
}

/* Threads for a kernel doing `work` multiply-adds split into parallel_items
 * independent pieces: one unless it pays, never more than there are pieces nor
 * than pynn_threads allows (processors; one in a child forked after a team ran).
 * The thread count never changes a result bit (every kernel's summation order
 * is fixed), only the speed. */
static inline int pynn__threads_over(int n_threads, size_t work, size_t min_work,
                                     size_t parallel_items)
{
#ifdef _OPENMP
    if (work < min_work || parallel_items < 2)
        return 1;
    int nt = pynn_threads(n_threads);
    if ((size_t)nt > parallel_items)
        nt = (int)parallel_items;
    return pynn__team(nt < 1 ? 1 : nt);
#else
    (void)n_threads; (void)work; (void)min_work; (void)parallel_items;
    return 1;
#endif
}

/* ... with the bar of a single kernel, PYNN_PAR_MIN_WORK (pynn__threads_over:
 * any bar, as a chunk of training steps has its own). */
static inline int pynn__threads_for(int n_threads, size_t work, size_t parallel_items)
{
    return pynn__threads_over(n_threads, work, PYNN_PAR_MIN_WORK, parallel_items);
}

#endif

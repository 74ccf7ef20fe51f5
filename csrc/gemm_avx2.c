/* gemm_avx2.c -- gemm_tile.h for AVX2 + FMA (compiled with -mavx2 -mfma;
 * only called after cpuid said the CPU has both). */
#include <float.h>
#include <math.h>
#include <string.h>
#include <immintrin.h>
#include "internal.h"
#include "transpose_avx.h"

/* ---- float: 6 x 16 tiles ---- */
#include "gemm_vocab_avx2_f32.h"
#define GEMM_NAME(x) pynn_##x##_avx2_f32
#include "gemm_tile.h"
#include "gemm_undef.h"

/* ---- float, the mixed-precision mode in bfloat16 pairs, vdpbf16ps emulated:
 * the pair layout and tiles of gemm_tile.h that the AVX512_BF16 kernels run
 * (gemm_avx512bf16.c), testable on any AVX2 CPU; chosen only by
 * pynn_bf16_emulation (tests), never by default: slower than the float
 * kernels' own bfloat16 mode. ---- */

/* x with denormals replaced by zero of the same sign. */
static PYNN_ALWAYS_INLINE __m256 pynn__flush_denormals_avx2(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 tiny = _mm256_cmp_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(FLT_MIN), _CMP_LT_OQ);
    return _mm256_blendv_ps(x, _mm256_and_ps(x, sign), tiny);
}

/* vdpbf16ps on 8 lanes: acc += a.hi * b.hi, then += a.lo * b.lo, each a fused
 * multiply-add with denormal inputs read as zero and denormal results flushed
 * to zero (Intel SDM, VDPBF16PS). */
static PYNN_ALWAYS_INLINE __m256 pynn__dpbf16_emulated(__m256 acc, __m256i a, __m256i b)
{
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256 ah = pynn__flush_denormals_avx2(_mm256_castsi256_ps(_mm256_and_si256(a, hi)));
    __m256 bh = pynn__flush_denormals_avx2(_mm256_castsi256_ps(_mm256_and_si256(b, hi)));
    __m256 al = pynn__flush_denormals_avx2(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)));
    __m256 bl = pynn__flush_denormals_avx2(_mm256_castsi256_ps(_mm256_slli_epi32(b, 16)));
    acc = pynn__flush_denormals_avx2(acc);
    acc = pynn__flush_denormals_avx2(_mm256_fmadd_ps(ah, bh, acc));
    return pynn__flush_denormals_avx2(_mm256_fmadd_ps(al, bl, acc));
}

#include "gemm_vocab_avx2_f32.h"
#define GEMM_NAME(x) pynn_##x##_avx2p_f32
#define PV __m256i
#define P_LOAD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))
#define P_BCAST(p) _mm256_set1_epi32((int)*(p))
#define V_DP2(acc, a, b) pynn__dpbf16_emulated((acc), (a), (b))
#include "gemm_tile.h"
#include "gemm_undef.h"

/* ---- float, the mixed-precision mode on AMX tiles, emulated: the pair layout
 * and 16-row tiles of gemm_tile.h that the AMX kernels run (gemm_amx.c), with
 * the tile registers and tdpbf16ps in plain C (tests only, pynn_bf16_emulation;
 * slow).  One 16 x 16 accumulator per tile here (AVX2's 16-column panels),
 * two on the AMX path (32-column panels). ---- */

/* The registers of this thread: 16 rows of 64 bytes each. */
static _Thread_local unsigned char pynn__amx_emu[8][16][64];
static _Thread_local int pynn__amx_emu_on;

static float pynn__flush_denormal(float x) { return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x; }

static float pynn__bf16_word(uint32_t w, int hi)
{
    uint32_t u = hi ? (w & 0xffff0000u) : (w << 16);
    float x;
    memcpy(&x, &u, sizeof x);
    return pynn__flush_denormal(x);
}

static void pynn__amx_emu_load(int t, const void *base, size_t stride)
{
    for (int r = 0; r < 16; r++)
        memcpy(pynn__amx_emu[t][r], (const unsigned char *)base + (size_t)r * stride, 64);
}

static void pynn__amx_emu_store(int t, void *base, size_t stride)
{
    for (int r = 0; r < 16; r++)
        memcpy((unsigned char *)base + (size_t)r * stride, pynn__amx_emu[t][r], 64);
}

/* tdpbf16ps (Intel SDM): for each row m, pair step k and column n,
 * c[m][n] += a[m].bf16[2k] b[k].bf16[2n], then += the odd halves' product;
 * fused, denormal inputs read as zero, denormal results flushed. */
static void pynn__amx_emu_dp(int c, int a, int b)
{
    for (int m = 0; m < 16; m++) {
        float acc[16];
        memcpy(acc, pynn__amx_emu[c][m], 64);
        for (int k = 0; k < 16; k++) {
            uint32_t aw;
            memcpy(&aw, pynn__amx_emu[a][m] + 4 * k, 4);
            for (int n = 0; n < 16; n++) {
                uint32_t bw;
                memcpy(&bw, pynn__amx_emu[b][k] + 4 * n, 4);
                float x = pynn__flush_denormal(acc[n]);
                x = pynn__flush_denormal(fmaf(pynn__bf16_word(aw, 0), pynn__bf16_word(bw, 0), x));
                acc[n] = pynn__flush_denormal(fmaf(pynn__bf16_word(aw, 1), pynn__bf16_word(bw, 1), x));
            }
        }
        memcpy(pynn__amx_emu[c][m], acc, 64);
    }
}

#include "gemm_vocab_avx2_f32.h"
#undef MR
#define MR 16
#define GEMM_NAME(x) pynn_##x##_avx2amx_f32
#define AMX_TILES 1
#define AMX_C0 0
#define AMX_C1 1
#define AMX_TA 2
#define AMX_TB0 3
#define AMX_TB1 4
#define AMX_CONFIG() (pynn__amx_emu_on = 1)
#define AMX_RELEASE() (pynn__amx_emu_on = 0)
#define AMX_ZERO(t) memset(pynn__amx_emu[t], 0, sizeof pynn__amx_emu[t])
#define AMX_LOAD(t, base, stride) pynn__amx_emu_load((t), (base), (stride))
#define AMX_STORE(t, base, stride) pynn__amx_emu_store((t), (base), (stride))
#define AMX_DP(c, a, b) pynn__amx_emu_dp((c), (a), (b))
#include "gemm_tile.h"
#include "gemm_undef.h"

/* ---- double: 6 x 8 tiles ---- */
#define T double
#define V __m256d
#define VL 4
#define MR 6
#define GEMM_ARGS pynn_gemm_args_f64
#define GEMM_NAME(x) pynn_##x##_avx2_f64
#define MASK_T __m256i
#define V_ZERO() _mm256_setzero_pd()
#define V_LOAD(p) _mm256_loadu_pd(p)
#define V_STORE(p, v) _mm256_storeu_pd((p), (v))
#define V_BCAST(p) _mm256_broadcast_sd(p)
#define V_SET1(x) _mm256_set1_pd(x)
#define V_FMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#define V_ADD _mm256_add_pd
#define V_SUB _mm256_sub_pd
#define V_MUL _mm256_mul_pd
#define V_MAX _mm256_max_pd
#define V_GT0_SELECT(a, x) _mm256_and_pd((x), _mm256_cmp_pd((a), _mm256_setzero_pd(), _CMP_GT_OQ))
#define M_MAKE(cnt) _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(cnt)), _mm256_setr_epi64x(0, 1, 2, 3))
#define V_MLOAD(p, m) _mm256_maskload_pd((p), (m))
#define V_MSTORE(p, m, v) _mm256_maskstore_pd((p), (m), (v))
#define PACK_BT 4
#define PACK_BT_BLOCK pynn_transpose4_f64
#include "gemm_tile.h"
#include "gemm_undef.h"

/* gemm_avx2.c -- gemm_tile.h for AVX2 + FMA (compiled with -mavx2 -mfma;
 * only called after cpuid said the CPU has both). */
#include <immintrin.h>
#include "internal.h"
#include "transpose_avx.h"

/* Lane permutes for gemm_tile.h's outer products.  AVX2 permutes 32-bit lanes
 * across the register (vpermps) from one source: two sources take two permutes
 * and a blend on the index's bit 3; a double's lane j is the pair of 32-bit
 * lanes 2j, 2j + 1. */
static inline __m256 pynn_avx2_perm2_ps(__m256 a, __m256i idx, __m256 b)
{
    __m256 hi = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(a, idx), _mm256_permutevar8x32_ps(b, idx),
                            hi);
}

static inline __m256i pynn_avx2_idx_pd(__m256d x)
{
    __m256i j = _mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm256_cvttpd_epi32(x)), 1);
    return _mm256_or_si256(j, _mm256_slli_epi64(_mm256_add_epi64(j, _mm256_set1_epi64x(1)), 32));
}

/* ---- float: 6 x 16 tiles ---- */
#define T float
#define V __m256
#define VL 8
#define MR 6
#define GEMM_ARGS pynn_gemm_args_f32
#define GEMM_NAME(x) pynn_##x##_avx2_f32
#define MASK_T __m256i
#define V_ZERO() _mm256_setzero_ps()
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_STORE(p, v) _mm256_storeu_ps((p), (v))
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_MUL _mm256_mul_ps
#define V_MAX _mm256_max_ps
#define V_GT0_SELECT(a, x) _mm256_and_ps((x), _mm256_cmp_ps((a), _mm256_setzero_ps(), _CMP_GT_OQ))
#define M_MAKE(cnt) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(cnt)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define V_MLOAD(p, m) _mm256_maskload_ps((p), (m))
#define V_MSTORE(p, m, v) _mm256_maskstore_ps((p), (m), (v))
#define PACK_BT 8
#define PACK_BT_BLOCK pynn_transpose8_f32
#define V_DIV _mm256_div_ps
#define V_TRUNC(x) _mm256_round_ps((x), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define V_IOTA() _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)
#define V_IDX_T __m256i
#define V_IDX_OF(x) _mm256_cvttps_epi32(x)
#define V_PERM1(idx, v) _mm256_permutevar8x32_ps((v), (idx))
#define V_PERM2(a, idx, b) pynn_avx2_perm2_ps((a), (idx), (b))
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
#define V_DIV _mm256_div_pd
#define V_TRUNC(x) _mm256_round_pd((x), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define V_IOTA() _mm256_setr_pd(0, 1, 2, 3)
#define V_IDX_T __m256i
#define V_IDX_OF(x) pynn_avx2_idx_pd(x)
#define V_PERM1(idx, v) _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), (idx)))
#define V_PERM2(a, idx, b) \
    _mm256_castps_pd(pynn_avx2_perm2_ps(_mm256_castpd_ps(a), (idx), _mm256_castpd_ps(b)))
#include "gemm_tile.h"
#include "gemm_undef.h"

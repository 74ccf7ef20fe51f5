/* gemm_avx2.c -- gemm_tile.h for AVX2 + FMA (compiled with -mavx2 -mfma;
 * only called after cpuid said the CPU has both). */
#include <immintrin.h>
#include "internal.h"
#include "transpose_avx.h"

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

/* gemm_avx512.c -- gemm_tile.h for AVX-512F (compiled with -mavx512f -mfma;
 * only called after cpuid said the CPU and the OS support it). */
#include <immintrin.h>
#include "internal.h"
#include "transpose_avx.h"

/* ---- float: 8 x 32 tiles, and 8 x 48; K blocks of PYNN_GEMM_KC (internal.h) ---- */
#include "gemm_vocab_avx512_f32.h"
#define GEMM_NAME(x) pynn_##x##_avx512_f32
#define GEMM_TRI 1 /* three-vector tiles (gemm_tile.h) */
#define TRI_ASM_BCAST "vbroadcastss" /* (their K step written out: tri_step) */
#define TRI_ASM_FMA "vfmadd231ps"
#define TRI_ASM_ES "4"
#include "gemm_tile.h"
#include "gemm_undef.h"

/* ---- double: 8 x 16 tiles, and 8 x 24 ---- */
#define T double
#define V __m512d
#define VL 8
#define MR 8
#define GEMM_ARGS pynn_gemm_args_f64
#define GEMM_NAME(x) pynn_##x##_avx512_f64
#define GEMM_TRI 1 /* three-vector tiles (gemm_tile.h) */
#define TRI_ASM_BCAST "vbroadcastsd"
#define TRI_ASM_FMA "vfmadd231pd"
#define TRI_ASM_ES "8"
#define MASK_T __mmask8
#define V_ZERO() _mm512_setzero_pd()
#define V_LOAD(p) _mm512_loadu_pd(p)
#define V_STORE(p, v) _mm512_storeu_pd((p), (v))
#define V_BCAST(p) _mm512_set1_pd(*(p))
#define V_SET1(x) _mm512_set1_pd(x)
#define V_FMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#define V_ADD _mm512_add_pd
#define V_SUB _mm512_sub_pd
#define V_MUL _mm512_mul_pd
#define V_MAX _mm512_max_pd
#define V_GT0_SELECT(a, x) _mm512_maskz_mov_pd(_mm512_cmp_pd_mask((a), _mm512_setzero_pd(), _CMP_GT_OQ), (x))
#define M_MAKE(cnt) ((__mmask8)((1u << (cnt)) - 1u))
#define V_MLOAD(p, m) _mm512_maskz_loadu_pd((m), (p))
#define V_MSTORE(p, m, v) _mm512_mask_storeu_pd((p), (m), (v))
#define PACK_BT 4
#define PACK_BT_BLOCK pynn_transpose4_f64
#define V_DIV _mm512_div_pd
#define V_TRUNC(x) _mm512_roundscale_pd((x), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define V_IOTA() _mm512_setr_pd(0, 1, 2, 3, 4, 5, 6, 7)
#define V_IDX_T __m512i
#define V_IDX_OF(x) _mm512_cvtepi32_epi64(_mm512_cvttpd_epi32(x))
#define V_PERM1(idx, v) _mm512_permutexvar_pd((idx), (v))
#define V_PERM2(a, idx, b) _mm512_permutex2var_pd((a), (idx), (b))
#include "gemm_tile.h"
#include "gemm_undef.h"

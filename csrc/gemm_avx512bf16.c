/* gemm_avx512bf16.c -- the mixed-precision mode's products in bfloat16 pairs
 * on AVX512_BF16's vdpbf16ps (gemm_tile.h, pair tiles: 8 x 32, 64 multiply-adds
 * per pair step and row where the float kernels do 32); compiled with
 * -mavx512f -mavx512bf16 -mfma, called only for products with the bf16 flag
 * on the avx512_bf16 path, which cpuid and the OS must allow (dispatch.c). */
#include <immintrin.h>
#include "internal.h"
#include "transpose_avx.h"

#include "gemm_vocab_avx512_f32.h"
#define GEMM_KC 256 /* a pair panel of 128 pair steps x 32 lanes: 16 KiB */
#define GEMM_NAME(x) pynn_##x##_avx512bf16_f32
#define PV __m512i
#define P_LOAD(p) _mm512_loadu_si512((const void *)(p))
#define P_BCAST(p) _mm512_set1_epi32((int)*(p))
#define V_DP2(acc, a, b) _mm512_dpbf16_ps((acc), (__m512bh)(a), (__m512bh)(b))
#include "gemm_tile.h"
#include "gemm_undef.h"

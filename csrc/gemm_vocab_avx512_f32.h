/* gemm_vocab_avx512_f32.h -- gemm_tile.h's vector vocabulary for float on
 * AVX-512F (gemm_avx512.c's float kernels, gemm_avx512bf16.c's bfloat16 pair
 * kernels); the includer names the instance (GEMM_NAME) and may set its K
 * block (GEMM_KC). */
#define T float
#define V __m512
#define VL 16
#define MR 8
#define GEMM_ARGS pynn_gemm_args_f32
#define MASK_T __mmask16
#define V_ZERO() _mm512_setzero_ps()
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_STORE(p, v) _mm512_storeu_ps((p), (v))
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_SET1(x) _mm512_set1_ps(x)
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_ADD _mm512_add_ps
#define V_SUB _mm512_sub_ps
#define V_MUL _mm512_mul_ps
#define V_MAX _mm512_max_ps
#define V_GT0_SELECT(a, x) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask((a), _mm512_setzero_ps(), _CMP_GT_OQ), (x))
#define M_MAKE(cnt) ((__mmask16)((1u << (cnt)) - 1u))
#define V_MLOAD(p, m) _mm512_maskz_loadu_ps((m), (p))
#define V_MSTORE(p, m, v) _mm512_mask_storeu_ps((p), (m), (v))
#define PACK_BT 8
#define PACK_BT_BLOCK pynn_transpose8_f32
/* (gemm_tile.h's outer products: lane permutes, their indices made from
 * vectors of whole numbers) */
#define V_DIV _mm512_div_ps
#define V_TRUNC(x) _mm512_roundscale_ps((x), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define V_IOTA() _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define V_IDX_T __m512i
#define V_IDX_OF(x) _mm512_cvttps_epi32(x)
#define V_PERM1(idx, v) _mm512_permutexvar_ps((idx), (v))
#define V_PERM2(a, idx, b) _mm512_permutex2var_ps((a), (idx), (b))

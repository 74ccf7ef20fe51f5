/* gemm_emu.c -- the bfloat16 pair kernels of the avx512_bf16 and amx paths
 * (gemm_tile.h: GEMM_PAIRS) on emulated instructions, in plain C, with the
 * AVX-512 instances' exact geometry (16 float lanes, 8 x 32 vdpbf16ps tiles,
 * 16 x 32 AMX tiles, K blocks of 256): the tests run every line of those
 * kernels but the instructions themselves on any CPU (pynn_bf16_emulation).
 * Slow; never chosen by default.  The emulations follow the Intel SDM:
 *   VDPBF16PS  per float lane: acc += a.hi * b.hi, then acc += a.lo * b.lo
 *   TDPBF16PS  per output: low and high halves' products summed apart from
 *              zero over the instruction's 16 pair steps, then
 *              c += (low sum + high sum)
 * each a fused multiply-add or an add, rounded to nearest even, denormal
 * inputs read as zero and denormal results flushed to zero. */
#include <float.h>
#include <math.h>
#include <string.h>
#include "internal.h"

/* Plain loops and calls: the SIMD kernels' forced inlining and unrolling,
 * over vectors that are loops themselves, would take the compiler minutes. */
#undef PYNN_UNROLL16
#define PYNN_UNROLL16
#undef PYNN_ALWAYS_INLINE
#define PYNN_ALWAYS_INLINE inline

/* ---- a 16-lane float vector and its masks (the AVX-512 vocabulary's shape) */
typedef struct { float v[16]; } pynn_v16;
typedef struct { uint32_t v[16]; } pynn_p16;
typedef uint32_t pynn_m16;

static PYNN_ALWAYS_INLINE pynn_v16 v16_set1(float x)
{
    pynn_v16 r;
    for (int l = 0; l < 16; l++)
        r.v[l] = x;
    return r;
}
static PYNN_ALWAYS_INLINE pynn_v16 v16_load(const float *p)
{
    pynn_v16 r;
    memcpy(r.v, p, sizeof r.v);
    return r;
}
static PYNN_ALWAYS_INLINE void v16_store(float *p, pynn_v16 x) { memcpy(p, x.v, sizeof x.v); }
/* only the lanes whose mask bit is set are read or written */
static PYNN_ALWAYS_INLINE pynn_v16 v16_mload(const float *p, pynn_m16 m)
{
    pynn_v16 r;
    for (int l = 0; l < 16; l++)
        r.v[l] = (m >> l) & 1u ? p[l] : 0.0f;
    return r;
}
static PYNN_ALWAYS_INLINE void v16_mstore(float *p, pynn_m16 m, pynn_v16 x)
{
    for (int l = 0; l < 16; l++)
        if ((m >> l) & 1u)
            p[l] = x.v[l];
}
#define V16_BINARY(name, expr)                                                   \
    static PYNN_ALWAYS_INLINE pynn_v16 name(pynn_v16 a, pynn_v16 b)              \
    {                                                                            \
        pynn_v16 r;                                                              \
        for (int l = 0; l < 16; l++) {                                           \
            float x = a.v[l], y = b.v[l];                                        \
            r.v[l] = (expr);                                                     \
        }                                                                        \
        return r;                                                                \
    }
V16_BINARY(v16_add, x + y)
V16_BINARY(v16_sub, x - y)
V16_BINARY(v16_mul, x * y)
V16_BINARY(v16_max, x > y ? x : y) /* maxps: the second operand unless x > y */
V16_BINARY(v16_gt0_select, x > 0.0f ? y : 0.0f)
#undef V16_BINARY
static PYNN_ALWAYS_INLINE pynn_v16 v16_fma(pynn_v16 a, pynn_v16 b, pynn_v16 c)
{
    pynn_v16 r;
    for (int l = 0; l < 16; l++)
        r.v[l] = fmaf(a.v[l], b.v[l], c.v[l]);
    return r;
}

/* ---- the instructions */
static float flush(float x) { return fabsf(x) < FLT_MIN ? copysignf(0.0f, x) : x; }

/* bfloat16 half (hi: the high 16 bits) of a pair word, as a float, denormals zero */
static float half(uint32_t w, int hi)
{
    uint32_t u = hi ? (w & 0xffff0000u) : (w << 16);
    float x;
    memcpy(&x, &u, sizeof x);
    return flush(x);
}

static pynn_v16 vdpbf16ps(pynn_v16 acc, pynn_p16 a, pynn_p16 b)
{
    for (int l = 0; l < 16; l++) {
        float x = flush(acc.v[l]);
        x = flush(fmaf(half(a.v[l], 1), half(b.v[l], 1), x));
        acc.v[l] = flush(fmaf(half(a.v[l], 0), half(b.v[l], 0), x));
    }
    return acc;
}

static PYNN_ALWAYS_INLINE pynn_p16 p16_load(const uint32_t *p)
{
    pynn_p16 r;
    memcpy(r.v, p, sizeof r.v);
    return r;
}
static PYNN_ALWAYS_INLINE pynn_p16 p16_bcast(const uint32_t *p)
{
    pynn_p16 r;
    for (int l = 0; l < 16; l++)
        r.v[l] = *p;
    return r;
}

/* The tile registers of this thread: 16 rows of 64 bytes each. */
static _Thread_local unsigned char amx_reg[8][16][64];

static void amx_load(int t, const void *base, size_t stride)
{
    for (int r = 0; r < 16; r++)
        memcpy(amx_reg[t][r], (const unsigned char *)base + (size_t)r * stride, 64);
}

static void amx_store(int t, void *base, size_t stride)
{
    for (int r = 0; r < 16; r++)
        memcpy((unsigned char *)base + (size_t)r * stride, amx_reg[t][r], 64);
}

static void tdpbf16ps(int c, int a, int b)
{
    for (int m = 0; m < 16; m++) {
        float acc[16], lo[16] = {0}, hi[16] = {0};
        memcpy(acc, amx_reg[c][m], 64);
        for (int k = 0; k < 16; k++) {
            uint32_t aw;
            memcpy(&aw, amx_reg[a][m] + 4 * k, 4);
            float alo = half(aw, 0), ahi = half(aw, 1);
            for (int n = 0; n < 16; n++) {
                uint32_t bw;
                memcpy(&bw, amx_reg[b][k] + 4 * n, 4);
                lo[n] = flush(fmaf(alo, half(bw, 0), lo[n]));
                hi[n] = flush(fmaf(ahi, half(bw, 1), hi[n]));
            }
        }
        for (int n = 0; n < 16; n++)
            acc[n] = flush(flush(acc[n]) + flush(lo[n] + hi[n]));
        memcpy(amx_reg[c][m], acc, 64);
    }
}

/* ---- the vocabulary (gemm_tile.h) */
#define T float
#define V pynn_v16
#define VL 16
#define GEMM_KC 256
#define GEMM_ARGS pynn_gemm_args_f32
#define MASK_T pynn_m16
#define V_ZERO() v16_set1(0.0f)
#define V_LOAD(p) v16_load(p)
#define V_STORE(p, v) v16_store((p), (v))
#define V_BCAST(p) v16_set1(*(p))
#define V_SET1(x) v16_set1(x)
#define V_FMA(a, b, c) v16_fma((a), (b), (c))
#define V_ADD v16_add
#define V_SUB v16_sub
#define V_MUL v16_mul
#define V_MAX v16_max
#define V_GT0_SELECT(a, x) v16_gt0_select((a), (x))
#define M_MAKE(cnt) ((pynn_m16)((1u << (cnt)) - 1u))
#define V_MLOAD(p, m) v16_mload((p), (m))
#define V_MSTORE(p, m, v) v16_mstore((p), (m), (v))
#define PYNN_GEMM_PREFETCH(p) ((void)(p))
#define PYNN_GEMM_LINE 64

/* vdpbf16ps: the avx512_bf16 path's 8 x 32 tiles */
#define MR 8
#define GEMM_NAME(x) pynn_##x##_emupairs_f32
#define PV pynn_p16
#define P_LOAD(p) p16_load(p)
#define P_BCAST(p) p16_bcast(p)
#define V_DP2(acc, a, b) vdpbf16ps((acc), (a), (b))
#include "gemm_tile.h"
#undef MR
#undef GEMM_NAME
#undef PV
#undef P_LOAD
#undef P_BCAST
#undef V_DP2

/* AMX: the amx path's 16 x 32 tiles */
#define MR 16
#define GEMM_NAME(x) pynn_##x##_emuamx_f32
#define AMX_TILES 1
#define AMX_CONFIG() ((void)0)
#define AMX_RELEASE() ((void)0)
#define AMX_ZERO(t) memset(amx_reg[t], 0, sizeof amx_reg[t])
#define AMX_LOAD(t, base, stride) amx_load((t), (base), (stride))
#define AMX_STORE(t, base, stride) amx_store((t), (base), (stride))
#define AMX_DP(c, a, b) tdpbf16ps((c), (a), (b))
#include "gemm_tile.h"
#include "gemm_undef.h"
#undef PYNN_GEMM_PREFETCH
#undef PYNN_GEMM_LINE

/* vexp_avx2.c -- exponentials eight floats or four doubles at a time for the
 * softmax and logistic activations (compiled with -mavx2 -mfma; called only
 * after cpuid said the CPU has both).
 *
 * exp(x) = 2^n * exp(r) with n = round(x / ln 2) and r = x - n ln 2 (ln 2 split
 * in two parts so r is exact), exp(r) by a polynomial on |r| <= ln(2)/2: degree
 * 6 for float, degree 13 (Taylor) for double; about 1 ulp from the true value.
 * Inputs are clamped to the range where the result is finite and normal (a
 * double below it gives 0); NaN stays NaN (the operand order of max/min says
 * so: they return their second operand when one is NaN).  Each lane is
 * computed independently: a row gives the same bits alone or in a batch. */
#include <immintrin.h>
#include <math.h>
#include "internal.h"

/* the most vectors an exp call takes side by side */
#define EXP_UMAX 4
/* ... and how many the softmax passes (vexp_rows.h) */
#ifndef EXP_U
#define EXP_U 4
#endif
_Static_assert(EXP_U >= 1 && EXP_U <= EXP_UMAX, "EXP_U vectors side by side: 1 to EXP_UMAX");

/* exp of U vectors side by side: each step of the chain is taken for all U
 * before the next, so U independent chains are in flight at once (a single
 * chain, its Horner steps one after another, waits on the FMA latency; the
 * out-of-order window holds too few of them to fill both FMA pipes).  Each
 * vector gets the operations of exp8 alone: the same bits. */
static PYNN_ALWAYS_INLINE void exp8u(__m256 *v, const int U)
{
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 r[EXP_UMAX], p[EXP_UMAX], n[EXP_UMAX];
PYNN_UNROLL16
    for (int u = 0; u < U; u++) {
        __m256 x = _mm256_min_ps(hi, _mm256_max_ps(lo, v[u]));
        n[u] = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r[u] = _mm256_fnmadd_ps(n[u], _mm256_set1_ps(0.693359375f), x);
        r[u] = _mm256_fnmadd_ps(n[u], _mm256_set1_ps(-2.12194440e-4f), r[u]);
        p[u] = _mm256_set1_ps(1.9875691500e-4f);
    }
#define EXP8_STEP(c)                                                                      \
    PYNN_UNROLL16 for (int u = 0; u < U; u++) p[u] =                                     \
        _mm256_fmadd_ps(p[u], r[u], _mm256_set1_ps(c));
    EXP8_STEP(1.3981999507e-3f)
    EXP8_STEP(8.3334519073e-3f)
    EXP8_STEP(4.1665795894e-2f)
    EXP8_STEP(1.6666665459e-1f)
    EXP8_STEP(5.0000001201e-1f)
#undef EXP8_STEP
PYNN_UNROLL16
    for (int u = 0; u < U; u++) {
        __m256 q = _mm256_fmadd_ps(p[u], _mm256_mul_ps(r[u], r[u]),
                                   _mm256_add_ps(r[u], _mm256_set1_ps(1.0f)));
        __m256i e = _mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(n[u]), _mm256_set1_epi32(127)), 23);
        v[u] = _mm256_mul_ps(q, _mm256_castsi256_ps(e));
    }
}

static inline __m256 exp8(__m256 x)
{
    __m256 v[1] = {x};
    exp8u(v, 1);
    return v[0];
}

static inline float exp1(float x)
{
    float buf[8] = {x, x, x, x, x, x, x, x};
    _mm256_storeu_ps(buf, exp8(_mm256_loadu_ps(buf)));
    return buf[0];
}

/* Lanes [0, count) of 8 (count < 8): all ones there, for the masked loads. */
static inline __m256i lanes8(size_t count)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)count),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Stores lanes [0, count) of v (count < 8) by plain stores of 4, 2 and 1
 * (a masked store costs ten cycles or more on AMD CPUs). */
static inline void store_lanes8(float *p, __m256 v, size_t count)
{
    __m128 h = _mm256_castps256_ps128(v);
    if (count >= 4) {
        _mm_storeu_ps(p, h);
        p += 4;
        count -= 4;
        h = _mm256_extractf128_ps(v, 1);
    }
    if (count >= 2) {
        _mm_storel_pi((__m64 *)p, h);
        p += 2;
        count -= 2;
        h = _mm_movehl_ps(h, h);
    }
    if (count)
        _mm_store_ss(p, h);
}

/* The largest of v's lanes (exact in any order). */
static inline float hmax8(__m256 v)
{
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* The sum of v's lanes, pairwise: lanes k and k + 4 first. */
static inline float hsum8(__m256 v)
{
    float l[8];
    _mm256_storeu_ps(l, v);
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

/* ---- double ---------------------------------------------------------------- */

/* exp4 of U vectors side by side (see exp8u). */
static PYNN_ALWAYS_INLINE void exp4u(__m256d *v, const int U)
{
    /* lo: exp(lo) is the smallest normal double (2^-1022); hi: n stays <= 1023 */
    const __m256d lo = _mm256_set1_pd(-708.39641853226408), hi = _mm256_set1_pd(709.0);
    const __m256d magic = _mm256_set1_pd(6755399441055744.0); /* 1.5 * 2^52 */
    __m256d r[EXP_UMAX], p[EXP_UMAX], t[EXP_UMAX], under[EXP_UMAX];
PYNN_UNROLL16
    for (int u = 0; u < U; u++) {
        under[u] = _mm256_cmp_pd(v[u], lo, _CMP_LT_OQ);
        __m256d x = _mm256_min_pd(hi, _mm256_max_pd(lo, v[u]));
        /* t = magic + round(x / ln 2): n in t's low mantissa bits, rounded once */
        t[u] = _mm256_fmadd_pd(x, _mm256_set1_pd(1.4426950408889634), magic);
        __m256d n = _mm256_sub_pd(t[u], magic);
        r[u] = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
        r[u] = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r[u]);
        p[u] = _mm256_set1_pd(1.0 / 6227020800.0);
    }
    /* sum of r^k / k! for k <= 13, by Horner */
#define EXP4_STEP(c)                                                                      \
    PYNN_UNROLL16 for (int u = 0; u < U; u++) p[u] = _mm256_fmadd_pd(p[u], r[u], _mm256_set1_pd(c));
    EXP4_STEP(1.0 / 479001600.0)
    EXP4_STEP(1.0 / 39916800.0)
    EXP4_STEP(1.0 / 3628800.0)
    EXP4_STEP(1.0 / 362880.0)
    EXP4_STEP(1.0 / 40320.0)
    EXP4_STEP(1.0 / 5040.0)
    EXP4_STEP(1.0 / 720.0)
    EXP4_STEP(1.0 / 120.0)
    EXP4_STEP(1.0 / 24.0)
    EXP4_STEP(1.0 / 6.0)
    EXP4_STEP(0.5)
    EXP4_STEP(1.0)
    EXP4_STEP(1.0)
#undef EXP4_STEP
    /* 2^n: n + 1023 (1..2046) from t's low bits into the exponent field */
PYNN_UNROLL16
    for (int u = 0; u < U; u++) {
        __m256i e = _mm256_slli_epi64(
            _mm256_add_epi64(_mm256_castpd_si256(t[u]), _mm256_set1_epi64x(1023)), 52);
        v[u] = _mm256_andnot_pd(under[u], _mm256_mul_pd(p[u], _mm256_castsi256_pd(e)));
    }
}

static inline __m256d exp4(__m256d x)
{
    __m256d v[1] = {x};
    exp4u(v, 1);
    return v[0];
}

static inline double exp1d(double x)
{
    double buf[4] = {x, x, x, x};
    _mm256_storeu_pd(buf, exp4(_mm256_loadu_pd(buf)));
    return buf[0];
}

/* lanes8 and store_lanes8 in double, 4 lanes. */
static inline __m256i lanes4(size_t count)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)count),
                              _mm256_setr_epi64x(0, 1, 2, 3));
}

static inline void store_lanes4(double *p, __m256d v, size_t count)
{
    __m128d h = _mm256_castpd256_pd128(v);
    if (count >= 2) {
        _mm_storeu_pd(p, h);
        p += 2;
        count -= 2;
        h = _mm256_extractf128_pd(v, 1);
    }
    if (count)
        _mm_store_sd(p, h);
}

static inline double hmax4(__m256d v)
{
    __m128d h = _mm_max_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    h = _mm_max_sd(h, _mm_unpackhi_pd(h, h));
    return _mm_cvtsd_f64(h);
}

static inline double hsum4(__m256d v)
{
    double l[4];
    _mm256_storeu_pd(l, v);
    return (l[0] + l[2]) + (l[1] + l[3]);
}

/* The row kernels, written once (vexp_rows.h) for each type. */
#define ST float
#define VT __m256
#define VL 8
#define VEXP_NAME(name) name##_f32
#define V_SET1 _mm256_set1_ps
#define V_ZERO _mm256_setzero_ps
#define V_LOADU _mm256_loadu_ps
#define V_STOREU _mm256_storeu_ps
#define V_ADD _mm256_add_ps
#define V_SUB _mm256_sub_ps
#define V_MUL _mm256_mul_ps
#define V_DIV _mm256_div_ps
#define V_MAX _mm256_max_ps
#define V_OR _mm256_or_ps
#define V_BLENDV _mm256_blendv_ps
#define V_CMPGE(a, b) _mm256_cmp_ps((a), (b), _CMP_GE_OQ)
#define V_MASKLOAD _mm256_maskload_ps
#define V_CASTMASK _mm256_castsi256_ps
#define V_LANES lanes8
#define V_STORE_LANES store_lanes8
#define V_HMAX hmax8
#define V_HSUM hsum8
#define V_EXP exp8
#define V_EXPU exp8u
#define S_EXP exp1
#define S_FABS fabsf
#include "vexp_rows.h"

#undef ST
#undef VT
#undef VL
#undef VEXP_NAME
#undef V_SET1
#undef V_ZERO
#undef V_LOADU
#undef V_STOREU
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_MAX
#undef V_OR
#undef V_BLENDV
#undef V_CMPGE
#undef V_MASKLOAD
#undef V_CASTMASK
#undef V_LANES
#undef V_STORE_LANES
#undef V_HMAX
#undef V_HSUM
#undef V_EXP
#undef V_EXPU
#undef S_EXP
#undef S_FABS

#define ST double
#define VT __m256d
#define VL 4
#define VEXP_NAME(name) name##_f64
#define V_SET1 _mm256_set1_pd
#define V_ZERO _mm256_setzero_pd
#define V_LOADU _mm256_loadu_pd
#define V_STOREU _mm256_storeu_pd
#define V_ADD _mm256_add_pd
#define V_SUB _mm256_sub_pd
#define V_MUL _mm256_mul_pd
#define V_DIV _mm256_div_pd
#define V_MAX _mm256_max_pd
#define V_OR _mm256_or_pd
#define V_BLENDV _mm256_blendv_pd
#define V_CMPGE(a, b) _mm256_cmp_pd((a), (b), _CMP_GE_OQ)
#define V_MASKLOAD _mm256_maskload_pd
#define V_CASTMASK _mm256_castsi256_pd
#define V_LANES lanes4
#define V_STORE_LANES store_lanes4
#define V_HMAX hmax4
#define V_HSUM hsum4
#define V_EXP exp4
#define V_EXPU exp4u
#define S_EXP exp1d
#define S_FABS fabs
#include "vexp_rows.h"

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

static inline __m256 exp8(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
    x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
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

/* a = softmax(a) row by row, max-subtracted: exp never sees a positive argument.
 * A row is read in vectors, its tail (m % 8) by a masked load; the row's sum
 * adds the full vectors' lanes pairwise, then the tail's one by one. */
void pynn_softmax_avx2_f32(float *a, size_t n, size_t m)
{
    const size_t full = m / 8 * 8, tail = m - full;
    const __m256i tmask = lanes8(tail);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (size_t r = 0; r < n; r++) {
        float *row = a + r * m;
        /* the maximum: exact whatever the order (a NaN makes the row NaN below) */
        __m256 vmx = ninf, t = ninf;
        for (size_t j = 0; j < full; j += 8)
            vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(row + j));
        if (tail) {
            t = _mm256_maskload_ps(row + full, tmask);
            vmx = _mm256_max_ps(vmx, _mm256_blendv_ps(ninf, t, _mm256_castsi256_ps(tmask)));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(vmx), _mm256_extractf128_ps(vmx, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        vmx = _mm256_set1_ps(_mm_cvtss_f32(h));
        __m256 vs = _mm256_setzero_ps();
        for (size_t j = 0; j < full; j += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmx));
            _mm256_storeu_ps(row + j, e);
            vs = _mm256_add_ps(vs, e);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, vs);
        float s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
                  ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        if (tail) {
            t = exp8(_mm256_sub_ps(t, vmx));
            _mm256_storeu_ps(lanes, t);
            for (size_t k = 0; k < tail; k++)
                s += lanes[k];
        }
        __m256 inv = _mm256_set1_ps(1.0f / s);
        for (size_t j = 0; j < full; j += 8)
            _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), inv));
        if (tail)
            store_lanes8(row + full, _mm256_mul_ps(t, inv), tail);
    }
}

/* a = 1 / (1 + exp(-a)), written so exp only sees non-positive arguments. */
void pynn_logistic_avx2_f32(float *a, size_t count)
{
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 z = _mm256_loadu_ps(a + i);
        __m256 e = exp8(_mm256_or_ps(z, sign));            /* exp(-|z|) */
        __m256 pos = _mm256_div_ps(one, _mm256_add_ps(one, e));
        __m256 neg = _mm256_div_ps(e, _mm256_add_ps(one, e));
        _mm256_storeu_ps(a + i, _mm256_blendv_ps(neg, pos, _mm256_cmp_ps(z, zero, _CMP_GE_OQ)));
    }
    for (; i < count; i++) {
        float e = exp1(-fabsf(a[i]));
        a[i] = a[i] >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

/* ---- double ---------------------------------------------------------------- */

static inline __m256d exp4(__m256d x)
{
    /* lo: exp(lo) is the smallest normal double (2^-1022); hi: n stays <= 1023 */
    const __m256d lo = _mm256_set1_pd(-708.39641853226408), hi = _mm256_set1_pd(709.0);
    const __m256d magic = _mm256_set1_pd(6755399441055744.0); /* 1.5 * 2^52 */
    __m256d under = _mm256_cmp_pd(x, lo, _CMP_LT_OQ);
    x = _mm256_min_pd(hi, _mm256_max_pd(lo, x));
    /* t = magic + round(x / ln 2): n in t's low mantissa bits, rounded once */
    __m256d t = _mm256_fmadd_pd(x, _mm256_set1_pd(1.4426950408889634), magic);
    __m256d n = _mm256_sub_pd(t, magic);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93147180369123816490e-01), x);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.90821492927058770002e-10), r);
    /* sum of r^k / k! for k <= 13, by Horner */
    __m256d p = _mm256_set1_pd(1.0 / 6227020800.0);
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 479001600.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 39916800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 3628800.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 362880.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 40320.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 5040.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 720.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 120.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 24.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0 / 6.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    /* 2^n: n + 1023 (1..2046) from t's low bits into the exponent field */
    __m256i e = _mm256_slli_epi64(
        _mm256_add_epi64(_mm256_castpd_si256(t), _mm256_set1_epi64x(1023)), 52);
    return _mm256_andnot_pd(under, _mm256_mul_pd(p, _mm256_castsi256_pd(e)));
}

static inline double exp1d(double x)
{
    double buf[4] = {x, x, x, x};
    _mm256_storeu_pd(buf, exp4(_mm256_loadu_pd(buf)));
    return buf[0];
}

/* lanes8, store_lanes8 and the softmax in double, 4 lanes. */
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

void pynn_softmax_avx2_f64(double *a, size_t n, size_t m)
{
    const size_t full = m / 4 * 4, tail = m - full;
    const __m256i tmask = lanes4(tail);
    const __m256d ninf = _mm256_set1_pd(-INFINITY);
    for (size_t r = 0; r < n; r++) {
        double *row = a + r * m;
        __m256d vmx = ninf, t = ninf;
        for (size_t j = 0; j < full; j += 4)
            vmx = _mm256_max_pd(vmx, _mm256_loadu_pd(row + j));
        if (tail) {
            t = _mm256_maskload_pd(row + full, tmask);
            vmx = _mm256_max_pd(vmx, _mm256_blendv_pd(ninf, t, _mm256_castsi256_pd(tmask)));
        }
        __m128d h = _mm_max_pd(_mm256_castpd256_pd128(vmx), _mm256_extractf128_pd(vmx, 1));
        h = _mm_max_sd(h, _mm_unpackhi_pd(h, h));
        vmx = _mm256_set1_pd(_mm_cvtsd_f64(h));
        __m256d vs = _mm256_setzero_pd();
        for (size_t j = 0; j < full; j += 4) {
            __m256d e = exp4(_mm256_sub_pd(_mm256_loadu_pd(row + j), vmx));
            _mm256_storeu_pd(row + j, e);
            vs = _mm256_add_pd(vs, e);
        }
        double lanes[4];
        _mm256_storeu_pd(lanes, vs);
        double s = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
        if (tail) {
            t = exp4(_mm256_sub_pd(t, vmx));
            _mm256_storeu_pd(lanes, t);
            for (size_t k = 0; k < tail; k++)
                s += lanes[k];
        }
        __m256d inv = _mm256_set1_pd(1.0 / s);
        for (size_t j = 0; j < full; j += 4)
            _mm256_storeu_pd(row + j, _mm256_mul_pd(_mm256_loadu_pd(row + j), inv));
        if (tail)
            store_lanes4(row + full, _mm256_mul_pd(t, inv), tail);
    }
}

/* pynn_logistic_avx2_f32 in double. */
void pynn_logistic_avx2_f64(double *a, size_t count)
{
    const __m256d one = _mm256_set1_pd(1.0), zero = _mm256_setzero_pd();
    const __m256d sign = _mm256_set1_pd(-0.0);
    size_t i = 0;
    for (; i + 4 <= count; i += 4) {
        __m256d z = _mm256_loadu_pd(a + i);
        __m256d e = exp4(_mm256_or_pd(z, sign));            /* exp(-|z|) */
        __m256d pos = _mm256_div_pd(one, _mm256_add_pd(one, e));
        __m256d neg = _mm256_div_pd(e, _mm256_add_pd(one, e));
        _mm256_storeu_pd(a + i, _mm256_blendv_pd(neg, pos, _mm256_cmp_pd(z, zero, _CMP_GE_OQ)));
    }
    for (; i < count; i++) {
        double e = exp1d(-fabs(a[i]));
        a[i] = a[i] >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    }
}

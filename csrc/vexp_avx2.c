/* vexp_avx2.c -- float exponentials eight at a time for the softmax and
 * logistic activations (compiled with -mavx2 -mfma; called only after cpuid
 * said the CPU has both).
 *
 * exp(x) = 2^n * exp(r) with n = round(x / ln 2) and r = x - n ln 2 (ln 2 split
 * in two parts so r is exact), exp(r) by a degree-6 polynomial on
 * |r| <= ln(2)/2; about 1 ulp from the true value.  Inputs are clamped to the
 * range where the float result is finite and normal, and each lane is computed
 * independently: a row gives the same bits alone or in a batch. */
#include <immintrin.h>
#include <math.h>
#include "internal.h"

static inline __m256 exp8(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
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

/* a = softmax(a) row by row, max-subtracted: exp never sees a positive argument. */
void pynn_softmax_avx2_f32(float *a, size_t n, size_t m)
{
    for (size_t r = 0; r < n; r++) {
        float *row = a + r * m;
        float mx = row[0];
        for (size_t j = 1; j < m; j++)
            mx = row[j] > mx ? row[j] : mx;
        __m256 vmx = _mm256_set1_ps(mx), vs = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 8 <= m; j += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmx));
            _mm256_storeu_ps(row + j, e);
            vs = _mm256_add_ps(vs, e);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, vs);
        float s = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
                  ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        for (; j < m; j++) {
            row[j] = exp1(row[j] - mx);
            s += row[j];
        }
        float inv = 1.0f / s;
        for (j = 0; j < m; j++)
            row[j] *= inv;
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

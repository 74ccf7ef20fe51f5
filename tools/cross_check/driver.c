/*
 * driver.c -- a small C program over the portable core, for
 * tools/cross_check_aarch64.sh: it trains and runs a few small networks and
 * prints every number it gets as a hexadecimal float, one case per line, so
 * that builds for other targets (aarch64 under qemu) and with the plain-C
 * fallbacks MSVC compiles (-DPYNN_NO_GNUC_EXT) can be compared with the x86-64
 * build bit for bit.
 *
 * A line is "<kind> <case> <values...>".  kind "exact": only +, -, *, / and
 * sqrt reach these numbers (relu/identity networks, half squared error, SGD),
 * which IEEE 754 rounds the same on every target, so they must agree to the
 * bit.  kind "libm": exp, tanh, log or pow (Adam's bias correction) reach them,
 * and libm implementations may differ in the last bit, so they are compared to
 * a tolerance (and the bit-identical share is reported).
 *
 * Exit status 0, or 1 if a core call returned an error or a built-in check
 * (e.g. results independent of the thread count) failed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pynn.h"

static int g_failed = 0;

#define CHECK(call)                                                                       \
    do {                                                                                  \
        pynn_status st_ = (call);                                                         \
        if (st_ != PYNN_OK) {                                                             \
            fprintf(stderr, "%s:%d: %s returned %d\n", __FILE__, __LINE__, #call, (int)st_); \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

#define EXPECT(cond)                                                                      \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);      \
            g_failed = 1;                                                                 \
        }                                                                                 \
    } while (0)

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* Uniform in [-1, 1), exactly representable (53 random bits). */
static double uniform(uint64_t rng[4])
{
    return (double)(pynn_rng_next(rng) >> 11) * 0x1p-53 * 2.0 - 1.0;
}

static void print_values(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf(" %a", v[i]);
}

/* The typed cases, once per element type. */
#define T float
#define SFX(name) name##_f32
#define TNAME "f32"
#include "driver_typed.h"
#undef T
#undef SFX
#undef TNAME
#define T double
#define SFX(name) name##_f64
#define TNAME "f64"
#include "driver_typed.h"
#undef T
#undef SFX
#undef TNAME

/* The generator, the shuffle and the unbiased bounded integers (whose 64 x 64
 * -> 128-bit product has a plain-C form for compilers without __int128). */
static void rng_case(void)
{
    uint64_t s[4];
    pynn_rng_seed(s, 12345);
    printf("exact rng");
    for (int i = 0; i < 8; i++)
        printf(" %016" PRIx64, pynn_rng_next(s));
    const uint64_t bounds[] = {2, 3, 1000, (uint64_t)1 << 32, ((uint64_t)1 << 32) + 1,
                               (uint64_t)1 << 63, ((uint64_t)1 << 63) + 12345,
                               UINT64_MAX - 1, UINT64_MAX, 0xdeadbeefcafef00dull};
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++)
        for (int i = 0; i < 50; i++) {
            uint64_t r = pynn_rng_bounded(s, bounds[b]);
            EXPECT(r < bounds[b]);
            if (i < 4)
                printf(" %016" PRIx64, r);
        }
    int64_t idx[1000];
    for (int i = 0; i < 1000; i++)
        idx[i] = i;
    pynn_shuffle(idx, 1000, s);
    uint64_t h = 1469598103934665603ull; /* FNV-1a of the permutation */
    for (int i = 0; i < 1000; i++) {
        h ^= (uint64_t)idx[i];
        h *= 1099511628211ull;
    }
    printf(" %016" PRIx64 "\n", h);
}

/* Sizes and overflow checks (plain-C forms of __builtin_*_overflow). */
static void layout_case(void)
{
    ptrdiff_t units[] = {784, 100, 50, 10};
    pynn_net net = {3, units, PYNN_ACT_RELU, PYNN_ACT_SOFTMAX, PYNN_LOSS_CATEGORICAL_CE, 0};
    size_t np, ws, wsc, w_off[3], b_off[3];
    CHECK(pynn_param_count(&np, &net));
    CHECK(pynn_workspace_size(&ws, &net, 200));
    CHECK(pynn_workspace_size_csr(&wsc, &net, 200));
    CHECK(pynn_param_offsets(w_off, b_off, &net));
    printf("exact layout %zu %zu %zu %zu %zu %zu", np, ws, wsc, w_off[2], b_off[2], sizeof(size_t));
    /* products that overflow size_t must be refused, not wrapped */
    ptrdiff_t big = PTRDIFF_MAX;
    ptrdiff_t huge[] = {big, big, 3};
    pynn_net bad = {2, huge, PYNN_ACT_RELU, PYNN_ACT_IDENTITY, PYNN_LOSS_HALF_SQUARED, 0};
    pynn_status st = pynn_param_count(&np, &bad);
    EXPECT(st == PYNN_ERR_OVERFLOW);
    ptrdiff_t wide[] = {4, big / 2, 2};
    pynn_net bad2 = {2, wide, PYNN_ACT_RELU, PYNN_ACT_IDENTITY, PYNN_LOSS_HALF_SQUARED, 0};
    pynn_status st2 = pynn_workspace_size(&ws, &bad2, 1000);
    EXPECT(st2 == PYNN_ERR_OVERFLOW);
    printf(" %d %d\n", (int)st, (int)st2);
}

int main(void)
{
    /* the portable build: the generic path only, whatever PYNN_SIMD says */
    EXPECT(pynn_simd_get() == 0);
    EXPECT(pynn_simd_supported(0) && !pynn_simd_supported(1) && !pynn_simd_supported(2));
    EXPECT(pynn_simd_set(1) == PYNN_ERR_UNSUPPORTED);
    EXPECT(pynn_max_threads() >= 1);
    rng_case();
    layout_case();
    cases_f32();
    cases_f64();
    fprintf(stderr, "driver: openmp %d, max threads %d, %s\n", pynn_has_openmp(),
            pynn_max_threads(), g_failed ? "CHECKS FAILED" : "checks passed");
    return g_failed;
}

/*
 * dispatch.c -- what the machine runs: the instruction set of the kernels
 * (cpuid, the PYNN_SIMD environment variable, pynn_simd_set) and the thread
 * counts OpenMP offers.  Untyped.
 */
#include "pynn.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int pynn_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int pynn_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* ---- instruction set dispatch ---------------------------------------------- */

/* The names PYNN_SIMD and pynn_simd_name use, indexed by pynn_isa. */
static const char *const isa_names[] = {"generic", "avx2", "avx512"};
_Static_assert(sizeof(isa_names) / sizeof(isa_names[0]) == PYNN_ISA_AVX512 + 1,
               "one name per pynn_isa");

int pynn_simd_supported(int isa)
{
    if (isa == PYNN_ISA_GENERIC)
        return 1;
#ifdef PYNN_X86_SIMD
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == PYNN_ISA_AVX2)
        return avx2;
    if (isa == PYNN_ISA_AVX512)
        return avx2 && __builtin_cpu_supports("avx512f");
#endif
    return 0;
}

const char *pynn_simd_name(int isa)
{
    return isa >= 0 && isa <= PYNN_ISA_AVX512 ? isa_names[isa] : NULL;
}

/* The ISA in use; -1 until the first kernel call or pynn_simd_set chooses. */
static int g_isa = -1;

/* The best the CPU has, unless PYNN_SIMD names another path it can run. */
static int choose_isa(void)
{
    int best = PYNN_ISA_GENERIC;
    for (int i = PYNN_ISA_AVX512; i > PYNN_ISA_GENERIC; i--)
        if (pynn_simd_supported(i)) {
            best = i;
            break;
        }
    const char *env = getenv("PYNN_SIMD");
    if (env != NULL)
        for (int i = 0; i <= PYNN_ISA_AVX512; i++)
            if (strcmp(env, isa_names[i]) == 0 && pynn_simd_supported(i))
                return i;
    return best;
}

pynn_isa pynn__isa(void)
{
    int v = __atomic_load_n(&g_isa, __ATOMIC_RELAXED);
    if (v < 0) {
        v = choose_isa();
        __atomic_store_n(&g_isa, v, __ATOMIC_RELAXED);
    }
    return (pynn_isa)v;
}

int pynn_simd_get(void) { return (int)pynn__isa(); }

pynn_status pynn_simd_set(int isa)
{
    if (isa < 0 || isa > PYNN_ISA_AVX512)
        return PYNN_ERR_ARG;
    if (!pynn_simd_supported(isa))
        return PYNN_ERR_UNSUPPORTED;
    __atomic_store_n(&g_isa, isa, __ATOMIC_RELAXED);
    return PYNN_OK;
}

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

/* ---- threads ---------------------------------------------------------------- */

/* libgomp is not fork-safe: a child forked after a team of threads ran hangs at
 * its first parallel region (the pool's threads exist only in the parent).  So
 * a child forked once a team has run (here or in an ancestor) stays on one
 * thread for good.  pynn__team_flag is set before any team of more than one thread
 * starts (pynn__team, internal.h); the fork handler below reads it in the child. */
int pynn__team_flag = 0;
static int g_forked = 0;
/* Processors this process may run on (its affinity mask); 0 until first asked. */
static int g_procs = 0;

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>

static void after_fork_in_child(void)
{
    if (__atomic_load_n(&pynn__team_flag, __ATOMIC_RELAXED))
        __atomic_store_n(&g_forked, 1, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
}
#endif

int pynn_forked(void) { return __atomic_load_n(&g_forked, __ATOMIC_RELAXED); }

void pynn_mark_forked(void) { __atomic_store_n(&g_forked, 1, __ATOMIC_RELAXED); }

int pynn_threads(int n_threads)
{
#ifdef _OPENMP
    if (__atomic_load_n(&g_forked, __ATOMIC_RELAXED))
        return 1;
    int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
    /* more threads than processors cannot pay, and a large team can fail to
     * start (libgomp then ends the process) */
    int procs = __atomic_load_n(&g_procs, __ATOMIC_RELAXED);
    if (procs < 1) {
        procs = omp_get_num_procs();
        if (procs < 1)
            procs = 1;
        __atomic_store_n(&g_procs, procs, __ATOMIC_RELAXED);
    }
    if (nt > procs)
        nt = procs;
    return nt < 1 ? 1 : nt;
#else
    (void)n_threads;
    return 1;
#endif
}

int pynn_max_threads(void) { return pynn_threads(0); }

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

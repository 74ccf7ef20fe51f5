/*
 * dispatch.c -- what the machine runs: the instruction set of the kernels
 * (cpuid, the PYNN_SIMD environment variable, pynn_simd_set) and the thread
 * counts OpenMP offers.  Untyped.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall(), for the AMX permission, under -std=c11 */
#endif
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
#ifdef _OPENMP
/* Processors this process may run on (its affinity mask); 0 until first asked. */
static int g_procs = 0;
#endif

/* Only where there is fork (and so pthread_atfork): Windows has neither, and
 * the handler is registered by a GCC/Clang constructor, which every Unix
 * compiler pynn is built with supports. */
#if (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#include <pthread.h>

static void after_fork_in_child(void)
{
    if (PYNN_LOAD_INT(&pynn__team_flag))
        PYNN_STORE_INT(&g_forked, 1);
}

__attribute__((constructor)) static void install_fork_handler(void)
{
    pthread_atfork(NULL, NULL, after_fork_in_child);
}
#endif

int pynn_forked(void) { return PYNN_LOAD_INT(&g_forked); }

void pynn_mark_forked(void) { PYNN_STORE_INT(&g_forked, 1); }

int pynn_threads(int n_threads)
{
#ifdef _OPENMP
    if (PYNN_LOAD_INT(&g_forked))
        return 1;
    int nt = n_threads > 0 ? n_threads : omp_get_max_threads();
    /* more threads than processors cannot pay, and a large team can fail to
     * start (libgomp then ends the process) */
    int procs = PYNN_LOAD_INT(&g_procs);
    if (procs < 1) {
        procs = omp_get_num_procs();
        if (procs < 1)
            procs = 1;
        PYNN_STORE_INT(&g_procs, procs);
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
static const char *const isa_names[] = {"generic", "avx2", "avx512", "avx512_bf16", "amx"};
_Static_assert(sizeof(isa_names) / sizeof(isa_names[0]) == PYNN_ISA_COUNT,
               "one name per pynn_isa");

#ifdef PYNN_X86_SIMD
/* What the CPU and the operating system support, read once from cpuid and
 * XCR0 (the register state the OS saves on a context switch): a kernel using
 * ymm (zmm) registers may run only if the OS saves them, whatever cpuid says of
 * the CPU.  The same code for every compiler; only the two instructions are
 * spelled per compiler. */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static void x86_cpuid(uint32_t r[4], uint32_t leaf, uint32_t sub)
{
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++)
        r[i] = (uint32_t)v[i];
}
static uint64_t read_xcr0(void) { return (uint64_t)_xgetbv(0); }
#else
#include <cpuid.h>
static void x86_cpuid(uint32_t r[4], uint32_t leaf, uint32_t sub)
{
    unsigned a, b, c, d;
    __cpuid_count(leaf, sub, a, b, c, d);
    r[0] = a; r[1] = b; r[2] = c; r[3] = d;
}
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif
#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

/* cpuid bits (Intel SDM vol. 2A, CPUID) and XCR0 state components. */
#define CPUID1_ECX_FMA (1u << 12)
#define CPUID1_ECX_OSXSAVE (1u << 27)
#define CPUID1_ECX_AVX (1u << 28)
#define CPUID7_EBX_AVX2 (1u << 5)
#define CPUID7_EBX_AVX512F (1u << 16)
#define CPUID7_EBX_AVX512BW (1u << 30) /* implied by -mavx512bf16: the bf16 kernels use it */
#define CPUID7_1_EAX_AVX512_BF16 (1u << 5) /* leaf 7, sub-leaf 1 */
#define CPUID7_EDX_AMX_BF16 (1u << 22)
#define CPUID7_EDX_AMX_TILE (1u << 24)
#define XCR0_AMX_STATE 0x60000u /* XTILECFG and XTILEDATA */
#define XCR0_AVX_STATE 0x06u    /* SSE (xmm) and AVX (upper ymm) state */
#define XCR0_AVX512_STATE 0xe0u /* opmask, upper zmm0-15 and zmm16-31 state */

/* Bit i set: the CPU and the OS run path i (pynn_isa). */
static int detect_isas(void)
{
    int isas = 1 << PYNN_ISA_GENERIC;
    uint32_t r[4];
    x86_cpuid(r, 0, 0);
    if (r[0] < 7)
        return isas;
    x86_cpuid(r, 1, 0);
    uint32_t ecx1 = r[2];
    const uint32_t need1 = CPUID1_ECX_FMA | CPUID1_ECX_OSXSAVE | CPUID1_ECX_AVX;
    if ((ecx1 & need1) != need1) /* OSXSAVE clear: XGETBV itself would fault */
        return isas;
    uint64_t xcr0 = read_xcr0();
    if ((xcr0 & XCR0_AVX_STATE) != XCR0_AVX_STATE)
        return isas;
    x86_cpuid(r, 7, 0);
    uint32_t ebx7 = r[1];
    if (!(ebx7 & CPUID7_EBX_AVX2))
        return isas;
    isas |= 1 << PYNN_ISA_AVX2;
    int os_avx512 = (xcr0 & XCR0_AVX512_STATE) == XCR0_AVX512_STATE;
#ifdef __APPLE__
    /* macOS enables the AVX-512 state of a thread at its first use, so XCR0
     * may not show it yet; the kernel says whether it will. */
    int on = 0;
    size_t len = sizeof on;
    if (!os_avx512 && sysctlbyname("hw.optional.avx512f", &on, &len, NULL, 0) == 0 && on)
        os_avx512 = 1;
#endif
    if ((ebx7 & CPUID7_EBX_AVX512F) && os_avx512) {
        isas |= 1 << PYNN_ISA_AVX512;
#ifdef PYNN_AMX_KERNEL
        /* the tile state must be one the OS saves; whether this process may
         * use it is asked of Linux later (amx_permission) */
        const uint32_t amx = CPUID7_EDX_AMX_BF16 | CPUID7_EDX_AMX_TILE;
        if ((r[3] & amx) == amx && (xcr0 & XCR0_AMX_STATE) == XCR0_AMX_STATE &&
            (ebx7 & CPUID7_EBX_AVX512BW))
            isas |= 1 << PYNN_ISA_AMX;
#endif
#ifdef PYNN_AVX512BF16_KERNEL
        /* sub-leaf 1 exists when leaf 7's EAX (its last sub-leaf) says so */
        uint32_t subleaves = r[0];
        if (subleaves >= 1) {
            x86_cpuid(r, 7, 1);
            if ((r[0] & CPUID7_1_EAX_AVX512_BF16) && (ebx7 & CPUID7_EBX_AVX512BW))
                isas |= 1 << PYNN_ISA_AVX512_BF16;
        }
#endif
    }
    return isas;
}

/* The L1 data cache's size in KiB, from cpuid: Intel's deterministic cache
 * leaf (4), AMD's L1 leaf (0x80000005); 0 where neither says. */
static int detect_l1d_kib(void)
{
    uint32_t r[4];
    x86_cpuid(r, 0, 0);
    uint32_t top = r[0];
    const int intel = r[1] == 0x756e6547u; /* "Genu" (GenuineIntel) */
    const int amd = r[1] == 0x68747541u;   /* "Auth" (AuthenticAMD) */
    if (intel && top >= 4) {
        for (uint32_t i = 0; i < 16; i++) {
            x86_cpuid(r, 4, i);
            uint32_t type = r[0] & 31u, level = (r[0] >> 5) & 7u;
            if (type == 0)
                break;
            if (level == 1 && (type == 1 || type == 3)) { /* data or unified */
                size_t ways = (r[1] >> 22) + 1, parts = ((r[1] >> 12) & 0x3ffu) + 1;
                size_t line = (r[1] & 0xfffu) + 1, sets = (size_t)r[2] + 1;
                return (int)(ways * parts * line * sets >> 10);
            }
        }
        return 0;
    }
    x86_cpuid(r, 0x80000000u, 0);
    if (amd && r[0] >= 0x80000005u) {
        x86_cpuid(r, 0x80000005u, 0);
        return (int)(r[2] >> 24);
    }
    return 0;
}

/* detect_isas(), once; -1 until then. */
static int g_isas = -1;

#if defined(PYNN_AMX_KERNEL) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
/* Linux lets a process use the AMX tile data (XTILEDATA, state component 18)
 * only once it asked (arch_prctl ARCH_REQ_XCOMP_PERM, Linux 5.16+): asked the
 * first time the amx path is looked at, once per process; 1 if granted.
 * Elsewhere the path is not offered. */
static int g_amx_perm = -1;
static int amx_permission(void)
{
    int v = PYNN_LOAD_INT(&g_amx_perm);
    if (v < 0) {
        v = 0;
#if defined(PYNN_AMX_KERNEL) && defined(__linux__) && defined(SYS_arch_prctl)
        v = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#endif
        PYNN_STORE_INT(&g_amx_perm, v);
    }
    return v;
}
#endif

int pynn_simd_supported(int isa)
{
    if (isa == PYNN_ISA_GENERIC)
        return 1;
#ifdef PYNN_X86_SIMD
    if (isa > PYNN_ISA_GENERIC && isa < PYNN_ISA_COUNT) {
        int isas = PYNN_LOAD_INT(&g_isas);
        if (isas < 0) {
            isas = detect_isas();
            PYNN_STORE_INT(&g_isas, isas);
        }
        if (!((isas >> isa) & 1))
            return 0;
        return isa == PYNN_ISA_AMX ? amx_permission() : 1;
    }
#endif
    return 0;
}

const char *pynn_simd_name(int isa)
{
    return isa >= 0 && isa < PYNN_ISA_COUNT ? isa_names[isa] : NULL;
}

/* The ISA in use; -1 until the first kernel call or pynn_simd_set chooses. */
static int g_isa = -1;

/* The best the CPU has, unless PYNN_SIMD names another path it can run: amx
 * where the CPU has the tiles and Linux grants their state.  Its float32 and
 * float64 products are the AVX-512 kernels (as avx512_bf16's); the bfloat16
 * mode's run on the tiles.  On an Intel Xeon with AMX (2 cores, one thread) that
 * mode trained 784-256-128-10 at 1.6x and 784-1024-1024-10 at 2.4x the float32
 * speed, where avx512_bf16's vdpbf16ps kernels ran at 0.6x (on an AMD Zen 5,
 * which has no AMX, those run at 1.6-1.7x); the tests pass on the tiles there,
 * as on an Emerald Rapids before. */
static int choose_isa(void)
{
    int best = PYNN_ISA_GENERIC;
    for (int i = PYNN_ISA_AMX; i > PYNN_ISA_GENERIC; i--)
        if (pynn_simd_supported(i)) {
            best = i;
            break;
        }
    const char *env = getenv("PYNN_SIMD");
    if (env != NULL)
        for (int i = 0; i < PYNN_ISA_COUNT; i++)
            if (strcmp(env, isa_names[i]) == 0 && pynn_simd_supported(i))
                return i;
    return best;
}

pynn_isa pynn__isa(void)
{
    int v = PYNN_LOAD_INT(&g_isa);
    if (v < 0) {
        v = choose_isa();
        PYNN_STORE_INT(&g_isa, v);
    }
    return (pynn_isa)v;
}

int pynn_simd_get(void) { return (int)pynn__isa(); }

pynn_status pynn_simd_set(int isa)
{
    if (isa < 0 || isa >= PYNN_ISA_COUNT)
        return PYNN_ERR_ARG;
    if (!pynn_simd_supported(isa))
        return PYNN_ERR_UNSUPPORTED;
    PYNN_STORE_INT(&g_isa, isa);
    return PYNN_OK;
}

/* The L1 data cache the products block for (KiB): -1 until read from the CPU
 * (0 where it cannot be: not x86, or cpuid does not say). */
static int g_l1d_kib = -1;

static int l1d_kib(void)
{
    int v = PYNN_LOAD_INT(&g_l1d_kib);
    if (v < 0) {
        v = 0;
#ifdef PYNN_X86_SIMD
        v = detect_l1d_kib();
#endif
        PYNN_STORE_INT(&g_l1d_kib, v);
    }
    return v;
}

int pynn_gemm_l1d_kib(int kib)
{
    int before = l1d_kib();
    if (kib >= 0)
        PYNN_STORE_INT(&g_l1d_kib, kib);
    return before;
}

/* The largest W (KiB) whose plain gradient descent is fused (internal.h:
 * PYNN_SGD_FUSE_MAX_BYTES unless a test set another). */
static int g_fuse_max_kib = (int)(PYNN_SGD_FUSE_MAX_BYTES >> 10);

size_t pynn__sgd_fuse_max(void)
{
    return (size_t)PYNN_LOAD_INT(&g_fuse_max_kib) << 10;
}

int pynn_sgd_fuse_max_kib(int kib)
{
    int before = PYNN_LOAD_INT(&g_fuse_max_kib);
    if (kib >= 0)
        PYNN_STORE_INT(&g_fuse_max_kib, kib);
    return before;
}

size_t pynn_gemm_kc_max(size_t panel_row_bytes, size_t tile_row_bytes)
{
    size_t l1 = (size_t)l1d_kib() << 10;
    if (l1 < ((size_t)48 << 10))
        return PYNN_GEMM_KC;
    if (3 * PYNN_GEMM_KC * panel_row_bytes > 2 * l1)
        return PYNN_GEMM_KC_MIN;
    size_t kc = l1 * PYNN_GEMM_KC_L1_PCT / 100 / (panel_row_bytes + tile_row_bytes);
    return kc < PYNN_GEMM_KC_MIN ? PYNN_GEMM_KC_MIN : kc > PYNN_GEMM_KC ? PYNN_GEMM_KC : kc;
}

/* The emulation of a pair kernel the bfloat16 products run on (tests;
 * gemm_emu.c): 0 none (default), 1 vdpbf16ps, 2 AMX. */
static int g_bf16_emulation = 0;

int pynn_bf16_emulation(int on)
{
    if (on < 0 || on > 2)
        return -1;
    int before = PYNN_LOAD_INT(&g_bf16_emulation);
    PYNN_STORE_INT(&g_bf16_emulation, on);
    return before;
}

int pynn__bf16_pairs(void)
{
    int emu = PYNN_LOAD_INT(&g_bf16_emulation);
    if (emu)
        return emu == 1 ? 2 : 4;
    int isa = (int)pynn__isa();
    return isa == PYNN_ISA_AVX512_BF16 ? 1 : isa == PYNN_ISA_AMX ? 3 : 0;
}

/* The team's barrier (internal.h: pynn__sync, pynn_tbar).
 *
 * With PYNN_TBAR, a counter and a generation: each thread reads the
 * generation, then adds itself to the counter (acquire-release: its writes
 * before the barrier go with it); the last to arrive resets the counter and
 * moves the generation on (release: everything the team wrote), and the others
 * wait until they read the new generation (acquire).  Nobody touches the
 * counter of the next barrier before it has read the new generation, which is
 * stored after the reset.  Waiting: PYNN_TBAR_SPINS polls with a pause between,
 * then sleep on the generation's futex (so a thread left waiting long, on a
 * loaded machine or a thread of the team descheduled, gives its core away, as
 * libgomp's barrier does after its own spin).  Sleepers are counted before the
 * last look at the generation, and the releaser looks at the count after
 * storing it, both sequentially consistent: either the sleeper sees the new
 * generation or the releaser sees the sleeper and wakes it (and futex_wait
 * returns at once if the generation moved before it sleeps).
 * OMP_WAIT_POLICY=passive: no spin, as libgomp. */
#if PYNN_TBAR
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>

#if defined(__x86_64__) || defined(__i386__)
#define PYNN_CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define PYNN_CPU_RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define PYNN_CPU_RELAX() ((void)0)
#endif

/* Polls before sleeping: about 0.1-0.3 ms (a pause is 40-140 cycles). */
#define PYNN_TBAR_SPINS 4096

/* -1: not read yet; else the polls before sleeping */
static int g_tbar_spins = -1;

static int tbar_spins(void)
{
    int s = PYNN_LOAD_INT(&g_tbar_spins);
    if (s < 0) {
        const char *p = getenv("OMP_WAIT_POLICY");
        s = p && (strcmp(p, "passive") == 0 || strcmp(p, "PASSIVE") == 0) ? 0 : PYNN_TBAR_SPINS;
        PYNN_STORE_INT(&g_tbar_spins, s);
    }
    return s;
}

static void tbar_wait(pynn_tbar *b, unsigned g)
{
    for (int i = tbar_spins(); i > 0; i--) {
        if (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) != g)
            return;
        PYNN_CPU_RELAX();
    }
    __atomic_add_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&b->gen, __ATOMIC_SEQ_CST) == g)
        syscall(SYS_futex, &b->gen, FUTEX_WAIT_PRIVATE, g, NULL, NULL, 0);
    __atomic_sub_fetch(&b->sleepers, 1, __ATOMIC_SEQ_CST);
}

static uint64_t g_tbar_passed = 0;

static void tbar_pass(pynn_tbar *b, int size, int first)
{
    if (first)
        __atomic_add_fetch(&g_tbar_passed, 1, __ATOMIC_RELAXED);
    unsigned g = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->arrived, 1, __ATOMIC_ACQ_REL) < size) {
        tbar_wait(b, g);
        return;
    }
    __atomic_store_n(&b->arrived, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&b->gen, g + 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&b->sleepers, __ATOMIC_SEQ_CST))
        syscall(SYS_futex, &b->gen, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#endif

uint64_t pynn_team_barriers(void)
{
#if PYNN_TBAR
    return __atomic_load_n(&g_tbar_passed, __ATOMIC_RELAXED);
#else
    return 0;
#endif
}

void pynn__barrier(const pynn_team *tm)
{
#if PYNN_TBAR
    if (tm->bar) {
        tbar_pass(tm->bar, tm->size, tm->id == 0);
        return;
    }
#endif
    (void)tm;
#ifdef _OPENMP
#pragma omp barrier
#endif
}

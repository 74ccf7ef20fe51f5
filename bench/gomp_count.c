/* gomp_count: counts calls of libgomp's entry points, for bench/syncs.py.
 *
 *   cc -O2 -shared -fPIC -o gomp_count.so bench/gomp_count.c -ldl
 *   LD_PRELOAD=./gomp_count.so python ...
 *
 * Preloaded, each GOMP_* function below takes the place of libgomp's for every
 * library that calls it through the PLT (as an OpenMP program built by gcc
 * does): the wrapper counts the call, then calls libgomp's own function.
 * libgomp's internal calls to itself are not seen, so nothing counts twice.
 *
 * Each entry point has four counters, indexed by two bits: GC_MAIN (the caller
 * is the process's main thread, gettid() == getpid()) and GC_IN_RANGE (the
 * return address lies in [lo, hi) set by gomp_count_set_range, the code of one
 * library; every address while no range is set).  Read from Python with ctypes:
 * gomp_count_entries(), gomp_count_name(i), gomp_count_kind(i),
 * gomp_count_snapshot(out, n) (out[4 * i + bits]), gomp_count_reset().
 *
 * The prototypes are libgomp's (libgomp_g.h): a wrong one would corrupt the
 * call, so only entry points with a known, stable signature are here.  Tasks,
 * targets, ordered, doacross and the *_next functions are not counted
 * (bench/syncs.py lists any GOMP_ symbol a library imports that is not here).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef unsigned long long ull;
typedef void (*gc_fn)(void *);

enum { GC_OTHER = 0, GC_REGION = 1, GC_BARRIER = 2, GC_SERIAL = 3 };
enum { GC_MAIN = 1, GC_IN_RANGE = 2 };

/* X(return type, name, (parameters), (arguments), kind, num_threads argument or 0);
 * V(the same) for a function returning void.
 * kind: GC_REGION starts a parallel region (a fork and, later, a join);
 * GC_BARRIER is a barrier of the caller's team (every member calls it once);
 * GC_OTHER neither (locks, work-sharing starts, no-wait ends, task waits). */
#define GC_ENTRIES(X, V) \
    V(void, GOMP_parallel, (gc_fn fn, void *data, unsigned nt, unsigned flags), \
      (fn, data, nt, flags), GC_REGION, nt) \
    V(void, GOMP_parallel_start, (gc_fn fn, void *data, unsigned nt), (fn, data, nt), \
      GC_REGION, nt) \
    V(void, GOMP_parallel_end, (void), (), GC_OTHER, 0) \
    X(unsigned, GOMP_parallel_reductions, (gc_fn fn, void *data, unsigned nt, unsigned flags), \
      (fn, data, nt, flags), GC_REGION, nt) \
    V(void, GOMP_parallel_loop_static, (gc_fn fn, void *data, unsigned nt, long s, long e, \
      long i, long c, unsigned flags), (fn, data, nt, s, e, i, c, flags), GC_REGION, nt) \
    V(void, GOMP_parallel_loop_dynamic, (gc_fn fn, void *data, unsigned nt, long s, long e, \
      long i, long c, unsigned flags), (fn, data, nt, s, e, i, c, flags), GC_REGION, nt) \
    V(void, GOMP_parallel_loop_guided, (gc_fn fn, void *data, unsigned nt, long s, long e, \
      long i, long c, unsigned flags), (fn, data, nt, s, e, i, c, flags), GC_REGION, nt) \
    V(void, GOMP_parallel_loop_nonmonotonic_dynamic, (gc_fn fn, void *data, unsigned nt, \
      long s, long e, long i, long c, unsigned flags), (fn, data, nt, s, e, i, c, flags), \
      GC_REGION, nt) \
    V(void, GOMP_parallel_loop_nonmonotonic_guided, (gc_fn fn, void *data, unsigned nt, \
      long s, long e, long i, long c, unsigned flags), (fn, data, nt, s, e, i, c, flags), \
      GC_REGION, nt) \
    V(void, GOMP_parallel_loop_runtime, (gc_fn fn, void *data, unsigned nt, long s, long e, \
      long i, unsigned flags), (fn, data, nt, s, e, i, flags), GC_REGION, nt) \
    V(void, GOMP_parallel_loop_nonmonotonic_runtime, (gc_fn fn, void *data, unsigned nt, \
      long s, long e, long i, unsigned flags), (fn, data, nt, s, e, i, flags), GC_REGION, nt) \
    V(void, GOMP_parallel_loop_maybe_nonmonotonic_runtime, (gc_fn fn, void *data, \
      unsigned nt, long s, long e, long i, unsigned flags), (fn, data, nt, s, e, i, flags), \
      GC_REGION, nt) \
    V(void, GOMP_parallel_sections, (gc_fn fn, void *data, unsigned nt, unsigned count, \
      unsigned flags), (fn, data, nt, count, flags), GC_REGION, nt) \
    V(void, GOMP_barrier, (void), (), GC_BARRIER, 0) \
    X(bool, GOMP_barrier_cancel, (void), (), GC_BARRIER, 0) \
    V(void, GOMP_loop_end, (void), (), GC_BARRIER, 0) \
    X(bool, GOMP_loop_end_cancel, (void), (), GC_BARRIER, 0) \
    V(void, GOMP_sections_end, (void), (), GC_BARRIER, 0) \
    X(bool, GOMP_sections_end_cancel, (void), (), GC_BARRIER, 0) \
    V(void, GOMP_loop_end_nowait, (void), (), GC_OTHER, 0) \
    V(void, GOMP_sections_end_nowait, (void), (), GC_OTHER, 0) \
    X(bool, GOMP_single_start, (void), (), GC_OTHER, 0) \
    X(void *, GOMP_single_copy_start, (void), (), GC_OTHER, 0) \
    V(void, GOMP_single_copy_end, (void *data), (data), GC_OTHER, 0) \
    V(void, GOMP_critical_start, (void), (), GC_OTHER, 0) \
    V(void, GOMP_critical_end, (void), (), GC_OTHER, 0) \
    V(void, GOMP_critical_name_start, (void **p), (p), GC_OTHER, 0) \
    V(void, GOMP_critical_name_end, (void **p), (p), GC_OTHER, 0) \
    V(void, GOMP_atomic_start, (void), (), GC_OTHER, 0) \
    V(void, GOMP_atomic_end, (void), (), GC_OTHER, 0) \
    X(bool, GOMP_loop_static_start, (long s, long e, long i, long c, long *is, long *ie), \
      (s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_dynamic_start, (long s, long e, long i, long c, long *is, long *ie), \
      (s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_guided_start, (long s, long e, long i, long c, long *is, long *ie), \
      (s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_nonmonotonic_dynamic_start, (long s, long e, long i, long c, long *is, \
      long *ie), (s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_nonmonotonic_guided_start, (long s, long e, long i, long c, long *is, \
      long *ie), (s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_runtime_start, (long s, long e, long i, long *is, long *ie), \
      (s, e, i, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_start, (long s, long e, long i, long sched, long c, long *is, long *ie, \
      uintptr_t *red, void **mem), (s, e, i, sched, c, is, ie, red, mem), GC_OTHER, 0) \
    X(bool, GOMP_loop_ull_static_start, (bool up, ull s, ull e, ull i, ull c, ull *is, \
      ull *ie), (up, s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_ull_dynamic_start, (bool up, ull s, ull e, ull i, ull c, ull *is, \
      ull *ie), (up, s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_ull_guided_start, (bool up, ull s, ull e, ull i, ull c, ull *is, \
      ull *ie), (up, s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_ull_nonmonotonic_dynamic_start, (bool up, ull s, ull e, ull i, ull c, \
      ull *is, ull *ie), (up, s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_ull_nonmonotonic_guided_start, (bool up, ull s, ull e, ull i, ull c, \
      ull *is, ull *ie), (up, s, e, i, c, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_ull_runtime_start, (bool up, ull s, ull e, ull i, ull *is, ull *ie), \
      (up, s, e, i, is, ie), GC_OTHER, 0) \
    X(bool, GOMP_loop_ull_start, (bool up, ull s, ull e, ull i, long sched, ull c, ull *is, \
      ull *ie, uintptr_t *red, void **mem), (up, s, e, i, sched, c, is, ie, red, mem), \
      GC_OTHER, 0) \
    X(unsigned, GOMP_sections_start, (unsigned count), (count), GC_OTHER, 0) \
    X(unsigned, GOMP_sections2_start, (unsigned count, uintptr_t *red, void **mem), \
      (count, red, mem), GC_OTHER, 0) \
    V(void, GOMP_taskwait, (void), (), GC_OTHER, 0) \
    V(void, GOMP_taskgroup_end, (void), (), GC_OTHER, 0)

#define GC_INDEX(ret, name, params, args, kind, nt) GC_I_##name,
enum { GC_ENTRIES(GC_INDEX, GC_INDEX) GC_I_SERIAL, GC_N };

#define GC_NAME(ret, name, params, args, kind, nt) #name,
static const char *const gc_names[GC_N] = {
    GC_ENTRIES(GC_NAME, GC_NAME)
    /* region entries called with num_threads 1 (an if() clause that was false,
     * or num_threads(1)): already counted above, counted here again */
    "serial_regions"};

#define GC_KIND(ret, name, params, args, kind, nt) kind,
static const int gc_kinds[GC_N] = {GC_ENTRIES(GC_KIND, GC_KIND) GC_SERIAL};

static long gc_counts[GC_N][4];
static uintptr_t gc_lo, gc_hi; /* the range of return addresses counted as in range */
static __thread int gc_is_main = -1;

static void gc_count(int i, void *ret, unsigned nt, int kind)
{
    if (gc_is_main < 0)
        gc_is_main = (pid_t)syscall(SYS_gettid) == getpid();
    uintptr_t lo = __atomic_load_n(&gc_lo, __ATOMIC_RELAXED);
    uintptr_t hi = __atomic_load_n(&gc_hi, __ATOMIC_RELAXED);
    uintptr_t ra = (uintptr_t)ret;
    int bits = (gc_is_main ? GC_MAIN : 0) | (hi == 0 || (ra >= lo && ra < hi) ? GC_IN_RANGE : 0);
    __atomic_fetch_add(&gc_counts[i][bits], 1, __ATOMIC_RELAXED);
    if (kind == GC_REGION && nt == 1)
        __atomic_fetch_add(&gc_counts[GC_I_SERIAL][bits], 1, __ATOMIC_RELAXED);
}

/* dl_iterate_phdr's callback: the first loaded object whose file name starts
 * with an OpenMP runtime's name, under any suffix (a wheel repaired by
 * auditwheel ships libgomp as pynn_mlp.libs/libgomp-<hash>.so.1.0.0). */
static int gc_find_runtime(struct dl_phdr_info *info, size_t size, void *out)
{
    (void)size;
    const char *path = info->dlpi_name, *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    if (base && (strncmp(base, "libgomp", 7) == 0 || strncmp(base, "libomp", 6) == 0 ||
                 strncmp(base, "libiomp", 7) == 0)) {
        *(const char **)out = path;
        return 1;
    }
    return 0;
}

/* libgomp's function `name`: the next definition after this library, or (when
 * libgomp came with a library dlopen'ed RTLD_LOCAL, as Python loads extension
 * modules, so it is not in the global scope) the one in the libgomp loaded. */
static void *gc_real(const char *name)
{
    static const char *const libs[] = {"libgomp.so.1", "libgomp.so", "libomp.so",
                                       "libomp.so.5", "libiomp5.so"};
    void *p = dlsym(RTLD_NEXT, name);
    for (size_t k = 0; p == NULL && k < sizeof libs / sizeof libs[0]; k++) {
        void *h = dlopen(libs[k], RTLD_LAZY | RTLD_NOLOAD);
        if (h != NULL)
            p = dlsym(h, name); /* the handle is kept: the library stays loaded */
    }
    if (p == NULL) {
        const char *path = NULL;
        dl_iterate_phdr(gc_find_runtime, &path);
        void *h = path ? dlopen(path, RTLD_LAZY | RTLD_NOLOAD) : NULL;
        if (h != NULL)
            p = dlsym(h, name);
    }
    if (p == NULL) {
        fprintf(stderr, "gomp_count: no OpenMP runtime defines %s\n", name);
        abort();
    }
    return p;
}

/* The wrapper of `name`: count, then call libgomp's function, looked up once
 * (the POSIX way of turning dlsym's void * into a function pointer). */
#define GC_WRAP_(ret, name, params, args, kind, nt, result)                          \
    ret name params                                                                  \
    {                                                                                \
        static ret(*real) params;                                                    \
        ret(*f) params = __atomic_load_n(&real, __ATOMIC_ACQUIRE);                   \
        if (f == NULL) {                                                             \
            *(void **)&f = gc_real(#name);                                           \
            __atomic_store_n(&real, f, __ATOMIC_RELEASE);                            \
        }                                                                            \
        gc_count(GC_I_##name, __builtin_return_address(0), (unsigned)(nt), kind);    \
        result f args;                                                               \
    }
#define GC_WRAP(ret, name, params, args, kind, nt) \
    GC_WRAP_(ret, name, params, args, kind, nt, return)
#define GC_WRAP_VOID(ret, name, params, args, kind, nt) \
    GC_WRAP_(ret, name, params, args, kind, nt, )
GC_ENTRIES(GC_WRAP, GC_WRAP_VOID)

/* ---- what bench/syncs.py reads through ctypes ---------------------------------- */

int gomp_count_entries(void) { return GC_N; }

const char *gomp_count_name(int i) { return i >= 0 && i < GC_N ? gc_names[i] : NULL; }

int gomp_count_kind(int i) { return i >= 0 && i < GC_N ? gc_kinds[i] : -1; }

/* out[4 * i + bits] for entry i (bits: GC_MAIN | GC_IN_RANGE); writes at most n
 * values, returns how many there are */
int gomp_count_snapshot(long *out, int n)
{
    for (int k = 0; k < n && k < GC_N * 4; k++)
        out[k] = __atomic_load_n(&gc_counts[k / 4][k % 4], __ATOMIC_RELAXED);
    return GC_N * 4;
}

void gomp_count_reset(void)
{
    for (int k = 0; k < GC_N * 4; k++)
        __atomic_store_n(&gc_counts[k / 4][k % 4], 0, __ATOMIC_RELAXED);
}

/* count return addresses in [lo, hi) as in range (hi 0: every address) */
void gomp_count_set_range(uintptr_t lo, uintptr_t hi)
{
    __atomic_store_n(&gc_lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&gc_hi, hi, __ATOMIC_RELAXED);
}

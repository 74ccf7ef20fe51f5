/*
 * core.c -- the untyped part of the core: arena layout, workspace sizes,
 * the random number generator and thread queries.
 */
#include "pynn.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

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

static const char *const isa_names[] = {"generic", "avx2", "avx512"};

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

/* ---- enum names ------------------------------------------------------------- */

static const char *const activation_names[] = {"identity", "logistic", "tanh",
                                               "relu",     "softmax",  "step"};
static const char *const loss_names[] = {"half_squared_error", "squared_error",
                                         "binary_cross_entropy", "categorical_cross_entropy"};
static const char *const solver_names[] = {"sgd", "adam"};

#define NAME_OF(table, i)                                                        \
    ((i) >= 0 && (size_t)(i) < sizeof(table) / sizeof(table[0]) ? table[i] : NULL)

const char *pynn_activation_name(int act) { return NAME_OF(activation_names, act); }
const char *pynn_loss_name(int loss) { return NAME_OF(loss_names, loss); }
const char *pynn_solver_name(int solver) { return NAME_OF(solver_names, solver); }

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

/* Validates a network description; every count must be >= 1. */
pynn_status pynn__check_net(const pynn_net *net)
{
    if (net == NULL || net->units == NULL || net->n_layers == 0)
        return PYNN_ERR_ARG;
    for (size_t l = 0; l <= net->n_layers; l++)
        if (net->units[l] <= 0)
            return PYNN_ERR_ARG;
    if ((unsigned)net->hidden > PYNN_ACT_STEP || (unsigned)net->output > PYNN_ACT_STEP ||
        (unsigned)net->loss > PYNN_LOSS_CATEGORICAL_CE)
        return PYNN_ERR_ARG;
    /* A hidden step unit has a zero derivative everywhere: nothing can learn. */
    if (net->n_layers > 1 && (net->hidden == PYNN_ACT_STEP || net->hidden == PYNN_ACT_SOFTMAX))
        return PYNN_ERR_UNSUPPORTED;
    return PYNN_OK;
}

pynn_status pynn_param_offsets(size_t *w_off, size_t *b_off, const pynn_net *net)
{
    pynn_status st = pynn__check_net(net);
    if (st != PYNN_OK)
        return st;
    size_t off = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t nin = (size_t)net->units[l], nout = (size_t)net->units[l + 1], w;
        if (!pynn__mul(nin, nout, &w))
            return PYNN_ERR_OVERFLOW;
        if (w_off)
            w_off[l] = off;
        if (!pynn__add(off, w, &off))
            return PYNN_ERR_OVERFLOW;
        if (b_off)
            b_off[l] = off;
        if (!pynn__add(off, nout, &off))
            return PYNN_ERR_OVERFLOW;
    }
    return PYNN_OK;
}

pynn_status pynn_param_count(size_t *count, const pynn_net *net)
{
    if (count == NULL)
        return PYNN_ERR_ARG;
    *count = 0;
    pynn_status st = pynn__check_net(net);
    if (st != PYNN_OK)
        return st;
    size_t off = 0;
    for (size_t l = 0; l < net->n_layers; l++) {
        size_t w;
        if (!pynn__mul((size_t)net->units[l], (size_t)net->units[l + 1], &w) ||
            !pynn__add(off, w, &off) || !pynn__add(off, (size_t)net->units[l + 1], &off))
            return PYNN_ERR_OVERFLOW;
    }
    *count = off;
    return PYNN_OK;
}

/*
 * Workspace layout for batches of B rows (all in scalars):
 *   acts   B * (u_1 + ... + u_L)   cached outputs of every layer
 *   delta  2 * B * max(u_1..u_L)   ping-pong buffers for the backward pass
 *   xb     B * u_0                 gathered input rows of a shuffled batch
 *   yb     B * u_L                 gathered target rows
 */
pynn_status pynn__workspace_layout(pynn__ws_layout *lay, const pynn_net *net, size_t batch)
{
    pynn_status st = pynn__check_net(net);
    if (st != PYNN_OK)
        return st;
    if (batch == 0)
        return PYNN_ERR_ARG;
    size_t sum = 0, maxu = 0;
    for (size_t l = 1; l <= net->n_layers; l++) {
        size_t u = (size_t)net->units[l];
        if (!pynn__add(sum, u, &sum))
            return PYNN_ERR_OVERFLOW;
        if (u > maxu)
            maxu = u;
    }
    size_t acts, delta, xb, yb, total;
    if (!pynn__mul(batch, sum, &acts) || !pynn__mul(batch, maxu, &delta) ||
        !pynn__mul(delta, 2, &delta) || !pynn__mul(batch, (size_t)net->units[0], &xb) ||
        !pynn__mul(batch, (size_t)net->units[net->n_layers], &yb))
        return PYNN_ERR_OVERFLOW;
    lay->acts = 0;
    lay->delta0 = acts;
    lay->delta1 = acts + delta / 2;
    lay->xb = acts + delta;
    if (!pynn__add(acts, delta, &total) || !pynn__add(total, xb, &total))
        return PYNN_ERR_OVERFLOW;
    lay->yb = total;
    if (!pynn__add(total, yb, &total))
        return PYNN_ERR_OVERFLOW;
    /* A packed for the weight-gradient products x^T delta (K = batch rows) */
    size_t maxin = 0;
    for (size_t l = 0; l < net->n_layers; l++)
        if ((size_t)net->units[l] > maxin)
            maxin = (size_t)net->units[l];
    /* ... and for products whose A is a batch of rows (m <= batch, K blocks <= KC),
     * which are packed only for some widths and batches (gemm_tile.h) */
    int aliasing = 0;
    for (size_t l = 0; l <= net->n_layers; l++)
        if ((size_t)net->units[l] % PYNN_GEMM_PACK_WIDTH == 0)
            aliasing = 1;
    size_t apack, apack_rows = 0, kc = batch < PYNN_GEMM_KC ? batch : PYNN_GEMM_KC;
    maxin = (maxin + PYNN_GEMM_MR_PAD - 1) / PYNN_GEMM_MR_PAD * PYNN_GEMM_MR_PAD;
    if (aliasing && batch <= PYNN_GEMM_PACK_ROWS)
        apack_rows = (batch + PYNN_GEMM_MR_PAD) * PYNN_GEMM_KC;
    if (!pynn__mul(maxin, kc, &apack))
        return PYNN_ERR_OVERFLOW;
    if (apack_rows > apack)
        apack = apack_rows;
    lay->apack = total;
    if (!pynn__add(total, apack, &total))
        return PYNN_ERR_OVERFLOW;
    lay->total = total;
    return PYNN_OK;
}

pynn_status pynn_workspace_size(size_t *count, const pynn_net *net, size_t batch)
{
    if (count == NULL)
        return PYNN_ERR_ARG;
    *count = 0;
    pynn__ws_layout lay;
    pynn_status st = pynn__workspace_layout(&lay, net, batch);
    if (st == PYNN_OK)
        *count = lay.total;
    return st;
}

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void pynn_rng_seed(uint64_t state[4], uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        state[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t pynn_rng_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Lemire's multiply-shift with rejection: exact uniformity on [0, bound). */
uint64_t pynn_rng_bounded(uint64_t s[4], uint64_t bound)
{
    if (bound <= 1)
        return 0;
    uint64_t x = pynn_rng_next(s);
    __uint128_t m = (__uint128_t)x * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            x = pynn_rng_next(s);
            m = (__uint128_t)x * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

void pynn_shuffle(int64_t *idx, size_t n, uint64_t s[4])
{
    if (idx == NULL || n < 2)
        return;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)pynn_rng_bounded(s, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

/*
 * rng.c -- random numbers for shuffling: xoshiro256** seeded through
 * splitmix64, unbiased bounded integers and a Fisher-Yates shuffle.  Untyped.
 */
#include "pynn.h"
#include "internal.h"

/* splitmix64 (Steele, Lea and Flood, 2014): the golden-ratio increment and the
 * published mixing constants; it spreads one seed over xoshiro's 256 bits. */
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

/* xoshiro256** (Blackman and Vigna, 2018); shifts, rotations and multipliers
 * are the published ones: changing any changes every shuffle. */
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

/* The 128-bit product x * y: returns its high 64 bits, *lo gets the low ones.
 * Where the compiler has no 128-bit integer (MSVC, 32-bit targets), from four
 * 32 x 32 -> 64 products (Hacker's Delight, mulhu): the same bits. */
static inline uint64_t mul_64x64(uint64_t x, uint64_t y, uint64_t *lo)
{
#if PYNN_GNUC && defined(__SIZEOF_INT128__)
    __uint128_t m = (__uint128_t)x * y;
    *lo = (uint64_t)m;
    return (uint64_t)(m >> 64);
#else
    const uint64_t mask = 0xffffffffu;
    uint64_t x0 = x & mask, x1 = x >> 32, y0 = y & mask, y1 = y >> 32;
    uint64_t t = x1 * y0 + ((x0 * y0) >> 32);  /* < 2^64: no carry lost */
    uint64_t w = (t & mask) + x0 * y1;           /* likewise */
    *lo = x * y;
    return x1 * y1 + (t >> 32) + (w >> 32);
#endif
}

/* Lemire's multiply-shift with rejection: exact uniformity on [0, bound). */
uint64_t pynn_rng_bounded(uint64_t s[4], uint64_t bound)
{
    if (bound <= 1)
        return 0;
    uint64_t low, high = mul_64x64(pynn_rng_next(s), bound, &low);
    if (low < bound) {
        uint64_t threshold = (0 - bound) % bound;
        while (low < threshold)
            high = mul_64x64(pynn_rng_next(s), bound, &low);
    }
    return high;
}

/* Draws of the Fisher-Yates shuffle made this many swaps ahead of their own:
 * each swap's partner lies at a random place, so for an index array past the
 * caches the swaps waited on memory; drawn ahead, the partner is fetched while
 * the swaps before it run (10,000,000 rows: 0.28 -> 0.09 s, 1,000,000: 5-9 ->
 * 4 ms on a Zen 4).  The draws are the same, in the same order: the same
 * shuffle, bit for bit. */
#define SHUFFLE_AHEAD 32

void pynn_shuffle(int64_t *idx, size_t n, uint64_t s[4])
{
    if (idx == NULL || n < 2)
        return;
    /* ahead[i % SHUFFLE_AHEAD]: the partner drawn for position i, i = n-1 down
     * to 1, each drawn SHUFFLE_AHEAD positions early (the first ones at once) */
    size_t ahead[SHUFFLE_AHEAD];
    size_t next = n - 1; /* the next position to draw for (0: none left) */
    for (; next > 0 && n - 1 - next < SHUFFLE_AHEAD; next--) {
        ahead[next % SHUFFLE_AHEAD] = (size_t)pynn_rng_bounded(s, (uint64_t)next + 1);
        PYNN_PREFETCH_W(idx + ahead[next % SHUFFLE_AHEAD]);
    }
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = ahead[i % SHUFFLE_AHEAD];
        if (next > 0) {
            ahead[next % SHUFFLE_AHEAD] = (size_t)pynn_rng_bounded(s, (uint64_t)next + 1);
            PYNN_PREFETCH_W(idx + ahead[next % SHUFFLE_AHEAD]);
            next--;
        }
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

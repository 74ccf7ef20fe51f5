/* gemm_amx.c -- the mixed-precision mode's products on AMX tiles (tdpbf16ps):
 * gemm_tile.h's pair layout with 16-row A tiles, two 16 x 16 accumulator
 * tiles per 32-column panel, each tdpbf16ps 16 rows x 16 columns x 16 pair
 * steps; epilogues on AVX-512.  Compiled with -mavx512f -mamx-tile
 * -mamx-bf16; called only for products with the bf16 flag on the amx path,
 * which cpuid, XCR0 and the kernel's permission (arch_prctl) must allow
 * (dispatch.c).  Each thread configures its tile registers at the start of
 * its share of a product and releases them at the end. */
#include <immintrin.h>
#include <string.h>
#include "internal.h"
#include "transpose_avx.h"

/* Palette 1: the five registers used, 16 rows of 64 bytes (Intel SDM, LDTILECFG). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} pynn_tilecfg;

static void pynn__amx_config(void)
{
    _Alignas(64) pynn_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 5; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
}

#include "gemm_vocab_avx512_f32.h"
#undef MR
#define MR 16
#define GEMM_KC 256 /* as the AVX512_BF16 pair kernels (gemm_avx512bf16.c) */
#define GEMM_NAME(x) pynn_##x##_amx_f32
#define AMX_TILES 1
#define AMX_CONFIG() pynn__amx_config()
#define AMX_RELEASE() _tile_release()
#define AMX_ZERO(t) _tile_zero(t) /* t bare: the intrinsics paste it into the register name */
/* GCC's tileloadd is an asm without a memory operand: the empty asm makes the
 * stores it must see (the C buffer, the packed operands) happen before it */
#define AMX_LOAD(t, base, stride)                                                \
    do {                                                                         \
        __asm__ volatile("" ::: "memory");                                       \
        _tile_loadd(t, (const void *)(base), (long)(stride));                     \
    } while (0)
#define AMX_STORE(t, base, stride) _tile_stored(t, (void *)(base), (long)(stride))
#define AMX_DP(c, a, b) _tile_dpbf16ps(c, a, b)
#include "gemm_tile.h"
#include "gemm_undef.h"

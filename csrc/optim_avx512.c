/* optim_avx512.c -- Adam's update (adam_rows.h) for AVX-512F (compiled with
 * -mavx512f -mfma; only called after cpuid said the CPU and the OS support
 * it): the loop of optim.c's baseline build, vectorised wider, the same bits. */
#include <math.h>
#include "internal.h"

#define T float
#define T_SQRT sqrtf
#define ADAM_NAME(x) pynn_##x##_avx512_f32
#include "adam_rows.h"
#undef T
#undef T_SQRT
#undef ADAM_NAME

#define T double
#define T_SQRT sqrt
#define ADAM_NAME(x) pynn_##x##_avx512_f64
#include "adam_rows.h"

/* optim_avx2.c -- Adam's update (adam_rows.h) for AVX2 (compiled with -mavx2
 * -mfma; only called after cpuid said the CPU and the OS support it): the
 * loop of optim.c's baseline build, vectorised wider, the same bits. */
#include <math.h>
#include "internal.h"

#define T float
#define T_SQRT sqrtf
#define ADAM_NAME(x) pynn_##x##_avx2_f32
#include "adam_rows.h"
#undef T
#undef T_SQRT
#undef ADAM_NAME

#define T double
#define T_SQRT sqrt
#define ADAM_NAME(x) pynn_##x##_avx2_f64
#include "adam_rows.h"

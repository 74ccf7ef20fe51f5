/* core_f32.c -- the typed kernels for float. */
#include <float.h>
#define T float
#define T_IS_FLOAT 1
#define FN(name) name##_f32
#define T_EXP expf
#define T_LOG logf
#define T_TANH tanhf
#define T_SQRT sqrtf
#define T_EPS FLT_EPSILON
#define T_UINT uint32_t
#define T_EXP_BITS ((uint32_t)0x7f800000u)
#include "core_impl.h"

/* core_f64.c -- the typed kernels for double. */
#include <float.h>
#define T double
#define FN(name) name##_f64
#define T_EXP exp
#define T_LOG log
#define T_TANH tanh
#define T_SQRT sqrt
#define T_EPS DBL_EPSILON
#define T_UINT uint64_t
#define T_EXP_BITS ((uint64_t)0x7ff0000000000000ull)
#include "core_impl.h"

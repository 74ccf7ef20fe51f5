/* core_f64.c -- the typed kernels for double. */
#include <float.h>
#define T double
#define FN(name) name##_f64
#define T_EXP exp
#define T_LOG log
#define T_TANH tanh
#define T_SQRT sqrt
#define T_EPS DBL_EPSILON
#include "core_impl.h"

/*
 * names.c -- the names the Python layer uses for each enum value of pynn.h:
 * the one place those names are defined.  Untyped.
 */
#include <stddef.h>
#include "pynn.h"

/* Indexed by the enum values (pynn.h): keep the orders in step. */
static const char *const activation_names[] = {"identity", "logistic", "tanh", "relu",
                                               "softmax",  "step",     "exp"};
static const char *const loss_names[] = {"half_squared_error", "squared_error",
                                         "binary_cross_entropy", "categorical_cross_entropy",
                                         "half_poisson_deviance"};
static const char *const solver_names[] = {"sgd", "adam"};

#define COUNT(table) (sizeof(table) / sizeof(table[0]))
#define NAME_OF(table, i) ((i) >= 0 && (size_t)(i) < COUNT(table) ? table[i] : NULL)

const char *pynn_activation_name(int act) { return NAME_OF(activation_names, act); }
const char *pynn_loss_name(int loss) { return NAME_OF(loss_names, loss); }
const char *pynn_solver_name(int solver) { return NAME_OF(solver_names, solver); }

/* A new enum value needs its name here: the tables must cover every value. */
_Static_assert(COUNT(activation_names) == PYNN_ACT_EXP + 1, "one name per pynn_activation");
_Static_assert(COUNT(loss_names) == PYNN_LOSS_HALF_POISSON + 1, "one name per pynn_loss");
_Static_assert(COUNT(solver_names) == PYNN_SOLVER_ADAM + 1, "one name per pynn_solver");

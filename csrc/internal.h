/* internal.h -- helpers shared by the core's translation units (not installed). */
#ifndef PYNN_INTERNAL_H
#define PYNN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "pynn.h"

/* Overflow-checked size arithmetic: return 1 on success. */
static inline int pynn__mul(size_t a, size_t b, size_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline int pynn__add(size_t a, size_t b, size_t *r) { return !__builtin_add_overflow(a, b, r); }

typedef struct {
    size_t acts, delta0, delta1, xb, yb, total;
} pynn__ws_layout;

pynn_status pynn__check_net(const pynn_net *net);
pynn_status pynn__workspace_layout(pynn__ws_layout *lay, const pynn_net *net, size_t batch);

/* Below this many multiply-adds a kernel stays on one thread: waking a team
 * costs more than it saves. */
#define PYNN_PAR_MIN_WORK ((size_t)1 << 17)

#endif

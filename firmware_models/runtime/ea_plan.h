#ifndef EA_PLAN_H
#define EA_PLAN_H
#include <stdint.h>
#include "ea_runtime.h"
/* Assigns arena_offset to every computed tensor (greedy by size, reusing memory of tensors whose
 * lifetimes do not overlap, 16-byte aligned) and returns the activation bytes needed, or UINT32_MAX
 * when they exceed 2 GiB. */
uint32_t ea_plan_arena(ea_model *m);
#endif

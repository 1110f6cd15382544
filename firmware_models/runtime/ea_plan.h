#ifndef EA_PLAN_H
#define EA_PLAN_H
#include <stdint.h>
#include "ea_runtime.h"
/* Assigns its arena offset to every computed tensor (greedy by size, reusing memory of tensors whose
 * lifetimes do not overlap, 16-byte aligned) and returns the activation bytes needed, or UINT32_MAX
 * when they exceed 2 GiB. */
uint32_t ea_plan_arena(ea_model *m);
/* Places a kernel's scratch buffer of `bytes`, used only while operator `op` runs, after the tensors are
 * planned: at the lowest 16-byte aligned offset free of every tensor alive during that operator (two
 * operators never run at once, so scratch buffers may share memory). Raises *total to cover it
 * (UINT32_MAX past 2 GiB) and returns the offset. */
uint32_t ea_plan_scratch(const ea_model *m, uint32_t op, uint32_t bytes, uint32_t *total);
#endif

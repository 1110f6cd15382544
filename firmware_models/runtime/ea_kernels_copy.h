#ifndef EA_KERNELS_COPY_H
#define EA_KERNELS_COPY_H
#include <stdint.h>
/* Byte copy used by the shape-only operators (in and out never overlap: the planner keeps them apart). */
void ea_copy_bytes(uint32_t n, const uint8_t *in, uint8_t *out);
#endif

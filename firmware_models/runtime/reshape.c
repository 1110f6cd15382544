/* RESHAPE / SQUEEZE / EXPAND_DIMS: the bytes are unchanged, only the shape differs. */
#include "ea_kernels_copy.h"

void ea_copy_bytes(uint32_t n, const uint8_t *in, uint8_t *out) {
    for (uint32_t i = 0; i < n; ++i) out[i] = in[i];
}

/* DEQUANTIZE int8 -> float32 (TFLM reference_ops::Dequantize): scale * (q - zero_point) in float. */
#include <string.h>

#include "ea_kernels.h"

void ea_dequantize_s8_f32(uint32_t n, const int8_t *in, float scale, int32_t zero_point, uint8_t *out) {
    for (uint32_t i = 0; i < n; ++i) {
        const float v = scale * (float)((int32_t)in[i] - zero_point);
        memcpy(out + 4u * i, &v, sizeof v);
    }
}

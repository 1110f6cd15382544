/* QUANTIZE: float32 -> int8 (TFLM reference_ops::AffineQuantize) and int8 -> int8 requantization
 * (reference_ops::Requantize). */
#include <math.h>
#include <string.h>

#include "ea_kernels.h"
#include "ea_quant.h"

/* static_cast<int32_t>(float) as x86 executes it (cvttss2si): NaN and out-of-range give INT32_MIN.
 * That is what the TFLM oracle computes; doing it explicitly avoids C's undefined conversion. */
static int32_t f32_to_i32_x86(float v) {
    if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;
    return (int32_t)v;
}

void ea_quantize_f32_s8(uint32_t n, const uint8_t *in, float scale, int32_t zero_point, int8_t *out) {
    for (uint32_t i = 0; i < n; ++i) {
        float v;
        memcpy(&v, in + 4u * i, sizeof v);
        const int32_t q = ea_wrap_add(f32_to_i32_x86(roundf(v / scale)), zero_point);
        out[i] = (int8_t)ea_clamp(q, -128, 127);
    }
}

void ea_requantize_s8(uint32_t n, const int8_t *in, int32_t in_zp, int32_t out_zp, int32_t mult, int32_t shift,
                      int8_t *out) {
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t v = ea_wrap_add(ea_mbqm((int32_t)in[i] - in_zp, mult, shift), out_zp);
        out[i] = (int8_t)ea_clamp(v, -128, 127);
    }
}

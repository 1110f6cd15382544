/* Quantization parameter derivation, exactly as TFLite's quantization_util.cc / kernel_util.cc do it. */
#include "ea_quant.h"

#include <math.h>
#include <string.h>

int ea_quantize_multiplier(double m, int32_t *mult, int32_t *shift) {
    if (m == 0.0) {
        *mult = 0;
        *shift = 0;
        return 0;
    }
    if (!(m > 0.0) || isinf(m)) return -1;
    int e = 0;
    const double q = frexp(m, &e);                       /* q in [0.5, 1) */
    int64_t q_fixed = (int64_t)round(q * 2147483648.0);  /* TfLiteRound(q * 2^31): half away from zero */
    if (q_fixed == ((int64_t)1 << 31)) {
        q_fixed /= 2;
        ++e;
    }
    if (e < -31) { /* TFLite flushes multipliers below 2^-31 to zero */
        e = 0;
        q_fixed = 0;
    }
    *mult = (int32_t)q_fixed;
    *shift = e;
    return 0;
}

/* TFLite's Quantize() helper: zero_point + (int)round(f / scale), all in float. */
static int quantize_act(float scale, int32_t zero_point, float f, int32_t *q) {
    const float tmp = roundf(f / scale);
    /* TFLM accepts tmp == 2^31 and then converts out of range; refuse that (and NaN) instead. */
    if (!(tmp >= -2147483648.0f && tmp < 2147483648.0f)) return -1;
    const int64_t v = (int64_t)zero_point + (int64_t)(int32_t)tmp;
    if (v < INT32_MIN || v > INT32_MAX) return -1;
    *q = (int32_t)v;
    return 0;
}

int ea_activation_range_s8(int activation, float scale, int32_t zero_point, int32_t *act_min, int32_t *act_max) {
    const int32_t qmin = -128, qmax = 127;
    int32_t q = 0;
    *act_min = qmin;
    *act_max = qmax;
    switch (activation) {
        case 0:
            return 0;
        case 1: /* RELU */
            if (quantize_act(scale, zero_point, 0.0f, &q)) return -1;
            *act_min = q > qmin ? q : qmin;
            return 0;
        case 3: /* RELU6 */
            if (quantize_act(scale, zero_point, 0.0f, &q)) return -1;
            *act_min = q > qmin ? q : qmin;
            if (quantize_act(scale, zero_point, 6.0f, &q)) return -1;
            *act_max = q < qmax ? q : qmax;
            return 0;
        case 2: /* RELU_N1_TO_1 */
            if (quantize_act(scale, zero_point, -1.0f, &q)) return -1;
            *act_min = q > qmin ? q : qmin;
            if (quantize_act(scale, zero_point, 1.0f, &q)) return -1;
            *act_max = q < qmax ? q : qmax;
            return 0;
        default:
            return -1;
    }
}

float ea_load_f32(const uint8_t *p) {
    const uint32_t v = (uint32_t)ea_load_i32(p);
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

/* Quantization parameter derivation, exactly as TFLite's quantization_util.cc / kernel_util.cc do it. */
#include "ea_quant.h"

#include <math.h>
#include <string.h>

/* A finite, non-zero float as m * 2^e with m in [2^23, 2^24) (subnormals normalized). */
static uint32_t f32_parts(float f, int32_t *e) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t m = u & 0x7fffffu;
    const int32_t biased = (int32_t)((u >> 23) & 0xffu);
    if (biased) {
        *e = biased - 150;
        return m | 0x800000u;
    }
    *e = -149;
    while (!(m & 0x800000u)) {
        m <<= 1;
        --*e;
    }
    return m;
}

/* double(a) * double(b) is exact (24 x 24 significant bits < 53) and the division rounds once, to nearest
 * even at 53 bits: the quotient is taken to 56 bits by shift-and-subtract (no 64-bit division from libgcc)
 * and the rest of the division is kept as a sticky bit. float scales keep the result far inside double's
 * normal range (2^-426 .. 2^405), so no double underflow or overflow can happen. */
int ea_real_ratio(float a, float b, float c, int pow2, ea_real *r) {
    r->sig = 0;
    r->exp = 0;
    if (isnan(a) || isnan(b) || isnan(c) || isinf(a) || isinf(b) || c == 0.0f) return -1; /* NaN or inf */
    if (a == 0.0f || b == 0.0f || isinf(c)) return 0;
    if (signbit(a) != signbit(b) ? !signbit(c) : signbit(c)) return -1; /* negative */
    int32_t ea, eb, ec;
    const uint64_t ma = f32_parts(a, &ea), mb = f32_parts(b, &eb), mc = f32_parts(c, &ec);
    uint64_t n = ma * mb;           /* [2^46, 2^48) */
    const uint64_t d = mc << 24;    /* [2^47, 2^48) */
    int32_t e = ea + eb - ec + pow2 + 24;
    if (n < ((uint64_t)1 << 47)) {  /* n to [2^47, 2^48), then to [d, 2d) */
        n <<= 1;
        --e;
    }
    if (n < d) {
        n <<= 1;
        --e;
    }
    uint64_t q = 0;                 /* n / d in [1, 2) to 56 bits: q * 2^-55 */
    for (int i = 0; i < 56; i++) {
        q <<= 1;
        if (n >= d) {
            n -= d;
            q |= 1;
        }
        n <<= 1;
    }
    const uint32_t low = (uint32_t)(q & 7u);
    uint64_t sig = q >> 3;
    if (low > 4u || (low == 4u && (n != 0 || (sig & 1u)))) ++sig;
    e -= 52;
    if (sig == ((uint64_t)1 << 53)) {
        sig >>= 1;
        ++e;
    }
    r->sig = sig;
    r->exp = e;
    return 0;
}

int ea_real_frexp_exp(const ea_real *r) { return r->sig ? r->exp + 53 : 0; }

/* QuantizeMultiplier of the double r: frexp's significand q = sig / 2^53, TfLiteRound(q * 2^31) rounds
 * half away from zero (q * 2^31 = sig / 2^22). */
int ea_quantize_real(const ea_real *r, int32_t *mult, int32_t *shift) {
    if (!r->sig) {
        *mult = 0;
        *shift = 0;
        return 0;
    }
    uint64_t q_fixed = (r->sig + ((uint64_t)1 << 21)) >> 22;
    int32_t e = r->exp + 53;
    if (q_fixed == ((uint64_t)1 << 31)) {
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

int ea_quantize_multiplier(float a, float b, float c, int pow2, int32_t *mult, int32_t *shift) {
    ea_real r;
    if (ea_real_ratio(a, b, c, pow2, &r)) return -1;
    return ea_quantize_real(&r, mult, shift);
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

/* Fixed-point helpers with the exact rounding of TFLM's reference kernels (gemmlowp's
 * SaturatingRoundingDoublingHighMul / RoundingDivideByPOT and TFLite's double-rounding
 * MultiplyByQuantizedMultiplier, the build TFLM uses when TFLITE_SINGLE_ROUNDING is unset).
 * Overflowing int32 arithmetic that TFLM performs (and that wraps in practice) is done on uint32 here,
 * so the results match without undefined behaviour.
 */
#ifndef EA_QUANT_H
#define EA_QUANT_H

#include <stdint.h>

static inline int32_t ea_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t ea_wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
/* x * 2^shift with int32 wrap-around (shift in [0, 31]). */
static inline int32_t ea_wrap_shl(int32_t x, int shift) { return (int32_t)((uint32_t)x << shift); }

static inline int32_t ea_clamp(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* round(a * b / 2^31), saturating the single overflow case (-1 * -1). gemmlowp writes it as
 * (ab + nudge) / 2^31 with nudge 2^30 for ab >= 0 and 1 - 2^30 below, and a division that truncates;
 * for ab < 0 that truncation is floor((ab + 1 - 2^30 + 2^31 - 1) / 2^31), so both cases are
 * floor((ab + 2^30) / 2^31): one add and an arithmetic shift (the hot path of every requantization). */
static inline int32_t ea_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31); /* >> of a negative: arithmetic */
}

/* x / 2^exponent rounded to nearest, ties away from zero (exponent in [0, 31]). */
static inline int32_t ea_rdbypot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding); shift > 0 is a left shift. */
static inline int32_t ea_mbqm(int32_t x, int32_t mult, int32_t shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    return ea_rdbypot(ea_srdhm(ea_wrap_shl(x, left), mult), right);
}

/* ea_mbqm(x, mult, -r) for a right shift r in [0, 31] and mult in [0, 2^31) (QuantizeMultiplier's
 * range, so SRDHM cannot saturate), as one 64-bit multiply-add and a shift. The two roundings nest:
 * y = floor((x * mult + 2^30) / 2^31), then RoundingDivideByPOT(y, r) = floor((y + h) / 2^r) with
 * h = 2^(r-1), minus 1 when y < 0 (ties away from zero), so for r >= 1 the result is
 * floor((x * mult + 2^30 + h * 2^31) / 2^(31+r)) exactly: the high word of that sum shifted right by
 * r - 1. y < 0 only when x < 0, and when x < 0 but y = 0 both choices of h give 0, so the sign of x
 * picks h. For r = 0 it is y itself. ea_rqr_of computes the constants once (outside loops). */
typedef struct {
    int64_t c;      /* 2^30 + 2^(30+r) for r >= 1; 2^30 for r = 0 */
    int32_t mult;
    int32_t r;
} ea_rqr;

static inline ea_rqr ea_rqr_of(int32_t mult, int32_t r) {
    const ea_rqr f = {((int64_t)1 << 30) + (r > 0 ? ((int64_t)1 << (30 + r)) : 0), mult, r};
    return f;
}

static inline int32_t ea_rqr_apply(const ea_rqr *f, int32_t x) {
    const int64_t p = (int64_t)x * f->mult;
    if (f->r == 0) return (int32_t)((p + f->c) >> 31);
    const int64_t c = f->c - ((int64_t)((uint32_t)x >> 31) << 31);
    return (int32_t)((p + c) >> 32) >> (f->r - 1);
}

static inline int32_t ea_mbqm_r(int32_t x, int32_t mult, int32_t r) {
    const ea_rqr f = ea_rqr_of(mult, r);
    return ea_rqr_apply(&f, x);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent. */
static inline int32_t ea_sat_shl(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)((((int64_t)1) << (31 - exponent)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return ea_wrap_shl(x, exponent);
}

/* A positive double as TFLM's arithmetic holds it, without double arithmetic (which is soft-float, and
 * about 3 KB of libgcc, on single-precision FPUs): sig * 2^exp with sig in [2^52, 2^53), or sig 0 for 0. */
typedef struct {
    uint64_t sig;
    int32_t exp;
} ea_real;

/* r = double(a) * double(b) / double(c) * 2^pow2 rounded once to double, as TFLM computes its effective
 * scales (b = 1.0f or c = 1.0f for a plain ratio or product). Returns -1 for a negative, NaN or infinite
 * result. */
int ea_real_ratio(float a, float b, float c, int pow2, ea_real *r);
/* frexp's exponent of r (0 for 0): r < 2^e and r >= 2^(e-1). */
int ea_real_frexp_exp(const ea_real *r);
/* TFLite QuantizeMultiplier of r: significand in [2^30, 2^31) and power-of-two exponent. */
int ea_quantize_real(const ea_real *r, int32_t *mult, int32_t *shift);
/* QuantizeMultiplier(double(a) * double(b) / double(c) * 2^pow2), bit-exact with TFLM's double code.
 * Returns -1 for a negative, NaN or infinite multiplier. */
int ea_quantize_multiplier(float a, float b, float c, int pow2, int32_t *mult, int32_t *shift);

/* TFLite CalculateActivationRangeQuantized for an int8 output. Returns -1 on overflow. activation: the
 * TFLite ActivationFunctionType (0 none, 1 relu, 2 relu_n1_to_1, 3 relu6). */
int ea_activation_range_s8(int activation, float scale, int32_t zero_point, int32_t *act_min, int32_t *act_max);

/* Little-endian loads from possibly unaligned flatbuffer bytes. */
static inline int32_t ea_load_i32(const uint8_t *p) {
    const uint32_t v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    return (int32_t)v;
}
float ea_load_f32(const uint8_t *p);

#endif /* EA_QUANT_H */

/* HARD_SWISH int8 (TFLM's reference_ops::HardSwish): x * relu6(x + 3) / 6 in 16-bit fixed point, with
 * gemmlowp's int16 rounding helpers; every intermediate is int16 as in TFLM. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

typedef struct {
    int32_t in_zp, out_zp;
    int16_t out_mult, relu_mult;  /* Q0.15 */
    int32_t out_exp, relu_exp;
} hard_swish_params;

static int16_t wrap16(int32_t v) { return (int16_t)(uint16_t)(uint32_t)v; }

static int16_t sat_shl16(int16_t v, int amount) {
    const int64_t r = (int64_t)v * ((int64_t)1 << amount);
    return (int16_t)(r > INT16_MAX ? INT16_MAX : (r < INT16_MIN ? INT16_MIN : r));
}

/* gemmlowp SaturatingRoundingDoublingHighMul<int16_t>. */
static int16_t srdhm16(int16_t a, int16_t b) {
    if (a == b && a == INT16_MIN) return INT16_MAX;
    const int32_t ab = (int32_t)a * (int32_t)b;
    const int16_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return wrap16((ab + nudge) / (1 << 15));
}

/* TFLite's SaturatingDoublingHighMul (no rounding nudge). */
static int16_t sdhm16(int16_t a, int16_t b) {
    if (a == b && a == INT16_MIN) return INT16_MAX;
    return wrap16(((int32_t)a * (int32_t)b) / (1 << 15));
}

/* gemmlowp RoundingDivideByPOT<int16_t>, exponent in [0, 31], each step truncated to int16. */
static int16_t rdbypot16(int16_t x, int exponent) {
    const int16_t mask = wrap16((int32_t)(((int64_t)1 << exponent) - 1));
    const int16_t remainder = wrap16(x & mask);
    const int16_t threshold = wrap16((mask >> 1) + (x < 0 ? 1 : 0));
    return wrap16((x >> exponent) + (remainder > threshold ? 1 : 0));
}

static void hard_swish_s8(const void *vp, uint32_t n, const int8_t *in, int8_t *out) {
    const hard_swish_params *p = vp;
    for (uint32_t i = 0; i < n; ++i) {
        const int16_t x = wrap16((int32_t)in[i] - p->in_zp);
        const int16_t hires = wrap16(x * (1 << 7));
        const int16_t preshift_out = srdhm16(hires, p->out_mult);
        int16_t reluish = hires;
        if (p->relu_exp > 0) reluish = sat_shl16(reluish, p->relu_exp - 1);
        reluish = srdhm16(reluish, p->relu_mult);
        if (p->relu_exp > 0) reluish = sat_shl16(reluish, 1);
        if (p->relu_exp < 0) reluish = rdbypot16(reluish, -p->relu_exp);
        reluish = wrap16((reluish + (1 << 15)) >> 1);
        int16_t v = rdbypot16(sdhm16(reluish, preshift_out), -p->out_exp);
        v = wrap16(v + p->out_zp);
        out[i] = (int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
    }
}

/* DownScaleInt32ToInt16Multiplier. */
static int16_t to_q15(int32_t m) {
    if (m >= INT32_MAX - (1 << 15)) return INT16_MAX;
    return (int16_t)((m + (1 << 15)) >> 16);
}

EA_PREPARE(hard_swish) {
    ea_status st;
    if ((st = ea_unary_prepare_common(c))) return st;
    const ea_tensor *in = &c->m->tensors[c->op->in[0]], *out = &c->m->tensors[c->op->out];
    /* HardSwishPrepare, in float as TFLM computes the ratios. */
    const float hires_input_scale = (1.0f / 128.0f) * in->scale;
    const float reluish_scale = 3.0f / 32768.0f;
    int32_t om, oe, rm, re;
    if (ea_quantize_multiplier(hires_input_scale / out->scale, 1.0f, 1.0f, 0, &om, &oe) ||
        ea_quantize_multiplier(hires_input_scale / reluish_scale, 1.0f, 1.0f, 0, &rm, &re))
        return EA_OP_FAIL(c, EA_MSG("invalid scales"));
    if (oe > 0) return EA_OP_FAIL(c, EA_MSG("output scale too small for the input scale (TFLM refuses it too)"));
    if (oe < -31 || re < -31 || re > 31) return EA_OP_FAIL(c, EA_MSG("input/output scale ratio out of range"));
    *EA_OP_PARAMS(hard_swish_params, c->op) = (hard_swish_params){
        .in_zp = in->zero_point, .out_zp = out->zero_point, .out_mult = to_q15(om), .relu_mult = to_q15(rm),
        .out_exp = oe, .relu_exp = re,
    };
    ea_s8_map_request_scratch(c);
    return EA_OK;
}

EA_INVOKE(hard_swish) {
    ea_s8_map(m, op, hard_swish_s8, EA_OP_CPARAMS(hard_swish_params, op));
    return EA_OK;
}

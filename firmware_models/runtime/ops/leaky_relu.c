/* LEAKY_RELU int8 (TFLM's QuantizeLeakyRelu): non-negative inputs are rescaled by in/out scale, negative
 * ones by alpha * in/out scale. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_LEAKY_RELU = 75 }; /* BuiltinOptions_LeakyReluOptions */

typedef struct {
    int32_t in_zp, out_zp, mult_identity, shift_identity, mult_alpha, shift_alpha;
} leaky_relu_params;

static void leaky_relu_s8(const void *vp, uint32_t n, const int8_t *in, int8_t *out) {
    const leaky_relu_params *p = vp;
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t x = (int32_t)in[i] - p->in_zp;
        const int32_t y = x >= 0 ? ea_mbqm(x, p->mult_identity, p->shift_identity) : ea_mbqm(x, p->mult_alpha, p->shift_alpha);
        out[i] = (int8_t)ea_clamp(ea_wrap_add(p->out_zp, y), -128, 127);
    }
}

EA_PREPARE(leaky_relu) {
    float alpha = 0.0f;
    ea_status st;
    if (c->options_type == BO_LEAKY_RELU && fb_f32(c->r, &c->options, 0, 0.0f, EA_MSG("LeakyReluOptions.alpha"), &alpha))
        return EA_OP_OPTIONS_FAIL(c);
    if ((st = ea_unary_prepare_common(c))) return st;
    const ea_tensor *in = &c->m->tensors[c->op->in[0]], *out = &c->m->tensors[c->op->out];
    if (!(alpha >= 0.0f && alpha < 3.4e38f)) return EA_OP_FAIL(c, EA_MSG("alpha must be finite and non-negative"));
    /* CalculateOpDataLeakyRelu: both ratios computed in float, then widened. */
    int32_t mi, si, ma, sa;
    if (ea_quantize_multiplier(in->scale * alpha / out->scale, 1.0f, 1.0f, 0, &ma, &sa) || sa > 30 ||
        ea_quantize_multiplier(in->scale / out->scale, 1.0f, 1.0f, 0, &mi, &si) || si > 30)
        return EA_OP_FAIL(c, EA_MSG("input/output scale ratio out of range"));
    *EA_OP_PARAMS(leaky_relu_params, c->op) = (leaky_relu_params){
        .in_zp = in->zero_point, .out_zp = out->zero_point, .mult_identity = mi, .shift_identity = si,
        .mult_alpha = ma, .shift_alpha = sa,
    };
    ea_s8_map_request_scratch(c);
    return EA_OK;
}

EA_INVOKE(leaky_relu) {
    ea_s8_map(m, op, leaky_relu_s8, EA_OP_CPARAMS(leaky_relu_params, op));
    return EA_OK;
}

/* SUB int8 with broadcasting (TFLM's reference_ops::Sub / BroadcastQuantSubSlow): ADD's arithmetic with
 * the second input subtracted; its multipliers come from float scale ratios (CalculateOpDataSub). */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_SUB = 28 }; /* BuiltinOptions_SubOptions */

static void sub_row_s8(const void *params, int32_t n, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                       int8_t *out) {
    const ea_add_params *p = params;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t x = ea_wrap_shl(p->in1_offset + a[i * sa], EA_ADD_LEFT_SHIFT);
        const int32_t y = ea_wrap_shl(p->in2_offset + b[i * sb], EA_ADD_LEFT_SHIFT);
        const int32_t d = ea_wrap_sub(ea_mbqm(x, p->in1_mult, p->in1_shift), ea_mbqm(y, p->in2_mult, p->in2_shift));
        const int32_t v = ea_wrap_add(ea_mbqm(d, p->out_mult, p->out_shift), p->out_offset);
        out[i] = (int8_t)ea_clamp(v, p->act_min, p->act_max);
    }
}

EA_PREPARE(sub) {
    int8_t act = 0;
    ea_status st;
    if (c->options_type == BO_SUB && fb_i8(c->r, &c->options, 0, 0, EA_MSG("SubOptions.fused_activation_function"), &act))
        return EA_OP_OPTIONS_FAIL(c);
    if ((st = ea_binary_prepare_common(c))) return st;
    const ea_tensor *a = &c->m->tensors[c->op->in[0]], *b = &c->m->tensors[c->op->in[1]], *out = &c->m->tensors[c->op->out];
    /* In float as TFLM computes them: twice the larger input scale, and each ratio before widening. */
    const float twice_max = 2.0f * (a->scale > b->scale ? a->scale : b->scale);
    int32_t m1, s1, m2, s2, mo, so, act_min, act_max;
    if (ea_quantize_multiplier(a->scale / twice_max, 1.0f, 1.0f, 0, &m1, &s1) ||
        ea_quantize_multiplier(b->scale / twice_max, 1.0f, 1.0f, 0, &m2, &s2) ||
        ea_quantize_multiplier(twice_max / ((float)(1 << EA_ADD_LEFT_SHIFT) * out->scale), 1.0f, 1.0f, 0, &mo, &so) ||
        s1 > 0 || s2 > 0 || so > 0)
        return EA_OP_FAIL(c, EA_MSG("output scale too small for the input scales"));
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    *EA_OP_PARAMS(ea_add_params, c->op) = (ea_add_params){
        .in1_offset = -a->zero_point, .in2_offset = -b->zero_point, .out_offset = out->zero_point,
        .in1_mult = m1, .in1_shift = s1, .in2_mult = m2, .in2_shift = s2, .out_mult = mo, .out_shift = so,
        .act_min = act_min, .act_max = act_max,
    };
    return EA_OK;
}

EA_INVOKE(sub) {
    ea_binary_invoke_s8(m, op, sub_row_s8, EA_OP_CPARAMS(ea_add_params, op));
    return EA_OK;
}

/* MUL int8 with broadcasting (TFLM's reference_integer_ops::Mul / BroadcastMul6DSlow): the product of
 * the zero-point-corrected inputs, rescaled by in1 x in2 / out scale. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_MUL = 21 }; /* BuiltinOptions_MulOptions */

typedef struct {
    int32_t in1_offset, in2_offset, out_offset, mult, shift, act_min, act_max;
} mul_params;

static void mul_row_s8(const void *params, int32_t n, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                       int8_t *out) {
    const mul_params *p = params;
    for (int32_t i = 0; i < n; ++i) {
        const int32_t prod = (p->in1_offset + a[i * sa]) * (p->in2_offset + b[i * sb]);
        const int32_t v = ea_wrap_add(p->out_offset, ea_mbqm(prod, p->mult, p->shift));
        out[i] = (int8_t)ea_clamp(v, p->act_min, p->act_max);
    }
}

EA_PREPARE(mul) {
    int8_t act = 0;
    ea_status st;
    if (c->options_type == BO_MUL && fb_i8(c->r, &c->options, 0, 0, EA_MSG("MulOptions.fused_activation_function"), &act))
        return EA_OP_OPTIONS_FAIL(c);
    if ((st = ea_binary_prepare_common(c))) return st;
    const ea_tensor *a = &c->m->tensors[c->op->in[0]], *b = &c->m->tensors[c->op->in[1]], *out = &c->m->tensors[c->op->out];
    int32_t mult, shift, act_min, act_max;
    if (ea_quantize_multiplier(a->scale, b->scale, out->scale, 0, &mult, &shift) || shift > 30)
        return EA_OP_FAIL(c, EA_MSG("effective output scale out of range"));
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    *EA_OP_PARAMS(mul_params, c->op) = (mul_params){
        .in1_offset = -a->zero_point, .in2_offset = -b->zero_point, .out_offset = out->zero_point,
        .mult = mult, .shift = shift, .act_min = act_min, .act_max = act_max,
    };
    return EA_OK;
}

EA_INVOKE(mul) {
    ea_binary_invoke_s8(m, op, mul_row_s8, EA_OP_CPARAMS(mul_params, op));
    return EA_OK;
}

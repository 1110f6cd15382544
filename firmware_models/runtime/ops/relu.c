/* RELU int8 (TFLM's ReluQuantized): requantize to the output, then clamp below at the output's zero. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

typedef struct {
    int32_t in_zp, out_zp, mult, shift, act_min;
} relu_params;

static void relu_s8(const relu_params *p, uint32_t n, const int8_t *in, int8_t *out) {
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t v = ea_wrap_add(p->out_zp, ea_mbqm((int32_t)in[i] - p->in_zp, p->mult, p->shift));
        out[i] = (int8_t)ea_clamp(v, p->act_min, 127);
    }
}

EA_PREPARE(relu) {
    ea_status st;
    if ((st = ea_unary_prepare_common(c))) return st;
    const ea_tensor *in = &c->m->tensors[c->op->in[0]], *out = &c->m->tensors[c->op->out];
    /* CalculateReluOpData: the scale ratio is a float division, widened afterwards. */
    int32_t mult, shift;
    if (ea_quantize_multiplier(in->scale / out->scale, 1.0f, 1.0f, 0, &mult, &shift) || shift > 30)
        return EA_OP_FAIL(c, EA_MSG("input/output scale ratio out of range"));
    /* act_min = max(-128, zero_point + roundf(0 / scale)); act_max stays 127. */
    *EA_OP_PARAMS(relu_params, c->op) = (relu_params){
        .in_zp = in->zero_point, .out_zp = out->zero_point, .mult = mult, .shift = shift,
        .act_min = out->zero_point > -128 ? out->zero_point : -128,
    };
    return EA_OK;
}

EA_INVOKE(relu) {
    const ea_tensor *out = &m->tensors[op->out];
    relu_s8(EA_OP_CPARAMS(relu_params, op), out->count, (const int8_t *)ea_tensor_data(m, op->in[0]),
            (int8_t *)ea_vdata(m, out));
    return EA_OK;
}

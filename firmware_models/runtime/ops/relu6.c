/* RELU6 int8 (TFLM's Relu6Quantized): a clamp of the raw values between the input's quantized 0 and 6.
 * The output's quantization is not used (TFLM's Relu6Prepare reads only the input's). */
#include <math.h>

#include "ea_ops.h"
#include "ea_quant.h"

typedef struct {
    int8_t lower, upper;
} relu6_params;

static void relu6_s8(const relu6_params *p, uint32_t n, const int8_t *in, int8_t *out) {
    for (uint32_t i = 0; i < n; ++i) {
        const int8_t v = in[i];
        out[i] = v > p->upper ? p->upper : (v < p->lower ? p->lower : v);
    }
}

EA_PREPARE(relu6) {
    ea_status st;
    if ((st = ea_unary_prepare_common(c))) return st;
    const ea_tensor *in = &c->m->tensors[c->op->in[0]];
    /* FloatToQuantizedType<int8_t>(6.0f, scale, zero_point): round(6 / scale) + zero_point, clamped. */
    const int32_t six = ea_wrap_add(ea_f32_to_i32_x86(roundf(6.0f / in->scale)), in->zero_point);
    *EA_OP_PARAMS(relu6_params, c->op) = (relu6_params){
        .lower = (int8_t)in->zero_point, .upper = (int8_t)ea_clamp(six, -128, 127),
    };
    return EA_OK;
}

EA_INVOKE(relu6) {
    const ea_tensor *out = &m->tensors[op->out];
    relu6_s8(EA_OP_CPARAMS(relu6_params, op), out->count, (const int8_t *)ea_tensor_data(m, op->in[0]),
             (int8_t *)ea_vdata(m, out));
    return EA_OK;
}

/* TANH int8 (TFLM's reference_integer_ops::Tanh): LOGISTIC's input handling with gemmlowp's fixed-point
 * tanh; the output is tanh x 128 around zero (its quantization is not read). */
#include "ea_fixedpoint.h"
#include "ea_ops.h"
#include "ea_quant.h"

static void tanh_s8(const void *vp, uint32_t n, const int8_t *in, int8_t *out) {
    const ea_sigmoid_params *p = vp;
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t x = (int32_t)in[i] - p->in_zp;
        if (x <= -p->radius) {
            out[i] = -128;
        } else if (x >= p->radius) {
            out[i] = 127;
        } else {
            const int32_t q0 = ea_fp_tanh(ea_mbqm(x, p->mult, p->shift), 4);
            out[i] = (int8_t)ea_clamp(ea_rdbypot(q0, 24), -128, 127);
        }
    }
}

EA_PREPARE(tanh) {
    ea_status st;
    ea_sigmoid_params p;
    if ((st = ea_sigmoid_prepare_common(c, &p))) return st;
    *EA_OP_PARAMS(ea_sigmoid_params, c->op) = p;
    ea_s8_map_request_scratch(c);
    return EA_OK;
}

EA_INVOKE(tanh) {
    ea_s8_map(m, op, tanh_s8, EA_OP_CPARAMS(ea_sigmoid_params, op));
    return EA_OK;
}

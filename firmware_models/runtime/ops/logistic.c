/* LOGISTIC int8 (TFLM's reference_integer_ops::Logistic): inputs beyond the radius saturate; the rest are
 * rescaled to Q4.27 and go through gemmlowp's fixed-point logistic. Output zero point -128. */
#include "ea_fixedpoint.h"
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

static void logistic_s8(const void *vp, uint32_t n, const int8_t *in, int8_t *out) {
    const ea_sigmoid_params *p = vp;
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t x = (int32_t)in[i] - p->in_zp;
        if (x <= -p->radius) {
            out[i] = -128;
        } else if (x >= p->radius) {
            out[i] = 127;
        } else {
            const int32_t q0 = ea_fp_logistic(ea_mbqm(x, p->mult, p->shift), 4);
            out[i] = (int8_t)ea_clamp(ea_rdbypot(q0, 23) - 128, -128, 127);
        }
    }
}

EA_PREPARE(logistic) {
    ea_status st;
    ea_sigmoid_params p;
    if ((st = ea_sigmoid_prepare_common(c, &p))) return st;
    if (c->m->tensors[c->op->out].zero_point != -128) return EA_OP_FAIL(c, EA_MSG("output zero point must be -128"));
    *EA_OP_PARAMS(ea_sigmoid_params, c->op) = p;
    ea_s8_map_request_scratch(c);
    return EA_OK;
}

EA_INVOKE(logistic) {
    ea_s8_map(m, op, logistic_s8, EA_OP_CPARAMS(ea_sigmoid_params, op));
    return EA_OK;
}

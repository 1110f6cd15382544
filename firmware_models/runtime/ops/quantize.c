/* QUANTIZE: float32 -> int8 (TFLM reference_ops::AffineQuantize) and int8 -> int8 requantization
 * (reference_ops::Requantize). */
#include <math.h>
#include <string.h>

#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

/* The operator's prepared parameters: which conversion, and its parameters. */
typedef struct {
    uint8_t from_float;
    ea_affine_params affine;        /* float32 -> int8 */
    ea_requantize_params requant;   /* int8 -> int8 */
} quantize_op_params;

/* static_cast<int32_t>(float) as x86 executes it (cvttss2si): NaN and out-of-range give INT32_MIN.
 * That is what the TFLM oracle computes; doing it explicitly avoids C's undefined conversion. */
static int32_t f32_to_i32_x86(float v) {
    if (!(v > -2147483904.0f && v < 2147483648.0f)) return INT32_MIN;
    return (int32_t)v;
}

EA_KERNEL void ea_quantize_f32_s8(const ea_affine_params *p, uint32_t n, const uint8_t *in, int8_t *out) {
    const float scale = p->scale;
    const int32_t zero_point = p->zero_point;
    for (uint32_t i = 0; i < n; ++i) {
        float v;
        memcpy(&v, in + 4u * i, sizeof v);
        const int32_t q = ea_wrap_add(f32_to_i32_x86(roundf(v / scale)), zero_point);
        out[i] = (int8_t)ea_clamp(q, -128, 127);
    }
}

EA_KERNEL void ea_requantize_s8(const ea_requantize_params *p, uint32_t n, const int8_t *in, int8_t *out) {
    const int32_t in_zp = p->in_zp, out_zp = p->out_zp, mult = p->mult, shift = p->shift;
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t v = ea_wrap_add(ea_mbqm((int32_t)in[i] - in_zp, mult, shift), out_zp);
        out[i] = (int8_t)ea_clamp(v, -128, 127);
    }
}

EA_PREPARE(quantize) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    ea_status st;
    if (op->in[0] < 0) return EA_OP_FAIL(c, EA_MSG("input tensor is missing"));
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->count != out->count) return EA_OP_FAIL(c, EA_MSG("input and output sizes differ"));
    if ((st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    if (out->nscales != 1) return EA_OP_FAIL(c, EA_MSG("output must have one scale"));
    quantize_op_params *p = EA_OP_PARAMS(quantize_op_params, op);
    if (in->type == EA_T_FLOAT32) {
        *p = (quantize_op_params){.from_float = 1, .affine = {.scale = out->scale, .zero_point = out->zero_point}};
        return EA_OK;
    }
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input")))) return st;
    int32_t mult, shift;
    if (ea_quantize_multiplier(in->scale, 1.0f, out->scale, 0, &mult, &shift) || shift > 30)
        return EA_OP_FAIL(c, EA_MSG("input/output scale ratio out of range"));
    *p = (quantize_op_params){
        .requant = {.in_zp = in->zero_point, .out_zp = out->zero_point, .mult = mult, .shift = shift},
    };
    return EA_OK;
}

EA_INVOKE(quantize) {
    const quantize_op_params *p = EA_OP_CPARAMS(quantize_op_params, op);
    const ea_tensor *out = &m->tensors[op->out];
    if (p->from_float)
        ea_quantize_f32_s8(&p->affine, out->count, ea_tensor_data(m, op->in[0]), (int8_t *)ea_vdata(m, out));
    else
        ea_requantize_s8(&p->requant, out->count, (const int8_t *)ea_tensor_data(m, op->in[0]), (int8_t *)ea_vdata(m, out));
    return EA_OK;
}

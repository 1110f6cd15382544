/* DEQUANTIZE int8 -> float32 (TFLM reference_ops::Dequantize): scale * (q - zero_point) in float. */
#include <string.h>

#include "ea_ops.h"
#include "ea_msg.h"

EA_KERNEL void ea_dequantize_s8_f32(const ea_affine_params *p, uint32_t n, const int8_t *in, uint8_t *out) {
    const float scale = p->scale;
    const int32_t zero_point = p->zero_point;
    for (uint32_t i = 0; i < n; ++i) {
        const float v = scale * (float)((int32_t)in[i] - zero_point);
        memcpy(out + 4u * i, &v, sizeof v);
    }
}

EA_PREPARE(dequantize) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    ea_status st;
    if (op->in[0] < 0) return EA_OP_FAIL(c, EA_MSG("input tensor is missing"));
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->count != out->count) return EA_OP_FAIL(c, EA_MSG("input and output sizes differ"));
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input")))) return st;
    if (out->type != EA_T_FLOAT32) return EA_OP_FAIL(c, EA_MSG("only int8 -> float32 is supported"));
    *EA_OP_PARAMS(ea_affine_params, op) = (ea_affine_params){.scale = in->scale, .zero_point = in->zero_point};
    return EA_OK;
}

EA_INVOKE(dequantize) {
    const ea_tensor *out = &m->tensors[op->out];
    ea_dequantize_s8_f32(EA_OP_CPARAMS(ea_affine_params, op), out->count, (const int8_t *)ea_tensor_data(m, op->in[0]),
                         ea_vdata(m, out));
    return EA_OK;
}

/* ARG_MAX int8 -> int32 (TFLM's reference_ops::ArgMinMax with GreaterFn): the index of the first
 * largest value along a constant axis; TFLM supports only int32 indices and an int32 axis. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

typedef struct {
    int32_t outer, axis_size, inner;
} arg_max_params;

EA_PREPARE(arg_max) {
    ea_model *m = c->m;
    const ea_op *op = c->op;
    ea_status st;
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input")))) return st;
    if (op->in[1] < 0) return EA_OP_FAIL(c, EA_MSG("axis tensor is missing"));
    const ea_tensor *in = &m->tensors[op->in[0]], *ax = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (!ax->is_const || ax->type != EA_T_INT32 || ax->count < 1) return EA_OP_FAIL(c, EA_MSG("axis must be a constant int32"));
    if (out->type != EA_T_INT32) return EA_OP_FAIL(c, EA_MSG("output must be int32 (TFLM supports no other index type)"));
    int32_t axis = ea_load_i32(ea_cdata(m, ax));
    if (axis < 0) axis += in->ndim;
    if (axis < 0 || axis >= in->ndim) return EA_OP_FAIL(c, EA_MSG("axis out of range"));
    if (out->ndim != in->ndim - 1) return EA_OP_FAIL(c, EA_MSG("output rank must be the input rank minus one"));
    arg_max_params p = {.outer = 1, .axis_size = in->dims[axis], .inner = 1};
    for (int32_t d = 0; d < in->ndim; d++) {
        if (d == axis) continue;
        if (in->dims[d] != out->dims[d < axis ? d : d - 1]) return EA_OP_FAIL(c, EA_MSG("output shape is not the input's without the axis"));
        if (d < axis) p.outer *= in->dims[d];
        else p.inner *= in->dims[d];
    }
    *EA_OP_PARAMS(arg_max_params, c->op) = p;
    return EA_OK;
}

EA_INVOKE(arg_max) {
    const arg_max_params *p = EA_OP_CPARAMS(arg_max_params, op);
    const int8_t *in = (const int8_t *)ea_tensor_data(m, op->in[0]);
    uint8_t *out = ea_vdata(m, &m->tensors[op->out]);
    for (int32_t o = 0; o < p->outer; ++o)
        for (int32_t k = 0; k < p->inner; ++k) {
            const int8_t *base = in + o * p->axis_size * p->inner + k;
            int8_t best = base[0];
            uint32_t index = 0;
            for (int32_t i = 1; i < p->axis_size; ++i)
                if (base[i * p->inner] > best) {
                    best = base[i * p->inner];
                    index = (uint32_t)i;
                }
            uint8_t *dst = out + 4u * (uint32_t)(o * p->inner + k); /* little-endian int32, as the host reads it */
            dst[0] = (uint8_t)index;
            dst[1] = (uint8_t)(index >> 8);
            dst[2] = (uint8_t)(index >> 16);
            dst[3] = (uint8_t)(index >> 24);
        }
    return EA_OK;
}

/* CONCATENATION int8 (TFLM's reference_ops::Concatenation): every input shares the output's scale and
 * zero point (TFLM's Prepare insists), so the output is the inputs' bytes interleaved along the axis. Up
 * to 10 inputs (TFLM's kMaxInputNum); those past the third are read from the flatbuffer at invoke. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_CONCATENATION = 10, MAX_INPUTS = 10 }; /* BuiltinOptions_ConcatenationOptions */

typedef struct {
    uint32_t inputs_pos;  /* the operator's input index vector in the flatbuffer */
    int32_t n_inputs, axis, outer;
} concat_params;

/* Tensor index of input k. */
static int32_t input_at(const ea_model *m, const concat_params *p, int32_t k) {
    return ea_load_i32(m->data + p->inputs_pos + 4u * (uint32_t)k);
}

/* Elements of t from `axis` to the last dimension (one input's slice per outer index). */
static uint32_t inner_size(const ea_tensor *t, int32_t axis) {
    uint32_t n = 1;
    for (int32_t d = axis; d < t->ndim; d++) n *= (uint32_t)t->dims[d];
    return n;
}

EA_PREPARE(concatenation) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    int32_t axis = 0;
    int8_t act = 0;
    ea_status st;
    if (c->options_type == BO_CONCATENATION &&
        (fb_i32(c->r, &c->options, 0, 0, EA_MSG("ConcatenationOptions.axis"), &axis) ||
         fb_i8(c->r, &c->options, 1, 0, EA_MSG("ConcatenationOptions.fused_activation_function"), &act)))
        return EA_OP_OPTIONS_FAIL(c);
    c->all_inputs_used = 1;
    if (act != 0) return EA_OP_FAIL(c, EA_MSG("fused activations are not supported (TFLM refuses them too)"));
    const uint32_t n = c->inputs.count;
    if (n < 1 || n > MAX_INPUTS) return ea_op_fail(m, c->index, EA_MSG("needs 1 to 10 inputs, got "), NULL, n, 1);
    if ((st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    const ea_tensor *out = &m->tensors[op->out];
    if (axis < 0) axis += out->ndim;
    if (axis < 0 || axis >= out->ndim) return EA_OP_FAIL(c, EA_MSG("axis out of range"));
    uint32_t along = 0;
    for (uint32_t k = 0; k < n; k++) {
        const int32_t ti = ea_prepare_input(c, k);
        if ((st = ea_need_s8(c, ti, EA_MSG("input")))) return st;
        const ea_tensor *t = &m->tensors[ti];
        if (t->scale != out->scale || t->zero_point != out->zero_point)
            return EA_OP_FAIL(c, EA_MSG("inputs must share the output's scale and zero point"));
        if (t->ndim != out->ndim) return EA_OP_FAIL(c, EA_MSG("inputs and output differ in rank"));
        for (int32_t d = 0; d < out->ndim; d++)
            if (d != axis && t->dims[d] != out->dims[d]) return EA_OP_FAIL(c, EA_MSG("input shapes differ off the axis"));
        along += (uint32_t)t->dims[axis];
    }
    if (along != (uint32_t)out->dims[axis]) return EA_OP_FAIL(c, EA_MSG("output size along the axis is not the inputs' sum"));
    int32_t outer = 1;
    for (int32_t d = 0; d < axis; d++) outer *= out->dims[d];
    *EA_OP_PARAMS(concat_params, op) = (concat_params){
        .inputs_pos = c->inputs.pos, .n_inputs = (int32_t)n, .axis = axis, .outer = outer,
    };
    return EA_OK;
}

EA_INVOKE(concatenation) {
    const concat_params *p = EA_OP_CPARAMS(concat_params, op);
    uint8_t *out = ea_vdata(m, &m->tensors[op->out]);
    for (int32_t o = 0; o < p->outer; o++)
        for (int32_t k = 0; k < p->n_inputs; k++) {
            const int32_t ti = input_at(m, p, k);
            const uint32_t len = inner_size(&m->tensors[ti], p->axis);
            ea_copy_bytes(len, ea_tensor_data(m, ti) + (uint32_t)o * len, out);
            out += len;
        }
    return EA_OK;
}

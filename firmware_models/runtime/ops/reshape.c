/* RESHAPE / SQUEEZE / EXPAND_DIMS: the bytes are unchanged, only the shape differs. */
#include "ea_ops.h"

EA_KERNEL void ea_copy_bytes(uint32_t n, const uint8_t *in, uint8_t *out) {
    for (uint32_t i = 0; i < n; ++i) out[i] = in[i];
}

EA_PREPARE(reshape) {
    ea_model *m = c->m;
    const ea_op *op = c->op;
    if (op->in[0] < 0) return EA_OP_FAIL(c, "input tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->type != out->type || ea_type_size(in->type) == 0)
        return EA_OP_FAIL(c, "input and output types differ or are unsupported");
    if (in->count != out->count) return EA_OP_FAIL(c, "input and output sizes differ");
    return EA_OK;
}

EA_INVOKE(reshape) {
    const ea_tensor *out = &m->tensors[op->out];
    ea_copy_bytes(out->bytes, ea_tensor_data(m, op->in[0]), ea_vdata(m, out));
    return EA_OK;
}

/* RESHAPE / SQUEEZE / EXPAND_DIMS: the bytes are unchanged, only the shape differs. */
#include "ea_ops.h"
#include "ea_msg.h"

/* Word steps (unaligned words are fine on Cortex-M3 and up, and memcpy of 4 bytes is one load there):
 * newlib-nano's memcpy goes byte by byte. */
EA_KERNEL void ea_copy_bytes(uint32_t n, const uint8_t *in, uint8_t *out) {
    for (; n >= 16; n -= 16, in += 16, out += 16) {
        uint32_t a, b, c, d;
        __builtin_memcpy(&a, in, 4);
        __builtin_memcpy(&b, in + 4, 4);
        __builtin_memcpy(&c, in + 8, 4);
        __builtin_memcpy(&d, in + 12, 4);
        __builtin_memcpy(out, &a, 4);
        __builtin_memcpy(out + 4, &b, 4);
        __builtin_memcpy(out + 8, &c, 4);
        __builtin_memcpy(out + 12, &d, 4);
    }
    for (; n >= 4; n -= 4, in += 4, out += 4) __builtin_memcpy(out, in, 4);
    for (; n > 0; --n) *out++ = *in++;
}

EA_PREPARE(reshape) {
    ea_model *m = c->m;
    const ea_op *op = c->op;
    if (op->in[0] < 0) return EA_OP_FAIL(c, EA_MSG("input tensor is missing"));
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->type != out->type || ea_type_size(in->type) == 0)
        return EA_OP_FAIL(c, EA_MSG("input and output types differ or are unsupported"));
    if (in->count != out->count) return EA_OP_FAIL(c, EA_MSG("input and output sizes differ"));
    return EA_OK;
}

EA_INVOKE(reshape) {
    const ea_tensor *out = &m->tensors[op->out];
    ea_copy_bytes(out->bytes, ea_tensor_data(m, op->in[0]), ea_vdata(m, out));
    return EA_OK;
}

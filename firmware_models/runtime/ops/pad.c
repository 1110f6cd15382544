/* PAD / PADV2 int8: copies the input into the middle of the output and fills the border with `value`
 * (the output zero point for PAD, the constant tensor for PADV2). Shapes extended to 6 dims. */
#include "ea_ops.h"
#include "ea_quant.h"

EA_KERNEL void ea_pad_s8(const ea_pad_params *p, const int32_t in_dims[6], const int8_t *in, int8_t *out) {
    int32_t od[6], before[6];
    const int8_t value = p->value;
    for (int d = 0; d < 6; ++d) {
        before[d] = p->before[d];
        od[d] = before[d] + in_dims[d] + p->after[d];
    }
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < od[0]; ++i0)
        for (int32_t i1 = 0; i1 < od[1]; ++i1)
            for (int32_t i2 = 0; i2 < od[2]; ++i2)
                for (int32_t i3 = 0; i3 < od[3]; ++i3)
                    for (int32_t i4 = 0; i4 < od[4]; ++i4)
                        for (int32_t i5 = 0; i5 < od[5]; ++i5) {
                            const int32_t c[6] = {i0 - before[0], i1 - before[1], i2 - before[2],
                                                  i3 - before[3], i4 - before[4], i5 - before[5]};
                            int32_t src = 0;
                            int d = 0;
                            for (; d < 6; ++d) {
                                if (c[d] < 0 || c[d] >= in_dims[d]) break;
                                src = src * in_dims[d] + c[d];
                            }
                            out[o++] = d == 6 ? in[src] : value;
                        }
}

static ea_status prepare_pad(ea_prepare_ctx *c, int v2) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    ea_status st;

    if ((st = ea_need_s8(c, op->in[0], "input")) || (st = ea_need_s8(c, op->out, "output"))) return st;
    if (op->in[1] < 0) return EA_OP_FAIL(c, "paddings tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *pt = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (!pt->is_const || (pt->type != EA_T_INT32 && pt->type != EA_T_INT64))
        return EA_OP_FAIL(c, "paddings must be a constant int32/int64 tensor");
    if (pt->count != 2u * in->ndim || out->ndim != in->ndim) return EA_OP_FAIL(c, "paddings shape does not match the input rank");
    ea_pad_params p = {.value = 0};
    const int lead = EA_MAX_DIMS - in->ndim;
    for (int d = 0; d < in->ndim; d++) {
        int64_t b, a;
        if (pt->type == EA_T_INT32) {
            b = ea_load_i32(ea_cdata(m, pt) + 8u * d);
            a = ea_load_i32(ea_cdata(m, pt) + 8u * d + 4);
        } else {
            b = (int64_t)((uint64_t)(uint32_t)ea_load_i32(ea_cdata(m, pt) + 16u * d) |
                          ((uint64_t)(uint32_t)ea_load_i32(ea_cdata(m, pt) + 16u * d + 4) << 32));
            a = (int64_t)((uint64_t)(uint32_t)ea_load_i32(ea_cdata(m, pt) + 16u * d + 8) |
                          ((uint64_t)(uint32_t)ea_load_i32(ea_cdata(m, pt) + 16u * d + 12) << 32));
        }
        if (b < 0 || a < 0 || b > EA_MAX_ELEMS || a > EA_MAX_ELEMS) return EA_OP_FAIL(c, "paddings must be non-negative");
        if (b > INT16_MAX || a > INT16_MAX) return EA_OP_FAIL(c, "paddings larger than 32767 are not supported");
        if ((int64_t)in->dims[d] + b + a != out->dims[d]) return EA_OP_FAIL(c, "output shape is not input plus paddings");
        p.before[d + lead] = (int16_t)b;
        p.after[d + lead] = (int16_t)a;
    }
    if (v2 && op->in[2] >= 0) {
        const ea_tensor *cv = &m->tensors[op->in[2]];
        if (!cv->is_const || cv->type != EA_T_INT8 || cv->count != 1) return EA_OP_FAIL(c, "constant_values must be one constant int8");
        /* TFLM's PadPrepare: the constant must share the output's quantization. */
        if (cv->zero_point != out->zero_point || cv->scale != out->scale)
            return EA_OP_FAIL(c, "constant_values quantization differs from the output's");
        p.value = (int8_t)ea_cdata(m, cv)[0];
    } else {
        p.value = (int8_t)out->zero_point;
    }
    *EA_OP_PARAMS(ea_pad_params, op) = p;
    return EA_OK;
}

EA_PREPARE(pad) { return prepare_pad(c, 0); }
EA_PREPARE(padv2) { return prepare_pad(c, 1); }

EA_INVOKE(pad) {
    int32_t di[6];
    ea_dims6_of(&m->tensors[op->in[0]], di);
    ea_pad_s8(EA_OP_CPARAMS(ea_pad_params, op), di, (const int8_t *)ea_tensor_data(m, op->in[0]),
              (int8_t *)ea_vdata(m, &m->tensors[op->out]));
    return EA_OK;
}

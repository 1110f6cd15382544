/* PAD / PADV2 int8: copies the input into the middle of the output and fills the border with `value`
 * (the output zero point for PAD, the constant tensor for PADV2). Shapes extended to 6 dims. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

static void fill_bytes(int8_t *dst, int8_t value, uint32_t n) {
    const uint32_t word = 0x01010101u * (uint8_t)value;
    for (; n >= 8; n -= 8, dst += 8) {
        __builtin_memcpy(dst, &word, 4);
        __builtin_memcpy(dst + 4, &word, 4);
    }
    for (; n > 0; --n) *dst++ = value;
}

/* Output rows in order: dims after the innermost padded one (L) are never padded, so they form one
 * unit of `inner` bytes and a row of dim L is `before` units of fill, a contiguous run of input, `after`
 * units of fill; a row whose outer coordinates fall in the padding is all fill. The input is read in
 * order. */
EA_KERNEL void ea_pad_s8(const ea_pad_params *p, const int32_t in_dims[6], const int8_t *in, int8_t *out) {
    int32_t od[6], last = 0;
    uint32_t inner = 1;
    for (int d = 0; d < 6; ++d) {
        od[d] = p->before[d] + in_dims[d] + p->after[d];
        if (p->before[d] || p->after[d]) last = d;
        if (od[d] == 0) return;
    }
    for (int d = last + 1; d < 6; ++d) inner *= (uint32_t)in_dims[d];
    const uint32_t lead = (uint32_t)p->before[last] * inner, run = (uint32_t)in_dims[last] * inner,
                   tail = (uint32_t)p->after[last] * inner, row = lead + run + tail;
    int32_t i[5] = {0, 0, 0, 0, 0}; /* odometer over the output dims before `last` */
    for (;;) {
        int inside = 1;
        for (int d = 0; d < last; ++d)
            if (i[d] < p->before[d] || i[d] >= p->before[d] + in_dims[d]) inside = 0;
        if (inside) {
            fill_bytes(out, p->value, lead);
            ea_copy_bytes(run, (const uint8_t *)in, (uint8_t *)out + lead);
            fill_bytes(out + lead + run, p->value, tail);
            in += run;
        } else {
            fill_bytes(out, p->value, row);
        }
        out += row;
        int d = last - 1;
        for (; d >= 0; --d) {
            if (++i[d] < od[d]) break;
            i[d] = 0;
        }
        if (d < 0) return;
    }
}

static ea_status prepare_pad(ea_prepare_ctx *c, int v2) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    ea_status st;

    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input"))) || (st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    if (op->in[1] < 0) return EA_OP_FAIL(c, EA_MSG("paddings tensor is missing"));
    const ea_tensor *in = &m->tensors[op->in[0]], *pt = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (!pt->is_const || (pt->type != EA_T_INT32 && pt->type != EA_T_INT64))
        return EA_OP_FAIL(c, EA_MSG("paddings must be a constant int32/int64 tensor"));
    if (pt->count != 2u * in->ndim || out->ndim != in->ndim) return EA_OP_FAIL(c, EA_MSG("paddings shape does not match the input rank"));
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
        if (b < 0 || a < 0 || b > EA_MAX_ELEMS || a > EA_MAX_ELEMS) return EA_OP_FAIL(c, EA_MSG("paddings must be non-negative"));
        if (b > INT16_MAX || a > INT16_MAX) return EA_OP_FAIL(c, EA_MSG("paddings larger than 32767 are not supported"));
        if ((int64_t)in->dims[d] + b + a != out->dims[d]) return EA_OP_FAIL(c, EA_MSG("output shape is not input plus paddings"));
        p.before[d + lead] = (int16_t)b;
        p.after[d + lead] = (int16_t)a;
    }
    if (v2 && op->in[2] >= 0) {
        const ea_tensor *cv = &m->tensors[op->in[2]];
        if (!cv->is_const || cv->type != EA_T_INT8 || cv->count != 1) return EA_OP_FAIL(c, EA_MSG("constant_values must be one constant int8"));
        /* TFLM's PadPrepare: the constant must share the output's quantization. */
        if (cv->zero_point != out->zero_point || cv->scale != out->scale)
            return EA_OP_FAIL(c, EA_MSG("constant_values quantization differs from the output's"));
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

/* SPACE_TO_BATCH_ND int8 (TFLM's reference_ops::SpaceToBatchND), rank 3 or 4: each output batch takes
 * every block-th pixel of the padded input. Padding is the output zero point (real 0.0), as LiteRT's
 * kernel fills it. TFLM's kernel fills it with SpaceToBatchParams.output_offset, which its Prepare never
 * sets: its padding is whatever its arena held (0 in a fresh process), so only unpadded
 * SPACE_TO_BATCH_ND is byte-comparable with TFLM. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

typedef struct {
    int32_t block_h, block_w, pad_top, pad_left, pad_value;
} space_batch_params;

ea_dims4 ea_dims4_nhwc(const ea_tensor *t) {
    if (t->ndim == 4) return ea_dims4_of(t);
    const ea_dims4 d = {.n = t->dims[0], .h = t->dims[1], .w = 1, .c = t->dims[2]};
    return d;
}

ea_status ea_space_batch_prepare(ea_prepare_ctx *c, int32_t block[2], int32_t before[2], int32_t after[2]) {
    ea_model *m = c->m;
    const ea_op *op = c->op;
    ea_status st;
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input"))) || (st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->ndim < 3 || in->ndim > 4 || out->ndim != in->ndim) return EA_OP_FAIL(c, EA_MSG("input and output must both be 3-D or 4-D"));
    if (op->in[1] < 0 || op->in[2] < 0) return EA_OP_FAIL(c, EA_MSG("block shape or paddings tensor is missing"));
    const ea_tensor *bs = &m->tensors[op->in[1]], *pd = &m->tensors[op->in[2]];
    const uint32_t spatial = (uint32_t)in->ndim - 2u;
    if (!bs->is_const || bs->type != EA_T_INT32 || bs->count != spatial)
        return EA_OP_FAIL(c, EA_MSG("block shape must be a constant int32 vector, one value per spatial dimension"));
    if (!pd->is_const || pd->type != EA_T_INT32 || pd->count != 2u * spatial)
        return EA_OP_FAIL(c, EA_MSG("paddings/crops must be a constant int32 tensor of shape [spatial dims, 2]"));
    block[1] = 1;
    before[1] = after[1] = 0;
    for (uint32_t d = 0; d < spatial; d++) {
        block[d] = ea_load_i32(ea_cdata(m, bs) + 4u * d);
        before[d] = ea_load_i32(ea_cdata(m, pd) + 8u * d);
        after[d] = ea_load_i32(ea_cdata(m, pd) + 8u * d + 4u);
        if (block[d] < 1 || block[d] > EA_MAX_WINDOW) return EA_OP_FAIL(c, EA_MSG("block shape out of range"));
        if (before[d] < 0 || after[d] < 0 || before[d] > EA_MAX_WINDOW || after[d] > EA_MAX_WINDOW)
            return EA_OP_FAIL(c, EA_MSG("paddings/crops out of range"));
    }
    return EA_OK;
}

EA_PREPARE(space_to_batch_nd) {
    int32_t block[2], before[2], after[2];
    ea_status st;
    if ((st = ea_space_batch_prepare(c, block, before, after))) return st;
    const ea_dims4 in = ea_dims4_nhwc(&c->m->tensors[c->op->in[0]]), out = ea_dims4_nhwc(&c->m->tensors[c->op->out]);
    const int64_t ph = (int64_t)in.h + before[0] + after[0], pw = (int64_t)in.w + before[1] + after[1];
    if (ph % block[0] || pw % block[1]) return EA_OP_FAIL(c, EA_MSG("padded size is not a multiple of the block shape"));
    if ((int64_t)out.n != (int64_t)in.n * block[0] * block[1] || out.h != ph / block[0] || out.w != pw / block[1] ||
        out.c != in.c)
        return EA_OP_FAIL(c, EA_MSG("output shape does not match the block shape and paddings"));
    *EA_OP_PARAMS(space_batch_params, c->op) = (space_batch_params){
        .block_h = block[0], .block_w = block[1], .pad_top = before[0], .pad_left = before[1],
        .pad_value = c->m->tensors[c->op->out].zero_point,
    };
    return EA_OK;
}

EA_INVOKE(space_to_batch_nd) {
    const space_batch_params *p = EA_OP_CPARAMS(space_batch_params, op);
    const struct { ea_dims4 in, out; } d = {ea_dims4_nhwc(&m->tensors[op->in[0]]), ea_dims4_nhwc(&m->tensors[op->out])};
    const int8_t *in = (const int8_t *)ea_tensor_data(m, op->in[0]);
    int8_t *out = (int8_t *)ea_vdata(m, &m->tensors[op->out]);
    const int32_t depth = d.in.c;
    for (int32_t ob = 0; ob < d.out.n; ++ob) {
        const int32_t ib = ob % d.in.n;
        const int32_t shift_w = (ob / d.in.n) % p->block_w, shift_h = (ob / d.in.n) / p->block_w;
        for (int32_t oh = 0; oh < d.out.h; ++oh)
            for (int32_t ow = 0; ow < d.out.w; ++ow) {
                int8_t *o = out + ((ob * d.out.h + oh) * d.out.w + ow) * depth;
                const int32_t ih = oh * p->block_h + shift_h - p->pad_top, iw = ow * p->block_w + shift_w - p->pad_left;
                if (ih < 0 || ih >= d.in.h || iw < 0 || iw >= d.in.w) {
                    for (int32_t k = 0; k < depth; ++k) o[k] = (int8_t)p->pad_value;
                } else {
                    ea_copy_bytes((uint32_t)depth, (const uint8_t *)(in + ((ib * d.in.h + ih) * d.in.w + iw) * depth),
                                  (uint8_t *)o);
                }
            }
    }
    return EA_OK;
}

/* BATCH_TO_SPACE_ND int8 (TFLM's reference_ops::BatchToSpaceND), rank 3 or 4: the inverse of
 * SPACE_TO_BATCH_ND, cropping the result. */
#include "ea_ops.h"
#include "ea_msg.h"

typedef struct {
    int32_t block_h, block_w, crop_top, crop_left;
} batch_space_params;

EA_PREPARE(batch_to_space_nd) {
    int32_t block[2], before[2], after[2];
    ea_status st;
    if ((st = ea_space_batch_prepare(c, block, before, after))) return st;
    const ea_dims4 in = ea_dims4_nhwc(&c->m->tensors[c->op->in[0]]), out = ea_dims4_nhwc(&c->m->tensors[c->op->out]);
    if (in.n % (block[0] * block[1])) return EA_OP_FAIL(c, EA_MSG("input batch is not a multiple of the block size"));
    if (out.n != in.n / (block[0] * block[1]) || (int64_t)out.h != (int64_t)in.h * block[0] - before[0] - after[0] ||
        (int64_t)out.w != (int64_t)in.w * block[1] - before[1] - after[1] || out.c != in.c)
        return EA_OP_FAIL(c, EA_MSG("output shape does not match the block shape and crops"));
    *EA_OP_PARAMS(batch_space_params, c->op) = (batch_space_params){
        .block_h = block[0], .block_w = block[1], .crop_top = before[0], .crop_left = before[1],
    };
    return EA_OK;
}

EA_INVOKE(batch_to_space_nd) {
    const batch_space_params *p = EA_OP_CPARAMS(batch_space_params, op);
    const struct { ea_dims4 in, out; } d = {ea_dims4_nhwc(&m->tensors[op->in[0]]), ea_dims4_nhwc(&m->tensors[op->out])};
    const int8_t *in = (const int8_t *)ea_tensor_data(m, op->in[0]);
    int8_t *out = (int8_t *)ea_vdata(m, &m->tensors[op->out]);
    const int32_t depth = d.in.c;
    for (int32_t ib = 0; ib < d.in.n; ++ib) {
        const int32_t ob = ib % d.out.n, spatial = ib / d.out.n;
        for (int32_t ih = 0; ih < d.in.h; ++ih) {
            const int32_t oh = ih * p->block_h + spatial / p->block_w - p->crop_top;
            if (oh < 0 || oh >= d.out.h) continue;
            for (int32_t iw = 0; iw < d.in.w; ++iw) {
                const int32_t ow = iw * p->block_w + spatial % p->block_w - p->crop_left;
                if (ow < 0 || ow >= d.out.w) continue;
                ea_copy_bytes((uint32_t)depth, (const uint8_t *)(in + ((ib * d.in.h + ih) * d.in.w + iw) * depth),
                              (uint8_t *)(out + ((ob * d.out.h + oh) * d.out.w + ow) * depth));
            }
        }
    }
    return EA_OK;
}

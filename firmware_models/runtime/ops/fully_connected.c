/* FULLY_CONNECTED int8 (as TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel).
 * The input is read as [batches, accum_depth] whatever its shape; the filter is [out_depth, accum_depth].
 * This file also holds the reference matrix product (ea_mat_s8) that CONV_2D shares. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_FC = 8 }; /* BuiltinOptions_FullyConnectedOptions */

/* The operator's prepared parameters: the kernel's struct and the per-tensor quantization. */
typedef struct {
    ea_fc_params k;
    int32_t mult, shift;     /* per-tensor; per-channel ones are in the arena (EA_CHAN_MULT) */
} fc_op_params;

/* Why it is shaped so: with the input offset folded into the bias, each step is one int8 x int8
 * multiply-accumulate; a 2 x 2 block (two channels, two columns) loads 4 values for 4 MACs, and the
 * accumulators wrap modulo 2^32 exactly as TFLM's int32 sums do (uint32 here: no undefined overflow). */
EA_KERNEL EA_KEEP_MAC_CHAINS void ea_mat_s8(const ea_requant *q, const int8_t *w, int32_t rows, int32_t depth, const int8_t *x,
                         int32_t x_stride, int32_t cols, int8_t *out, int32_t out_stride) {
    int32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        const int8_t *w0 = w + r * depth, *w1 = w0 + depth;
        const uint32_t b0 = (uint32_t)q->bias[r], b1 = (uint32_t)q->bias[r + 1];
        const ea_rq q0 = ea_rq_of(q, r), q1 = ea_rq_of(q, r + 1);
        int32_t c = 0;
        for (; c + 2 <= cols; c += 2) {
            const int8_t *x0 = x + c * x_stride, *x1 = x0 + x_stride, *p0 = w0, *p1 = w1;
            uint32_t a00 = b0, a01 = b1, a10 = b0, a11 = b1;
            int32_t k = depth;
#define EA_MAC_2X2()                                                                    \
    do {                                                                               \
        const int32_t u = *p0++, v = *p1++, s = *x0++, t = *x1++;                      \
        a00 += (uint32_t)(u * s), a01 += (uint32_t)(v * s);                            \
        a10 += (uint32_t)(u * t), a11 += (uint32_t)(v * t);                            \
    } while (0)
            for (; k >= 4; k -= 4) {
                EA_MAC_2X2();
                EA_MAC_2X2();
                EA_MAC_2X2();
                EA_MAC_2X2();
            }
            for (; k > 0; --k) EA_MAC_2X2();
#undef EA_MAC_2X2
            int8_t *o = out + c * out_stride + r;
            o[0] = ea_rq_out(&q0, q, a00);
            o[1] = ea_rq_out(&q1, q, a01);
            o[out_stride] = ea_rq_out(&q0, q, a10);
            o[out_stride + 1] = ea_rq_out(&q1, q, a11);
        }
        for (; c < cols; ++c) {
            const int8_t *x0 = x + c * x_stride, *p0 = w0, *p1 = w1;
            uint32_t a0 = b0, a1 = b1;
            for (int32_t k = depth; k > 0; --k) {
                const int32_t s = *x0++;
                a0 += (uint32_t)(*p0++ * s);
                a1 += (uint32_t)(*p1++ * s);
            }
            out[c * out_stride + r] = ea_requant_s8(q, a0, r);
            out[c * out_stride + r + 1] = ea_requant_s8(q, a1, r + 1);
        }
    }
    for (; r < rows; ++r) {
        for (int32_t c = 0; c < cols; ++c) {
            const int8_t *x0 = x + c * x_stride, *p0 = w + r * depth;
            uint32_t a = (uint32_t)q->bias[r];
            for (int32_t k = depth; k > 0; --k) a += (uint32_t)(*p0++ * *x0++);
            out[c * out_stride + r] = ea_requant_s8(q, a, r);
        }
    }
}

EA_KERNEL int32_t ea_fully_connected_s8_get_buffer_size(int32_t accum_depth, int32_t out_depth) {
    (void)accum_depth;
    (void)out_depth;
    return 0;
}

EA_KERNEL void ea_fully_connected_s8(const ea_fc_params *p, const ea_requant *q, int32_t batches, int32_t accum_depth,
                                     int32_t out_depth, const int8_t *in, const int8_t *filter, int8_t *out,
                                     void *scratch) {
    (void)scratch;
    if (p->filter_offset == 0) {
        ea_mat_s8(q, filter, out_depth, accum_depth, in, accum_depth, batches, out, out_depth);
        return;
    }
    /* A per-tensor filter zero point (rare): sum (w + fo)(x + io) = folded bias + sum w x
     * + fo * (sum x + depth * io), every term modulo 2^32. */
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *ip = in + b * accum_depth;
        uint32_t xsum = 0;
        for (int32_t d = 0; d < accum_depth; ++d) xsum += (uint32_t)(int32_t)ip[d];
        const uint32_t extra = (uint32_t)p->filter_offset * (xsum + (uint32_t)accum_depth * (uint32_t)p->input_offset);
        for (int32_t oc = 0; oc < out_depth; ++oc) {
            const int8_t *fp = filter + oc * accum_depth;
            uint32_t acc = (uint32_t)q->bias[oc] + extra;
            for (int32_t d = 0; d < accum_depth; ++d) acc += (uint32_t)((int32_t)fp[d] * (int32_t)ip[d]);
            out[b * out_depth + oc] = ea_requant_s8(q, acc, oc);
        }
    }
}

EA_PREPARE(fully_connected) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    int8_t act = 0, weights_format = 0;
    ea_status st;

    if (c->options_type == BO_FC) {
        if (fb_i8(c->r, &c->options, 0, 0, EA_MSG("FullyConnectedOptions.fused_activation_function"), &act) ||
            fb_i8(c->r, &c->options, 1, 0, EA_MSG("FullyConnectedOptions.weights_format"), &weights_format))
            return EA_OP_OPTIONS_FAIL(c);
    }
    if (weights_format != 0) return EA_OP_FAIL(c, EA_MSG("only the DEFAULT weights format is supported"));
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input"))) || (st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    if (op->in[1] < 0) return EA_OP_FAIL(c, EA_MSG("filter tensor is missing"));
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (f->type != EA_T_INT8) return ea_op_fail(m, c->index, EA_MSG("filter must be int8, got TensorType "), NULL, f->type, 1);
    if (!f->is_const) return EA_OP_FAIL(c, EA_MSG("filter must be a constant tensor (its sums are folded at init)"));
    if (f->ndim != 2) return EA_OP_FAIL(c, EA_MSG("filter must be 2-D"));
    const int32_t units = f->dims[0], accum = f->dims[1];
    if (out->ndim < 1 || out->dims[out->ndim - 1] != units) return EA_OP_FAIL(c, EA_MSG("output depth does not match the filter"));
    const uint32_t batches = out->count / (uint32_t)units;
    if ((uint64_t)batches * (uint32_t)accum != in->count) return EA_OP_FAIL(c, EA_MSG("input size is not batches x filter depth"));
    if ((st = ea_filter_scales_ok(c, f, (uint32_t)units, 0))) return st;
    if ((st = ea_bias_ok(c, op->in[2], (uint32_t)units))) return st;
    int32_t act_min, act_max, mult = 0, shift = 0;
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    if (f->nscales > 1) {
        if ((st = ea_conv_multipliers(m, c->index, in, f, out, (uint32_t)units, NULL, NULL))) return st;
        ea_op_reserve_channels(c);
    } else {
        /* GetQuantizedConvolutionMultipler: the scale product is taken in float, then divided in double. */
        if (!(f->scale >= 0.0f && f->scale < 3.4e38f)) return EA_OP_FAIL(c, EA_MSG("filter scale is negative or not finite"));
        const float product = in->scale * f->scale;
        if (op->in[2] >= 0) {
            /* A 2% tolerance, checked in float (TFLM: in double; they can differ only within an ulp of 2%). */
            const float bs = m->tensors[op->in[2]].scale;
            const float diff = product > bs ? product - bs : bs - product;
            if (!(diff / out->scale <= 0.02f)) return EA_OP_FAIL(c, EA_MSG("bias scale is not input scale x filter scale"));
        }
        if (ea_quantize_multiplier(product, 1.0f, out->scale, 0, &mult, &shift) || shift > 30)
            return EA_OP_FAIL(c, EA_MSG("effective output scale out of range"));
        if (f->zero_point < -128 || f->zero_point > 127) return EA_OP_FAIL(c, EA_MSG("filter zero point out of int8 range"));
    }
    ea_op_reserve_folded_bias(c, 0);
    *EA_OP_PARAMS(fc_op_params, op) = (fc_op_params){
        .k = {.input_offset = -in->zero_point, .filter_offset = f->nscales > 1 ? 0 : -f->zero_point,
              .output_offset = out->zero_point, .act_min = act_min, .act_max = act_max},
        .mult = mult, .shift = shift,
    };
    ea_op_request_scratch(c, ea_fully_connected_s8_get_buffer_size(accum, units));
    return EA_OK;
}

EA_INVOKE(fully_connected) {
    const fc_op_params *p = EA_OP_CPARAMS(fc_op_params, op);
    const ea_tensor *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    const int32_t units = f->dims[0], accum = f->dims[1];
    const int32_t batches = (int32_t)(out->count / (uint32_t)units);
    const int8_t *x = (const int8_t *)ea_tensor_data(m, op->in[0]), *w = (const int8_t *)ea_tensor_data(m, op->in[1]);
    const int per_channel = (op->channels & EA_CHAN_MULT) != 0;
    const int32_t *mult = per_channel ? ea_op_multipliers(m, op) : &p->mult;
    const ea_requant q = {.bias = ea_op_folded_bias(m, op), .mult = mult, .shift = per_channel ? mult + units : &p->shift,
                          .per_channel = per_channel, .out_offset = p->k.output_offset,
                          .act_min = p->k.act_min, .act_max = p->k.act_max};
    ea_fully_connected_s8(&p->k, &q, batches, accum, units, x, w, (int8_t *)ea_vdata(m, out), ea_op_scratch(m, op));
    return EA_OK;
}

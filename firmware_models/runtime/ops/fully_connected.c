/* FULLY_CONNECTED int8 (as TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel).
 * The input is read as [batches, accum_depth] whatever its shape; the filter is [out_depth, accum_depth]. */
#include "ea_ops.h"
#include "ea_quant.h"

enum { BO_FC = 8 }; /* BuiltinOptions_FullyConnectedOptions */

/* The operator's prepared parameters: the kernel's struct and the per-tensor quantization. */
typedef struct {
    ea_fc_params k;
    int32_t mult, shift;     /* per-tensor; per-channel ones are in the arena (op->channels) */
} fc_op_params;

EA_KERNEL int32_t ea_fully_connected_s8_get_buffer_size(int32_t accum_depth, int32_t out_depth) {
    (void)accum_depth;
    (void)out_depth;
    return 0;
}

EA_KERNEL void ea_fully_connected_s8(const ea_fc_params *p, int32_t mult, int32_t shift, int32_t batches, int32_t accum_depth,
                           int32_t out_depth, const int8_t *in, const int8_t *filter, const uint8_t *bias, int8_t *out,
                                     void *scratch) {
    (void)scratch;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *ip = in + b * accum_depth;
        for (int32_t oc = 0; oc < out_depth; ++oc) {
            const int8_t *fp = filter + oc * accum_depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < accum_depth; ++d)
                acc = ea_wrap_add(acc, ((int32_t)fp[d] + p->filter_offset) * ((int32_t)ip[d] + p->input_offset));
            if (bias) acc = ea_wrap_add(acc, ea_load_i32(bias + 4 * oc));
            acc = ea_mbqm(acc, mult, shift);
            acc = ea_wrap_add(acc, p->output_offset);
            out[b * out_depth + oc] = (int8_t)ea_clamp(acc, p->act_min, p->act_max);
        }
    }
}

EA_KERNEL void ea_fully_connected_per_channel_s8(const ea_fc_params *p, const int32_t *mult, const int32_t *shift,
                                       int32_t batches, int32_t accum_depth, int32_t out_depth, const int8_t *in,
                                       const int8_t *filter, const uint8_t *bias, int8_t *out,
                                                 void *scratch) {
    (void)scratch;
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *ip = in + b * accum_depth;
        for (int32_t oc = 0; oc < out_depth; ++oc) {
            const int8_t *fp = filter + oc * accum_depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < accum_depth; ++d)
                acc = ea_wrap_add(acc, (int32_t)fp[d] * ((int32_t)ip[d] + p->input_offset));
            if (bias) acc = ea_wrap_add(acc, ea_load_i32(bias + 4 * oc));
            acc = ea_mbqm(acc, mult[oc], shift[oc]);
            acc = ea_wrap_add(acc, p->output_offset);
            out[b * out_depth + oc] = (int8_t)ea_clamp(acc, p->act_min, p->act_max);
        }
    }
}

EA_PREPARE(fully_connected) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    int8_t act = 0, weights_format = 0;
    ea_status st;

    if (c->options_type == BO_FC) {
        if (fb_i8(c->r, &c->options, 0, 0, "FullyConnectedOptions.fused_activation_function", &act) ||
            fb_i8(c->r, &c->options, 1, 0, "FullyConnectedOptions.weights_format", &weights_format))
            return EA_OP_OPTIONS_FAIL(c);
    }
    if (weights_format != 0) return EA_OP_FAIL(c, "only the DEFAULT weights format is supported");
    if ((st = ea_need_s8(c, op->in[0], "input")) || (st = ea_need_s8(c, op->out, "output"))) return st;
    if (op->in[1] < 0) return EA_OP_FAIL(c, "filter tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (f->type != EA_T_INT8) return ea_op_fail(m, c->index, "filter must be int8, got TensorType ", NULL, f->type, 1);
    if (f->ndim != 2) return EA_OP_FAIL(c, "filter must be 2-D");
    const int32_t units = f->dims[0], accum = f->dims[1];
    if (out->ndim < 1 || out->dims[out->ndim - 1] != units) return EA_OP_FAIL(c, "output depth does not match the filter");
    const uint32_t batches = out->count / (uint32_t)units;
    if ((uint64_t)batches * (uint32_t)accum != in->count) return EA_OP_FAIL(c, "input size is not batches x filter depth");
    if ((st = ea_filter_scales_ok(c, f, (uint32_t)units, 0))) return st;
    if ((st = ea_bias_ok(c, op->in[2], (uint32_t)units))) return st;
    int32_t act_min, act_max, mult = 0, shift = 0;
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    if (f->nscales > 1) {
        if ((st = ea_conv_multipliers(m, c->index, in, f, out, (uint32_t)units, NULL, NULL))) return st;
        ea_op_reserve_channels(c);
    } else {
        /* GetQuantizedConvolutionMultipler: the scale product is taken in float, then divided in double. */
        if (!(f->scale >= 0.0f && f->scale < 3.4e38f)) return EA_OP_FAIL(c, "filter scale is negative or not finite");
        if (op->in[2] >= 0) {
            const ea_tensor *b = &m->tensors[op->in[2]];
            const double product = (double)in->scale * (double)f->scale;
            const double diff = product > (double)b->scale ? product - (double)b->scale : (double)b->scale - product;
            if (!(diff / (double)out->scale <= 0.02)) return EA_OP_FAIL(c, "bias scale is not input scale x filter scale");
        }
        const double real = (double)(in->scale * f->scale) / (double)out->scale;
        if (ea_quantize_multiplier(real, &mult, &shift) || shift > 30)
            return EA_OP_FAIL(c, "effective output scale out of range");
        if (f->zero_point < -128 || f->zero_point > 127) return EA_OP_FAIL(c, "filter zero point out of int8 range");
    }
    *EA_OP_PARAMS(fc_op_params, op) = (fc_op_params){
        .k = {.input_offset = -in->zero_point, .filter_offset = -f->zero_point, .output_offset = out->zero_point,
              .act_min = act_min, .act_max = act_max},
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
    if (op->channels) {
        const int32_t *mult = ea_op_multipliers(m, op);
        ea_fully_connected_per_channel_s8(&p->k, mult, mult + units, batches, accum, units, x, w, ea_op_bias(m, op),
                                          (int8_t *)out->vdata, ea_op_scratch(m, op));
    } else {
        ea_fully_connected_s8(&p->k, p->mult, p->shift, batches, accum, units, x, w, ea_op_bias(m, op),
                              (int8_t *)out->vdata, ea_op_scratch(m, op));
    }
    return EA_OK;
}

/* TRANSPOSE_CONV int8 (TFLM's reference_integer_ops::TransposeConv): every input pixel scatters
 * input x filter into an int32 scratch image of the output (the arena planner places it), then bias,
 * per-channel requantization and the fused activation. Inputs in the flatbuffer: output shape, filter
 * [out_ch, h, w, in_ch], input, optional bias; prepare keeps input, filter, bias in in[0..2]. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_TRANSPOSE_CONV = 49 }; /* BuiltinOptions_TransposeConvOptions */

typedef struct {
    int32_t input_offset, output_offset, stride_w, stride_h, pad_w, pad_h, act_min, act_max;
} tconv_params;

EA_PREPARE(transpose_conv) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    int8_t padding = 0, act = 0;
    int32_t sw = 0, sh = 0;
    ea_status st;
    c->all_inputs_used = 1;
    if (c->options_type == BO_TRANSPOSE_CONV &&
        (fb_i8(c->r, &c->options, 0, 0, EA_MSG("TransposeConvOptions.padding"), &padding) ||
         fb_i32(c->r, &c->options, 1, 0, EA_MSG("TransposeConvOptions.stride_w"), &sw) ||
         fb_i32(c->r, &c->options, 2, 0, EA_MSG("TransposeConvOptions.stride_h"), &sh) ||
         fb_i8(c->r, &c->options, 3, 0, EA_MSG("TransposeConvOptions.fused_activation_function"), &act)))
        return EA_OP_OPTIONS_FAIL(c);
    if (c->inputs.count != 3 && c->inputs.count != 4) return EA_OP_FAIL(c, EA_MSG("needs 3 or 4 inputs"));
    const int32_t shape_i = ea_prepare_input(c, 0), filter_i = ea_prepare_input(c, 1), in_i = ea_prepare_input(c, 2);
    const int32_t bias_i = c->inputs.count == 4 ? ea_prepare_input(c, 3) : -1;
    op->in[0] = (int16_t)in_i;
    op->in[1] = (int16_t)filter_i;
    op->in[2] = (int16_t)bias_i;
    if ((st = ea_need_s8(c, in_i, EA_MSG("input"))) || (st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    if (filter_i < 0 || shape_i < 0) return EA_OP_FAIL(c, EA_MSG("filter or output shape tensor is missing"));
    const ea_tensor *in = &m->tensors[in_i], *filter = &m->tensors[filter_i], *out = &m->tensors[op->out];
    const ea_tensor *shape = &m->tensors[shape_i];
    if (filter->type != EA_T_INT8 || !filter->is_const) return EA_OP_FAIL(c, EA_MSG("filter must be a constant int8 tensor"));
    if (in->ndim != 4 || filter->ndim != 4 || out->ndim != 4) return EA_OP_FAIL(c, EA_MSG("input, filter and output must be 4-D"));
    if (shape->is_const && (shape->type != EA_T_INT32 || shape->count != 4))
        return EA_OP_FAIL(c, EA_MSG("output shape must be 4 int32 values"));
    if (shape->is_const)
        for (uint32_t d = 0; d < 4; d++)
            if (ea_load_i32(ea_cdata(m, shape) + 4u * d) != out->dims[d]) return EA_OP_FAIL(c, EA_MSG("output shape tensor differs from the output's shape"));
    if (in->dims[0] != out->dims[0] || in->dims[3] != filter->dims[3] || filter->dims[0] != out->dims[3])
        return EA_OP_FAIL(c, EA_MSG("input, filter and output shapes do not match"));
    /* ComputePaddingHeightWidth over the output size (dilation 1). */
    int32_t unused, pad_h, pad_w;
    if (ea_window(padding, out->dims[1], filter->dims[1], sh, 1, &unused, &pad_h) ||
        ea_window(padding, out->dims[2], filter->dims[2], sw, 1, &unused, &pad_w))
        return EA_OP_FAIL(c, EA_MSG("invalid padding, stride or filter size"));
    const uint32_t channels = (uint32_t)out->dims[3];
    if ((st = ea_filter_scales_ok(c, filter, channels, 0)) || (st = ea_bias_ok(c, bias_i, channels))) return st;
    if ((st = ea_conv_multipliers(m, c->index, in, filter, out, channels, NULL, NULL))) return st;
    int32_t act_min, act_max;
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    if (out->count > (uint32_t)INT32_MAX / 4u) return EA_OP_FAIL(c, EA_MSG("output too large for the int32 scratch image"));
    ea_op_reserve_channels(c);
    ea_op_request_scratch(c, (int32_t)(out->count * 4u));
    *EA_OP_PARAMS(tconv_params, op) = (tconv_params){
        .input_offset = -in->zero_point, .output_offset = out->zero_point, .stride_w = sw, .stride_h = sh,
        .pad_w = pad_w, .pad_h = pad_h, .act_min = act_min, .act_max = act_max,
    };
    return EA_OK;
}

EA_INVOKE(transpose_conv) {
    const tconv_params *p = EA_OP_CPARAMS(tconv_params, op);
    const ea_dims4 di = ea_dims4_of(&m->tensors[op->in[0]]), df = ea_dims4_of(&m->tensors[op->in[1]]);
    const ea_dims4 d = ea_dims4_of(&m->tensors[op->out]);
    const int8_t *in = (const int8_t *)ea_tensor_data(m, op->in[0]);
    const int8_t *filter = (const int8_t *)ea_tensor_data(m, op->in[1]);
    const uint8_t *bias = ea_op_bias(m, op);
    const int32_t *mult = ea_op_multipliers(m, op), *shift = mult + d.c;
    int8_t *out = (int8_t *)ea_vdata(m, &m->tensors[op->out]);
    int32_t *acc = ea_op_scratch(m, op);
    const int32_t n = d.n * d.h * d.w * d.c;
    for (int32_t i = 0; i < n; ++i) acc[i] = 0;
    for (int32_t b = 0; b < di.n; ++b)
        for (int32_t iy = 0; iy < di.h; ++iy)
            for (int32_t ix = 0; ix < di.w; ++ix)
                for (int32_t ic = 0; ic < di.c; ++ic) {
                    const int32_t v = in[((b * di.h + iy) * di.w + ix) * di.c + ic] + p->input_offset;
                    const int32_t ox0 = ix * p->stride_w - p->pad_w, oy0 = iy * p->stride_h - p->pad_h;
                    for (int32_t fy = 0; fy < df.h; ++fy)
                        for (int32_t fx = 0; fx < df.w; ++fx) {
                            const int32_t ox = ox0 + fx, oy = oy0 + fy;
                            if (ox < 0 || ox >= d.w || oy < 0 || oy >= d.h) continue;
                            int32_t *dst = acc + ((b * d.h + oy) * d.w + ox) * d.c;
                            for (int32_t oc = 0; oc < d.c; ++oc)
                                dst[oc] = ea_wrap_add(dst[oc], v * filter[((oc * df.h + fy) * df.w + fx) * df.c + ic]);
                        }
                }
    for (int32_t i = 0; i < n; ++i) {
        const int32_t oc = i % d.c;
        int32_t a = acc[i];
        if (bias) a = ea_wrap_add(a, ea_load_i32(bias + 4u * (uint32_t)oc));
        a = ea_wrap_add(ea_mbqm(a, mult[oc], shift[oc]), p->output_offset);
        out[i] = (int8_t)ea_clamp(a, p->act_min, p->act_max);
    }
    return EA_OK;
}

/* CONV_2D int8 with per-channel requantization (as TFLM reference_integer_ops::ConvPerChannel),
 * including grouped convolution (filter input depth dividing the input depth). The prepare is shared
 * with DEPTHWISE_CONV_2D (ea_conv_prepare_common). */
#include "ea_ops.h"
#include "ea_quant.h"

enum { BO_CONV2D = 1 }; /* BuiltinOptions_Conv2DOptions */

EA_KERNEL int32_t ea_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims) {
    (void)in_dims;
    (void)filter_dims;
    return 0;
}

EA_KERNEL void ea_conv_s8(const ea_conv_params *p, const int32_t *mult, const int32_t *shift, const ea_dims4 *in_dims,
                const int8_t *in, const ea_dims4 *filter_dims, const int8_t *filter, const uint8_t *bias,
                const ea_dims4 *out_dims, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t in_h = in_dims->h, in_w = in_dims->w, in_c = in_dims->c;
    const int32_t f_h = filter_dims->h, f_w = filter_dims->w, f_c = filter_dims->c;
    const int32_t out_h = out_dims->h, out_w = out_dims->w, out_c = out_dims->c;
    const int32_t groups = in_c / f_c;
    const int32_t filters_per_group = out_c / groups;

    for (int32_t b = 0; b < in_dims->n; ++b) {
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    const int32_t group = oc / filters_per_group;
                    int32_t acc = 0;
                    for (int32_t fy = 0; fy < f_h; ++fy) {
                        const int32_t iy = in_y0 + p->dil_h * fy;
                        if (iy < 0 || iy >= in_h) continue;
                        for (int32_t fx = 0; fx < f_w; ++fx) {
                            const int32_t ix = in_x0 + p->dil_w * fx;
                            if (ix < 0 || ix >= in_w) continue; /* zero padding: skipped */
                            const int8_t *ip = in + ((b * in_h + iy) * in_w + ix) * in_c + group * f_c;
                            const int8_t *fp = filter + ((oc * f_h + fy) * f_w + fx) * f_c;
                            for (int32_t ic = 0; ic < f_c; ++ic)
                                acc = ea_wrap_add(acc, (int32_t)fp[ic] * ((int32_t)ip[ic] + p->input_offset));
                        }
                    }
                    if (bias) acc = ea_wrap_add(acc, ea_load_i32(bias + 4 * oc));
                    acc = ea_mbqm(acc, mult[oc], shift[oc]);
                    acc = ea_wrap_add(acc, p->output_offset);
                    acc = ea_clamp(acc, p->act_min, p->act_max);
                    out[((b * out_h + oy) * out_w + ox) * out_c + oc] = (int8_t)acc;
                }
            }
        }
    }
}

ea_status ea_conv_prepare_common(ea_prepare_ctx *c, int depthwise, int8_t padding, int32_t sw, int32_t sh, int32_t dw,
                                 int32_t dh, int32_t dm, int8_t act) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    ea_status st;

    if ((st = ea_need_s8(c, op->in[0], "input")) || (st = ea_need_s8(c, op->out, "output"))) return st;
    if (op->in[1] < 0) return EA_OP_FAIL(c, "filter tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (f->type != EA_T_INT8) return ea_op_fail(m, c->index, "filter must be int8, got TensorType ", NULL, f->type, 1);
    if (in->ndim != 4 || f->ndim != 4 || out->ndim != 4) return EA_OP_FAIL(c, "input, filter and output must be 4-D");
    const int32_t channels = out->dims[3];
    if (out->dims[0] != in->dims[0]) return EA_OP_FAIL(c, "batch size of input and output differ");
    if (depthwise) {
        if (f->dims[0] != 1 || f->dims[3] != channels) return EA_OP_FAIL(c, "filter shape does not match the output");
        if (dm < 1 || (int64_t)in->dims[3] * dm != channels)
            return EA_OP_FAIL(c, "output channels are not input channels times depth_multiplier");
    } else {
        if (f->dims[0] != channels) return EA_OP_FAIL(c, "filter count does not match the output channels");
        if (in->dims[3] % f->dims[3] != 0) return EA_OP_FAIL(c, "filter depth does not divide the input depth");
        if (channels % (in->dims[3] / f->dims[3]) != 0) return EA_OP_FAIL(c, "output channels not divisible by groups");
    }
    if ((st = ea_filter_scales_ok(c, f, (uint32_t)channels, depthwise ? 3 : 0))) return st;
    if ((st = ea_bias_ok(c, op->in[2], (uint32_t)channels))) return st;
    int32_t oh, ow, pad_h, pad_w;
    if (ea_window(padding, in->dims[1], f->dims[1], sh, dh, &oh, &pad_h) ||
        ea_window(padding, in->dims[2], f->dims[2], sw, dw, &ow, &pad_w))
        return EA_OP_FAIL(c, "invalid padding, stride, dilation or filter size");
    if (oh != out->dims[1] || ow != out->dims[2]) return EA_OP_FAIL(c, "output size does not match the window arithmetic");
    if ((st = ea_conv_multipliers(m, c->index, in, f, out, (uint32_t)channels, NULL, NULL))) return st;
    int32_t act_min, act_max;
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    ea_op_reserve_channels(c);
    *EA_OP_PARAMS(ea_conv_params, op) = (ea_conv_params){
        .input_offset = -in->zero_point, .output_offset = out->zero_point,
        .stride_w = sw, .stride_h = sh, .dil_w = dw, .dil_h = dh, .pad_w = pad_w, .pad_h = pad_h,
        .depth_multiplier = dm, .act_min = act_min, .act_max = act_max,
    };
    const ea_dims4 di = ea_dims4_of(in), df = ea_dims4_of(f);
    ea_op_request_scratch(c, depthwise ? ea_depthwise_conv_s8_get_buffer_size(&di, &df)
                                       : ea_conv_s8_get_buffer_size(&di, &df));
    return EA_OK;
}

EA_PREPARE(conv_2d) {
    int8_t padding = 0, act = 0;
    int32_t sw = 0, sh = 0, dw = 1, dh = 1;
    const fb_table *o = &c->options;
    if (c->options_type != BO_CONV2D) return EA_OP_FAIL(c, "missing builtin options");
    if (fb_i8(c->r, o, 0, 0, "Conv2DOptions.padding", &padding) || fb_i32(c->r, o, 1, 0, "Conv2DOptions.stride_w", &sw) ||
        fb_i32(c->r, o, 2, 0, "Conv2DOptions.stride_h", &sh) ||
        fb_i8(c->r, o, 3, 0, "Conv2DOptions.fused_activation_function", &act) ||
        fb_i32(c->r, o, 4, 1, "Conv2DOptions.dilation_w_factor", &dw) ||
        fb_i32(c->r, o, 5, 1, "Conv2DOptions.dilation_h_factor", &dh))
        return EA_OP_OPTIONS_FAIL(c);
    return ea_conv_prepare_common(c, 0, padding, sw, sh, dw, dh, 1, act);
}

EA_INVOKE(conv_2d) {
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    const ea_dims4 di = ea_dims4_of(in), df = ea_dims4_of(f), dout = ea_dims4_of(out);
    const int32_t *mult = ea_op_multipliers(m, op);
    ea_conv_s8(EA_OP_CPARAMS(ea_conv_params, op), mult, mult + dout.c, &di, (const int8_t *)ea_tensor_data(m, op->in[0]),
               &df, (const int8_t *)ea_tensor_data(m, op->in[1]), ea_op_bias(m, op), &dout, (int8_t *)out->vdata,
               ea_op_scratch(m, op));
    return EA_OK;
}

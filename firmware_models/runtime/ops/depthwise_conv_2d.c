/* DEPTHWISE_CONV_2D int8 with per-channel requantization and a depth multiplier
 * (as TFLM reference_integer_ops::DepthwiseConvPerChannel). Filter shape is [1, H, W, in_c * mult]. */
#include "ea_ops.h"
#include "ea_quant.h"

enum { BO_DEPTHWISE = 2 }; /* BuiltinOptions_DepthwiseConv2DOptions */

EA_KERNEL int32_t ea_depthwise_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims) {
    (void)in_dims;
    (void)filter_dims;
    return 0;
}

EA_KERNEL void ea_depthwise_conv_s8(const ea_conv_params *p, const int32_t *mult, const int32_t *shift,
                          const ea_dims4 *in_dims, const int8_t *in, const ea_dims4 *filter_dims,
                          const int8_t *filter, const uint8_t *bias, const ea_dims4 *out_dims, int8_t *out,
                                     void *scratch) {
    (void)scratch;
    const int32_t in_h = in_dims->h, in_w = in_dims->w, in_c = in_dims->c;
    const int32_t f_h = filter_dims->h, f_w = filter_dims->w;
    const int32_t out_h = out_dims->h, out_w = out_dims->w, out_c = out_dims->c;
    const int32_t dm = p->depth_multiplier;

    for (int32_t b = 0; b < in_dims->n; ++b) {
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                for (int32_t ic = 0; ic < in_c; ++ic) {
                    for (int32_t m = 0; m < dm; ++m) {
                        const int32_t oc = m + ic * dm;
                        int32_t acc = 0;
                        for (int32_t fy = 0; fy < f_h; ++fy) {
                            const int32_t iy = in_y0 + p->dil_h * fy;
                            if (iy < 0 || iy >= in_h) continue;
                            for (int32_t fx = 0; fx < f_w; ++fx) {
                                const int32_t ix = in_x0 + p->dil_w * fx;
                                if (ix < 0 || ix >= in_w) continue; /* zero padding: skipped */
                                const int32_t iv = in[((b * in_h + iy) * in_w + ix) * in_c + ic];
                                const int32_t fv = filter[(fy * f_w + fx) * out_c + oc];
                                acc = ea_wrap_add(acc, fv * (iv + p->input_offset));
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
}

EA_PREPARE(depthwise_conv_2d) {
    int8_t padding = 0, act = 0;
    int32_t sw = 0, sh = 0, dw = 1, dh = 1, dm = 1;
    const fb_table *o = &c->options;
    if (c->options_type != BO_DEPTHWISE) return EA_OP_FAIL(c, "missing builtin options");
    if (fb_i8(c->r, o, 0, 0, "DepthwiseConv2DOptions.padding", &padding) ||
        fb_i32(c->r, o, 1, 0, "DepthwiseConv2DOptions.stride_w", &sw) ||
        fb_i32(c->r, o, 2, 0, "DepthwiseConv2DOptions.stride_h", &sh) ||
        fb_i32(c->r, o, 3, 0, "DepthwiseConv2DOptions.depth_multiplier", &dm) ||
        fb_i8(c->r, o, 4, 0, "DepthwiseConv2DOptions.fused_activation_function", &act) ||
        fb_i32(c->r, o, 5, 1, "DepthwiseConv2DOptions.dilation_w_factor", &dw) ||
        fb_i32(c->r, o, 6, 1, "DepthwiseConv2DOptions.dilation_h_factor", &dh))
        return EA_OP_OPTIONS_FAIL(c);
    return ea_conv_prepare_common(c, 1, padding, sw, sh, dw, dh, dm, act);
}

EA_INVOKE(depthwise_conv_2d) {
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    const ea_dims4 di = ea_dims4_of(in), df = ea_dims4_of(f), dout = ea_dims4_of(out);
    const int32_t *mult = ea_op_multipliers(m, op);
    ea_depthwise_conv_s8(EA_OP_CPARAMS(ea_conv_params, op), mult, mult + dout.c, &di,
                         (const int8_t *)ea_tensor_data(m, op->in[0]), &df, (const int8_t *)ea_tensor_data(m, op->in[1]),
                         ea_op_bias(m, op), &dout, (int8_t *)out->vdata, ea_op_scratch(m, op));
    return EA_OK;
}

/* DEPTHWISE_CONV_2D int8 with per-channel requantization and a depth multiplier
 * (as TFLM reference_integer_ops::DepthwiseConvPerChannel). Filter shape is [1, H, W, in_c * mult]. */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_DEPTHWISE = 2 }; /* BuiltinOptions_DepthwiseConv2DOptions */

/* Scratch: a row of input zero points (one per input channel) that stands in for taps outside the
 * image, then one input pointer per filter tap. */
EA_KERNEL int32_t ea_depthwise_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims) {
    return ((in_dims->c + 7) & ~7) + (int32_t)sizeof(const int8_t *) * filter_dims->h * filter_dims->w;
}

/* The input pointers of every tap of the window at (iy0, ix0): a tap outside the image points at the
 * zero-point row, whose values add w * (zp + input_offset) = 0, as TFLM's skipped taps. */
void ea_dw_taps(const ea_conv_params *p, const ea_dims4 *in_dims, const int8_t *image, const ea_dims4 *fd,
                int32_t iy0, int32_t ix0, const int8_t *zp_row, const int8_t **taps) {
    for (int32_t fy = 0; fy < fd->h; ++fy) {
        const int32_t iy = iy0 + p->dil_h * fy;
        for (int32_t fx = 0; fx < fd->w; ++fx) {
            const int32_t ix = ix0 + p->dil_w * fx;
            *taps++ = (iy < 0 || iy >= in_dims->h || ix < 0 || ix >= in_dims->w)
                          ? zp_row : image + (iy * in_dims->w + ix) * in_dims->c;
        }
    }
}

/* Output channels [oc0, oc0 + n) of one pixel, n <= 4, depth multiplier 1 (input channel = output
 * channel): four accumulators over the taps, each tap's four inputs and weights adjacent in memory. */
static void dw_pixel(const ea_requant *q, const int8_t *const *taps, int32_t ntaps, const int8_t *filter,
                     int32_t out_c, int32_t oc0, int8_t *out) {
    int32_t oc = oc0;
    for (; oc + 4 <= out_c; oc += 4) {
        uint32_t a0 = (uint32_t)q->bias[oc], a1 = (uint32_t)q->bias[oc + 1], a2 = (uint32_t)q->bias[oc + 2],
                 a3 = (uint32_t)q->bias[oc + 3];
        const int8_t *w = filter + oc;
        for (int32_t t = 0; t < ntaps; ++t, w += out_c) {
            const int8_t *x = taps[t] + oc;
            a0 += (uint32_t)(w[0] * x[0]);
            a1 += (uint32_t)(w[1] * x[1]);
            a2 += (uint32_t)(w[2] * x[2]);
            a3 += (uint32_t)(w[3] * x[3]);
        }
        /* inlined: with 9 taps per output, a call per output would cost as much as its MACs */
        const ea_rq c0 = ea_rq_of(q, oc), c1 = ea_rq_of(q, oc + 1), c2 = ea_rq_of(q, oc + 2), c3 = ea_rq_of(q, oc + 3);
        out[oc] = ea_rq_out(&c0, q, a0);
        out[oc + 1] = ea_rq_out(&c1, q, a1);
        out[oc + 2] = ea_rq_out(&c2, q, a2);
        out[oc + 3] = ea_rq_out(&c3, q, a3);
    }
    for (; oc < out_c; ++oc) {
        uint32_t a = (uint32_t)q->bias[oc];
        const int8_t *w = filter + oc;
        for (int32_t t = 0; t < ntaps; ++t, w += out_c) a += (uint32_t)(*w * taps[t][oc]);
        out[oc] = ea_requant_s8(q, a, oc);
    }
}

EA_KERNEL void ea_depthwise_conv_s8(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims,
                                    const int8_t *in, const ea_dims4 *filter_dims, const int8_t *filter,
                                    const ea_dims4 *out_dims, int8_t *out, void *scratch) {
    const int32_t in_c = in_dims->c, out_h = out_dims->h, out_w = out_dims->w, out_c = out_dims->c;
    const int32_t dm = p->depth_multiplier, ntaps = filter_dims->h * filter_dims->w;
    int8_t *zp_row = (int8_t *)scratch;
    const int8_t **taps = (const int8_t **)(void *)(zp_row + ((in_c + 7) & ~7));
    for (int32_t i = 0; i < in_c; ++i) zp_row[i] = (int8_t)(-p->input_offset);

    for (int32_t b = 0; b < in_dims->n; ++b) {
        const int8_t *image = in + b * in_dims->h * in_dims->w * in_c;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            for (int32_t ox = 0; ox < out_w; ++ox) {
                int8_t *o = out + ((b * out_h + oy) * out_w + ox) * out_c;
                ea_dw_taps(p, in_dims, image, filter_dims, oy * p->stride_h - p->pad_h, ox * p->stride_w - p->pad_w,
                           zp_row, taps);
                if (dm == 1) {
                    dw_pixel(q, taps, ntaps, filter, out_c, 0, o);
                    continue;
                }
                for (int32_t oc = 0; oc < out_c; ++oc) { /* output channel oc reads input channel oc / dm */
                    uint32_t a = (uint32_t)q->bias[oc];
                    const int8_t *w = filter + oc;
                    for (int32_t t = 0; t < ntaps; ++t, w += out_c) a += (uint32_t)(*w * taps[t][oc / dm]);
                    o[oc] = ea_requant_s8(q, a, oc);
                }
            }
        }
    }
}

EA_PREPARE(depthwise_conv_2d) {
    int8_t padding = 0, act = 0;
    int32_t sw = 0, sh = 0, dw = 1, dh = 1, dm = 1;
    const fb_table *o = &c->options;
    if (c->options_type != BO_DEPTHWISE) return EA_OP_FAIL(c, EA_MSG("missing builtin options"));
    if (fb_i8(c->r, o, 0, 0, EA_MSG("DepthwiseConv2DOptions.padding"), &padding) ||
        fb_i32(c->r, o, 1, 0, EA_MSG("DepthwiseConv2DOptions.stride_w"), &sw) ||
        fb_i32(c->r, o, 2, 0, EA_MSG("DepthwiseConv2DOptions.stride_h"), &sh) ||
        fb_i32(c->r, o, 3, 0, EA_MSG("DepthwiseConv2DOptions.depth_multiplier"), &dm) ||
        fb_i8(c->r, o, 4, 0, EA_MSG("DepthwiseConv2DOptions.fused_activation_function"), &act) ||
        fb_i32(c->r, o, 5, 1, EA_MSG("DepthwiseConv2DOptions.dilation_w_factor"), &dw) ||
        fb_i32(c->r, o, 6, 1, EA_MSG("DepthwiseConv2DOptions.dilation_h_factor"), &dh))
        return EA_OP_OPTIONS_FAIL(c);
    return ea_conv_prepare_common(c, 1, padding, sw, sh, dw, dh, dm, act);
}

EA_INVOKE(depthwise_conv_2d) {
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    const ea_dims4 di = ea_dims4_of(in), df = ea_dims4_of(f), dout = ea_dims4_of(out);
    const ea_conv_params *p = EA_OP_CPARAMS(ea_conv_params, op);
    const ea_requant q = ea_conv_requant(m, op, p, dout.c);
    ea_depthwise_conv_s8(p, &q, &di, (const int8_t *)ea_tensor_data(m, op->in[0]), &df,
                         (const int8_t *)ea_tensor_data(m, op->in[1]), &dout, (int8_t *)ea_vdata(m, out), ea_op_scratch(m, op));
    return EA_OK;
}

/* CONV_2D int8 with per-channel requantization (as TFLM reference_integer_ops::ConvPerChannel),
 * including grouped convolution (filter input depth dividing the input depth). The prepare is shared
 * with DEPTHWISE_CONV_2D (ea_conv_prepare_common). */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_CONV2D = 1 }; /* BuiltinOptions_Conv2DOptions */

/* Filter taps times filter depth: the length of one im2col column. */
static int32_t conv_depth(const ea_dims4 *filter_dims) { return filter_dims->h * filter_dims->w * filter_dims->c; }

EA_KERNEL int32_t ea_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims) {
    /* A 1x1 convolution over every input channel reads its columns in place (it never pads); any
     * other gathers two columns (im2col) per step. */
    if (filter_dims->h == 1 && filter_dims->w == 1 && filter_dims->c == in_dims->c) return 0;
    return (2 * conv_depth(filter_dims) + 3) & ~3;
}

/* Copies n bytes (small counts, word steps where possible: newlib-nano's memcpy goes byte by byte). */
static void copy_bytes(int8_t *dst, const int8_t *src, int32_t n) {
    for (; n >= 4; n -= 4, dst += 4, src += 4) __builtin_memcpy(dst, src, 4);
    for (; n > 0; --n) *dst++ = *src++;
}
static void fill_bytes(int8_t *dst, int8_t v, int32_t n) {
    for (; n > 0; --n) *dst++ = v;
}

/* One im2col column (ea_kernels.h): the window at (iy0, ix0) of one batch image, channels [c0, c0 + f_c), taps that
 * fall outside the image set to the input zero point (x + input_offset = 0, as TFLM's skipped taps). */
__attribute__((noinline)) void ea_im2col_s8(const ea_conv_params *p, const ea_dims4 *in_dims, const int8_t *image,
                                            const ea_dims4 *fd, int32_t c0, int32_t iy0, int32_t ix0, int8_t *col) {
    const int32_t in_h = in_dims->h, in_w = in_dims->w, in_c = in_dims->c, f_c = fd->c, f_w = fd->w;
    const int8_t zp = (int8_t)(-p->input_offset);
    const int row_contiguous = p->dil_w == 1 && f_c == in_c && ix0 >= 0 && ix0 + f_w <= in_w;
    for (int32_t fy = 0; fy < fd->h; ++fy) {
        const int32_t iy = iy0 + p->dil_h * fy;
        if (iy < 0 || iy >= in_h) {
            fill_bytes(col, zp, f_w * f_c);
            col += f_w * f_c;
            continue;
        }
        const int8_t *row = image + iy * in_w * in_c + c0;
        if (row_contiguous) {
            copy_bytes(col, row + ix0 * in_c, f_w * in_c);
            col += f_w * in_c;
            continue;
        }
        for (int32_t fx = 0; fx < f_w; ++fx, col += f_c) {
            const int32_t ix = ix0 + p->dil_w * fx;
            if (ix < 0 || ix >= in_w) fill_bytes(col, zp, f_c);
            else copy_bytes(col, row + ix * in_c, f_c);
        }
    }
}

void ea_conv_s8_mat(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                    const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out,
                    void *scratch) {
    const int32_t in_h = in_dims->h, in_w = in_dims->w, in_c = in_dims->c;
    const int32_t out_h = out_dims->h, out_w = out_dims->w, out_c = out_dims->c;
    const int32_t f_c = filter_dims->c, depth = conv_depth(filter_dims);
    const int32_t groups = in_c / f_c, fpg = out_c / groups, pixels = out_h * out_w;

    for (int32_t b = 0; b < in_dims->n; ++b) {
        const int8_t *image = in + b * in_h * in_w * in_c;
        int8_t *o = out + b * pixels * out_c;
        if (filter_dims->h == 1 && filter_dims->w == 1 && groups == 1) { /* a matrix product in place */
            if (p->stride_w == 1 && p->stride_h == 1) {
                ea_mat_s8(q, filter, out_c, depth, image, in_c, pixels, o, out_c);
            } else {
                for (int32_t oy = 0; oy < out_h; ++oy)
                    ea_mat_s8(q, filter, out_c, depth, image + oy * p->stride_h * in_w * in_c, p->stride_w * in_c,
                              out_w, o + oy * out_w * out_c, out_c);
            }
            continue;
        }
        int8_t *cols = (int8_t *)scratch;
        for (int32_t pix = 0; pix < pixels; pix += 2) {
            const int32_t n = pix + 1 < pixels ? 2 : 1;
            for (int32_t g = 0; g < groups; ++g) {
                for (int32_t j = 0; j < n; ++j) {
                    const int32_t oy = (pix + j) / out_w, ox = (pix + j) % out_w;
                    ea_im2col_s8(p, in_dims, image, filter_dims, g * f_c, oy * p->stride_h - p->pad_h,
                           ox * p->stride_w - p->pad_w, cols + j * depth);
                }
                const ea_requant qg = {.bias = q->bias + g * fpg, .mult = q->mult + g * fpg, .shift = q->shift + g * fpg,
                                       .per_channel = q->per_channel, .out_offset = q->out_offset,
                                       .act_min = q->act_min, .act_max = q->act_max};
                ea_mat_s8(&qg, filter + g * fpg * depth, fpg, depth, cols, depth, n, o + pix * out_c + g * fpg, out_c);
            }
        }
    }
}

EA_KERNEL void ea_conv_s8(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                          const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out,
                          void *scratch) {
    ea_conv_s8_mat(p, q, in_dims, in, filter_dims, filter, out_dims, out, scratch);
}

ea_status ea_conv_prepare_common(ea_prepare_ctx *c, int depthwise, int8_t padding, int32_t sw, int32_t sh, int32_t dw,
                                 int32_t dh, int32_t dm, int8_t act) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    ea_status st;

    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input"))) || (st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    if (op->in[1] < 0) return EA_OP_FAIL(c, EA_MSG("filter tensor is missing"));
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (f->type != EA_T_INT8) return ea_op_fail(m, c->index, EA_MSG("filter must be int8, got TensorType "), NULL, f->type, 1);
    if (!f->is_const) return EA_OP_FAIL(c, EA_MSG("filter must be a constant tensor (its sums are folded at init)"));
    if (in->ndim != 4 || f->ndim != 4 || out->ndim != 4) return EA_OP_FAIL(c, EA_MSG("input, filter and output must be 4-D"));
    const int32_t channels = out->dims[3];
    if (out->dims[0] != in->dims[0]) return EA_OP_FAIL(c, EA_MSG("batch size of input and output differ"));
    if (depthwise) {
        if (f->dims[0] != 1 || f->dims[3] != channels) return EA_OP_FAIL(c, EA_MSG("filter shape does not match the output"));
        if (dm < 1 || (int64_t)in->dims[3] * dm != channels)
            return EA_OP_FAIL(c, EA_MSG("output channels are not input channels times depth_multiplier"));
    } else {
        if (f->dims[0] != channels) return EA_OP_FAIL(c, EA_MSG("filter count does not match the output channels"));
        if (in->dims[3] % f->dims[3] != 0) return EA_OP_FAIL(c, EA_MSG("filter depth does not divide the input depth"));
        if (channels % (in->dims[3] / f->dims[3]) != 0) return EA_OP_FAIL(c, EA_MSG("output channels not divisible by groups"));
    }
    if ((st = ea_filter_scales_ok(c, f, (uint32_t)channels, depthwise ? 3 : 0))) return st;
    if ((st = ea_bias_ok(c, op->in[2], (uint32_t)channels))) return st;
    int32_t oh, ow, pad_h, pad_w;
    if (ea_window(padding, in->dims[1], f->dims[1], sh, dh, &oh, &pad_h) ||
        ea_window(padding, in->dims[2], f->dims[2], sw, dw, &ow, &pad_w))
        return EA_OP_FAIL(c, EA_MSG("invalid padding, stride, dilation or filter size"));
    if (oh != out->dims[1] || ow != out->dims[2]) return EA_OP_FAIL(c, EA_MSG("output size does not match the window arithmetic"));
    if ((st = ea_conv_multipliers(m, c->index, in, f, out, (uint32_t)channels, NULL, NULL))) return st;
    int32_t act_min, act_max;
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    ea_op_reserve_channels(c);
    ea_op_reserve_folded_bias(c, depthwise);
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
    if (c->options_type != BO_CONV2D) return EA_OP_FAIL(c, EA_MSG("missing builtin options"));
    if (fb_i8(c->r, o, 0, 0, EA_MSG("Conv2DOptions.padding"), &padding) || fb_i32(c->r, o, 1, 0, EA_MSG("Conv2DOptions.stride_w"), &sw) ||
        fb_i32(c->r, o, 2, 0, EA_MSG("Conv2DOptions.stride_h"), &sh) ||
        fb_i8(c->r, o, 3, 0, EA_MSG("Conv2DOptions.fused_activation_function"), &act) ||
        fb_i32(c->r, o, 4, 1, EA_MSG("Conv2DOptions.dilation_w_factor"), &dw) ||
        fb_i32(c->r, o, 5, 1, EA_MSG("Conv2DOptions.dilation_h_factor"), &dh))
        return EA_OP_OPTIONS_FAIL(c);
    return ea_conv_prepare_common(c, 0, padding, sw, sh, dw, dh, 1, act);
}

EA_INVOKE(conv_2d) {
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    const ea_dims4 di = ea_dims4_of(in), df = ea_dims4_of(f), dout = ea_dims4_of(out);
    const ea_conv_params *p = EA_OP_CPARAMS(ea_conv_params, op);
    const ea_requant q = ea_conv_requant(m, op, p, dout.c);
    ea_conv_s8(p, &q, &di, (const int8_t *)ea_tensor_data(m, op->in[0]), &df, (const int8_t *)ea_tensor_data(m, op->in[1]),
               &dout, (int8_t *)ea_vdata(m, out), ea_op_scratch(m, op));
    return EA_OK;
}

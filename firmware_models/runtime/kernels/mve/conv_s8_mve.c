/* ea_conv_s8 with MVE: the reference's structure (ops/conv_2d.c: 1x1 convolutions as one matrix
 * product in place, others through im2col), with im2col copying and filling 16 bytes per VLDRB/VSTRB
 * pair (the last bytes under a tail predicate) and gathering four columns per matrix product instead
 * of two, so ea_mat_s8 (mat_s8_mve.c) sets up each block of four channels half as often. */
#include "ea_kernels.h"
#include "ea_mve.h"

#define COLS 4

static int32_t conv_depth(const ea_dims4 *filter_dims) { return filter_dims->h * filter_dims->w * filter_dims->c; }

int32_t ea_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims) {
    if (filter_dims->h == 1 && filter_dims->w == 1 && filter_dims->c == in_dims->c) return 0;
    return (COLS * conv_depth(filter_dims) + 3) & ~3;
}

static void copy_bytes(int8_t *dst, const int8_t *src, int32_t n) {
    for (; n >= 16; n -= 16, dst += 16, src += 16) vstrbq_s8(dst, vldrbq_s8(src));
    if (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        vstrbq_p_s8(dst, vldrbq_z_s8(src, p), p);
    }
}
static void fill_bytes(int8_t *dst, int8_t v, int32_t n) {
    const int8x16_t x = vdupq_n_s8(v);
    for (; n >= 16; n -= 16, dst += 16) vstrbq_s8(dst, x);
    if (n > 0) vstrbq_p_s8(dst, x, vctp8q((uint32_t)n));
}

/* One im2col column, as the reference's: taps outside the image set to the input zero point. */
static void im2col(const ea_conv_params *p, const ea_dims4 *in_dims, const int8_t *image, const ea_dims4 *fd, int32_t c0,
                   int32_t iy0, int32_t ix0, int8_t *col) {
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

void ea_conv_s8(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out, void *scratch) {
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
        for (int32_t pix = 0; pix < pixels; pix += COLS) {
            const int32_t n = pixels - pix < COLS ? pixels - pix : COLS;
            for (int32_t g = 0; g < groups; ++g) {
                for (int32_t j = 0; j < n; ++j) {
                    const int32_t oy = (pix + j) / out_w, ox = (pix + j) % out_w;
                    im2col(p, in_dims, image, filter_dims, g * f_c, oy * p->stride_h - p->pad_h,
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

/* ea_conv_s8 with the DSP extension, CMSIS-NN's shape (arm_nn_mat_mult_kernel_s8_s16): two output pixels
 * at a time, their im2col columns widened to int16 once (SXTB16, in the byte order SXTB16 leaves: bytes
 * 0, 2 then 1, 3 of each word, the order the weights take when widened the same way), then every output
 * channel pair against them: per 4 of depth, one load of the two columns' 4 words, one word of weights
 * per channel widened by two SXTB16, and 8 SMLAD for 16 MACs. 1x1 convolutions widen the input pixels
 * in place of an im2col.
 *
 * Requantization: ea_dsp.h's table form (ea_rq_table: one SMMLAR per output, the output offset folded
 * in), a block's four outputs packed, clamped and stored together. A layer the table cannot take (a
 * shift outside right 1..22, or a bias that could push |acc| to 2^30) runs the reference path
 * (ea_conv_s8_mat over the dsp ea_mat_s8). Same sums modulo 2^32 and same outputs as the reference. */
#include <string.h>

#include "ea_dsp.h"
#include "ea_kernels.h"

static int32_t conv_depth(const ea_dims4 *fd) { return fd->h * fd->w * fd->c; }

/* The scratch, in order: the int8 im2col of two columns, their int16 copy (8-byte aligned), the
 * requantization table; 16 bytes of slack align the start. */
static int32_t cols8_bytes(int32_t depth) { return (2 * depth + 7) & ~7; }

int32_t ea_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims) {
    (void)in_dims;
    const int32_t depth = conv_depth(filter_dims);
    return 16 + cols8_bytes(depth) + ((4 * depth + 7) & ~7) + (int32_t)sizeof(ea_rq_entry) * filter_dims->n;
}

/* One column of depth int8 values widened into slot `which` (0 or 1) of the interleaved pair: per 4 of
 * depth, 4 halfwords of column 0 then 4 of column 1; the depth % 4 tail values follow all blocks, column
 * 0's then column 1's. */
static void widen(const int8_t *src, int32_t depth, int16_t *cols, int which) {
    const int32_t blocks = depth >> 2, tail = depth & 3;
    int16_t *d = cols + 4 * which;
    for (int32_t k = 0; k < blocks; ++k, src += 4, d += 8) {
        const uint32_t v = ea_read_s8x4(src), a = ea_sxtb16(v), b = ea_sxtb16_ror8(v);
        memcpy(d, &a, 4);
        memcpy(d + 2, &b, 4);
    }
    d = cols + 8 * blocks + which * tail;
    for (int32_t t = 0; t < tail; ++t) d[t] = src[t];
}

/* Output channels [0, rows) of two pixels (out1 NULL: only the first is stored). */
static EA_KEEP_MAC_CHAINS_UNSCHEDULED void mat_2cols(const int8_t *w, int32_t rows, int32_t depth, const int16_t *cols,
                                         const int32_t *bias, const ea_rq_entry *tab, const ea_requant *q, int8_t *out0,
                                         int8_t *out1) {
    const int32_t blocks = depth >> 2, tail = depth & 3, lo = q->act_min, hi = q->act_max;
    const uint32_t lo4 = ea_splat_b4(lo), hi4 = ea_splat_b4(hi);
    const int16_t *t0 = cols + 8 * blocks, *t1 = t0 + tail;
    int32_t r = 0;
    for (; r + 2 <= rows; r += 2) {
        const int8_t *w0 = w + r * depth, *w1 = w0 + depth;
        const int16_t *x = cols;
        uint32_t a00 = (uint32_t)bias[r], a01 = (uint32_t)bias[r + 1], a10 = a00, a11 = a01; /* a<col><row> */
        for (int32_t k = blocks; k > 0; --k) {
            uint32_t x0, x1, y0, y1;
            memcpy(&x0, x, 4);
            memcpy(&x1, x + 2, 4);
            memcpy(&y0, x + 4, 4);
            memcpy(&y1, x + 6, 4);
            x += 8;
            const uint32_t wa = ea_read_s8x4(w0);
            w0 += 4;
            const uint32_t wa0 = ea_sxtb16(wa), wa1 = ea_sxtb16_ror8(wa);
            a00 = ea_smlad(wa0, x0, a00);
            a00 = ea_smlad(wa1, x1, a00);
            a10 = ea_smlad(wa0, y0, a10);
            a10 = ea_smlad(wa1, y1, a10);
            const uint32_t wb = ea_read_s8x4(w1);
            w1 += 4;
            const uint32_t wb0 = ea_sxtb16(wb), wb1 = ea_sxtb16_ror8(wb);
            a01 = ea_smlad(wb0, x0, a01);
            a01 = ea_smlad(wb1, x1, a01);
            a11 = ea_smlad(wb0, y0, a11);
            a11 = ea_smlad(wb1, y1, a11);
        }
        for (int32_t t = 0; t < tail; ++t) {
            const int32_t u = w0[t], v = w1[t], s = t0[t], z = t1[t];
            a00 += (uint32_t)(u * s), a01 += (uint32_t)(v * s);
            a10 += (uint32_t)(u * z), a11 += (uint32_t)(v * z);
        }
        /* the block's four outputs in one word: (pixel 0, pixel 1) x (channel r, r + 1) */
        const uint32_t v = ea_rq_out4(tab + r, tab + r + 1, tab + r, tab + r + 1, a00, a01, a10, a11, lo4, hi4);
        const uint16_t v0 = (uint16_t)v, v1 = (uint16_t)(v >> 16);
        memcpy(out0 + r, &v0, 2);
        if (out1) memcpy(out1 + r, &v1, 2);
    }
    if (r < rows) {
        const int8_t *w0 = w + r * depth;
        const int16_t *x = cols;
        uint32_t a0 = (uint32_t)bias[r], a1 = a0;
        for (int32_t k = blocks; k > 0; --k, x += 8, w0 += 4) {
            uint32_t x0, x1, y0, y1;
            memcpy(&x0, x, 4);
            memcpy(&x1, x + 2, 4);
            memcpy(&y0, x + 4, 4);
            memcpy(&y1, x + 6, 4);
            const uint32_t wa = ea_read_s8x4(w0), wa0 = ea_sxtb16(wa), wa1 = ea_sxtb16_ror8(wa);
            a0 = ea_smlad(wa1, x1, ea_smlad(wa0, x0, a0));
            a1 = ea_smlad(wa1, y1, ea_smlad(wa0, y0, a1));
        }
        for (int32_t t = 0; t < tail; ++t) {
            a0 += (uint32_t)(w0[t] * t0[t]);
            a1 += (uint32_t)(w0[t] * t1[t]);
        }
        out0[r] = ea_rq_entry_out(tab + r, a0, lo, hi);
        if (out1) out1[r] = ea_rq_entry_out(tab + r, a1, lo, hi);
    }
}

void ea_conv_s8(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out, void *scratch) {
    const int32_t in_h = in_dims->h, in_w = in_dims->w, in_c = in_dims->c;
    const int32_t out_w = out_dims->w, out_c = out_dims->c;
    const int32_t f_c = filter_dims->c, depth = conv_depth(filter_dims);
    const int32_t groups = in_c / f_c, fpg = out_c / groups, pixels = out_dims->h * out_w;
    int8_t *col8 = (int8_t *)(((uintptr_t)scratch + 15u) & ~(uintptr_t)15u);
    int16_t *cols = (int16_t *)(void *)(col8 + cols8_bytes(depth));
    ea_rq_entry *tab = (ea_rq_entry *)(void *)((int8_t *)cols + ((4 * depth + 7) & ~7));
    if (!ea_rq_table(q, out_c, depth, tab)) {
        ea_conv_s8_mat(p, q, in_dims, in, filter_dims, filter, out_dims, out, col8);
        return;
    }
    const int pointwise = filter_dims->h == 1 && filter_dims->w == 1 && groups == 1;
    for (int32_t b = 0; b < in_dims->n; ++b) {
        const int8_t *image = in + b * in_h * in_w * in_c;
        int8_t *o = out + b * pixels * out_c;
        for (int32_t pix = 0; pix < pixels; pix += 2) {
            const int32_t n = pix + 1 < pixels ? 2 : 1;
            for (int32_t g = 0; g < groups; ++g) {
                for (int32_t j = 0; j < 2; ++j) {
                    const int32_t at = pix + (j < n ? j : 0); /* a lone last pixel fills both slots */
                    const int32_t oy = at / out_w, ox = at % out_w;
                    if (pointwise) {
                        widen(image + (oy * p->stride_h * in_w + ox * p->stride_w) * in_c, depth, cols, j);
                    } else {
                        ea_im2col_s8(p, in_dims, image, filter_dims, g * f_c, oy * p->stride_h - p->pad_h,
                                     ox * p->stride_w - p->pad_w, col8);
                        widen(col8, depth, cols, j);
                    }
                }
                int8_t *o0 = o + pix * out_c + g * fpg;
                mat_2cols(filter + g * fpg * depth, fpg, depth, cols, q->bias + g * fpg, tab + g * fpg, q, o0,
                          n == 2 ? o0 + out_c : NULL);
            }
        }
    }
}

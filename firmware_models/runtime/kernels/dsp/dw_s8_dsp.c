/* ea_depthwise_conv_s8 with the DSP extension, depth multiplier 1: four adjacent channels of a tap are
 * one word of input; SXTB16 widens it into (ch0, ch2) and (ch1, ch3), and SMLABB / SMLATT add each
 * channel's product to its own accumulator. The weights are widened the same way once per call (per
 * group of four channels, per tap, two words in scratch), and the requantization constants taken once
 * per call (ea_rq_table), so a tap costs a pointer load, an input load, two SXTB16, one double-word
 * weight load and four multiply-accumulates. Other depth multipliers take the reference loop. Same sums
 * modulo 2^32 as the reference.
 *
 * 3x3 filters (dilation 1, channels a multiple of 4) skip the tap table: a window's taps are three input
 * rows of three pixels at fixed strides from its first pixel, so each tap is one load at a computed
 * address (CMSIS-NN's arm_depthwise_conv_3x3_s8 shape). A window reaching over the image's edge is first
 * copied into a 3 x 3 x channels patch in scratch with the input zero point for the taps outside (they
 * add w * (zp + input_offset) = 0, as TFLM's skipped taps), then runs the same loop on the patch. */
#include <string.h>

#include "ea_dsp.h"
#include "ea_kernels.h"

/* The reference kernel's scratch (zero-point row, tap pointers), then the widened weights and the
 * requantization table; 16 bytes of slack align them. */
static int32_t ref_bytes(const ea_dims4 *in_dims, const ea_dims4 *fd) {
    return ((in_dims->c + 7) & ~7) + (int32_t)sizeof(const int8_t *) * fd->h * fd->w;
}

/* The edge patch of the 3x3 path: 9 pixels of channels. */
static int32_t patch_bytes(const ea_dims4 *in_dims, const ea_dims4 *fd) {
    return fd->h == 3 && fd->w == 3 ? (9 * in_dims->c + 7) & ~7 : 0;
}

int32_t ea_depthwise_conv_s8_get_buffer_size(const ea_dims4 *in_dims, const ea_dims4 *filter_dims) {
    const int32_t out_c = filter_dims->c, ntaps = filter_dims->h * filter_dims->w;
    return 16 + ((ref_bytes(in_dims, filter_dims) + 7) & ~7) + 8 * ntaps * (out_c / 4) +
           (int32_t)sizeof(ea_rq_entry) * out_c + patch_bytes(in_dims, filter_dims);
}

/* One group of four channels over ntaps taps (the weights already widened: two words per tap). */
static inline void dw_group(const int8_t *const *taps, int32_t ntaps, int32_t oc, const uint32_t *wv, uint32_t *acc) {
    uint32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t t = 0; t < ntaps; ++t, wv += 2) {
        const uint32_t xv = ea_read_s8x4(taps[t] + oc);
        const uint32_t x02 = ea_sxtb16(xv), x13 = ea_sxtb16_ror8(xv);
        a0 = ea_smlabb(x02, wv[0], a0);
        a2 = ea_smlatt(x02, wv[0], a2);
        a1 = ea_smlabb(x13, wv[1], a1);
        a3 = ea_smlatt(x13, wv[1], a3);
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

static void dw_pixel_dsp(const ea_requant *q, const ea_rq_entry *tab, const int8_t *const *taps, int32_t ntaps,
                         const int8_t *filter, const uint32_t *wide, int32_t out_c, int8_t *out) {
    const int32_t lo = q->act_min, hi = q->act_max;
    int32_t oc = 0;
    for (; oc + 4 <= out_c; oc += 4, wide += 2 * ntaps) {
        uint32_t a[4] = {(uint32_t)q->bias[oc], (uint32_t)q->bias[oc + 1], (uint32_t)q->bias[oc + 2],
                         (uint32_t)q->bias[oc + 3]};
        if (ntaps == 9) {
            dw_group(taps, 9, oc, wide, a); /* a constant trip count: unrolled */
        } else {
            dw_group(taps, ntaps, oc, wide, a);
        }
        if (tab) {
            out[oc] = ea_rq_entry_out(tab + oc, a[0], lo, hi);
            out[oc + 1] = ea_rq_entry_out(tab + oc + 1, a[1], lo, hi);
            out[oc + 2] = ea_rq_entry_out(tab + oc + 2, a[2], lo, hi);
            out[oc + 3] = ea_rq_entry_out(tab + oc + 3, a[3], lo, hi);
        } else {
            for (int32_t i = 0; i < 4; ++i) out[oc + i] = ea_requant_s8(q, a[i], oc + i);
        }
    }
    for (; oc < out_c; ++oc) {
        uint32_t a = (uint32_t)q->bias[oc];
        const int8_t *w = filter + oc;
        for (int32_t t = 0; t < ntaps; ++t, w += out_c) a += (uint32_t)(*w * taps[t][oc]);
        out[oc] = ea_requant_s8(q, a, oc);
    }
}

/* One output pixel of a 3x3 window whose first input pixel is px (channel stride c = channels, row stride
 * row): every group of four channels, nine taps each. */
static EA_KEEP_MAC_CHAINS_UNSCHEDULED void dw3x3_pixel(const int8_t *px, int32_t c, int32_t row, const uint32_t *wide, const ea_requant *q,
                        const ea_rq_entry *tab, int8_t *out) {
    const uint32_t lo4 = ea_splat_b4(q->act_min), hi4 = ea_splat_b4(q->act_max);
    for (int32_t oc = 0; oc < c; oc += 4, px += 4, wide += 18, tab += 4, out += 4) {
        uint32_t a0 = (uint32_t)q->bias[oc], a1 = (uint32_t)q->bias[oc + 1], a2 = (uint32_t)q->bias[oc + 2],
                 a3 = (uint32_t)q->bias[oc + 3];
        const int8_t *x0 = px, *x1 = px + row, *x2 = x1 + row;
        const int32_t c2 = 2 * c;
        const uint8_t *w8 = (const uint8_t *)__builtin_assume_aligned(wide, 8); /* so it is, in scratch */
        /* unrolled by hand: GCC keeps the nine taps a loop */
#define EA_DW_TAP(ptr, k)                                                                  \
    do {                                                                                   \
        const uint32_t xv = ea_read_s8x4(ptr), x02 = ea_sxtb16(xv), x13 = ea_sxtb16_ror8(xv); \
        uint64_t wk; /* one LDRD */                                                        \
        memcpy(&wk, w8 + 8 * (k), 8);                                                      \
        a0 = ea_smlabb(x02, (uint32_t)wk, a0);                                             \
        a2 = ea_smlatt(x02, (uint32_t)wk, a2);                                             \
        a1 = ea_smlabb(x13, (uint32_t)(wk >> 32), a1);                                     \
        a3 = ea_smlatt(x13, (uint32_t)(wk >> 32), a3);                                     \
    } while (0)
        EA_DW_TAP(x0, 0);
        EA_DW_TAP(x0 + c, 1);
        EA_DW_TAP(x0 + c2, 2);
        EA_DW_TAP(x1, 3);
        EA_DW_TAP(x1 + c, 4);
        EA_DW_TAP(x1 + c2, 5);
        EA_DW_TAP(x2, 6);
        EA_DW_TAP(x2 + c, 7);
        EA_DW_TAP(x2 + c2, 8);
#undef EA_DW_TAP
        const uint32_t v = ea_rq_out4(tab, tab + 1, tab + 2, tab + 3, a0, a1, a2, a3, lo4, hi4);
        memcpy(out, &v, 4);
    }
}

/* The 3x3 path over the whole image (see the file comment). */
static void dw3x3(const ea_conv_params *p, const ea_requant *q, const ea_rq_entry *tab, const ea_dims4 *in_dims,
                  const int8_t *image, const uint32_t *wide, const ea_dims4 *out_dims, int8_t *out, int8_t *patch) {
    const int32_t in_h = in_dims->h, in_w = in_dims->w, c = in_dims->c, row = in_w * c;
    const uint32_t zp4 = ea_splat_b4(-p->input_offset);
    for (int32_t oy = 0; oy < out_dims->h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        for (int32_t ox = 0; ox < out_dims->w; ++ox, out += c) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            if (iy0 >= 0 && iy0 + 3 <= in_h && ix0 >= 0 && ix0 + 3 <= in_w) {
                dw3x3_pixel(image + iy0 * row + ix0 * c, c, row, wide, q, tab, out);
                continue;
            }
            int8_t *d = patch; /* c is a multiple of 4: whole words, no library calls */
            for (int32_t fy = 0; fy < 3; ++fy) {
                for (int32_t fx = 0; fx < 3; ++fx) {
                    const int32_t iy = iy0 + fy, ix = ix0 + fx;
                    if (iy < 0 || iy >= in_h || ix < 0 || ix >= in_w) {
                        for (int32_t k = 0; k < c; k += 4, d += 4) memcpy(d, &zp4, 4);
                    } else {
                        const int8_t *src = image + iy * row + ix * c;
                        for (int32_t k = 0; k < c; k += 4, d += 4) memcpy(d, src + k, 4);
                    }
                }
            }
            dw3x3_pixel(patch, c, 3 * c, wide, q, tab, out);
        }
    }
}

void ea_depthwise_conv_s8(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                          const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out,
                          void *scratch) {
    const int32_t in_c = in_dims->c, out_h = out_dims->h, out_w = out_dims->w, out_c = out_dims->c;
    const int32_t dm = p->depth_multiplier, ntaps = filter_dims->h * filter_dims->w;
    int8_t *zp_row = (int8_t *)(((uintptr_t)scratch + 15u) & ~(uintptr_t)15u);
    const int8_t **taps = (const int8_t **)(void *)(zp_row + ((in_c + 7) & ~7));
    uint32_t *wide = (uint32_t *)(void *)(zp_row + ((ref_bytes(in_dims, filter_dims) + 7) & ~7));
    ea_rq_entry *tab = (ea_rq_entry *)(void *)(wide + 2 * ntaps * (out_c / 4));
    int8_t *patch = (int8_t *)(tab + out_c);
    for (int32_t i = 0; i < in_c; ++i) zp_row[i] = (int8_t)(-p->input_offset);
    if (dm == 1) {
        for (int32_t g = 0; g < out_c / 4; ++g)
            for (int32_t t = 0; t < ntaps; ++t) {
                const uint32_t wv = ea_read_s8x4(filter + t * out_c + 4 * g);
                wide[(g * ntaps + t) * 2] = ea_sxtb16(wv);
                wide[(g * ntaps + t) * 2 + 1] = ea_sxtb16_ror8(wv);
            }
        if (!ea_rq_table(q, out_c, ntaps, tab)) tab = NULL;
    }

    const int fast = dm == 1 && tab && filter_dims->h == 3 && filter_dims->w == 3 && p->dil_h == 1 &&
                     p->dil_w == 1 && (in_c & 3) == 0;
    for (int32_t b = 0; b < in_dims->n; ++b) {
        const int8_t *image = in + b * in_dims->h * in_dims->w * in_c;
        if (fast) {
            dw3x3(p, q, tab, in_dims, image, wide, out_dims, out + b * out_h * out_w * out_c, patch);
            continue;
        }
        for (int32_t oy = 0; oy < out_h; ++oy) {
            for (int32_t ox = 0; ox < out_w; ++ox) {
                int8_t *o = out + ((b * out_h + oy) * out_w + ox) * out_c;
                ea_dw_taps(p, in_dims, image, filter_dims, oy * p->stride_h - p->pad_h, ox * p->stride_w - p->pad_w,
                           zp_row, taps);
                if (dm == 1) {
                    dw_pixel_dsp(q, tab, taps, ntaps, filter, wide, out_c, o);
                    continue;
                }
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    uint32_t a = (uint32_t)q->bias[oc];
                    const int8_t *w = filter + oc;
                    for (int32_t t = 0; t < ntaps; ++t, w += out_c) a += (uint32_t)(*w * taps[t][oc / dm]);
                    o[oc] = ea_requant_s8(q, a, oc);
                }
            }
        }
    }
}

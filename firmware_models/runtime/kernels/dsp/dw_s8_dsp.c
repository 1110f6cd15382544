/* ea_depthwise_conv_s8 with the DSP extension, depth multiplier 1: four adjacent channels of a tap
 * are one word of input and one of weights; SXTB16 widens each into (ch0, ch2) and (ch1, ch3), and
 * SMLABB / SMLATT add each channel's product to its own accumulator. Other depth multipliers take the
 * reference loop. Same sums modulo 2^32 as the reference. */
#include "ea_dsp.h"
#include "ea_kernels.h"

static void dw_pixel_dsp(const ea_requant *q, const int8_t *const *taps, int32_t ntaps, const int8_t *filter,
                         int32_t out_c, int8_t *out) {
    int32_t oc = 0;
    for (; oc + 4 <= out_c; oc += 4) {
        uint32_t a0 = (uint32_t)q->bias[oc], a1 = (uint32_t)q->bias[oc + 1], a2 = (uint32_t)q->bias[oc + 2],
                 a3 = (uint32_t)q->bias[oc + 3];
        const int8_t *w = filter + oc;
        for (int32_t t = 0; t < ntaps; ++t, w += out_c) {
            const uint32_t xv = ea_read_s8x4(taps[t] + oc), wv = ea_read_s8x4(w);
            const uint32_t x02 = ea_sxtb16(xv), x13 = ea_sxtb16_ror8(xv);
            const uint32_t w02 = ea_sxtb16(wv), w13 = ea_sxtb16_ror8(wv);
            a0 = ea_smlabb(x02, w02, a0);
            a2 = ea_smlatt(x02, w02, a2);
            a1 = ea_smlabb(x13, w13, a1);
            a3 = ea_smlatt(x13, w13, a3);
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

/* Scratch as the reference kernel's (ea_depthwise_conv_s8_get_buffer_size, not replaced here). */
void ea_depthwise_conv_s8(const ea_conv_params *p, const ea_requant *q, const ea_dims4 *in_dims, const int8_t *in,
                          const ea_dims4 *filter_dims, const int8_t *filter, const ea_dims4 *out_dims, int8_t *out,
                          void *scratch) {
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
                    dw_pixel_dsp(q, taps, ntaps, filter, out_c, o);
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

/* ea_depthwise_conv_s8 with MVE, depth multiplier 1: each output channel sums its own taps, so the
 * vector runs along the channels. VLDRB.S32 widens four adjacent int8 channels of a tap (input and
 * weights) to words, VMUL and VADD accumulate them per lane (MVE has no lane-wise vector multiply-
 * accumulate); sixteen channels per pass keep four accumulators in Q registers across the taps, and the
 * last (channels mod 4) under a tail predicate. The sums are requantized four channels per vector
 * (ea_mve_rq.h). Other depth multipliers take the reference loop. Same sums modulo 2^32 as the
 * reference (ops/depthwise_conv_2d.c). */
#include "ea_kernels.h"
#include "ea_mve.h"
#include "ea_mve_rq.h"

static inline int32x4_t mac4(int32x4_t acc, const int8_t *x, const int8_t *w) {
    return vaddq_s32(acc, vmulq_s32(vldrbq_s32(x), vldrbq_s32(w)));
}

static void dw_pixel_mve(const ea_requant *q, const int8_t *const *taps, int32_t ntaps, const int8_t *filter,
                         int32_t out_c, int8_t *out) {
    int32_t oc = 0;
    for (; oc + 16 <= out_c; oc += 16) {
        int32x4_t a0 = vldrwq_s32(q->bias + oc), a1 = vldrwq_s32(q->bias + oc + 4), a2 = vldrwq_s32(q->bias + oc + 8),
                  a3 = vldrwq_s32(q->bias + oc + 12);
        const int8_t *w = filter + oc;
        for (int32_t t = 0; t < ntaps; ++t, w += out_c) {
            const int8_t *x = taps[t] + oc;
            a0 = mac4(a0, x, w);
            a1 = mac4(a1, x + 4, w + 4);
            a2 = mac4(a2, x + 8, w + 8);
            a3 = mac4(a3, x + 12, w + 12);
        }
        ea_rqv c = ea_rqv_of(q, oc);
        vstrbq_s32(out + oc, ea_rqv_apply(&c, q, a0));
        c = ea_rqv_of(q, oc + 4);
        vstrbq_s32(out + oc + 4, ea_rqv_apply(&c, q, a1));
        c = ea_rqv_of(q, oc + 8);
        vstrbq_s32(out + oc + 8, ea_rqv_apply(&c, q, a2));
        c = ea_rqv_of(q, oc + 12);
        vstrbq_s32(out + oc + 12, ea_rqv_apply(&c, q, a3));
    }
    for (; oc < out_c; oc += 4) {
        const mve_pred16_t p = vctp32q((uint32_t)(out_c - oc));
        int32x4_t a = vldrwq_z_s32(q->bias + oc, p);
        const int8_t *w = filter + oc;
        for (int32_t t = 0; t < ntaps; ++t, w += out_c)
            a = vaddq_s32(a, vmulq_s32(vldrbq_z_s32(taps[t] + oc, p), vldrbq_z_s32(w, p)));
        const ea_rqv c = ea_rqv_of_z(q, oc, p);
        vstrbq_p_s32(out + oc, ea_rqv_apply(&c, q, a), p);
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
                    dw_pixel_mve(q, taps, ntaps, filter, out_c, o);
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

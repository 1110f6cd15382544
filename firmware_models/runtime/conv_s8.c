/* CONV_2D int8 with per-channel requantization (as TFLM reference_integer_ops::ConvPerChannel),
 * including grouped convolution (filter input depth dividing the input depth). */
#include "ea_kernels.h"
#include "ea_quant.h"

void ea_conv_s8(const ea_conv_params *p, const int32_t *mult, const int32_t *shift, const ea_dims4 *in_dims,
                const int8_t *in, const ea_dims4 *filter_dims, const int8_t *filter, const uint8_t *bias,
                const ea_dims4 *out_dims, int8_t *out) {
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

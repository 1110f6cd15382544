/* FULLY_CONNECTED int8 (as TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel).
 * The input is read as [batches, accum_depth] whatever its shape; the filter is [out_depth, accum_depth]. */
#include "ea_kernels.h"
#include "ea_quant.h"

void ea_fully_connected_s8(const ea_fc_params *p, int32_t mult, int32_t shift, int32_t batches, int32_t accum_depth,
                           int32_t out_depth, const int8_t *in, const int8_t *filter, const uint8_t *bias, int8_t *out) {
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *ip = in + b * accum_depth;
        for (int32_t oc = 0; oc < out_depth; ++oc) {
            const int8_t *fp = filter + oc * accum_depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < accum_depth; ++d)
                acc = ea_wrap_add(acc, ((int32_t)fp[d] + p->filter_offset) * ((int32_t)ip[d] + p->input_offset));
            if (bias) acc = ea_wrap_add(acc, ea_load_i32(bias + 4 * oc));
            acc = ea_mbqm(acc, mult, shift);
            acc = ea_wrap_add(acc, p->output_offset);
            out[b * out_depth + oc] = (int8_t)ea_clamp(acc, p->act_min, p->act_max);
        }
    }
}

void ea_fully_connected_per_channel_s8(const ea_fc_params *p, const int32_t *mult, const int32_t *shift,
                                       int32_t batches, int32_t accum_depth, int32_t out_depth, const int8_t *in,
                                       const int8_t *filter, const uint8_t *bias, int8_t *out) {
    for (int32_t b = 0; b < batches; ++b) {
        const int8_t *ip = in + b * accum_depth;
        for (int32_t oc = 0; oc < out_depth; ++oc) {
            const int8_t *fp = filter + oc * accum_depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < accum_depth; ++d)
                acc = ea_wrap_add(acc, (int32_t)fp[d] * ((int32_t)ip[d] + p->input_offset));
            if (bias) acc = ea_wrap_add(acc, ea_load_i32(bias + 4 * oc));
            acc = ea_mbqm(acc, mult[oc], shift[oc]);
            acc = ea_wrap_add(acc, p->output_offset);
            out[b * out_depth + oc] = (int8_t)ea_clamp(acc, p->act_min, p->act_max);
        }
    }
}

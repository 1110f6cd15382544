/* ADD int8 with broadcasting (as TFLM reference_integer_ops::AddFunc): both inputs are rescaled to a
 * common scale with 20 bits of headroom (left_shift), summed, and rescaled to the output. */
#include "ea_kernels.h"
#include "ea_quant.h"

static int8_t add_one(const ea_add_params *p, int8_t x, int8_t y) {
    const int32_t a = ea_wrap_shl(p->in1_offset + x, p->left_shift);
    const int32_t b = ea_wrap_shl(p->in2_offset + y, p->left_shift);
    const int32_t sa = ea_mbqm(a, p->in1_mult, p->in1_shift);
    const int32_t sb = ea_mbqm(b, p->in2_mult, p->in2_shift);
    const int32_t raw = ea_wrap_add(ea_mbqm(ea_wrap_add(sa, sb), p->out_mult, p->out_shift), p->out_offset);
    return (int8_t)ea_clamp(raw, p->act_min, p->act_max);
}

void ea_add_s8(const ea_add_params *p, const int32_t in1_dims[6], const int8_t *in1, const int32_t in2_dims[6],
               const int8_t *in2, const int32_t out_dims[6], int8_t *out) {
    /* Element strides of each input, 0 along a broadcast dimension. */
    int32_t s1[6], s2[6], st1 = 1, st2 = 1;
    for (int d = 5; d >= 0; --d) {
        s1[d] = in1_dims[d] == 1 && out_dims[d] != 1 ? 0 : st1;
        s2[d] = in2_dims[d] == 1 && out_dims[d] != 1 ? 0 : st2;
        st1 *= in1_dims[d];
        st2 *= in2_dims[d];
    }
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < out_dims[0]; ++i0)
        for (int32_t i1 = 0; i1 < out_dims[1]; ++i1)
            for (int32_t i2 = 0; i2 < out_dims[2]; ++i2)
                for (int32_t i3 = 0; i3 < out_dims[3]; ++i3)
                    for (int32_t i4 = 0; i4 < out_dims[4]; ++i4) {
                        const int32_t b1 = i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3] + i4 * s1[4];
                        const int32_t b2 = i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3] + i4 * s2[4];
                        for (int32_t i5 = 0; i5 < out_dims[5]; ++i5)
                            out[o++] = add_one(p, in1[b1 + i5 * s1[5]], in2[b2 + i5 * s2[5]]);
                    }
}

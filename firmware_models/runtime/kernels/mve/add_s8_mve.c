/* ea_add_s8 (int8 ADD, TFLM's AddFunc arithmetic) with MVE: four elements per vector, every step of
 * the scalar pipeline (offset, << 20, two input rescalings, sum, output rescaling, clamp) done lane-wise
 * with ea_mbqm_v (ea_mve_rq.h). A run of elements contiguous in both inputs (no broadcast along the
 * last dimension: resnet's residual ADDs are one run over the whole tensor) is vectorised, its last
 * (run mod 4) elements under a tail predicate; a broadcast along the last dimension takes the scalar
 * path. Same results as the reference kernel (ops/add.c). */
#include "ea_kernels.h"
#include "ea_mve.h"
#include "ea_mve_rq.h"
#include "ea_quant.h"

typedef struct {
    ea_rqv r1, r2, ro;
    int32x4_t shift20;
} add_consts;

static int8_t add_one(const ea_add_params *p, int8_t x, int8_t y) {
    const int32_t a = ea_wrap_shl(p->in1_offset + x, EA_ADD_LEFT_SHIFT);
    const int32_t b = ea_wrap_shl(p->in2_offset + y, EA_ADD_LEFT_SHIFT);
    const int32_t sa = ea_mbqm(a, p->in1_mult, p->in1_shift);
    const int32_t sb = ea_mbqm(b, p->in2_mult, p->in2_shift);
    const int32_t raw = ea_wrap_add(ea_mbqm(ea_wrap_add(sa, sb), p->out_mult, p->out_shift), p->out_offset);
    return (int8_t)ea_clamp(raw, p->act_min, p->act_max);
}

static inline int32x4_t add4(const ea_add_params *p, const add_consts *k, int32x4_t x, int32x4_t y) {
    const int32x4_t a = vshlq_s32(vaddq_n_s32(x, p->in1_offset), k->shift20);
    const int32x4_t b = vshlq_s32(vaddq_n_s32(y, p->in2_offset), k->shift20);
    const int32x4_t s = vaddq_s32(ea_mbqm_v(&k->r1, a), ea_mbqm_v(&k->r2, b));
    const int32x4_t o = vaddq_n_s32(ea_mbqm_v(&k->ro, s), p->out_offset);
    return vminq_s32(vmaxq_s32(o, vdupq_n_s32(p->act_min)), vdupq_n_s32(p->act_max));
}

/* n elements, both inputs contiguous. */
static void add_run(const ea_add_params *p, const add_consts *k, const int8_t *in1, const int8_t *in2, int8_t *out,
                    int32_t n) {
    for (; n >= 4; n -= 4, in1 += 4, in2 += 4, out += 4) vstrbq_s32(out, add4(p, k, vldrbq_s32(in1), vldrbq_s32(in2)));
    if (n > 0) {
        const mve_pred16_t t = vctp32q((uint32_t)n);
        vstrbq_p_s32(out, add4(p, k, vldrbq_z_s32(in1, t), vldrbq_z_s32(in2, t)), t);
    }
}

/* Four lanes already rescale four elements per step: no tables (the reference's scratch). */
int32_t ea_add_s8_get_buffer_size(int32_t count) {
    (void)count;
    return 0;
}

void ea_add_s8(const ea_add_params *p, const int32_t in1_dims[6], const int8_t *in1, const int32_t in2_dims[6],
               const int8_t *in2, const int32_t out_dims[6], int8_t *out, void *scratch) {
    (void)scratch;
    const add_consts k = {ea_rqv_dup(p->in1_mult, p->in1_shift), ea_rqv_dup(p->in2_mult, p->in2_shift),
                          ea_rqv_dup(p->out_mult, p->out_shift), vdupq_n_s32(EA_ADD_LEFT_SHIFT)};
    /* Element strides of each input, 0 along a broadcast dimension (as the reference). */
    int32_t s1[6], s2[6], st1 = 1, st2 = 1, total = 1, same = 1;
    for (int d = 5; d >= 0; --d) {
        s1[d] = in1_dims[d] == 1 && out_dims[d] != 1 ? 0 : st1;
        s2[d] = in2_dims[d] == 1 && out_dims[d] != 1 ? 0 : st2;
        same &= in1_dims[d] == out_dims[d] && in2_dims[d] == out_dims[d];
        st1 *= in1_dims[d];
        st2 *= in2_dims[d];
        total *= out_dims[d];
    }
    if (same) {
        add_run(p, &k, in1, in2, out, total);
        return;
    }
    const int inner_contiguous = s1[5] == 1 && s2[5] == 1;
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < out_dims[0]; ++i0)
        for (int32_t i1 = 0; i1 < out_dims[1]; ++i1)
            for (int32_t i2 = 0; i2 < out_dims[2]; ++i2)
                for (int32_t i3 = 0; i3 < out_dims[3]; ++i3)
                    for (int32_t i4 = 0; i4 < out_dims[4]; ++i4) {
                        const int32_t b1 = i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3] + i4 * s1[4];
                        const int32_t b2 = i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3] + i4 * s2[4];
                        if (inner_contiguous) {
                            add_run(p, &k, in1 + b1, in2 + b2, out + o, out_dims[5]);
                            o += out_dims[5];
                            continue;
                        }
                        for (int32_t i5 = 0; i5 < out_dims[5]; ++i5)
                            out[o++] = add_one(p, in1[b1 + i5 * s1[5]], in2[b2 + i5 * s2[5]]);
                    }
}

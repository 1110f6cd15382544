/* Four channels' requantization in one vector (the mve set's shared helper): TFLite's
 * MultiplyByQuantizedMultiplier as VSHL (left shift, wrapping), VQRDMULH (gemmlowp's
 * SaturatingRoundingDoublingHighMul: both round half up, and mult >= 0 rules out its one saturating
 * case), then RoundingDivideByPOT as gemmlowp's NEON form: add -1 to negative values that will be
 * shifted (VAND with the negative shift, VSHR #31, VQADD), then VRSHL by -right, which rounds half up,
 * so ties of negative values go away from zero as in the scalar code. Then + out_offset, clamped,
 * stored as four int8. Same result as ea_rq_out (ea_kernels.h) for every accumulator. */
#ifndef EA_MVE_RQ_H
#define EA_MVE_RQ_H

#include "ea_kernels.h"
#include "ea_mve.h"

typedef struct {
    int32x4_t mult, left, neg_right; /* neg_right = min(shift, 0): VRSHL's right shift is a negative left */
} ea_rqv;

/* Constants of channels [r, r + 4) (all four from channel 0 when per-tensor). */
static inline ea_rqv ea_rqv_of(const ea_requant *q, int32_t r) {
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t mult, shift;
    if (q->per_channel) {
        mult = vldrwq_s32(q->mult + r);
        shift = vldrwq_s32(q->shift + r);
    } else {
        mult = vdupq_n_s32(q->mult[0]);
        shift = vdupq_n_s32(q->shift[0]);
    }
    const ea_rqv c = {mult, vmaxq_s32(shift, zero), vminq_s32(shift, zero)};
    return c;
}

/* The same for the n < 4 channels [r, r + n) under predicate p = vctp32q(n) (nothing read past them). */
static inline ea_rqv ea_rqv_of_z(const ea_requant *q, int32_t r, mve_pred16_t p) {
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t mult, shift;
    if (q->per_channel) {
        mult = vldrwq_z_s32(q->mult + r, p);
        shift = vldrwq_z_s32(q->shift + r, p);
    } else {
        mult = vdupq_n_s32(q->mult[0]);
        shift = vdupq_n_s32(q->shift[0]);
    }
    const ea_rqv c = {mult, vmaxq_s32(shift, zero), vminq_s32(shift, zero)};
    return c;
}

/* Constants of one multiplier for every lane (ADD's per-tensor rescalings). */
static inline ea_rqv ea_rqv_dup(int32_t mult, int32_t shift) {
    const ea_rqv c = {vdupq_n_s32(mult), vdupq_n_s32(shift > 0 ? shift : 0), vdupq_n_s32(shift > 0 ? 0 : shift)};
    return c;
}

/* MultiplyByQuantizedMultiplier of each lane (ea_mbqm, ea_quant.h). */
static inline int32x4_t ea_mbqm_v(const ea_rqv *c, int32x4_t acc) {
    const int32x4_t y = vqrdmulhq_s32(vshlq_s32(acc, c->left), c->mult);
    const int32x4_t fixup = vshrq_n_s32(vandq_s32(y, c->neg_right), 31);
    return vrshlq_s32(vqaddq_s32(y, fixup), c->neg_right);
}

/* The four requantized values of acc (lanes = channels), as int32 in [act_min, act_max]. */
static inline int32x4_t ea_rqv_apply(const ea_rqv *c, const ea_requant *q, int32x4_t acc) {
    const int32x4_t o = vaddq_n_s32(ea_mbqm_v(c, acc), q->out_offset);
    return vminq_s32(vmaxq_s32(o, vdupq_n_s32(q->act_min)), vdupq_n_s32(q->act_max));
}

/* Four accumulators (scalars) into a vector. */
static inline int32x4_t ea_mve_vec4(int32_t a0, int32_t a1, int32_t a2, int32_t a3) {
    int32x4_t v = vdupq_n_s32(a0);
    v = vsetq_lane_s32(a1, v, 1);
    v = vsetq_lane_s32(a2, v, 2);
    return vsetq_lane_s32(a3, v, 3);
}

#endif /* EA_MVE_RQ_H */

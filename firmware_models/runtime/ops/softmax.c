/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), bit-exact with TFLM's
 * reference_ops::Softmax<int8_t, int8_t>: gemmlowp fixed-point exp() on Q5.26 input differences,
 * a Q12.19 sum of exponentials and a Newton-Raphson reciprocal. No lookup tables. */
#include "ea_fixedpoint.h"
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_SOFTMAX = 9 }; /* BuiltinOptions_SoftmaxOptions */

enum { SCALED_DIFF_INTEGER_BITS = 5, ACCUM_INTEGER_BITS = 12 };

static int clz32(uint32_t v) {
    int n = 0;
    if (v == 0) return 32;
    while (!(v & 0x80000000u)) {
        v <<= 1;
        n++;
    }
    return n;
}

EA_KERNEL void ea_softmax_s8(const ea_softmax_params *p, int32_t outer, int32_t depth, const int8_t *in, int8_t *out) {
    const int32_t mult = p->mult, left_shift = p->left_shift, diff_min = p->diff_min;
    for (int32_t i = 0; i < outer; ++i) {
        const int8_t *row = in + i * depth;
        int8_t *orow = out + i * depth;
        int32_t max_in_row = -128;
        for (int32_t c = 0; c < depth; ++c)
            if (row[c] > max_in_row) max_in_row = row[c];

        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = row[c] - max_in_row;
            if (diff >= diff_min) {
                const int32_t scaled = ea_srdhm(ea_wrap_shl(diff, left_shift), mult);
                sum_of_exps = ea_wrap_add(sum_of_exps, ea_rdbypot(ea_fp_exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS), ACCUM_INTEGER_BITS));
            }
        }

        /* GetReciprocal: normalise the sum to [1, 2) and invert it. */
        const int headroom_plus_one = clz32((uint32_t)sum_of_exps);
        const int num_bits_over_unit = ACCUM_INTEGER_BITS - headroom_plus_one;
        const int32_t shifted_sum_minus_one =
            (int32_t)(((uint32_t)sum_of_exps << (headroom_plus_one & 31)) - ((uint32_t)1 << 31));
        const int32_t shifted_scale = ea_sat_shl(ea_fp_reciprocal_q2(shifted_sum_minus_one), 1); /* Q2.29 -> Q0.31 */
        int exponent = num_bits_over_unit + 31 - 8;
        if (exponent < 0) exponent = 0; /* cannot happen: the row maximum contributes exp(0) */
        if (exponent > 31) exponent = 31;

        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = row[c] - max_in_row;
            if (diff >= diff_min) {
                const int32_t scaled = ea_srdhm(ea_wrap_shl(diff, left_shift), mult);
                const int32_t e = ea_fp_exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS);
                const int32_t unsat = ea_rdbypot(ea_srdhm(shifted_scale, e), exponent);
                orow[c] = (int8_t)ea_clamp(unsat - 128, -128, 127);
            } else {
                orow[c] = -128;
            }
        }
    }
}

EA_PREPARE(softmax) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    float beta = 0.0f;
    ea_status st;

    if (c->options_type == BO_SOFTMAX && fb_f32(c->r, &c->options, 0, 0.0f, EA_MSG("SoftmaxOptions.beta"), &beta))
        return EA_OP_OPTIONS_FAIL(c);
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input"))) || (st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->ndim < 1 || in->count != out->count) return EA_OP_FAIL(c, EA_MSG("input and output shapes differ"));
    if (out->zero_point != -128 || out->scale != 1.0f / 256) return EA_OP_FAIL(c, EA_MSG("output must have scale 1/256 and zero point -128"));
    /* PreprocessSoftmaxScaling with 5 integer bits (double-rounding build), CalculateInputRadius. */
    /* real = min(beta * input scale * 2^26, 2^31 - 1), an exact product in double */
    ea_real real;
    if (ea_real_ratio(beta, in->scale, 1.0f, 26, &real)) return EA_OP_FAIL(c, EA_MSG("beta x input scale too small"));
    const int e = ea_real_frexp_exp(&real);
    const uint64_t int32_max_sig = (uint64_t)INT32_MAX << 22; /* 2^31 - 1 = int32_max_sig * 2^-22 */
    if (e > 31 || (e == 31 && real.sig > int32_max_sig)) real = (ea_real){.sig = int32_max_sig, .exp = -22};
    if (!real.sig || e < 1 || (e == 1 && real.sig == (uint64_t)1 << 52)) /* real <= 1 */
        return EA_OP_FAIL(c, EA_MSG("beta x input scale too small"));
    int32_t mult, left_shift;
    if (ea_quantize_real(&real, &mult, &left_shift) || left_shift < 0 || left_shift > 31)
        return EA_OP_FAIL(c, EA_MSG("invalid input scale"));
    /* CalculateInputRadius: floor(31 * 2^26 / 2^left_shift) */
    const int32_t radius = left_shift <= 26 ? (int32_t)(31u << (26 - left_shift)) : 31 >> (left_shift - 26);
    *EA_OP_PARAMS(ea_softmax_params, op) = (ea_softmax_params){
        .mult = mult, .left_shift = left_shift, .diff_min = -radius,
    };
    return EA_OK;
}

EA_INVOKE(softmax) {
    const ea_tensor *in = &m->tensors[op->in[0]];
    const int32_t depth = in->dims[in->ndim - 1];
    ea_softmax_s8(EA_OP_CPARAMS(ea_softmax_params, op), (int32_t)(in->count / (uint32_t)depth), depth,
                  (const int8_t *)ea_tensor_data(m, op->in[0]), (int8_t *)ea_vdata(m, &m->tensors[op->out]));
    return EA_OK;
}

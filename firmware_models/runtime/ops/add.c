/* ADD int8 with broadcasting (as TFLM reference_integer_ops::AddFunc): both inputs are rescaled to a
 * common scale with 20 bits of headroom (EA_ADD_LEFT_SHIFT), summed, and rescaled to the output.
 *
 * An input's rescaled value depends on its int8 value alone, so each call first computes both inputs'
 * 256 rescaled values into the scratch (2 KiB, TFLM's arithmetic exactly) and each element then costs
 * two table reads instead of two rescalings: the same numbers in about a third of the instructions of
 * the per-element rescaling for a resnet8 ADD, and less code (docs/benchmarks.md, "ADD by tables"). */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_ADD = 11 }; /* BuiltinOptions_AddOptions */

EA_KERNEL int32_t ea_add_s8_get_buffer_size(int32_t count) {
    (void)count;
    return 2 * 256 * (int32_t)sizeof(int32_t);
}

/* Each input's rescaled value for every int8 value (t1, t2 point at the entry of value 0). */
static void add_tables(const ea_add_params *p, int32_t *t1, int32_t *t2) {
    for (int32_t v = -128; v < 128; ++v) {
        t1[v] = ea_mbqm(ea_wrap_shl(p->in1_offset + v, EA_ADD_LEFT_SHIFT), p->in1_mult, p->in1_shift);
        t2[v] = ea_mbqm(ea_wrap_shl(p->in2_offset + v, EA_ADD_LEFT_SHIFT), p->in2_mult, p->in2_shift);
    }
}

/* The output's rescaling is a right shift (prepare: the output's ratio is below 1), so ea_rqr gives
 * ea_mbqm's result in fewer steps with its constants taken once per run. Inlined with steps 1 and 1 (a
 * residual ADD, the usual case) the loads post-increment and nothing is kept on the stack. */
static inline __attribute__((always_inline)) void tables_loop(const ea_rqr *fo, int32_t oo, int32_t lo, int32_t hi,
                                                             int32_t n, const int8_t *in1, int32_t step1,
                                                             const int8_t *in2, int32_t step2, int8_t *out,
                                                             const int32_t *t1, const int32_t *t2) {
    for (int32_t i = 0; i < n; ++i, in1 += step1, in2 += step2)
        out[i] = (int8_t)ea_clamp(ea_wrap_add(ea_rqr_apply(fo, ea_wrap_add(t1[*in1], t2[*in2])), oo), lo, hi);
}

/* n elements; input k advances by step_k (1, or 0 when broadcast); t1, t2 the inputs' tables. */
static void add_run(const ea_add_params *p, int32_t n, const int8_t *in1, int32_t step1, const int8_t *in2,
                    int32_t step2, int8_t *out, const int32_t *t1, const int32_t *t2) {
    const int32_t oo = p->out_offset, lo = p->act_min, hi = p->act_max;
    if (p->out_shift > 0) { /* not expected (see above): ea_mbqm itself */
        for (int32_t i = 0; i < n; ++i, in1 += step1, in2 += step2)
            out[i] = (int8_t)ea_clamp(ea_wrap_add(ea_mbqm(ea_wrap_add(t1[*in1], t2[*in2]), p->out_mult, p->out_shift), oo),
                                      lo, hi);
        return;
    }
    const ea_rqr fo = ea_rqr_of(p->out_mult, -p->out_shift);
    if (step1 == 1 && step2 == 1)
        tables_loop(&fo, oo, lo, hi, n, in1, 1, in2, 1, out, t1, t2);
    else
        tables_loop(&fo, oo, lo, hi, n, in1, step1, in2, step2, out, t1, t2);
}

EA_KERNEL void ea_add_s8(const ea_add_params *p, const int32_t in1_dims[6], const int8_t *in1, const int32_t in2_dims[6],
               const int8_t *in2, const int32_t out_dims[6], int8_t *out, void *scratch) {
    int32_t *t1 = (int32_t *)scratch + 128, *t2 = t1 + 256;
    add_tables(p, t1, t2);
    /* Element strides of each input, 0 along a broadcast dimension. */
    int32_t s1[6], s2[6], st1 = 1, st2 = 1, same = 1;
    for (int d = 5; d >= 0; --d) {
        s1[d] = in1_dims[d] == 1 && out_dims[d] != 1 ? 0 : st1;
        s2[d] = in2_dims[d] == 1 && out_dims[d] != 1 ? 0 : st2;
        st1 *= in1_dims[d];
        st2 *= in2_dims[d];
        same &= in1_dims[d] == out_dims[d] && in2_dims[d] == out_dims[d];
    }
    if (same) { /* no broadcasting (a residual ADD): one run */
        add_run(p, out_dims[0] * out_dims[1] * out_dims[2] * out_dims[3] * out_dims[4] * out_dims[5], in1, 1, in2, 1,
                out, t1, t2);
        return;
    }
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < out_dims[0]; ++i0)
        for (int32_t i1 = 0; i1 < out_dims[1]; ++i1)
            for (int32_t i2 = 0; i2 < out_dims[2]; ++i2)
                for (int32_t i3 = 0; i3 < out_dims[3]; ++i3)
                    for (int32_t i4 = 0; i4 < out_dims[4]; ++i4) {
                        const int32_t b1 = i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3] + i4 * s1[4];
                        const int32_t b2 = i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3] + i4 * s2[4];
                        add_run(p, out_dims[5], in1 + b1, s1[5], in2 + b2, s2[5], out + o, t1, t2);
                        o += out_dims[5];
                    }
}

EA_PREPARE(add) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    int8_t act = 0;
    ea_status st;

    if (c->options_type == BO_ADD && fb_i8(c->r, &c->options, 0, 0, EA_MSG("AddOptions.fused_activation_function"), &act))
        return EA_OP_OPTIONS_FAIL(c);
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("first input"))) || (st = ea_need_s8(c, op->in[1], EA_MSG("second input"))) ||
        (st = ea_need_s8(c, op->out, EA_MSG("output"))))
        return st;
    const ea_tensor *a = &m->tensors[op->in[0]], *b = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    int32_t da[6], db[6], dout[6];
    ea_dims6_of(a, da);
    ea_dims6_of(b, db);
    ea_dims6_of(out, dout);
    for (int d = 0; d < 6; d++) {
        const int32_t want = da[d] == 1 ? db[d] : da[d];
        if ((da[d] != 1 && db[d] != 1 && da[d] != db[d]) || dout[d] != want)
            return EA_OP_FAIL(c, EA_MSG("input shapes are not broadcastable to the output shape"));
    }
    /* CalculateOpDataAdd (int8): left_shift 20, inputs rescaled to twice the larger input scale. */
    /* In double there: each input scale over twice the larger, and that over 2^20 x the output scale. */
    const float max = a->scale > b->scale ? a->scale : b->scale;
    ea_real ro;
    int32_t m1, s1, m2, s2, mo, so, act_min, act_max;
    if (ea_real_ratio(max, 1.0f, out->scale, 1 - EA_ADD_LEFT_SHIFT, &ro)) return EA_OP_FAIL(c, EA_MSG("invalid scales"));
    if (ea_real_frexp_exp(&ro) > 0) return EA_OP_FAIL(c, EA_MSG("output scale too small for the input scales")); /* ro >= 1 */
    if (ea_quantize_multiplier(a->scale, 1.0f, max, -1, &m1, &s1) ||
        ea_quantize_multiplier(b->scale, 1.0f, max, -1, &m2, &s2) || ea_quantize_real(&ro, &mo, &so))
        return EA_OP_FAIL(c, EA_MSG("invalid scales"));
    if ((st = ea_activation(c, act, out, &act_min, &act_max))) return st;
    ea_op_request_scratch(c, ea_add_s8_get_buffer_size((int32_t)out->count));
    *EA_OP_PARAMS(ea_add_params, op) = (ea_add_params){
        .in1_offset = -a->zero_point, .in2_offset = -b->zero_point, .out_offset = out->zero_point,
        .in1_mult = m1, .in1_shift = s1, .in2_mult = m2, .in2_shift = s2, .out_mult = mo, .out_shift = so,
        .act_min = act_min, .act_max = act_max,
    };
    return EA_OK;
}

EA_INVOKE(add) {
    int32_t da[6], db[6], dout[6];
    ea_dims6_of(&m->tensors[op->in[0]], da);
    ea_dims6_of(&m->tensors[op->in[1]], db);
    ea_dims6_of(&m->tensors[op->out], dout);
    ea_add_s8(EA_OP_CPARAMS(ea_add_params, op), da, (const int8_t *)ea_tensor_data(m, op->in[0]), db,
              (const int8_t *)ea_tensor_data(m, op->in[1]), dout, (int8_t *)ea_vdata(m, &m->tensors[op->out]),
              ea_op_scratch(m, op));
    return EA_OK;
}

/* What operators share: error messages, tensor checks, window arithmetic and quantization parameters
 * derived exactly as TFLM's Prepare functions do (kernel_util.cc, padding.h). */
#include <math.h>

#include "ea_opnames.h"
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_strbuf.h"
#include "ea_msg.h"

/* ---------------------------------------------------------------- errors */

ea_status ea_fail(ea_model *m, const char *a, const char *b) {
    ea_strbuf t;
    ea_sb_init(&t, m->error, EA_ERROR_LEN);
    ea_sb_raw(&t, a);
    ea_sb_raw(&t, b);
    return EA_ERR_MODEL;
}

ea_status ea_fail_at(ea_model *m, const char *label, int64_t index) {
    ea_strbuf t;
    ea_sb_resume(&t, m->error, EA_ERROR_LEN);
    ea_sb_raw(&t, EA_MSG(" ("));
    ea_sb_raw(&t, label);
    EA_SB_FMT(&t, " {})", index);
    return EA_ERR_MODEL;
}

ea_status ea_op_fail(ea_model *m, uint32_t i, const char *msg, const char *detail, int64_t number, int with_number) {
    ea_strbuf t;
    ea_sb_init(&t, m->error, EA_ERROR_LEN);
    const char *name = ea_builtin_name(m->ops[i].builtin);
    ea_sb_raw(&t, name[0] ? name : EA_MSG("operator"));
    EA_SB_FMT(&t, " at op {}: ", i);
    ea_sb_raw(&t, msg);
    if (detail) ea_sb_raw(&t, detail);
    if (with_number) ea_sb_i64(&t, number);
    return EA_ERR_MODEL;
}

ea_status ea_op_runtime_fail(ea_model *m, const ea_op *op, const char *msg) {
    ea_op_fail(m, (uint32_t)(op - m->ops), msg, NULL, 0, 0);
    return EA_ERR_RUNTIME;
}

/* ---------------------------------------------------------------- tensors */

uint32_t ea_type_size(uint8_t type) {
    switch (type) {
        case EA_T_FLOAT32: case EA_T_INT32: return 4;
        case EA_T_INT64: return 8;
        case EA_T_INT16: return 2;
        case EA_T_INT8: case EA_T_UINT8: case EA_T_BOOL: return 1;
        default: return 0;
    }
}

static int finite_pos(float f) { return f > 0.0f && f < 3.4e38f; }

ea_status ea_need_s8(ea_prepare_ctx *c, int32_t idx, const char *role) {
    ea_model *m = c->m;
    const uint32_t i = c->index;
    if (idx < 0) return ea_op_fail(m, i, role, EA_MSG(" tensor is missing"), 0, 0);
    const ea_tensor *t = &m->tensors[idx];
    if (t->type != EA_T_INT8) return ea_op_fail(m, i, role, EA_MSG(" tensor must be int8, got TensorType "), t->type, 1);
    if (t->nscales < 1 || !finite_pos(t->scale)) return ea_op_fail(m, i, role, EA_MSG(" tensor has no valid quantization scale"), 0, 0);
    if (t->zero_point < -128 || t->zero_point > 127) return ea_op_fail(m, i, role, EA_MSG(" zero point out of int8 range: "), t->zero_point, 1);
    return EA_OK;
}

void ea_dims6_of(const ea_tensor *t, int32_t out[6]) {
    const int lead = EA_MAX_DIMS - t->ndim;
    for (int d = 0; d < EA_MAX_DIMS; d++) out[d] = d < lead ? 1 : t->dims[d - lead];
}

/* ---------------------------------------------------------------- windows and quantization */

int ea_window(int32_t padding, int32_t in, int32_t filter, int32_t stride, int32_t dilation, int32_t *out, int32_t *pad) {
    if (stride < 1 || dilation < 1 || filter < 1 || stride > EA_MAX_WINDOW || dilation > EA_MAX_WINDOW ||
        filter > EA_MAX_WINDOW)
        return -1;
    const int64_t eff = (int64_t)(filter - 1) * dilation + 1;
    int64_t num;
    if (padding == 0) num = (int64_t)in + stride - 1;          /* SAME: ceil(in / stride) */
    else if (padding == 1) num = (int64_t)in + stride - eff;   /* VALID: ceil((in - eff + 1) / stride) */
    else return -1;
    /* o = num / stride (C's truncation) is < 1 exactly when num < stride; otherwise num is in
     * [1, 2^32) and a 32-bit division gives it (a 64-bit one would link libgcc's long division). */
    if (num < stride || num > (int64_t)UINT32_MAX) return -1;
    const int64_t o = (uint32_t)num / (uint32_t)stride;
    int64_t total = (o - 1) * stride + eff - in;
    if (total < 0) total = 0;
    if (total / 2 > EA_MAX_WINDOW * (int64_t)EA_MAX_WINDOW) return -1;
    *out = (int32_t)o;
    *pad = (int32_t)(total / 2);
    return 0;
}

ea_status ea_activation(ea_prepare_ctx *c, int act, const ea_tensor *out, int32_t *act_min, int32_t *act_max) {
    if (act < 0 || act > 3) return ea_op_fail(c->m, c->index, EA_MSG("unsupported fused activation "), NULL, act, 1);
    if (ea_activation_range_s8(act, out->scale, out->zero_point, act_min, act_max))
        return EA_OP_FAIL(c, EA_MSG("activation range overflows"));
    return EA_OK;
}

ea_status ea_filter_scales_ok(ea_prepare_ctx *c, const ea_tensor *filter, uint32_t channels, int32_t qdim) {
    if (filter->nscales == 0) return EA_OP_FAIL(c, EA_MSG("filter has no quantization scale"));
    if (filter->nscales != 1 && (filter->nscales != channels || filter->qdim != qdim))
        return EA_OP_FAIL(c, EA_MSG("filter per-channel scales do not match the output channels"));
    return EA_OK;
}

ea_status ea_bias_ok(ea_prepare_ctx *c, int32_t idx, uint32_t channels) {
    if (idx < 0) return EA_OK;
    const ea_tensor *b = &c->m->tensors[idx];
    if (!b->is_const) return EA_OP_FAIL(c, EA_MSG("bias must be a constant tensor (it is folded at init)"));
    if (b->type != EA_T_INT32) return ea_op_fail(c->m, c->index, EA_MSG("bias must be int32, got TensorType "), NULL, b->type, 1);
    if (b->count != channels) return EA_OP_FAIL(c, EA_MSG("bias size does not match the output channels"));
    return EA_OK;
}

/* Effective scale = double(input scale) * double(filter scale) / double(output scale), as TFLM computes it. */
ea_status ea_conv_multipliers(ea_model *m, uint32_t i, const ea_tensor *in, const ea_tensor *filter,
                              const ea_tensor *out, uint32_t channels, int32_t *mult, int32_t *shift) {
    for (uint32_t ch = 0; ch < channels; ch++) {
        const uint32_t si = filter->nscales > 1 ? ch : 0;
        const float fs = ea_load_f32(m->data + filter->scales_pos + 4u * si);
        if (!(fs >= 0.0f && fs < 3.4e38f)) return ea_op_fail(m, i, EA_MSG("filter scale is negative or not finite"), NULL, 0, 0);
        int32_t q, s;
        if (ea_quantize_multiplier(in->scale, fs, out->scale, 0, &q, &s) || s > 30)
            return ea_op_fail(m, i, EA_MSG("effective output scale out of range"), NULL, 0, 0);
        if (mult) {
            mult[ch] = q;
            shift[ch] = s;
        }
    }
    return EA_OK;
}

void ea_op_reserve_channels(ea_prepare_ctx *c) {
    const ea_tensor *out = &c->m->tensors[c->op->out];
    const uint32_t n = (uint32_t)out->dims[out->ndim - 1];
    c->op->channels |= EA_CHAN_MULT;
    c->op->chan_offset = c->persistent;
    c->persistent += (8u * n + 15u) & ~15u;
}

void ea_op_reserve_folded_bias(ea_prepare_ctx *c, int channel_last) {
    const ea_tensor *out = &c->m->tensors[c->op->out];
    const uint32_t n = (uint32_t)out->dims[out->ndim - 1];
    if (!(c->op->channels & EA_CHAN_MULT)) c->op->chan_offset = c->persistent; /* else it follows them */
    c->op->channels |= (uint8_t)(EA_CHAN_FOLD | (channel_last ? EA_CHAN_FOLD_LAST : 0));
    c->persistent += (4u * n + 15u) & ~15u;
}

void ea_fold_bias(const ea_model *m, const ea_op *op, int32_t *dst) {
    const ea_tensor *out = &m->tensors[op->out], *f = &m->tensors[op->in[1]];
    const uint32_t n = (uint32_t)out->dims[out->ndim - 1], per = f->count / n;
    const int32_t offset = -m->tensors[op->in[0]].zero_point;
    const uint8_t *bias = op->in[2] >= 0 ? ea_tensor_data(m, op->in[2]) : NULL;
    const int8_t *w = (const int8_t *)ea_cdata(m, f);
    const int last = (op->channels & EA_CHAN_FOLD_LAST) != 0;
    for (uint32_t oc = 0; oc < n; oc++) {
        uint32_t sum = 0; /* modulo 2^32, as the accumulator it folds into */
        for (uint32_t i = 0; i < per; i++) sum += (uint32_t)(int32_t)w[last ? i * n + oc : oc * per + i];
        const int32_t b = bias ? ea_load_i32(bias + 4u * oc) : 0;
        dst[oc] = ea_wrap_add(b, (int32_t)(sum * (uint32_t)offset));
    }
}

void ea_op_request_scratch(ea_prepare_ctx *c, int32_t bytes) {
    c->scratch_bytes = bytes > 0 ? (uint32_t)bytes : 0u;
}

/* ---------------------------------------------------------------- elementwise operators */

ea_status ea_unary_prepare_common(ea_prepare_ctx *c) {
    ea_status st;
    if ((st = ea_need_s8(c, c->op->in[0], EA_MSG("input"))) || (st = ea_need_s8(c, c->op->out, EA_MSG("output")))) return st;
    if (c->m->tensors[c->op->in[0]].count != c->m->tensors[c->op->out].count)
        return EA_OP_FAIL(c, EA_MSG("input and output sizes differ"));
    return EA_OK;
}

void ea_s8_map_request_scratch(ea_prepare_ctx *c) {
    if (c->m->tensors[c->op->out].count >= EA_S8_MAP_TABLE_MIN) ea_op_request_scratch(c, 512);
}

void ea_s8_map(const ea_model *m, const ea_op *op, ea_s8_map_fn f, const void *params) {
    const ea_tensor *out_t = &m->tensors[op->out];
    const uint32_t n = out_t->count;
    const int8_t *in = (const int8_t *)ea_tensor_data(m, op->in[0]);
    int8_t *out = (int8_t *)ea_vdata(m, out_t), *scratch = ea_op_scratch(m, op);
    if (!scratch) {
        f(params, n, in, out);
        return;
    }
    int8_t *values = scratch, *table = scratch + 256;
    for (int32_t v = 0; v < 256; ++v) values[v] = (int8_t)(v - 128);
    f(params, 256, values, table);
    const int8_t *t = table + 128;
    for (uint32_t i = 0; i < n; ++i) out[i] = t[in[i]];
}

ea_status ea_binary_prepare_common(ea_prepare_ctx *c) {
    const ea_op *op = c->op;
    ea_status st;
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("first input"))) || (st = ea_need_s8(c, op->in[1], EA_MSG("second input"))) ||
        (st = ea_need_s8(c, op->out, EA_MSG("output"))))
        return st;
    int32_t da[6], db[6], dout[6];
    ea_dims6_of(&c->m->tensors[op->in[0]], da);
    ea_dims6_of(&c->m->tensors[op->in[1]], db);
    ea_dims6_of(&c->m->tensors[op->out], dout);
    for (int d = 0; d < 6; d++) {
        const int32_t want = da[d] == 1 ? db[d] : da[d];
        if ((da[d] != 1 && db[d] != 1 && da[d] != db[d]) || dout[d] != want)
            return EA_OP_FAIL(c, EA_MSG("input shapes are not broadcastable to the output shape"));
    }
    return EA_OK;
}

void ea_broadcast_binary_s8(ea_binary_row_fn row, const void *params, const int32_t d1[6], const int8_t *in1,
                            const int32_t d2[6], const int8_t *in2, const int32_t dout[6], int8_t *out) {
    int32_t s1[6], s2[6], st1 = 1, st2 = 1;
    for (int d = 5; d >= 0; --d) {
        s1[d] = d1[d] == 1 && dout[d] != 1 ? 0 : st1;
        s2[d] = d2[d] == 1 && dout[d] != 1 ? 0 : st2;
        st1 *= d1[d];
        st2 *= d2[d];
    }
    int32_t o = 0;
    for (int32_t i0 = 0; i0 < dout[0]; ++i0)
        for (int32_t i1 = 0; i1 < dout[1]; ++i1)
            for (int32_t i2 = 0; i2 < dout[2]; ++i2)
                for (int32_t i3 = 0; i3 < dout[3]; ++i3)
                    for (int32_t i4 = 0; i4 < dout[4]; ++i4) {
                        const int32_t b1 = i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3] + i4 * s1[4];
                        const int32_t b2 = i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3] + i4 * s2[4];
                        row(params, dout[5], in1 + b1, s1[5], in2 + b2, s2[5], out + o);
                        o += dout[5];
                    }
}

void ea_binary_invoke_s8(const ea_model *m, const ea_op *op, ea_binary_row_fn row, const void *params) {
    int32_t da[6], db[6], dout[6];
    ea_dims6_of(&m->tensors[op->in[0]], da);
    ea_dims6_of(&m->tensors[op->in[1]], db);
    ea_dims6_of(&m->tensors[op->out], dout);
    ea_broadcast_binary_s8(row, params, da, (const int8_t *)ea_tensor_data(m, op->in[0]), db,
                           (const int8_t *)ea_tensor_data(m, op->in[1]), dout, (int8_t *)ea_vdata(m, &m->tensors[op->out]));
}

int32_t ea_f32_to_i32_x86(float v) {
    if (!(v >= -2147483648.0f && v < 2147483648.0f)) return INT32_MIN;
    return (int32_t)v;
}

ea_status ea_sigmoid_prepare_common(ea_prepare_ctx *c, ea_sigmoid_params *p) {
    ea_status st;
    if ((st = ea_unary_prepare_common(c))) return st;
    const ea_tensor *in = &c->m->tensors[c->op->in[0]];
    /* CalculateArithmeticOpDataLogistic / Tanh's: input scale in Q4.27 as frexp's significand and exponent. */
    ea_real r;
    if (ea_real_ratio(in->scale, 1.0f, 1.0f, 27, &r)) return EA_OP_FAIL(c, EA_MSG("input scale out of range"));
    const int e = ea_real_frexp_exp(&r);
    if (e < 0 || e > 62) return EA_OP_FAIL(c, EA_MSG("input scale out of range"));
    p->in_zp = in->zero_point;
    /* round(q * 2^31) of a float's significand: exact, below 2^31 */
    p->mult = (int32_t)((r.sig + ((uint64_t)1 << 21)) >> 22);
    /* CalculateInputRadius(4, e, 31): floor(15 * 2^27 / 2^e). From e = 31 it is 0 and every input
     * saturates, so the rescaling (whose shift would overflow) is never used. */
    p->radius = e <= 27 ? (int32_t)(15u << (27 - e)) : (e < 31 ? 15 >> (e - 27) : 0);
    p->shift = e > 30 ? 30 : e;
    return EA_OK;
}

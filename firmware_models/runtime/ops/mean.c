/* MEAN int8 over any set of axes (as TFLM's EvalIntegerMean -> QuantizedMeanOrSum): 1/count is folded
 * into the output multiplier and the zero-point-corrected sum is requantized, rounding to nearest, even
 * when input and output quantization are identical (older TFLM truncated in that case; the pinned
 * tflite-micro does not, as the random-model test shows). */
#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

static int floor_log2_u32(uint32_t v) {
    int r = -1;
    while (v) {
        v >>= 1;
        r++;
    }
    return r;
}

EA_KERNEL void ea_mean_s8(const ea_mean_params *p, const int32_t in_dims[6], const int8_t *in, int8_t *out) {
    const uint32_t axes_mask = p->axes_mask;
    const int32_t in_zp = p->in_zp, out_zp = p->out_zp, mult = p->mult, shift = p->shift;
    int32_t stride[6], st = 1, kept[6], red[6];
    int nk = 0, nr = 0;
    int32_t n_out = 1, n_red = 1;
    for (int d = 5; d >= 0; --d) {
        stride[d] = st;
        st *= in_dims[d];
    }
    for (int d = 0; d < 6; ++d) {
        if (axes_mask & (1u << d)) {
            red[nr++] = d;
            n_red *= in_dims[d];
        } else {
            kept[nk++] = d;
            n_out *= in_dims[d];
        }
    }
    /* TFLM: shift = min(floor(log2(count)), 32, 31 + shift); multiplier <<= shift, then / count. */
    int k = floor_log2_u32((uint32_t)n_red);
    if (k > 32) k = 32;
    if (k > 31 + shift) k = 31 + shift;
    const int32_t m = (int32_t)((((int64_t)mult) << k) / n_red);
    const int32_t s = shift - k;
    /* The reduced dims one contiguous run (NHWC's H and W, the usual global average pool): the input is
     * [outer][n_red][inner], summed with a stride and no coordinate arithmetic per element. */
    const uint32_t low = axes_mask & (0u - axes_mask); /* lowest reduced dim's bit */
    if (axes_mask && ((axes_mask + low) & axes_mask) == 0 && n_out > 0) {
        const int32_t inner = stride[31 - __builtin_clz(axes_mask)], outer = n_out / inner;
        for (int32_t a = 0; a < outer; ++a, in += n_red * inner) {
            for (int32_t c = 0; c < inner; ++c) {
                const int8_t *x = in + c;
                int32_t sum = 0, r = n_red;
                for (; r >= 4; r -= 4, x += 4 * inner) sum += x[0] + x[inner] + x[2 * inner] + x[3 * inner];
                for (; r > 0; --r, x += inner) sum += x[0];
                const int32_t shifted = (int32_t)((int64_t)sum - (int64_t)in_zp * n_red);
                const int32_t v = ea_wrap_add(ea_mbqm(shifted, m, s), out_zp);
                *out++ = (int8_t)ea_clamp(v, -128, 127);
            }
        }
        return;
    }
    for (int32_t o = 0; o < n_out; ++o) {
        int32_t base = 0, rem = o;
        for (int i = nk - 1; i >= 0; --i) { /* row-major coordinates of the kept dims */
            const int d = kept[i];
            base += (rem % in_dims[d]) * stride[d];
            rem /= in_dims[d];
        }
        int32_t sum = 0;
        for (int32_t r = 0; r < n_red; ++r) {
            int32_t off = base, rr = r;
            for (int i = nr - 1; i >= 0; --i) {
                const int d = red[i];
                off += (rr % in_dims[d]) * stride[d];
                rr /= in_dims[d];
            }
            sum += in[off];
        }
        const int32_t shifted = (int32_t)((int64_t)sum - (int64_t)in_zp * n_red);
        const int32_t v = ea_wrap_add(ea_mbqm(shifted, m, s), out_zp);
        out[o] = (int8_t)ea_clamp(v, -128, 127);
    }
}

EA_PREPARE(mean) {
    ea_model *m = c->m;
    ea_op *op = c->op;
    ea_status st;

    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input"))) || (st = ea_need_s8(c, op->out, EA_MSG("output")))) return st;
    if (op->in[1] < 0) return EA_OP_FAIL(c, EA_MSG("axis tensor is missing"));
    const ea_tensor *in = &m->tensors[op->in[0]], *ax = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (ax->type != EA_T_INT32 || !ax->is_const) return EA_OP_FAIL(c, EA_MSG("axis must be a constant int32 tensor"));
    if (in->ndim < 1) return EA_OP_FAIL(c, EA_MSG("input must have at least one dimension"));
    unsigned mask = 0;
    const int lead = EA_MAX_DIMS - in->ndim;
    for (uint32_t k = 0; k < ax->count; k++) {
        int32_t a = ea_load_i32(ea_cdata(m, ax) + 4u * k);
        if (a < 0) a += in->ndim;
        if (a < 0 || a >= in->ndim)
            return ea_op_fail(m, c->index, EA_MSG("axis out of range: "), NULL, ea_load_i32(ea_cdata(m, ax) + 4u * k), 1);
        mask |= 1u << (a + lead);
    }
    uint32_t kept = 1;
    for (int d = 0; d < in->ndim; d++)
        if (!(mask & (1u << (d + lead)))) kept *= (uint32_t)in->dims[d];
    if (kept != out->count) return EA_OP_FAIL(c, EA_MSG("output size does not match the reduced input"));
    int32_t mult, shift;
    if (ea_quantize_multiplier(in->scale, 1.0f, out->scale, 0, &mult, &shift) || shift > 30)
        return EA_OP_FAIL(c, EA_MSG("input/output scale ratio out of range"));
    *EA_OP_PARAMS(ea_mean_params, op) = (ea_mean_params){
        .in_zp = in->zero_point, .out_zp = out->zero_point, .mult = mult, .shift = shift, .axes_mask = (uint8_t)mask,
    };
    return EA_OK;
}

EA_INVOKE(mean) {
    int32_t di[6];
    ea_dims6_of(&m->tensors[op->in[0]], di);
    ea_mean_s8(EA_OP_CPARAMS(ea_mean_params, op), di, (const int8_t *)ea_tensor_data(m, op->in[0]),
               (int8_t *)ea_vdata(m, &m->tensors[op->out]));
    return EA_OK;
}

/* STRIDED_SLICE int8 (TFLM's reference_ops::StridedSlice), input rank up to 4 padded to 5 axes: constant
 * begin, end and strides with begin/end/shrink-axis masks (TFLM ignores the ellipsis and new-axis masks
 * and the offset option). Start and stop per axis are resolved at prepare, as StridedSliceStartForAxis /
 * StridedSliceEndForAxis do; the output shape is checked as TFLM's CheckOutputSize does. */
#include <math.h>

#include "ea_ops.h"
#include "ea_quant.h"
#include "ea_msg.h"

enum { BO_STRIDED_SLICE = 32, AXES = 5 }; /* BuiltinOptions_StridedSliceOptions */

typedef struct {
    int16_t start[AXES], stop[AXES], stride[AXES]; /* per padded axis */
} strided_slice_params;

static int32_t clamp_i(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* strided_slice::StartForAxis / StopForAxis (used by TFLM's output size check). */
static int32_t check_start(int32_t start, int32_t stride, int begin_masked, int32_t size) {
    if (begin_masked) start = stride > 0 ? INT32_MIN : INT32_MAX;
    if (start < 0) start = ea_wrap_add(start, size);
    return stride > 0 ? clamp_i(start, 0, size) : clamp_i(start, -1, size - 1);
}

static int32_t check_stop(int32_t stop, int32_t stride, int end_masked, int shrink, int32_t start, int32_t size) {
    if (shrink) return start + 1;
    if (end_masked) stop = stride > 0 ? INT32_MAX : INT32_MIN;
    if (stop < 0) stop = ea_wrap_add(stop, size);
    return stride > 0 ? clamp_i(stop, 0, size) : clamp_i(stop, -1, size - 1);
}

EA_PREPARE(strided_slice) {
    ea_model *m = c->m;
    const ea_op *op = c->op;
    int32_t begin_mask = 0, end_mask = 0, shrink_mask = 0, unused = 0;
    ea_status st;
    c->all_inputs_used = 1;
    if (c->options_type == BO_STRIDED_SLICE &&
        (fb_i32(c->r, &c->options, 0, 0, EA_MSG("StridedSliceOptions.begin_mask"), &begin_mask) ||
         fb_i32(c->r, &c->options, 1, 0, EA_MSG("StridedSliceOptions.end_mask"), &end_mask) ||
         fb_i32(c->r, &c->options, 2, 0, EA_MSG("StridedSliceOptions.ellipsis_mask"), &unused) ||
         fb_i32(c->r, &c->options, 4, 0, EA_MSG("StridedSliceOptions.shrink_axis_mask"), &shrink_mask)))
        return EA_OP_OPTIONS_FAIL(c);
    if (c->inputs.count != 4) return EA_OP_FAIL(c, EA_MSG("needs 4 inputs (input, begin, end, strides)"));
    if ((st = ea_need_s8(c, op->in[0], EA_MSG("input")))) return st;
    if (m->tensors[op->out].type != EA_T_INT8) return EA_OP_FAIL(c, EA_MSG("output must be int8"));
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->ndim > 4) return EA_OP_FAIL(c, EA_MSG("input rank above 4 (TFLM's limit)"));
    const ea_tensor *idx[3];
    for (int k = 0; k < 3; k++) {
        const int32_t ti = ea_prepare_input(c, (uint32_t)k + 1u);
        if (ti < 0) return EA_OP_FAIL(c, EA_MSG("begin, end or strides tensor is missing"));
        idx[k] = &m->tensors[ti];
        if (!idx[k]->is_const || idx[k]->type != EA_T_INT32 || idx[k]->count != in->ndim)
            return EA_OP_FAIL(c, EA_MSG("begin, end and strides must be constant int32 vectors of the input's rank"));
    }
    /* StridedSlicePadIndices to 5 axes: leading axes take start 0, stop 1, stride 1, both masks set. */
    const int pad = AXES - in->ndim;
    strided_slice_params p;
    int32_t dims[AXES];
    uint32_t total = 1;
    int out_d = 0;
    for (int a = 0; a < AXES; a++) {
        const int k = a - pad;
        const int32_t size = k < 0 ? 1 : in->dims[k];
        dims[a] = size;
        if (size > INT16_MAX) return EA_OP_FAIL(c, EA_MSG("dimensions above 32767 are not supported"));
        int32_t b = 0, e = 1, s = 1;
        int bm = 1, em = 1, sh = 0;
        if (k >= 0) {
            b = ea_load_i32(ea_cdata(m, idx[0]) + 4u * (uint32_t)k);
            e = ea_load_i32(ea_cdata(m, idx[1]) + 4u * (uint32_t)k);
            s = ea_load_i32(ea_cdata(m, idx[2]) + 4u * (uint32_t)k);
            bm = (begin_mask >> k) & 1;
            em = (end_mask >> k) & 1;
            sh = (shrink_mask >> k) & 1;
        }
        if (s == 0) return EA_OP_FAIL(c, EA_MSG("stride value has to be non-zero"));
        if (s > INT16_MAX || s < -INT16_MAX) return EA_OP_FAIL(c, EA_MSG("strides above 32767 are not supported"));
        /* CheckOutputSize */
        if (k >= 0) {
            const int32_t cb = check_start(b, s, bm, size);
            const int32_t ce = check_stop(e, s, em, sh, cb, size);
            int32_t dim = (int32_t)ceilf((float)(ce - cb) / (float)s);
            if (dim < 0) dim = 0;
            if (!sh) {
                if (out_d >= out->ndim || out->dims[out_d] != dim) return EA_OP_FAIL(c, EA_MSG("output shape does not match the slice"));
                out_d++;
            }
        }
        /* StridedSliceStartForAxis / StridedSliceEndForAxis */
        int32_t start = b < 0 ? ea_wrap_add(b, size) : b;
        start = s > 0 ? clamp_i(start, 0, size) : clamp_i(start, -1, size - 1);
        if (bm) start = s > 0 ? 0 : size - 1;
        int32_t stop;
        if (sh) {
            stop = start >= size ? start : start + 1;
        } else {
            stop = e < 0 ? ea_wrap_add(e, size) : e;
            stop = s > 0 ? clamp_i(stop, 0, size) : clamp_i(stop, -1, size - 1);
            if (em) stop = s > 0 ? size : -1;
        }
        p.start[a] = (int16_t)start;
        p.stop[a] = (int16_t)stop;
        p.stride[a] = (int16_t)s;
        /* Iterations of the kernel's loop on this axis: the writes must fill the output exactly, in bounds. */
        int32_t n = 0;
        for (int32_t i = start; s > 0 ? i < stop : i > stop; i += s) {
            if (i < 0 || i >= size) return EA_OP_FAIL(c, EA_MSG("slice reads outside the input"));
            n++;
        }
        total *= (uint32_t)n;
    }
    if (out_d != out->ndim) return EA_OP_FAIL(c, EA_MSG("output rank does not match the slice"));
    if (total != out->count) return EA_OP_FAIL(c, EA_MSG("output size does not match the slice"));
    (void)dims;
    *EA_OP_PARAMS(strided_slice_params, c->op) = p;
    return EA_OK;
}

EA_INVOKE(strided_slice) {
    const strided_slice_params *p = EA_OP_CPARAMS(strided_slice_params, op);
    const ea_tensor *in_t = &m->tensors[op->in[0]];
    int32_t d[6];
    ea_dims6_of(in_t, d); /* rank <= 4: d[1..5] are the 5 padded axes */
    const int32_t *shape = d + 1;
    const int8_t *in = (const int8_t *)ea_tensor_data(m, op->in[0]);
    int8_t *out = (int8_t *)ea_vdata(m, &m->tensors[op->out]);
    int32_t o = 0;
#define EA_SS_LOOP(a, i) for (int32_t i = p->start[a]; p->stride[a] > 0 ? i < p->stop[a] : i > p->stop[a]; i += p->stride[a])
    EA_SS_LOOP(0, i0) EA_SS_LOOP(1, i1) EA_SS_LOOP(2, i2) EA_SS_LOOP(3, i3) EA_SS_LOOP(4, i4)
        out[o++] = in[(((i0 * shape[1] + i1) * shape[2] + i2) * shape[3] + i3) * shape[4] + i4];
#undef EA_SS_LOOP
    return EA_OK;
}

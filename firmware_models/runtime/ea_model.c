/* Model loading: flatbuffer parsing (TFLite schema v3), operator preparation (quantization parameters
 * derived exactly as TFLM's Prepare functions do), arena planning and the invoke loop. */
#include <string.h>

#include "ea_flatbuffer.h"
#include "ea_kernels.h"
#include "ea_kernels_copy.h"
#include "ea_opnames.h"
#include "ea_plan.h"
#include "ea_quant.h"
#include "ea_runtime.h"
#include "ea_strbuf.h"

/* TFLite TensorType values. */
enum { T_FLOAT32 = 0, T_INT32 = 2, T_UINT8 = 3, T_INT64 = 4, T_BOOL = 6, T_INT16 = 7, T_INT8 = 9 };

/* TFLite BuiltinOperator values we run. */
enum {
    OP_ADD = 0, OP_AVERAGE_POOL_2D = 1, OP_CONV_2D = 3, OP_DEPTHWISE_CONV_2D = 4, OP_DEQUANTIZE = 6,
    OP_FULLY_CONNECTED = 9, OP_MAX_POOL_2D = 17, OP_RESHAPE = 22, OP_SOFTMAX = 25, OP_PAD = 34, OP_MEAN = 40,
    OP_SQUEEZE = 43, OP_PADV2 = 60, OP_EXPAND_DIMS = 70, OP_QUANTIZE = 114
};

/* BuiltinOptions union types. */
enum { BO_CONV2D = 1, BO_DEPTHWISE = 2, BO_POOL2D = 5, BO_FC = 8, BO_SOFTMAX = 9, BO_ADD = 11, BO_REDUCER = 27 };

enum {
    K_CONV = 1, K_DWCONV, K_FC, K_MAXPOOL, K_AVGPOOL, K_ADD, K_MEAN, K_PAD, K_COPY, K_SOFTMAX, K_QUANTIZE_F32,
    K_REQUANTIZE, K_DEQUANTIZE
};

/* Largest tensor we accept, in elements: keeps every index and sum in int32 range. */
#define EA_MAX_ELEMS (1 << 24)
/* Largest stride, dilation, filter or padding extent accepted (keeps window arithmetic in int32). */
#define EA_MAX_WINDOW (1 << 16)

typedef struct {
    ea_model *m;
    fb_reader r;
    fb_vector buffers;
    int32_t opcodes[EA_MAX_OPCODES];
    uint32_t n_opcodes;
    fb_table op_tables[EA_MAX_OPS];
    uint8_t op_opt_type[EA_MAX_OPS];
    uint32_t persistent;
} loader;

/* ---------------------------------------------------------------- errors */

static ea_status fail(ea_model *m, const char *a, const char *b) {
    ea_strbuf t;
    ea_sb_init(&t, m->error, EA_ERROR_LEN);
    ea_sb_raw(&t, a);
    ea_sb_raw(&t, b);
    return EA_ERR_MODEL;
}

/* Appends " (<label> <index>)" to the message a failed flatbuffer read left. */
static ea_status with_index(ea_model *m, const char *label, int64_t index) {
    ea_strbuf t;
    ea_sb_resume(&t, m->error, EA_ERROR_LEN);
    ea_sb_raw(&t, " (");
    ea_sb_raw(&t, label);
    ea_sb_raw(&t, " ");
    ea_sb_i64(&t, index);
    ea_sb_raw(&t, ")");
    return EA_ERR_MODEL;
}

/* "<OPNAME> at op <i>: <msg><detail>" */
static ea_status op_fail(ea_model *m, uint32_t i, const char *msg, const char *detail, int64_t number, int with_number) {
    ea_strbuf t;
    ea_sb_init(&t, m->error, EA_ERROR_LEN);
    const char *name = ea_builtin_name(m->ops[i].builtin);
    ea_sb_raw(&t, name[0] ? name : "operator");
    ea_sb_raw(&t, " at op ");
    ea_sb_i64(&t, i);
    ea_sb_raw(&t, ": ");
    ea_sb_raw(&t, msg);
    if (detail) ea_sb_raw(&t, detail);
    if (with_number) ea_sb_i64(&t, number);
    return EA_ERR_MODEL;
}
#define OP_FAIL(msg) op_fail(m, i, (msg), NULL, 0, 0)

/* ---------------------------------------------------------------- parsing */

static uint32_t type_size(uint8_t type) {
    switch (type) {
        case T_FLOAT32: case T_INT32: return 4;
        case T_INT64: return 8;
        case T_INT16: return 2;
        case T_INT8: case T_UINT8: case T_BOOL: return 1;
        default: return 0;
    }
}

static ea_status parse_tensor(loader *L, const fb_table *tt, uint32_t index) {
    ea_model *m = L->m;
    fb_reader *r = &L->r;
    ea_tensor *t = &m->tensors[index];
    fb_vector shape, scales, zps;
    fb_table q, buf;
    int has_q = 0;
    uint32_t buf_index = 0;

    memset(t, 0, sizeof *t);
    t->first_op = -1;
    t->last_op = -1;
    if (fb_vector_field(r, tt, 0, 4, "Tensor.shape", &shape) || fb_u8(r, tt, 1, 0, "Tensor.type", &t->type) ||
        fb_u32(r, tt, 2, 0, "Tensor.buffer", &buf_index) ||
        fb_table_field(r, tt, 4, "Tensor.quantization", &q, &has_q))
        return with_index(m, "tensor", index);
    if (shape.count > EA_MAX_DIMS) {
        fail(m, "Tensor.shape: more than 6 dimensions", "");
        return with_index(m, "tensor", index);
    }
    t->ndim = (uint8_t)shape.count;
    uint64_t count = 1;
    for (uint32_t d = 0; d < shape.count; d++) {
        const int32_t v = fb_vec_i32(r, &shape, d);
        if (v < 1) {
            fail(m, "Tensor.shape: dimension is not positive (dynamic or empty shapes are not supported)", "");
            return with_index(m, "tensor", index);
        }
        t->dims[d] = v;
        count *= (uint64_t)v;
        if (count > EA_MAX_ELEMS) {
            fail(m, "Tensor.shape: tensor larger than 2^24 elements", "");
            return with_index(m, "tensor", index);
        }
    }
    t->count = (uint32_t)count;
    t->bytes = t->count * type_size(t->type);

    if (has_q) {
        int32_t qdim = 0;
        if (fb_vector_field(r, &q, 2, 4, "QuantizationParameters.scale", &scales) ||
            fb_vector_field(r, &q, 3, 8, "QuantizationParameters.zero_point", &zps) ||
            fb_i32(r, &q, 6, 0, "QuantizationParameters.quantized_dimension", &qdim))
            return with_index(m, "tensor", index);
        if (scales.count > 0) {
            t->scale = fb_vec_f32(r, &scales, 0);
            t->nscales = scales.count;
            t->scales_pos = scales.pos;
            t->qdim = qdim;
        }
        if (zps.count > 0) {
            const int64_t zp = fb_vec_i64(r, &zps, 0);
            if (zp < INT32_MIN || zp > INT32_MAX) {
                fail(m, "QuantizationParameters.zero_point: out of int32 range", "");
                return with_index(m, "tensor", index);
            }
            t->zero_point = (int32_t)zp;
        }
    }

    if (buf_index >= L->buffers.count) {
        if (buf_index == 0 && L->buffers.count == 0) return EA_OK;
        fail(m, "Tensor.buffer: index past Model.buffers", "");
        return with_index(m, "tensor", index);
    }
    if (fb_vector_table(r, &L->buffers, buf_index, "Model.buffers", &buf)) return with_index(m, "buffer", buf_index);
    fb_vector data;
    uint64_t ext_offset = 0;
    if (fb_vector_field(r, &buf, 0, 1, "Buffer.data", &data) || fb_u64(r, &buf, 1, 0, "Buffer.offset", &ext_offset))
        return with_index(m, "buffer", buf_index);
    if (ext_offset > 1) {
        fail(m, "Buffer.offset: data stored outside the flatbuffer is not supported", "");
        return with_index(m, "buffer", buf_index);
    }
    if (data.count > 0) {
        if (type_size(t->type) == 0 || data.count != t->bytes) {
            fail(m, "Buffer.data: size does not match the tensor's shape and type", "");
            return with_index(m, "tensor", index);
        }
        t->is_const = 1;
        t->cdata = r->buf + data.pos;
    }
    return EA_OK;
}

static ea_status parse_operator(loader *L, const fb_table *ot, uint32_t i) {
    ea_model *m = L->m;
    fb_reader *r = &L->r;
    ea_op *op = &m->ops[i];
    uint32_t opcode_index = 0;
    fb_vector ins, outs;
    int has_opts = 0;

    memset(op, 0, sizeof *op);
    op->in[0] = op->in[1] = op->in[2] = -1;
    op->out = -1;
    if (fb_u32(r, ot, 0, 0, "Operator.opcode_index", &opcode_index) ||
        fb_vector_field(r, ot, 1, 4, "Operator.inputs", &ins) || fb_vector_field(r, ot, 2, 4, "Operator.outputs", &outs) ||
        fb_u8(r, ot, 3, 0, "Operator.builtin_options_type", &L->op_opt_type[i]) ||
        fb_table_field(r, ot, 4, "Operator.builtin_options", &L->op_tables[i], &has_opts))
        return with_index(m, "op", i);
    if (!has_opts) L->op_opt_type[i] = 0;
    if (opcode_index >= L->n_opcodes) {
        fail(m, "Operator.opcode_index: past Model.operator_codes", "");
        return with_index(m, "op", i);
    }
    const int32_t code = L->opcodes[opcode_index];
    switch (code) {
        case OP_ADD: case OP_AVERAGE_POOL_2D: case OP_CONV_2D: case OP_DEPTHWISE_CONV_2D: case OP_DEQUANTIZE:
        case OP_FULLY_CONNECTED: case OP_MAX_POOL_2D: case OP_RESHAPE: case OP_SOFTMAX: case OP_PAD: case OP_MEAN:
        case OP_SQUEEZE: case OP_PADV2: case OP_EXPAND_DIMS: case OP_QUANTIZE:
            break;
        default: {
            ea_strbuf t;
            ea_sb_init(&t, m->error, EA_ERROR_LEN);
            ea_sb_raw(&t, "unsupported operator ");
            const char *name = ea_builtin_name(code);
            if (name[0]) {
                ea_sb_raw(&t, name);
                ea_sb_raw(&t, " ");
            }
            ea_sb_raw(&t, "(builtin ");
            ea_sb_i64(&t, code);
            ea_sb_raw(&t, ") at op ");
            ea_sb_i64(&t, i);
            return EA_ERR_MODEL;
        }
    }
    op->builtin = (uint8_t)code;
    if (ins.count > 3) return OP_FAIL("more than 3 inputs");
    if (outs.count != 1) return OP_FAIL("operators must have exactly one output");
    for (uint32_t k = 0; k < ins.count; k++) {
        const int32_t ti = fb_vec_i32(r, &ins, k);
        if (ti < -1 || ti >= (int32_t)m->n_tensors) return op_fail(m, i, "input tensor index out of range: ", NULL, ti, 1);
        op->in[k] = (int16_t)ti;
    }
    const int32_t to = fb_vec_i32(r, &outs, 0);
    if (to < 0 || to >= (int32_t)m->n_tensors) return op_fail(m, i, "output tensor index out of range: ", NULL, to, 1);
    op->out = (int16_t)to;
    return EA_OK;
}

/* ---------------------------------------------------------------- preparation helpers */

static const uint8_t *tensor_data(const ea_model *m, int32_t idx) {
    const ea_tensor *t = &m->tensors[idx];
    return t->is_const ? t->cdata : t->vdata;
}

static int finite_pos(float f) { return f > 0.0f && f < 3.4e38f; }

/* An int8 activation tensor with per-tensor quantization. */
static ea_status need_s8(ea_model *m, uint32_t i, int32_t idx, const char *role) {
    if (idx < 0) return op_fail(m, i, role, " tensor is missing", 0, 0);
    const ea_tensor *t = &m->tensors[idx];
    if (t->type != T_INT8) return op_fail(m, i, role, " tensor must be int8, got TensorType ", t->type, 1);
    if (t->nscales < 1 || !finite_pos(t->scale)) return op_fail(m, i, role, " tensor has no valid quantization scale", 0, 0);
    if (t->zero_point < -128 || t->zero_point > 127) return op_fail(m, i, role, " zero point out of int8 range: ", t->zero_point, 1);
    return EA_OK;
}

static void dims4(const ea_tensor *t, ea_dims4 *d) {
    d->n = t->dims[0];
    d->h = t->dims[1];
    d->w = t->dims[2];
    d->c = t->dims[3];
}

/* Shape extended to 6 dims with leading 1s. */
static void dims6(const ea_tensor *t, int32_t out[6]) {
    const int lead = EA_MAX_DIMS - t->ndim;
    for (int d = 0; d < EA_MAX_DIMS; d++) out[d] = d < lead ? 1 : t->dims[d - lead];
}

/* TFLM ComputeOutSize + ComputePaddingWithOffset for one spatial dimension. */
static int window(int32_t padding, int32_t in, int32_t filter, int32_t stride, int32_t dilation, int32_t *out,
                  int32_t *pad) {
    if (stride < 1 || dilation < 1 || filter < 1 || stride > EA_MAX_WINDOW || dilation > EA_MAX_WINDOW ||
        filter > EA_MAX_WINDOW)
        return -1;
    const int64_t eff = (int64_t)(filter - 1) * dilation + 1;
    int64_t o;
    if (padding == 0) o = ((int64_t)in + stride - 1) / stride;          /* SAME */
    else if (padding == 1) o = ((int64_t)in + stride - eff) / stride;   /* VALID */
    else return -1;
    if (o < 1) return -1;
    int64_t total = (o - 1) * stride + eff - in;
    if (total < 0) total = 0;
    if (total / 2 > EA_MAX_WINDOW * (int64_t)EA_MAX_WINDOW) return -1;
    *out = (int32_t)o;
    *pad = (int32_t)(total / 2);
    return 0;
}

/* Reserves per-channel multiplier/shift arrays in the arena's persistent part. */
static void reserve_channels(loader *L, ea_op *op, uint32_t n) {
    op->nchan = n;
    op->chan_offset = L->persistent;
    L->persistent += (8u * n + 15u) & ~15u;
}

/* Per-channel (or broadcast per-tensor) multipliers of a convolution, as PopulateConvolutionQuantizationParams:
 * effective scale = double(input scale) * double(filter scale) / double(output scale). */
static ea_status conv_multipliers(ea_model *m, uint32_t i, const ea_tensor *in, const ea_tensor *filter,
                                  const ea_tensor *out, uint32_t channels, int32_t *mult, int32_t *shift) {
    for (uint32_t c = 0; c < channels; c++) {
        const uint32_t si = filter->nscales > 1 ? c : 0;
        const float fs = ea_load_f32(m->data + filter->scales_pos + 4u * si);
        if (!(fs >= 0.0f && fs < 3.4e38f)) return OP_FAIL("filter scale is negative or not finite");
        const double eff = (double)in->scale * (double)fs / (double)out->scale;
        int32_t q, s;
        if (ea_quantize_multiplier(eff, &q, &s) || s > 30) return OP_FAIL("effective output scale out of range");
        if (mult) {
            mult[c] = q;
            shift[c] = s;
        }
    }
    return EA_OK;
}

static ea_status filter_scales_ok(ea_model *m, uint32_t i, const ea_tensor *filter, uint32_t channels, int32_t qdim) {
    if (filter->nscales == 0) return OP_FAIL("filter has no quantization scale");
    if (filter->nscales != 1 && (filter->nscales != channels || filter->qdim != qdim))
        return OP_FAIL("filter per-channel scales do not match the output channels");
    return EA_OK;
}

static ea_status bias_ok(ea_model *m, uint32_t i, int32_t idx, uint32_t channels) {
    if (idx < 0) return EA_OK;
    const ea_tensor *b = &m->tensors[idx];
    if (b->type != T_INT32) return op_fail(m, i, "bias must be int32, got TensorType ", NULL, b->type, 1);
    if (b->count != channels) return OP_FAIL("bias size does not match the output channels");
    return EA_OK;
}

static ea_status activation(ea_model *m, uint32_t i, int act, const ea_tensor *out) {
    ea_op *op = &m->ops[i];
    if (act < 0 || act > 3) return op_fail(m, i, "unsupported fused activation ", NULL, act, 1);
    if (ea_activation_range_s8(act, out->scale, out->zero_point, &op->act_min, &op->act_max))
        return OP_FAIL("activation range overflows");
    return EA_OK;
}

/* ---------------------------------------------------------------- operator preparation */

static ea_status prepare_conv(loader *L, uint32_t i, int depthwise) {
    ea_model *m = L->m;
    fb_reader *r = &L->r;
    ea_op *op = &m->ops[i];
    const fb_table *o = &L->op_tables[i];
    int8_t padding = 0, act = 0;
    int32_t sw = 0, sh = 0, dw = 1, dh = 1, dm = 1;
    ea_status st;

    if (L->op_opt_type[i] != (depthwise ? BO_DEPTHWISE : BO_CONV2D)) return OP_FAIL("missing builtin options");
    if (depthwise) {
        if (fb_i8(r, o, 0, 0, "DepthwiseConv2DOptions.padding", &padding) ||
            fb_i32(r, o, 1, 0, "DepthwiseConv2DOptions.stride_w", &sw) ||
            fb_i32(r, o, 2, 0, "DepthwiseConv2DOptions.stride_h", &sh) ||
            fb_i32(r, o, 3, 0, "DepthwiseConv2DOptions.depth_multiplier", &dm) ||
            fb_i8(r, o, 4, 0, "DepthwiseConv2DOptions.fused_activation_function", &act) ||
            fb_i32(r, o, 5, 1, "DepthwiseConv2DOptions.dilation_w_factor", &dw) ||
            fb_i32(r, o, 6, 1, "DepthwiseConv2DOptions.dilation_h_factor", &dh))
            return with_index(m, "op", i);
    } else {
        if (fb_i8(r, o, 0, 0, "Conv2DOptions.padding", &padding) || fb_i32(r, o, 1, 0, "Conv2DOptions.stride_w", &sw) ||
            fb_i32(r, o, 2, 0, "Conv2DOptions.stride_h", &sh) ||
            fb_i8(r, o, 3, 0, "Conv2DOptions.fused_activation_function", &act) ||
            fb_i32(r, o, 4, 1, "Conv2DOptions.dilation_w_factor", &dw) ||
            fb_i32(r, o, 5, 1, "Conv2DOptions.dilation_h_factor", &dh))
            return with_index(m, "op", i);
    }
    if ((st = need_s8(m, i, op->in[0], "input")) || (st = need_s8(m, i, op->out, "output"))) return st;
    if (op->in[1] < 0) return OP_FAIL("filter tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (f->type != T_INT8) return op_fail(m, i, "filter must be int8, got TensorType ", NULL, f->type, 1);
    if (in->ndim != 4 || f->ndim != 4 || out->ndim != 4) return OP_FAIL("input, filter and output must be 4-D");
    const int32_t channels = out->dims[3];
    if (out->dims[0] != in->dims[0]) return OP_FAIL("batch size of input and output differ");
    if (depthwise) {
        if (f->dims[0] != 1 || f->dims[3] != channels) return OP_FAIL("filter shape does not match the output");
        if (dm < 1 || (int64_t)in->dims[3] * dm != channels)
            return OP_FAIL("output channels are not input channels times depth_multiplier");
    } else {
        if (f->dims[0] != channels) return OP_FAIL("filter count does not match the output channels");
        if (in->dims[3] % f->dims[3] != 0) return OP_FAIL("filter depth does not divide the input depth");
        if (channels % (in->dims[3] / f->dims[3]) != 0) return OP_FAIL("output channels not divisible by groups");
    }
    if ((st = filter_scales_ok(m, i, f, (uint32_t)channels, depthwise ? 3 : 0))) return st;
    if ((st = bias_ok(m, i, op->in[2], (uint32_t)channels))) return st;
    int32_t oh, ow;
    if (window(padding, in->dims[1], f->dims[1], sh, dh, &oh, &op->p.conv.pad_h) ||
        window(padding, in->dims[2], f->dims[2], sw, dw, &ow, &op->p.conv.pad_w))
        return OP_FAIL("invalid padding, stride, dilation or filter size");
    if (oh != out->dims[1] || ow != out->dims[2]) return OP_FAIL("output size does not match the window arithmetic");
    op->p.conv.stride_w = sw;
    op->p.conv.stride_h = sh;
    op->p.conv.dil_w = dw;
    op->p.conv.dil_h = dh;
    op->p.conv.depth_mult = dm;
    if ((st = conv_multipliers(m, i, in, f, out, (uint32_t)channels, NULL, NULL))) return st;
    if ((st = activation(m, i, act, out))) return st;
    reserve_channels(L, op, (uint32_t)channels);
    op->kind = depthwise ? K_DWCONV : K_CONV;
    return EA_OK;
}

static ea_status prepare_fc(loader *L, uint32_t i) {
    ea_model *m = L->m;
    fb_reader *r = &L->r;
    ea_op *op = &m->ops[i];
    int8_t act = 0, weights_format = 0;
    ea_status st;

    if (L->op_opt_type[i] == BO_FC) {
        const fb_table *o = &L->op_tables[i];
        if (fb_i8(r, o, 0, 0, "FullyConnectedOptions.fused_activation_function", &act) ||
            fb_i8(r, o, 1, 0, "FullyConnectedOptions.weights_format", &weights_format))
            return with_index(m, "op", i);
    }
    if (weights_format != 0) return OP_FAIL("only the DEFAULT weights format is supported");
    if ((st = need_s8(m, i, op->in[0], "input")) || (st = need_s8(m, i, op->out, "output"))) return st;
    if (op->in[1] < 0) return OP_FAIL("filter tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *f = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (f->type != T_INT8) return op_fail(m, i, "filter must be int8, got TensorType ", NULL, f->type, 1);
    if (f->ndim != 2) return OP_FAIL("filter must be 2-D");
    const int32_t units = f->dims[0], accum = f->dims[1];
    if (out->ndim < 1 || out->dims[out->ndim - 1] != units) return OP_FAIL("output depth does not match the filter");
    const uint32_t batches = out->count / (uint32_t)units;
    if ((uint64_t)batches * (uint32_t)accum != in->count) return OP_FAIL("input size is not batches x filter depth");
    if ((st = filter_scales_ok(m, i, f, (uint32_t)units, 0))) return st;
    if ((st = bias_ok(m, i, op->in[2], (uint32_t)units))) return st;
    if ((st = activation(m, i, act, out))) return st;
    if (f->nscales > 1) {
        op->p.fc.per_channel = 1;
        if ((st = conv_multipliers(m, i, in, f, out, (uint32_t)units, NULL, NULL))) return st;
        reserve_channels(L, op, (uint32_t)units);
    } else {
        /* GetQuantizedConvolutionMultipler: the scale product is taken in float, then divided in double. */
        if (!(f->scale >= 0.0f && f->scale < 3.4e38f)) return OP_FAIL("filter scale is negative or not finite");
        if (op->in[2] >= 0) {
            const ea_tensor *b = &m->tensors[op->in[2]];
            const double product = (double)in->scale * (double)f->scale;
            const double diff = product > (double)b->scale ? product - (double)b->scale : (double)b->scale - product;
            if (!(diff / (double)out->scale <= 0.02)) return OP_FAIL("bias scale is not input scale x filter scale");
        }
        const double real = (double)(in->scale * f->scale) / (double)out->scale;
        if (ea_quantize_multiplier(real, &op->p.fc.mult, &op->p.fc.shift) || op->p.fc.shift > 30)
            return OP_FAIL("effective output scale out of range");
        if (f->zero_point < -128 || f->zero_point > 127) return OP_FAIL("filter zero point out of int8 range");
    }
    op->kind = K_FC;
    return EA_OK;
}

static ea_status prepare_pool(loader *L, uint32_t i, int is_max) {
    ea_model *m = L->m;
    fb_reader *r = &L->r;
    ea_op *op = &m->ops[i];
    const fb_table *o = &L->op_tables[i];
    int8_t padding = 0, act = 0;
    int32_t sw = 0, sh = 0, fw = 0, fh = 0;
    ea_status st;

    if (L->op_opt_type[i] != BO_POOL2D) return OP_FAIL("missing builtin options");
    if (fb_i8(r, o, 0, 0, "Pool2DOptions.padding", &padding) || fb_i32(r, o, 1, 0, "Pool2DOptions.stride_w", &sw) ||
        fb_i32(r, o, 2, 0, "Pool2DOptions.stride_h", &sh) || fb_i32(r, o, 3, 0, "Pool2DOptions.filter_width", &fw) ||
        fb_i32(r, o, 4, 0, "Pool2DOptions.filter_height", &fh) ||
        fb_i8(r, o, 5, 0, "Pool2DOptions.fused_activation_function", &act))
        return with_index(m, "op", i);
    if ((st = need_s8(m, i, op->in[0], "input")) || (st = need_s8(m, i, op->out, "output"))) return st;
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->ndim != 4 || out->ndim != 4) return OP_FAIL("input and output must be 4-D");
    if (in->dims[0] != out->dims[0] || in->dims[3] != out->dims[3]) return OP_FAIL("input and output shapes differ");
    int32_t oh, ow;
    if (window(padding, in->dims[1], fh, sh, 1, &oh, &op->p.pool.pad_h) ||
        window(padding, in->dims[2], fw, sw, 1, &ow, &op->p.pool.pad_w))
        return OP_FAIL("invalid padding, stride or filter size");
    if (oh != out->dims[1] || ow != out->dims[2]) return OP_FAIL("output size does not match the window arithmetic");
    /* TFLM's PoolingPrepare: input and output quantization must agree. */
    const double sd = (double)in->scale - (double)out->scale;
    if (!(sd <= 1.0e-6 && sd >= -1.0e-6) || in->zero_point != out->zero_point)
        return OP_FAIL("input and output quantization differ");
    op->p.pool.stride_w = sw;
    op->p.pool.stride_h = sh;
    op->p.pool.filter_w = fw;
    op->p.pool.filter_h = fh;
    if ((st = activation(m, i, act, out))) return st;
    op->kind = is_max ? K_MAXPOOL : K_AVGPOOL;
    return EA_OK;
}

static ea_status prepare_add(loader *L, uint32_t i) {
    ea_model *m = L->m;
    ea_op *op = &m->ops[i];
    int8_t act = 0;
    ea_status st;

    if (L->op_opt_type[i] == BO_ADD &&
        fb_i8(&L->r, &L->op_tables[i], 0, 0, "AddOptions.fused_activation_function", &act))
        return with_index(m, "op", i);
    if ((st = need_s8(m, i, op->in[0], "first input")) || (st = need_s8(m, i, op->in[1], "second input")) ||
        (st = need_s8(m, i, op->out, "output")))
        return st;
    const ea_tensor *a = &m->tensors[op->in[0]], *b = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    int32_t da[6], db[6], dout[6];
    dims6(a, da);
    dims6(b, db);
    dims6(out, dout);
    for (int d = 0; d < 6; d++) {
        const int32_t want = da[d] == 1 ? db[d] : da[d];
        if ((da[d] != 1 && db[d] != 1 && da[d] != db[d]) || dout[d] != want)
            return OP_FAIL("input shapes are not broadcastable to the output shape");
    }
    /* CalculateOpDataAdd (int8): left_shift 20, inputs rescaled to twice the larger input scale. */
    const double twice_max = 2.0 * (double)(a->scale > b->scale ? a->scale : b->scale);
    const double r1 = (double)a->scale / twice_max, r2 = (double)b->scale / twice_max;
    const double ro = twice_max / ((double)(1 << 20) * (double)out->scale);
    if (!(ro < 1.0)) return OP_FAIL("output scale too small for the input scales");
    if (ea_quantize_multiplier(r1, &op->p.add.in1_mult, &op->p.add.in1_shift) ||
        ea_quantize_multiplier(r2, &op->p.add.in2_mult, &op->p.add.in2_shift) ||
        ea_quantize_multiplier(ro, &op->p.add.out_mult, &op->p.add.out_shift))
        return OP_FAIL("invalid scales");
    if ((st = activation(m, i, act, out))) return st;
    op->kind = K_ADD;
    return EA_OK;
}

static ea_status prepare_mean(loader *L, uint32_t i) {
    ea_model *m = L->m;
    ea_op *op = &m->ops[i];
    ea_status st;

    if ((st = need_s8(m, i, op->in[0], "input")) || (st = need_s8(m, i, op->out, "output"))) return st;
    if (op->in[1] < 0) return OP_FAIL("axis tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *ax = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (ax->type != T_INT32 || !ax->is_const) return OP_FAIL("axis must be a constant int32 tensor");
    if (in->ndim < 1) return OP_FAIL("input must have at least one dimension");
    unsigned mask = 0;
    const int lead = EA_MAX_DIMS - in->ndim;
    for (uint32_t k = 0; k < ax->count; k++) {
        int32_t a = ea_load_i32(ax->cdata + 4u * k);
        if (a < 0) a += in->ndim;
        if (a < 0 || a >= in->ndim) return op_fail(m, i, "axis out of range: ", NULL, ea_load_i32(ax->cdata + 4u * k), 1);
        mask |= 1u << (a + lead);
    }
    uint32_t kept = 1;
    for (int d = 0; d < in->ndim; d++)
        if (!(mask & (1u << (d + lead)))) kept *= (uint32_t)in->dims[d];
    if (kept != out->count) return OP_FAIL("output size does not match the reduced input");
    op->p.mean.axes_mask = (uint8_t)mask;
    if (ea_quantize_multiplier((double)in->scale / (double)out->scale, &op->p.mean.mult, &op->p.mean.shift) ||
        op->p.mean.shift > 30)
        return OP_FAIL("input/output scale ratio out of range");
    op->kind = K_MEAN;
    return EA_OK;
}

static ea_status prepare_pad(loader *L, uint32_t i, int v2) {
    ea_model *m = L->m;
    ea_op *op = &m->ops[i];
    ea_status st;

    if ((st = need_s8(m, i, op->in[0], "input")) || (st = need_s8(m, i, op->out, "output"))) return st;
    if (op->in[1] < 0) return OP_FAIL("paddings tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *pt = &m->tensors[op->in[1]], *out = &m->tensors[op->out];
    if (!pt->is_const || (pt->type != T_INT32 && pt->type != T_INT64)) return OP_FAIL("paddings must be a constant int32/int64 tensor");
    if (pt->count != 2u * in->ndim || out->ndim != in->ndim) return OP_FAIL("paddings shape does not match the input rank");
    const int lead = EA_MAX_DIMS - in->ndim;
    for (int d = 0; d < EA_MAX_DIMS; d++) op->p.pad.before[d] = op->p.pad.after[d] = 0;
    for (int d = 0; d < in->ndim; d++) {
        int64_t b, a;
        if (pt->type == T_INT32) {
            b = ea_load_i32(pt->cdata + 8u * d);
            a = ea_load_i32(pt->cdata + 8u * d + 4);
        } else {
            b = (int64_t)((uint64_t)(uint32_t)ea_load_i32(pt->cdata + 16u * d) |
                          ((uint64_t)(uint32_t)ea_load_i32(pt->cdata + 16u * d + 4) << 32));
            a = (int64_t)((uint64_t)(uint32_t)ea_load_i32(pt->cdata + 16u * d + 8) |
                          ((uint64_t)(uint32_t)ea_load_i32(pt->cdata + 16u * d + 12) << 32));
        }
        if (b < 0 || a < 0 || b > EA_MAX_ELEMS || a > EA_MAX_ELEMS) return OP_FAIL("paddings must be non-negative");
        if (b > INT16_MAX || a > INT16_MAX) return OP_FAIL("paddings larger than 32767 are not supported");
        if ((int64_t)in->dims[d] + b + a != out->dims[d]) return OP_FAIL("output shape is not input plus paddings");
        op->p.pad.before[d + lead] = (int16_t)b;
        op->p.pad.after[d + lead] = (int16_t)a;
    }
    if (v2 && op->in[2] >= 0) {
        const ea_tensor *cv = &m->tensors[op->in[2]];
        if (!cv->is_const || cv->type != T_INT8 || cv->count != 1) return OP_FAIL("constant_values must be one constant int8");
        /* TFLM's PadPrepare: the constant must share the output's quantization. */
        if (cv->zero_point != out->zero_point || cv->scale != out->scale)
            return OP_FAIL("constant_values quantization differs from the output's");
        op->p.pad.value = (int8_t)cv->cdata[0];
    } else {
        op->p.pad.value = (int8_t)out->zero_point;
    }
    op->kind = K_PAD;
    return EA_OK;
}

static ea_status prepare_copy(loader *L, uint32_t i) {
    ea_model *m = L->m;
    ea_op *op = &m->ops[i];
    if (op->in[0] < 0) return OP_FAIL("input tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->type != out->type || type_size(in->type) == 0) return OP_FAIL("input and output types differ or are unsupported");
    if (in->count != out->count) return OP_FAIL("input and output sizes differ");
    op->kind = K_COPY;
    return EA_OK;
}

static ea_status prepare_softmax(loader *L, uint32_t i) {
    ea_model *m = L->m;
    ea_op *op = &m->ops[i];
    float beta = 0.0f;
    ea_status st;

    if (L->op_opt_type[i] == BO_SOFTMAX && fb_f32(&L->r, &L->op_tables[i], 0, 0.0f, "SoftmaxOptions.beta", &beta))
        return with_index(m, "op", i);
    if ((st = need_s8(m, i, op->in[0], "input")) || (st = need_s8(m, i, op->out, "output"))) return st;
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->ndim < 1 || in->count != out->count) return OP_FAIL("input and output shapes differ");
    if (out->zero_point != -128 || out->scale != 1.0f / 256) return OP_FAIL("output must have scale 1/256 and zero point -128");
    /* PreprocessSoftmaxScaling with 5 integer bits (double-rounding build), CalculateInputRadius. */
    double real = (double)beta * (double)in->scale * (double)(1 << 26);
    if (real > 2147483647.0) real = 2147483647.0;
    if (!(real > 1.0)) return OP_FAIL("beta x input scale too small");
    if (ea_quantize_multiplier(real, &op->p.softmax.mult, &op->p.softmax.left_shift) ||
        op->p.softmax.left_shift < 0 || op->p.softmax.left_shift > 31)
        return OP_FAIL("invalid input scale");
    const double radius = 1.0 * 31.0 * (double)((int64_t)1 << 26) / (double)((int64_t)1 << op->p.softmax.left_shift);
    op->p.softmax.diff_min = -(int32_t)radius; /* floor of a positive value */
    op->kind = K_SOFTMAX;
    return EA_OK;
}

static ea_status prepare_quantize(loader *L, uint32_t i, int dequantize) {
    ea_model *m = L->m;
    ea_op *op = &m->ops[i];
    ea_status st;
    if (op->in[0] < 0) return OP_FAIL("input tensor is missing");
    const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
    if (in->count != out->count) return OP_FAIL("input and output sizes differ");
    if (dequantize) {
        if ((st = need_s8(m, i, op->in[0], "input"))) return st;
        if (out->type != T_FLOAT32) return OP_FAIL("only int8 -> float32 is supported");
        op->kind = K_DEQUANTIZE;
        return EA_OK;
    }
    if ((st = need_s8(m, i, op->out, "output"))) return st;
    if (out->nscales != 1) return OP_FAIL("output must have one scale");
    if (in->type == T_FLOAT32) {
        op->kind = K_QUANTIZE_F32;
        return EA_OK;
    }
    if ((st = need_s8(m, i, op->in[0], "input"))) return st;
    if (ea_quantize_multiplier((double)in->scale / (double)out->scale, &op->p.requant.mult, &op->p.requant.shift) ||
        op->p.requant.shift > 30)
        return OP_FAIL("input/output scale ratio out of range");
    op->kind = K_REQUANTIZE;
    return EA_OK;
}

static ea_status prepare_op(loader *L, uint32_t i) {
    switch (L->m->ops[i].builtin) {
        case OP_CONV_2D: return prepare_conv(L, i, 0);
        case OP_DEPTHWISE_CONV_2D: return prepare_conv(L, i, 1);
        case OP_FULLY_CONNECTED: return prepare_fc(L, i);
        case OP_MAX_POOL_2D: return prepare_pool(L, i, 1);
        case OP_AVERAGE_POOL_2D: return prepare_pool(L, i, 0);
        case OP_ADD: return prepare_add(L, i);
        case OP_MEAN: return prepare_mean(L, i);
        case OP_PAD: return prepare_pad(L, i, 0);
        case OP_PADV2: return prepare_pad(L, i, 1);
        case OP_RESHAPE: case OP_SQUEEZE: case OP_EXPAND_DIMS: return prepare_copy(L, i);
        case OP_SOFTMAX: return prepare_softmax(L, i);
        case OP_QUANTIZE: return prepare_quantize(L, i, 0);
        case OP_DEQUANTIZE: return prepare_quantize(L, i, 1);
        default: return fail(L->m, "internal: operator without preparation", "");
    }
}

/* ---------------------------------------------------------------- data flow */

/* Lifetimes of the non-constant tensors, and the check that each is written before it is read. */
static ea_status data_flow(ea_model *m) {
    ea_tensor *tin = &m->tensors[m->input];
    if (tin->is_const) return fail(m, "model input tensor is constant", "");
    tin->producer_set = 1;
    tin->first_op = 0;
    tin->last_op = 0;
    for (uint32_t i = 0; i < m->n_ops; i++) {
        ea_op *op = &m->ops[i];
        for (int k = 0; k < 3; k++) {
            if (op->in[k] < 0) continue;
            ea_tensor *t = &m->tensors[op->in[k]];
            if (t->is_const) continue;
            if (!t->producer_set) return op_fail(m, i, "reads tensor before it is written: ", NULL, op->in[k], 1);
            t->last_op = (int16_t)i;
        }
        ea_tensor *o = &m->tensors[op->out];
        if (o->is_const || o->producer_set) return op_fail(m, i, "writes a constant or already written tensor: ", NULL, op->out, 1);
        o->producer_set = 1;
        o->first_op = (int16_t)i;
        o->last_op = (int16_t)i;
    }
    ea_tensor *tout = &m->tensors[m->output];
    if (!tout->producer_set || tout->is_const) return fail(m, "model output tensor is never computed", "");
    tout->last_op = (int16_t)m->n_ops; /* stays valid after the last operator */
    /* The input stays intact too, so that invoking again (INFER with a repeat count) sees the same input. */
    tin->last_op = (int16_t)m->n_ops;
    return EA_OK;
}

static ea_status info(ea_model *m, int32_t idx, ea_tensor_info *ti, const char *what) {
    const ea_tensor *t = &m->tensors[idx];
    memset(ti, 0, sizeof *ti);
    switch (t->type) {
        case T_INT8: ti->dtype = EA_DTYPE_INT8; break;
        case T_FLOAT32: ti->dtype = EA_DTYPE_FLOAT32; break;
        default: return fail(m, what, " tensor must be int8 or float32");
    }
    ti->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) ti->dims[d] = t->dims[d];
    ti->scale = t->type == T_INT8 ? t->scale : 0.0f;
    ti->zero_point = t->type == T_INT8 ? t->zero_point : 0;
    ti->bytes = t->bytes;
    return EA_OK;
}

/* ---------------------------------------------------------------- loading */

static ea_status load(ea_model *m, const uint8_t *data, uint32_t len) {
    static loader L_storage; /* large (op tables); kept off the stack for small firmware stacks */
    loader *L = &L_storage;
    fb_table model, sg;
    fb_vector codes, subgraphs, tensors, ops, inputs, outputs;
    uint32_t version = 0;
    ea_status st;

    memset(L, 0, sizeof *L);
    L->m = m;
    L->r.buf = data;
    L->r.len = len;
    L->r.err = m->error;
    L->r.err_len = EA_ERROR_LEN;
    if (!data) return fail(m, "model: no data", "");
    if (fb_root(&L->r, "TFL3", &model) || fb_u32(&L->r, &model, 0, 0, "Model.version", &version)) return EA_ERR_MODEL;
    if (version != 3) return fail(m, "Model.version: only TFLite schema version 3 is supported", "");
    if (fb_vector_field(&L->r, &model, 1, 4, "Model.operator_codes", &codes) ||
        fb_vector_field(&L->r, &model, 2, 4, "Model.subgraphs", &subgraphs) ||
        fb_vector_field(&L->r, &model, 4, 4, "Model.buffers", &L->buffers))
        return EA_ERR_MODEL;
    if (codes.count > EA_MAX_OPCODES) return fail(m, "Model.operator_codes: too many operator codes", "");
    for (uint32_t k = 0; k < codes.count; k++) {
        fb_table oc;
        int8_t deprecated = 0;
        int32_t code = 0;
        if (fb_vector_table(&L->r, &codes, k, "Model.operator_codes", &oc) ||
            fb_i8(&L->r, &oc, 0, 0, "OperatorCode.deprecated_builtin_code", &deprecated) ||
            fb_i32(&L->r, &oc, 3, 0, "OperatorCode.builtin_code", &code))
            return with_index(m, "operator code", k);
        L->opcodes[k] = code > deprecated ? code : deprecated; /* schema rule for the two code fields */
    }
    L->n_opcodes = codes.count;
    if (subgraphs.count != 1) return fail(m, "Model.subgraphs: exactly one subgraph is supported", "");
    if (fb_vector_table(&L->r, &subgraphs, 0, "Model.subgraphs", &sg) ||
        fb_vector_field(&L->r, &sg, 0, 4, "SubGraph.tensors", &tensors) ||
        fb_vector_field(&L->r, &sg, 1, 4, "SubGraph.inputs", &inputs) ||
        fb_vector_field(&L->r, &sg, 2, 4, "SubGraph.outputs", &outputs) ||
        fb_vector_field(&L->r, &sg, 3, 4, "SubGraph.operators", &ops))
        return EA_ERR_MODEL;
    if (tensors.count > EA_MAX_TENSORS) return fail(m, "SubGraph.tensors: more tensors than EA_MAX_TENSORS", "");
    if (ops.count > EA_MAX_OPS) return fail(m, "SubGraph.operators: more operators than EA_MAX_OPS", "");
    if (ops.count == 0) return fail(m, "SubGraph.operators: the model has no operators", "");
    m->n_tensors = tensors.count;
    m->n_ops = ops.count;
    for (uint32_t k = 0; k < tensors.count; k++) {
        fb_table tt;
        if (fb_vector_table(&L->r, &tensors, k, "SubGraph.tensors", &tt)) return with_index(m, "tensor", k);
        if ((st = parse_tensor(L, &tt, k))) return st;
    }
    if (inputs.count != 1 || outputs.count != 1) return fail(m, "SubGraph.inputs/outputs: exactly one input and one output are supported", "");
    m->input = fb_vec_i32(&L->r, &inputs, 0);
    m->output = fb_vec_i32(&L->r, &outputs, 0);
    if (m->input < 0 || m->input >= (int32_t)m->n_tensors || m->output < 0 || m->output >= (int32_t)m->n_tensors)
        return fail(m, "SubGraph.inputs/outputs: tensor index out of range", "");
    for (uint32_t k = 0; k < ops.count; k++) {
        fb_table ot;
        if (fb_vector_table(&L->r, &ops, k, "SubGraph.operators", &ot)) return with_index(m, "op", k);
        if ((st = parse_operator(L, &ot, k))) return st;
    }
    if ((st = data_flow(m))) return st;
    for (uint32_t k = 0; k < ops.count; k++)
        if ((st = prepare_op(L, k))) return st;
    if ((st = info(m, m->input, &m->in_info, "model input")) || (st = info(m, m->output, &m->out_info, "model output")))
        return st;

    m->activation_bytes = ea_plan_arena(m);
    if (m->activation_bytes == UINT32_MAX) return fail(m, "arena: the model needs more than 2 GiB", "");
    const uint64_t total = (uint64_t)m->activation_bytes + L->persistent;
    if (total > 0x7fffffffu) return fail(m, "arena: the model needs more than 2 GiB", "");
    for (uint32_t k = 0; k < ops.count; k++) m->ops[k].chan_offset += m->activation_bytes;
    m->arena_needed = (uint32_t)total;
    return EA_OK;
}

static void compute_channels(ea_model *m) {
    for (uint32_t i = 0; i < m->n_ops; i++) {
        ea_op *op = &m->ops[i];
        if (!op->nchan) continue;
        op->chan_mult = (int32_t *)(void *)(m->arena + op->chan_offset);
        op->chan_shift = op->chan_mult + op->nchan;
        conv_multipliers(m, i, &m->tensors[op->in[0]], &m->tensors[op->in[1]], &m->tensors[op->out], op->nchan,
                         op->chan_mult, op->chan_shift);
    }
}

ea_status ea_model_init(ea_model *m, const uint8_t *data, uint32_t len, uint8_t *arena, uint32_t arena_len) {
    if (!m) return EA_ERR_MODEL;
    memset(m, 0, sizeof *m);
    m->data = data;
    m->len = len;
    ea_status st = load(m, data, len);
    if (st) return st;
    const uintptr_t base = (uintptr_t)arena;
    const uintptr_t pad = (16u - (base & 15u)) & 15u;
    if (!arena || arena_len < pad || arena_len - pad < m->arena_needed) {
        ea_strbuf t;
        ea_sb_init(&t, m->error, EA_ERROR_LEN);
        ea_sb_raw(&t, "arena too small: the model needs ");
        ea_sb_i64(&t, m->arena_needed);
        ea_sb_raw(&t, " bytes (16-byte aligned), got ");
        ea_sb_i64(&t, arena ? (int64_t)arena_len - (int64_t)pad : 0);
        return EA_ERR_MODEL;
    }
    m->arena = arena + pad;
    for (uint32_t k = 0; k < m->n_tensors; k++) {
        ea_tensor *t = &m->tensors[k];
        if (!t->is_const && t->producer_set) t->vdata = m->arena + t->arena_offset;
    }
    compute_channels(m);
    m->ready = 1;
    return EA_OK;
}

uint32_t ea_model_arena_needed(const uint8_t *data, uint32_t len) {
    static ea_model scratch;
    memset(&scratch, 0, sizeof scratch);
    scratch.data = data;
    scratch.len = len;
    if (load(&scratch, data, len)) return 0;
    return scratch.arena_needed;
}

const ea_tensor_info *ea_model_input_info(const ea_model *m) { return m && m->ready ? &m->in_info : NULL; }
const ea_tensor_info *ea_model_output_info(const ea_model *m) { return m && m->ready ? &m->out_info : NULL; }
uint8_t *ea_model_input(ea_model *m) { return m && m->ready ? m->tensors[m->input].vdata : NULL; }
const uint8_t *ea_model_output(const ea_model *m) { return m && m->ready ? m->tensors[m->output].vdata : NULL; }
const char *ea_model_error(const ea_model *m) { return m ? m->error : "no model"; }

/* ---------------------------------------------------------------- invoke */

ea_status ea_model_invoke(ea_model *m) {
    if (!m || !m->ready) {
        if (m) fail(m, "invoke: the model is not initialised", "");
        return EA_ERR_MODEL;
    }
    for (uint32_t i = 0; i < m->n_ops; i++) {
        const ea_op *op = &m->ops[i];
        const ea_tensor *in = &m->tensors[op->in[0]], *out = &m->tensors[op->out];
        const int8_t *x = (const int8_t *)tensor_data(m, op->in[0]);
        int8_t *y = (int8_t *)out->vdata;
        switch (op->kind) {
            case K_CONV:
            case K_DWCONV: {
                const ea_tensor *f = &m->tensors[op->in[1]];
                ea_conv_params p = {-in->zero_point, out->zero_point, op->p.conv.stride_w, op->p.conv.stride_h,
                                    op->p.conv.dil_w, op->p.conv.dil_h, op->p.conv.pad_w, op->p.conv.pad_h,
                                    op->p.conv.depth_mult, op->act_min, op->act_max};
                ea_dims4 di, df, dout;
                dims4(in, &di);
                dims4(f, &df);
                dims4(out, &dout);
                const uint8_t *bias = op->in[2] >= 0 ? tensor_data(m, op->in[2]) : NULL;
                if (op->kind == K_CONV)
                    ea_conv_s8(&p, op->chan_mult, op->chan_shift, &di, x, &df, (const int8_t *)tensor_data(m, op->in[1]), bias, &dout, y);
                else
                    ea_depthwise_conv_s8(&p, op->chan_mult, op->chan_shift, &di, x, &df,
                                         (const int8_t *)tensor_data(m, op->in[1]), bias, &dout, y);
                break;
            }
            case K_FC: {
                const ea_tensor *f = &m->tensors[op->in[1]];
                const int32_t units = f->dims[0], accum = f->dims[1];
                const int32_t batches = (int32_t)(out->count / (uint32_t)units);
                const uint8_t *bias = op->in[2] >= 0 ? tensor_data(m, op->in[2]) : NULL;
                const int8_t *w = (const int8_t *)tensor_data(m, op->in[1]);
                ea_fc_params p = {-in->zero_point, -f->zero_point, out->zero_point, op->act_min, op->act_max};
                if (op->p.fc.per_channel)
                    ea_fully_connected_per_channel_s8(&p, op->chan_mult, op->chan_shift, batches, accum, units, x, w, bias, y);
                else
                    ea_fully_connected_s8(&p, op->p.fc.mult, op->p.fc.shift, batches, accum, units, x, w, bias, y);
                break;
            }
            case K_MAXPOOL:
            case K_AVGPOOL: {
                ea_pool_params p = {op->p.pool.stride_w, op->p.pool.stride_h, op->p.pool.filter_w, op->p.pool.filter_h,
                                    op->p.pool.pad_w, op->p.pool.pad_h, op->act_min, op->act_max};
                ea_dims4 di, dout;
                dims4(in, &di);
                dims4(out, &dout);
                if (op->kind == K_MAXPOOL) {
                    ea_max_pool_s8(&p, &di, x, &dout, y);
                } else if (ea_avg_pool_s8(&p, &di, x, &dout, y)) {
                    op_fail(m, i, "a pooling window covers no input", NULL, 0, 0);
                    return EA_ERR_RUNTIME;
                }
                break;
            }
            case K_ADD: {
                const ea_tensor *b = &m->tensors[op->in[1]];
                ea_add_params p = {-in->zero_point, -b->zero_point, out->zero_point, 20,
                                   op->p.add.in1_mult, op->p.add.in1_shift, op->p.add.in2_mult, op->p.add.in2_shift,
                                   op->p.add.out_mult, op->p.add.out_shift, op->act_min, op->act_max};
                int32_t da[6], db[6], dout[6];
                dims6(in, da);
                dims6(b, db);
                dims6(out, dout);
                ea_add_s8(&p, da, x, db, (const int8_t *)tensor_data(m, op->in[1]), dout, y);
                break;
            }
            case K_MEAN: {
                int32_t di[6];
                dims6(in, di);
                ea_mean_s8(di, x, op->p.mean.axes_mask, in->zero_point, out->zero_point, op->p.mean.mult,
                           op->p.mean.shift, y);
                break;
            }
            case K_PAD: {
                int32_t di[6], before[6], after[6];
                dims6(in, di);
                for (int d = 0; d < 6; d++) {
                    before[d] = op->p.pad.before[d];
                    after[d] = op->p.pad.after[d];
                }
                ea_pad_s8(di, before, after, op->p.pad.value, x, y);
                break;
            }
            case K_COPY:
                ea_copy_bytes(out->bytes, (const uint8_t *)x, (uint8_t *)y);
                break;
            case K_SOFTMAX: {
                const int32_t depth = in->dims[in->ndim - 1];
                ea_softmax_s8((int32_t)(in->count / (uint32_t)depth), depth, x, op->p.softmax.mult,
                              op->p.softmax.left_shift, op->p.softmax.diff_min, y);
                break;
            }
            case K_QUANTIZE_F32:
                ea_quantize_f32_s8(out->count, tensor_data(m, op->in[0]), out->scale, out->zero_point, y);
                break;
            case K_REQUANTIZE:
                ea_requantize_s8(out->count, x, in->zero_point, out->zero_point, op->p.requant.mult,
                                 op->p.requant.shift, y);
                break;
            case K_DEQUANTIZE:
                ea_dequantize_s8_f32(out->count, x, in->scale, in->zero_point, out->vdata);
                break;
            default:
                op_fail(m, i, "internal: operator was not prepared", NULL, 0, 0);
                return EA_ERR_RUNTIME;
        }
    }
    return EA_OK;
}
